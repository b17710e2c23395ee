"""``--backend torch|torch-fused|onnx|openvino`` in the API and in ``sod100k predict``."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from sod100k.cli import main
from sod100k.infer.runtime import make_backend


@pytest.fixture(scope="module")
def three_images(ecssd, tmp_path_factory):
    folder = tmp_path_factory.mktemp("in")
    for src in sorted((ecssd / "images").iterdir())[:3]:
        shutil.copy(src, folder / src.name)
    return folder


def predict_argv(images, out, weights, backend: str, *extra: str) -> list[str]:
    return ["predict", str(images), "-o", str(out), "-w", str(weights), "--backend", backend,
            "-q", *extra]  # fmt: skip


@pytest.mark.parametrize("name", ["torch-fused", "onnx", "openvino"])
def test_backends_agree_with_eager(name, weights_x1) -> None:
    x = np.random.default_rng(0).standard_normal((2, 3, 128, 96), dtype=np.float32)
    eager = make_backend("torch", None, str(weights_x1))(x)
    other = make_backend(name, None, str(weights_x1), threads=1)
    assert other.name == name
    assert np.abs(other(x) - eager).max() < 1e-4


def test_unknown_backend_is_rejected(weights_x1) -> None:
    with pytest.raises(ValueError, match="unknown backend"):
        make_backend("tensorrt", None, str(weights_x1))


def test_openvino_reproduces_reference_logits(weights_x2, parity_dir) -> None:
    fixture = np.load(parity_dir / "csnet-L-x2.npz")
    backend = make_backend("openvino", None, str(weights_x2), threads=2)
    got = np.concatenate([backend(fixture["inputs"][i : i + 1]) for i in range(2)])
    assert np.abs(got - fixture["logits"][:2]).max() < 1e-4


def test_openvino_serves_concurrent_callers_and_shapes(weights_x1) -> None:
    from concurrent.futures import ThreadPoolExecutor

    backend = make_backend("openvino", None, str(weights_x1), threads=1, streams=2)
    eager = make_backend("torch", None, str(weights_x1))
    rng = np.random.default_rng(1)
    batches = [rng.standard_normal((n, 3, 96, 64), dtype=np.float32) for n in (1, 3, 1, 3)]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(backend, batches))
    for batch, got in zip(batches, results, strict=True):
        assert np.abs(got - eager(batch)).max() < 1e-4


def test_predict_with_fast_backends_matches_torch(three_images, weights_x2, tmp_path) -> None:
    outs = {}
    for backend in ("torch", "onnx", "openvino"):
        out = tmp_path / backend
        argv = predict_argv(
            three_images, out, weights_x2, backend, "--threads", "1", "--streams", "2"
        )
        assert main(argv) == 0
        outs[backend] = {
            p.name: cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in sorted(out.glob("*.png"))
        }
    for backend in ("onnx", "openvino"):
        assert len(outs[backend]) == 3 and outs[backend].keys() == outs["torch"].keys()
        for name, ref in outs["torch"].items():
            # logits agree to 1e-4, so the truncated uint8 maps differ by at most one level
            assert np.abs(ref.astype(int) - outs[backend][name]).max() <= 1


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_predict_with_onnx_file_as_weights(three_images, weights_x1, tmp_path, backend) -> None:
    model = tmp_path / "x1.onnx"
    assert main(["export", "-w", str(weights_x1), "--out", str(model)]) == 0
    out = tmp_path / "maps"
    argv = predict_argv(three_images, out, model, backend)
    assert main(argv) == 0
    assert len(list(out.glob("*.png"))) == 3


@pytest.mark.parametrize(
    ("backend", "message"),
    [("onnx", "cannot load ONNX model"), ("openvino", "cannot load the model with OpenVINO")],
)
def test_predict_reports_an_unloadable_onnx_file(
    three_images, tmp_path, capsys, backend, message
) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00" * 10)
    argv = predict_argv(three_images, tmp_path / "o", bad, backend)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"bad.onnx: {message}" in err[0]


def test_api_backend_switch(weights_x1, ecssd) -> None:
    from sod100k.api import saliency

    image = ecssd / "images" / "0001.jpg"
    ref = saliency(image, weights=weights_x1, backend="torch")
    fast = saliency(image, weights=weights_x1, backend="onnx", threads=1)
    assert fast.shape == ref.shape and fast.dtype == np.uint8
    assert np.abs(ref.astype(int) - fast).max() <= 1


def test_auto_backend_is_openvino_on_cpu_and_torch_on_cuda(weights_x1) -> None:
    from sod100k.infer.runtime import resolve_backend

    assert resolve_backend("auto", "cpu") == "openvino"
    assert resolve_backend("auto", "cuda:0") == "torch"
    assert resolve_backend("onnx", "cpu") == "onnx"
    assert make_backend("auto", None, str(weights_x1)).name == "openvino"
