"""The predict API and the ``sod100k predict`` / ``info`` commands."""

import json

import numpy as np
import pytest
from PIL import Image

from sod100k.api import WeightsNotFoundError, saliency
from sod100k.cli import main
from sod100k.data.images import load_gray


@pytest.fixture(scope="module")
def sample_images(ecssd):
    return [ecssd / "images" / f"{n}.jpg" for n in ("0001", "0557")]


def test_saliency_keeps_original_size(sample_images, weights_x2):
    for path in sample_images:  # 0557 is grayscale
        sal = saliency(path, weights=weights_x2)
        w, h = Image.open(path).size
        assert sal.shape == (h, w)
        assert sal.dtype == np.uint8
        assert sal.max() > 200 and sal.min() < 30  # a real object map, not a flat field


def test_saliency_accepts_arrays_and_pil(sample_images, weights_x2):
    path = sample_images[0]
    from_path = saliency(path, weights=weights_x2)
    rgb = np.asarray(Image.open(path).convert("RGB"))
    assert np.array_equal(saliency(rgb, weights=weights_x2), from_path)
    assert np.array_equal(saliency(Image.open(path), weights=weights_x2), from_path)


def test_predict_agrees_with_the_salient_object(ecssd, weights_x2):
    sal = saliency(ecssd / "images" / "0001.jpg", weights=weights_x2) >= 128
    gt = load_gray(ecssd / "masks" / "0001.png") >= 128
    iou = (sal & gt).sum() / (sal | gt).sum()
    assert iou > 0.7


def test_cli_predict_folder_mirrors_tree_and_reports_bad_files(
    tmp_path, sample_images, weights_x1, capsys
):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    (src / "a.jpg").write_bytes(sample_images[0].read_bytes())
    (src / "sub" / "b.jpg").write_bytes(sample_images[1].read_bytes())
    (src / "broken.jpg").write_bytes(b"this is not a jpeg")
    out = tmp_path / "out"
    code = main(
        [
            "predict",
            "--weights",
            str(weights_x1),
            str(src),
            "-o",
            str(out),
            "-q",
            "--batch-size",
            "2",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert (out / "a.png").exists() and (out / "sub" / "b.png").exists()
    assert not (out / "broken.png").exists()
    assert "broken.jpg: not an image file" in err
    assert "1 item(s) failed" in err
    assert load_gray(out / "sub" / "b.png").shape == Image.open(sample_images[1]).size[::-1]


def test_cli_predict_never_overwrites_inputs(tmp_path, weights_x1, capsys):
    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "x.png")
    before = (tmp_path / "x.png").read_bytes()
    code = main(["predict", "--weights", str(weights_x1), str(tmp_path), "-o", str(tmp_path), "-q"])
    assert code == 2
    assert (tmp_path / "x.png").read_bytes() == before
    assert "is the input folder" in capsys.readouterr().err


def test_cli_predict_empty_folder_and_missing_path(tmp_path, weights_x1, capsys):
    (tmp_path / "empty").mkdir()
    code = main(
        [
            "predict",
            "--weights",
            str(weights_x1),
            str(tmp_path / "empty"),
            str(tmp_path / "missing.jpg"),
            "-o",
            str(tmp_path / "out"),
            "-q",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "no images" in err and "no such file or folder" in err


@pytest.mark.parametrize("option", [["--batch-size", "0"], ["--size", "-3"]])
def test_cli_predict_bad_options(tmp_path, weights_x1, option, capsys):
    code = main(
        ["predict", "--weights", str(weights_x1), str(tmp_path), "-o", str(tmp_path / "o"), *option]
    )
    assert code == 2
    assert "must be positive" in capsys.readouterr().err


def test_cli_predict_wrong_checkpoint_is_one_line(tmp_path, capsys):
    bad = tmp_path / "w.pt"
    bad.write_text("nope")
    img = tmp_path / "i.png"
    Image.new("RGB", (20, 20)).save(img)
    code = main(["predict", "--weights", str(bad), str(img), "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "w.pt" in err[0] and "not a sod100k checkpoint" in err[0]


def test_cli_info(weights_x2, capsys):
    assert main(["info", "--model", "csnet-l-x2", "--weights", str(weights_x2), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["params"] == 140_894
    assert round(info["flops"] / 1e9, 3) == 0.993
    assert info["config"]["stage_depths"] == [3, 4, 6, 4]


@pytest.fixture
def no_default_weights(tmp_path, monkeypatch):
    """No $SOD100K_WEIGHTS, and an empty weights folder."""
    monkeypatch.delenv("SOD100K_WEIGHTS", raising=False)
    monkeypatch.setenv("SOD100K_HOME", str(tmp_path / "home"))
    return tmp_path / "home" / "weights" / "csnet-L-x2"


def test_missing_weights_are_explained_in_python_words(tmp_path, no_default_weights):
    with pytest.raises(WeightsNotFoundError) as e:
        saliency(np.zeros((32, 32, 3), np.uint8))
    message = str(e.value)
    assert f"none found at {no_default_weights}" in message
    assert "pass weights=PATH, set the SOD100K_WEIGHTS environment variable" in message
    assert "--weights" not in message
    assert isinstance(e.value, FileNotFoundError)


@pytest.mark.parametrize("command", ["predict", "export", "serve", "benchmark", "predict --ray"])
def test_missing_weights_are_explained_in_command_line_words(
    tmp_path, no_default_weights, capsys, command
):
    args = {
        "predict": [str(tmp_path), "-o", str(tmp_path / "o")],
        "export": ["--out", str(tmp_path / "m.onnx")],
        "serve": ["--port", "8765"],
        "benchmark": ["--dataset", f"X={tmp_path}:{tmp_path}"],
        "predict --ray": [str(tmp_path), "-o", str(tmp_path / "o"), "--ray", "local"],
    }[command]
    Image.new("RGB", (20, 20)).save(tmp_path / "a.png")
    assert main([command.split()[0], *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"none found at {no_default_weights}; give --weights PATH" in err
    assert "set SOD100K_WEIGHTS=PATH" in err and "weights=PATH," not in err


@pytest.mark.parametrize(
    ("model", "weights", "holds"),
    [
        ("csnet-l-x1", "csnet-L-x2", "holds csnet-L-x2, not the csnet-l-x1 named"),
        ("csnet-l-x2", "csnet-L-x1", "holds csnet-L-x1, not the csnet-l-x2 named"),
        (
            "csf-res2net50",
            "csnet-L-x1",
            "holds a csnet model (csnet-L-x1), not the csf-res2net50 named",
        ),
    ],
)
def test_cli_refuses_a_model_name_the_checkpoint_disagrees_with(
    tmp_path, capsys, weights_x1, model, weights, holds
):
    folder = weights_x1.parent / weights
    photo = tmp_path / "a.png"
    Image.new("RGB", (20, 20)).save(photo)
    assert main(["predict", "-m", model, "-w", str(folder), str(photo)]) == 2
    err = capsys.readouterr().err
    assert err == f"sod100k predict: error: {folder}: {holds}; name the model it holds, or none, " \
        "to use the checkpoint as it is\n"  # fmt: skip
    assert not (tmp_path / "a.mask.png").exists()


def test_the_checkpoint_decides_when_no_model_is_named(tmp_path, weights_x1):
    """Python: ``weights`` alone (the default model is not imposed on them)."""
    sal = saliency(np.zeros((32, 32, 3), np.uint8), weights=weights_x1, backend="torch")
    assert sal.shape == (32, 32)
