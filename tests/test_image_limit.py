"""The image size limit: 100 MP as documented, raised by a flag, a function or an
environment variable, and Pillow's decompression-bomb guard never refuses below it."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

import sod100k
from sod100k.cli import main
from sod100k.data import images
from sod100k.data.images import ImageError, load_rgb

ROOT = Path(__file__).resolve().parents[1]
PYTHON_ADVICE = "raise it with sod100k.set_max_megapixels(MP) or SOD100K_MAX_MEGAPIXELS=MP"


@pytest.fixture(autouse=True)
def default_limit(monkeypatch):
    """Each test starts from the default limit and a Pillow guard of 1000 pixels, which
    stands for Pillow's own default (89.5 MP) below ours (100 MP) at a testable scale."""
    monkeypatch.delenv(images.MAX_MEGAPIXELS_ENV, raising=False)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    yield
    sod100k.set_max_megapixels(None)


def square(tmp_path: Path, side: int) -> Path:
    path = tmp_path / f"square{side}.png"
    Image.new("RGB", (side, side), (90, 30, 200)).save(path)
    return path


def test_the_default_limit_is_the_documented_100_megapixels() -> None:
    assert images.max_pixels() == 100_000_000
    text = (ROOT / "docs" / "guide" / "command-line.md").read_text()
    assert "(> 100 MP)" in text and "--max-megapixels" in text


def test_pillow_never_refuses_below_our_limit(tmp_path) -> None:
    sod100k.set_max_megapixels(0.0015)  # 1500 pixels, above the guard's 1000
    assert load_rgb(square(tmp_path, 36)).shape == (36, 36, 3)  # 1296 px: Pillow would warn
    assert Image.MAX_IMAGE_PIXELS == 1500  # the guard now agrees with us


@pytest.mark.parametrize(
    ("limit", "side", "size"),
    [
        (0.0015, 40, "40x40 = 0.0016 MP"),  # over our limit
        (0.001, 50, "0.0025 MP"),  # over twice Pillow's guard too: Pillow's error, our words
    ],
)
def test_a_larger_image_is_one_line_naming_file_size_and_advice(tmp_path, limit, side, size):
    sod100k.set_max_megapixels(limit)
    path = square(tmp_path, side)
    with pytest.raises(ImageError) as e:
        load_rgb(path)
    assert str(e.value) == (
        f"{path}: image too large ({size}; the limit is {limit:g} MP: {PYTHON_ADVICE})"
    )


def test_the_environment_variable_sets_the_limit(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(images.MAX_MEGAPIXELS_ENV, "0.002")
    assert load_rgb(square(tmp_path, 40)).shape == (40, 40, 3)
    monkeypatch.setenv(images.MAX_MEGAPIXELS_ENV, "lots")
    with pytest.raises(ValueError, match="SOD100K_MAX_MEGAPIXELS='lots': the image limit must"):
        images.max_pixels()
    with pytest.raises(ValueError, match="positive number of megapixels"):
        sod100k.set_max_megapixels(0)


def test_cli_flag_raises_the_limit_and_messages_name_it(tmp_path, capsys, weights_x1) -> None:
    small, large = square(tmp_path, 36), square(tmp_path, 50)
    args = ["predict", str(small), str(large), "-o", str(tmp_path / "maps"), "-w", str(weights_x1)]
    assert main([*args, "--max-megapixels", "0.002", "--backend", "torch"]) == 1
    err = capsys.readouterr().err
    line = (
        f"{large}: image too large (50x50 = 0.0025 MP; the limit is 0.002 MP: raise it with "
        "--max-megapixels MP or SOD100K_MAX_MEGAPIXELS=MP)"
    )
    assert f"error: {line}" in err.splitlines() or f"  {line}" in err.splitlines()
    assert (tmp_path / "maps" / "square36.png").is_file()
    assert not (tmp_path / "maps" / "square50.png").exists()
    # The flag and the command line's advice last for the command only.
    assert images.max_pixels() == 100_000_000 and images.RAISE_LIMIT_ADVICE == PYTHON_ADVICE


def test_cli_refuses_a_bad_limit_in_one_line(tmp_path, capsys, monkeypatch) -> None:
    path = square(tmp_path, 20)
    assert main(["predict", str(path), "--max-megapixels", "-5"]) == 2
    assert capsys.readouterr().err == "sod100k predict: error: --max-megapixels must be " \
        "positive, got -5\n"  # fmt: skip
    monkeypatch.setenv(images.MAX_MEGAPIXELS_ENV, "0")
    assert main(["evaluate", "--pred", str(tmp_path), "--gt", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("sod100k evaluate: error: SOD100K_MAX_MEGAPIXELS='0'")
        and err.count("\n") == 1
    )
