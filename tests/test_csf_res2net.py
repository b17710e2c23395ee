"""CSF+Res2Net-50 on small inputs: shapes, size, save/load, ONNX parity, backbone keys."""

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from sod100k.checkpoints.loading import load_model, save_model
from sod100k.models import create_model
from sod100k.models.flops import count_params
from sod100k.nn.res2net import BackboneWeightsError, Res2Net50


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("csf-res2net50").eval()


def test_output_is_one_logit_map_at_input_size(model):
    with torch.no_grad():
        y = model(torch.randn(1, 3, 64, 96))
    assert y.shape == (1, 1, 64, 96)
    assert torch.isfinite(y).all()


def test_backbone_stage_shapes():
    outs = Res2Net50().eval()(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape[1:]) for o in outs] == [
        (256, 16, 16),
        (512, 8, 8),
        (1024, 4, 4),
        (2048, 2, 2),
    ]


def test_parameter_count(model):
    # Res2Net-50 v1b 26w4s without fc: 23,669,352 weights (25.72M with fc, as published).
    # The rest is our CSF head.
    backbone = sum(p.numel() for p in model.backbone.parameters())
    assert backbone == 23_669_352
    assert count_params(model) == 36_528_489


def test_frozen_bn_stays_frozen_in_train_mode(model):
    model.train()
    bns = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(not m.training for m in bns)
    # As the reference: the deep stem's inner BNs and the shortcut BNs keep trainable
    # affine parameters, every other backbone BN is frozen.
    b = model.backbone
    trainable = {id(b.conv1[1]), id(b.conv1[4])}
    trainable |= {id(layer[0].downsample[2]) for layer in (b.layer1, b.layer2, b.layer3, b.layer4)}
    assert all(m.weight.requires_grad == (id(m) in trainable) for m in bns)
    model.eval()


def test_save_load_round_trip(model, tmp_path: Path):
    path = tmp_path / "csf.sod"
    save_model(path, model)
    loaded = load_model("csf-res2net50", weights=path)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def test_onnx_parity(model, tmp_path: Path):
    path = tmp_path / "csf.onnx"
    x = torch.randn(1, 3, 64, 64)
    torch.onnx.export(
        model, (x,), str(path), input_names=["image"], output_names=["logits"], dynamo=False
    )
    with torch.no_grad():
        expected = model(x).numpy()
    got = ort.InferenceSession(str(path)).run(None, {"image": x.numpy()})[0]
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)


def test_pretrained_backbone_in_public_layout_loads(tmp_path: Path):
    source = Res2Net50()
    state = dict(source.state_dict())
    state["fc.weight"] = torch.zeros(1000, 2048)
    state["fc.bias"] = torch.zeros(1000)
    path = tmp_path / "res2net50_v1b_26w_4s.pth"
    torch.save(state, path)
    target = Res2Net50()
    target.load_pretrained(path)
    for k, v in source.state_dict().items():
        torch.testing.assert_close(target.state_dict()[k], v)


def test_pretrained_backbone_lists_missing_and_unexpected_keys(tmp_path: Path):
    state = dict(Res2Net50().state_dict())
    state.pop("layer1.0.convs.0.weight")
    state["layer5.0.conv1.weight"] = torch.zeros(1)
    path = tmp_path / "wrong.pth"
    torch.save(state, path)
    with pytest.raises(
        BackboneWeightsError,
        match=r"missing keys \[layer1\.0\.convs\.0\.weight\]"
        r".*unexpected keys \[layer5\.0\.conv1\.weight\]",
    ):
        Res2Net50().load_pretrained(path)


def test_pretrained_backbone_rejects_non_state_dict(tmp_path: Path):
    path = tmp_path / "junk.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(BackboneWeightsError, match=r"junk\.pth"):
        Res2Net50().load_pretrained(path)
