"""ONNX export: valid graph, dynamic batch and size, same logits as torch."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from sod100k.checkpoints.loading import load_model
from sod100k.cli import main
from sod100k.infer.backends import OnnxBackend
from sod100k.infer.onnx_export import OPSET, export_bytes, export_onnx, parity_error

TOL = 1e-4


@pytest.fixture(scope="module")
def x2_model(weights_x2):
    return load_model(weights=weights_x2)


@pytest.fixture(scope="module")
def x2_onnx(x2_model, tmp_path_factory):
    return export_onnx(x2_model, tmp_path_factory.mktemp("onnx") / "x2.onnx")


def test_export_is_valid_with_dynamic_axes(x2_onnx) -> None:
    graph = onnx.load(x2_onnx)
    onnx.checker.check_model(graph, full_check=True)
    assert max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) == OPSET
    dims = graph.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["batch", "", "height", "width"]


@pytest.mark.parametrize("shape", [(2, 3, 224, 224), (2, 3, 160, 288), (1, 3, 96, 64)])
def test_onnx_matches_torch(x2_model, x2_onnx, shape) -> None:
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    assert parity_error(x2_model, x2_onnx, x) < TOL


def test_onnx_reproduces_reference_logits(x2_onnx, parity_dir) -> None:
    data = np.load(parity_dir / "csnet-L-x2.npz")
    got = OnnxBackend(x2_onnx, threads=1)(data["inputs"][:2])
    assert np.abs(got - data["logits"][:2]).max() < TOL


def test_export_cli_writes_checked_model(weights_x1, tmp_path, capsys) -> None:
    out = tmp_path / "x1.onnx"
    assert main(["export", "-w", str(weights_x1), "--out", str(out)]) == 0
    assert "max |logit difference|" in capsys.readouterr().err
    onnx.checker.check_model(onnx.load(out))
    # never overwrites without --force
    before = out.read_bytes()
    assert main(["export", "-w", str(weights_x1), "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert out.read_bytes() == before


def test_export_cli_static_int8(weights_x1, ecssd, tmp_path) -> None:
    calib = tmp_path / "calib"
    calib.mkdir()
    for src in sorted((ecssd / "images").iterdir())[:4]:
        (calib / src.name).write_bytes(src.read_bytes())
    (calib / "broken.jpg").write_bytes(b"not an image")
    out = tmp_path / "x1-int8.onnx"
    args = [
        "export",
        "-w",
        str(weights_x1),
        "--out",
        str(out),
        "--int8",
        "static",
        "--calibration",
        str(calib),
    ]
    assert main(args) == 0
    graph = onnx.load(out)
    assert any(n.op_type == "QuantizeLinear" for n in graph.graph.node)
    x = np.random.default_rng(1).standard_normal((1, 3, 96, 96), dtype=np.float32)
    assert OnnxBackend(out)(x).shape == (1, 96, 96)


def test_export_cli_static_int8_needs_calibration(weights_x1, tmp_path, capsys) -> None:
    out = tmp_path / "x.onnx"
    assert main(["export", "-w", str(weights_x1), "--out", str(out), "--int8", "static"]) == 2
    assert "--calibration" in capsys.readouterr().err
    assert not out.exists()


def test_onnx_backend_names_a_bad_file(tmp_path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"bad\.onnx: cannot load ONNX model"):
        OnnxBackend(bad)


def test_trace_size_and_threads_leave_the_graph_unchanged(x2_model) -> None:
    # export_bytes traces on a small sample with one torch thread (start-up time); the
    # graph must be the one a full-size trace gives, byte for byte.
    import torch

    threads = torch.get_num_threads()
    assert export_bytes(x2_model) == export_bytes(x2_model, sample_size=224)
    assert torch.get_num_threads() == threads
