"""Maps are quantised per model as each reference test script does."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from sod100k.infer.backends import TorchBackend
from sod100k.infer.predictor import Predictor
from sod100k.infer.preprocess import postprocess, quantization_for, sigmoid
from sod100k.models import create_model


def logits_for_levels(levels: np.ndarray) -> np.ndarray:
    """Logits whose sigmoid is ``levels / 255`` (so x255 lands on or near the halves)."""
    p = np.clip(levels / 255.0, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p)).astype(np.float32)


def test_truncate_is_csnet_test_py_and_round_is_the_csf_solvers_imwrite():
    levels = np.array([[0.0, 0.4, 0.5, 0.6, 1.5, 2.5, 127.5, 128.49, 254.5, 254.9, 255.0]])
    logits = logits_for_levels(levels)
    prob = np.clip(sigmoid(logits), 0, 1)
    # CSNet test.py: (map * 255).astype(np.uint8).
    np.testing.assert_array_equal(postprocess(logits, *levels.shape), (prob * 255).astype(np.uint8))
    # CSF solver: cv2.imwrite(path, 255 * map) with the float32 map -> OpenCV rounds.
    ok, png = cv2.imencode(".png", 255 * prob)
    assert ok
    reference = cv2.imdecode(png, cv2.IMREAD_UNCHANGED)
    ours = postprocess(logits, *levels.shape, quantization="round")
    np.testing.assert_array_equal(ours, reference)
    assert (ours != postprocess(logits, *levels.shape)).any()  # the two ways differ here
    with pytest.raises(ValueError, match="unknown quantization"):
        postprocess(logits, *levels.shape, quantization="floor")


class ConstantNet(nn.Module):
    """Returns fixed logits; ``arch`` says which reference it stands for."""

    def __init__(self, arch: str, logits: np.ndarray) -> None:
        super().__init__()
        self.arch = arch
        self.register_buffer("out", torch.from_numpy(logits)[None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out.expand(len(x), -1, -1, -1)


@pytest.mark.parametrize(("arch", "mode"), [("csnet", "truncate"), ("csf-res2net50", "round")])
def test_predictor_quantises_as_the_models_reference(arch: str, mode: str):
    logits = np.full((16, 16), float(logits_for_levels(np.array([200.7]))[0]), np.float32)
    predictor = Predictor(TorchBackend(ConstantNet(arch, logits)), size=16)
    assert predictor.quantization == mode == quantization_for(arch)
    sal = predictor(np.zeros((16, 16, 3), np.uint8))
    assert int(sal[0, 0]) == (201 if mode == "round" else 200)


def test_real_csf_model_rounds_and_unknown_models_truncate():
    assert Predictor(TorchBackend(create_model("csf-res2net50"))).quantization == "round"
    assert Predictor(TorchBackend(create_model("csnet-l-x1"))).quantization == "truncate"
    assert quantization_for(None) == "truncate"
