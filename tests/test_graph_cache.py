"""The exported-graph cache: a second start reuses the graph; any change exports afresh."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from sod100k.checkpoints import loading
from sod100k.infer import graph_cache
from sod100k.infer.runtime import make_backend

X = np.random.default_rng(0).standard_normal((1, 3, 64, 64), dtype=np.float32)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SOD100K_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def exports(monkeypatch) -> list[str]:
    """Records every real export (a cache miss)."""
    calls: list[str] = []
    real = loading.load_model

    def counting(model, weights, *args, **kwargs):
        calls.append(str(weights))
        return real(model, weights, *args, **kwargs)

    monkeypatch.setattr(loading, "load_model", counting)  # runtime imports it when exporting
    return calls


def test_second_start_reuses_the_graph_with_the_same_logits(cache, exports, weights_x1) -> None:
    first = make_backend("openvino", None, str(weights_x1), threads=1)
    second = make_backend("openvino", None, str(weights_x1), threads=1)
    assert len(exports) == 1  # the second came from the cache
    assert second.arch == first.arch == "csnet"
    np.testing.assert_array_equal(first(X), second(X))
    assert list((cache / "onnx").glob("*.onnx")) and (cache / "openvino").is_dir()


def test_other_weights_or_model_name_export_afresh(cache, exports, weights_x1, tmp_path) -> None:
    make_backend("onnx", None, str(weights_x1), threads=1)
    make_backend("onnx", "csnet-l-x1", str(weights_x1), threads=1)  # another name: another key
    edited = tmp_path / "edited"
    shutil.copytree(weights_x1, edited)
    bin_file = next(edited.glob("*.bin"))
    bin_file.write_bytes(bin_file.read_bytes() + b"\0")  # other bytes (trailing, ignored)
    make_backend("onnx", None, str(edited), threads=1)
    assert len(exports) == 3


def test_damaged_entry_is_ignored_and_replaced(cache, exports, weights_x1) -> None:
    make_backend("onnx", None, str(weights_x1), threads=1)
    (entry,) = (cache / "onnx").glob("*.onnx")
    entry.write_bytes(entry.read_bytes()[:1000])
    backend = make_backend("onnx", None, str(weights_x1), threads=1)
    assert len(exports) == 2
    assert backend(X).shape == (1, 64, 64)
    assert graph_cache.read_graph(entry.stem) is not None  # written again, whole


def test_cache_can_be_turned_off(monkeypatch, tmp_path, exports, weights_x1) -> None:
    monkeypatch.setenv("SOD100K_CACHE", "0")
    monkeypatch.setenv("SOD100K_HOME", str(tmp_path))
    make_backend("openvino", None, str(weights_x1), threads=1)
    make_backend("openvino", None, str(weights_x1), threads=1)
    assert len(exports) == 2
    assert not list(tmp_path.iterdir())


def test_unwritable_cache_is_no_error(monkeypatch, tmp_path, weights_x1) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("SOD100K_CACHE", str(blocker / "cache"))
    assert make_backend("onnx", None, str(weights_x1), threads=1)(X).shape == (1, 64, 64)
