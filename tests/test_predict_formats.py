"""``sod100k predict --format`` and the bad-input corpus through the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from badinputs import write_corpus
from sod100k.cli import main


def predict(src: Path, out: Path, weights: Path, *options: str) -> int:
    return main(["predict", str(src), "-o", str(out), "-w", str(weights), "-q", *options])


def test_cli_skips_bad_inputs_writes_good_ones_and_exits_non_zero(tmp_path, weights_x2, capsys):
    cases = write_corpus(tmp_path / "in")
    out = tmp_path / "out"
    code = predict(tmp_path / "in", out, weights_x2, "-m", "csnet-l-x2")
    assert code == 1
    err = capsys.readouterr().err
    for case in cases:
        written = out / (case.name.rsplit(".", 1)[0] + ".png")
        if case.map_size is None:
            assert not written.exists()
            assert case.name in err
        else:
            assert np.asarray(Image.open(written)).shape == case.map_size, case.name
    assert f"{sum(c.map_size is None for c in cases)} item(s) failed" in err


def test_cli_formats(tmp_path, weights_x2, ecssd):
    src = sorted((ecssd / "images").glob("*.jpg"))[0]
    size = Image.open(src).size
    expected = {"mask": "L", "rgba": "RGBA", "overlay": "RGB"}
    for fmt, mode in expected.items():
        out = tmp_path / fmt
        assert predict(src, out, weights_x2, "-m", "csnet-l-x2", "--format", fmt) == 0
        img = Image.open(out / (src.stem + ".png"))
        assert (img.mode, img.size) == (mode, size)
    out = tmp_path / "hard"
    assert predict(src, out, weights_x2, "-f", "rgba", "--threshold", "128") == 0
    alpha = np.asarray(Image.open(out / (src.stem + ".png")))[..., 3]
    assert set(np.unique(alpha)) <= {0, 255}
    assert predict(src, out, weights_x2, "-f", "mask", "--threshold", "128") == 2
