"""Precision fp32|bf16|int8 (OpenVINO only): int8 is NNCF-quantised on calibration images."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest

from sod100k.cli import main
from sod100k.infer.runtime import make_backend


def test_precision_needs_the_openvino_backend(weights_x1) -> None:
    with pytest.raises(ValueError, match="needs the openvino backend"):
        make_backend("onnx", None, str(weights_x1), precision="int8", calibration=".")
    with pytest.raises(ValueError, match="unknown precision"):
        make_backend("openvino", None, str(weights_x1), precision="fp16")


def test_int8_needs_calibration_images(weights_x1, tmp_path) -> None:
    with pytest.raises(ValueError, match="--calibration"):
        make_backend("openvino", None, str(weights_x1), precision="int8")
    with pytest.raises(ValueError, match="no readable calibration image"):
        make_backend("openvino", None, str(weights_x1), precision="int8", calibration=tmp_path)


def test_cli_does_not_offer_int8(weights_x1, tiny_data, tmp_path, capsys) -> None:
    # int8 missed the ECSSD accuracy bar (docs/benchmarks/speed.md), so only the library has it.
    argv = ["predict", str(tiny_data), "-o", str(tmp_path / "out"), "-w", str(weights_x1),
            "--backend", "openvino", "--precision", "int8", "-q"]  # fmt: skip
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert "invalid choice: 'int8'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_rejects_bf16_on_other_backends(weights_x1, tiny_data, tmp_path, capsys) -> None:
    argv = ["predict", str(tiny_data), "-o", str(tmp_path / "out"), "-w", str(weights_x1),
            "--backend", "onnx", "--precision", "bf16", "-q"]  # fmt: skip
    assert main(argv) != 0
    assert "needs the openvino backend" in capsys.readouterr().err


def test_bf16_runs_everywhere(weights_x1, caplog) -> None:
    import openvino as ov

    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64), dtype=np.float32)
    fp32 = make_backend("openvino", None, str(weights_x1), threads=1)(x)
    with caplog.at_level(logging.WARNING):
        bf16 = make_backend("openvino", None, str(weights_x1), threads=1, precision="bf16")(x)
    if "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        # bf16 keeps 8 mantissa bits: logits move, the map's ordering barely does.
        assert np.corrcoef(bf16.ravel(), fp32.ravel())[0, 1] > 0.99
    else:
        assert "no bf16 support" in caplog.text
        assert np.abs(bf16 - fp32).max() < 1e-4


def test_int8_is_quantised_and_close_to_fp32(weights_x1, duts2k, ecssd, tmp_path) -> None:
    from sod100k.data.images import load_rgb
    from sod100k.infer.preprocess import preprocess, sigmoid

    pytest.importorskip("nncf")
    calib = tmp_path / "calib"
    calib.mkdir()
    for src in sorted((duts2k / "images").iterdir())[:4]:
        shutil.copy(src, calib / src.name)
    fp32 = make_backend("openvino", None, str(weights_x1), threads=1)
    int8 = make_backend(
        "openvino", None, str(weights_x1), threads=1, precision="int8", calibration=calib
    )
    ops = {op.get_type_name() for op in int8.model.get_ops()}
    assert "FakeQuantize" in ops
    image = sorted((ecssd / "images").iterdir())[0]
    x = preprocess(load_rgb(image), 128)[None]
    a, b = sigmoid(fp32(x)), sigmoid(int8(x))
    assert not np.array_equal(a, b)  # really quantised
    assert np.abs(a - b).mean() < 0.1  # yet the same map, give or take (4 images: ~0.06)
