"""CSF + Res2Net-50 goes through training, prediction, export and the server."""

import csv
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from sod100k.checkpoints.loading import load_model, save_model
from sod100k.cli import main
from sod100k.infer.predictor import Predictor
from sod100k.infer.runtime import make_backend
from sod100k.models import create_model
from sod100k.models.config import ConfigError
from sod100k.nn.res2net import Res2Net50
from sod100k.server import ServerSettings, create_app
from sod100k.train.config import build_config
from sod100k.train.loop import Trainer, lr_at


@pytest.fixture(scope="module")
def csf_checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("csf") / "csf.pt"
    save_model(path, create_model("csf-res2net50"))
    return path


def test_recipe_is_the_reference_one():
    cfg = build_config("csf-res2net50", {"data": "d", "out": "o", "model": "csf-res2net50"})
    assert (cfg.batch_size, cfg.accumulate, cfg.epochs) == (1, 10, 24)
    assert (cfg.lr, cfg.weight_decay, cfg.betas) == (5e-5, 5e-4, (0.9, 0.999))
    assert (cfg.size, cfg.augment, cfg.loss_reduction) == (0, "flip", "sum")
    assert cfg.frozen_bn and not cfg.dwd and cfg.reset_optimizer and not cfg.amp
    # The reference lowers the lr once epoch index 15 has ended.
    assert [lr_at(cfg, e) for e in (0, 15, 16, 23)] == pytest.approx([5e-5, 5e-5, 5e-6, 5e-6])


def test_native_size_needs_batch_one():
    with pytest.raises(ConfigError, match="batch_size 1"):
        build_config("csf-res2net50", {"data": "d", "out": "o", "batch_size": 2})


def test_train_csf_at_native_size(tiny_data, tmp_path):
    out = tmp_path / "csf-run"
    args = [
        "train", "--model", "csf-res2net50", "--data", str(tiny_data), "--out", str(out),
        "--epochs", "1", "--accumulate", "4", "--workers", "0", "--from-scratch",
    ]  # fmt: skip
    assert main(args) == 0
    steps = list(csv.DictReader((out / "steps.csv").open()))
    assert len(steps) == 2  # 8 images, 4 per optimizer step
    # Summed BCE: of the order of the pixel count (36 x 40), not of a mean (~0.7).
    assert all(float(r["bce"]) > 100 for r in steps)
    model = load_model(weights=out / "last.pt")
    assert model.arch == "csf-res2net50"
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(float(m.running_var.mean()) == 1.0 for m in bns)  # frozen: never updated


def test_train_csf_refuses_dynamic_weight_decay(tiny_data, tmp_path, capsys):
    args = ["train", "--model", "csf-res2net50", "--data", str(tiny_data)]
    args += ["--out", str(tmp_path / "r"), "--dwd", "--workers", "0", "--from-scratch"]
    assert main(args) == 2
    assert "--sparsity dwd needs a CSNet" in capsys.readouterr().err


def test_train_csf_needs_backbone_weights_unless_from_scratch(tiny_data, tmp_path, capsys):
    args = ["train", "--model", "csf-res2net50", "--data", str(tiny_data)]
    assert main([*args, "--out", str(tmp_path / "r"), "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert "--backbone-weights FILE, or --from-scratch" in err


def test_trainable_set_is_the_reference_one(tiny_data, tmp_path):
    overrides = {"data": str(tiny_data), "out": str(tmp_path / "run"), "from_scratch": True}
    trainer = Trainer(build_config("csf-res2net50", {**overrides, "model": "csf-res2net50"}))
    try:
        model = trainer.model
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        assert (sum(p.numel() for p in model.parameters()), trainable) == (36_528_489, 33_707_781)
        backbone = model.backbone
        assert backbone.conv1[1].weight.requires_grad  # stem BNs and shortcut BNs train
        assert backbone.layer2[0].downsample[2].weight.requires_grad
        assert not backbone.layer2[0].downsample[1].weight.requires_grad
        assert not backbone.layer2[0].bn3.weight.requires_grad
        optimised = sum(p.numel() for g in trainer.optimizer.param_groups for p in g["params"])
        assert optimised == trainable
    finally:
        trainer.close()


def test_a_new_adam_at_the_lr_drop(tiny_data, tmp_path):
    overrides = {
        "data": str(tiny_data), "out": str(tmp_path / "run"), "model": "csnet-l-x1",
        "size": 32, "batch_size": 4, "workers": 0, "milestones": (1,), "dwd": False,
        "reset_optimizer": True,
    }  # fmt: skip
    trainer = Trainer(build_config("csnet", overrides))
    try:
        trainer.train_epoch(0)
        first = trainer.optimizer
        assert all(s["step"] == 2 for s in first.state.values())
        trainer.train_epoch(1)
        assert trainer.optimizer is not first
        assert all(s["step"] == 2 for s in trainer.optimizer.state.values())
        assert all(g["lr"] == pytest.approx(1e-5) for g in trainer.optimizer.param_groups)
    finally:
        trainer.close()


def test_train_loads_backbone_weights(tiny_data, tmp_path):
    torch.manual_seed(1)
    backbone = Res2Net50()
    path = tmp_path / "res2net50_v1b_26w_4s.pth"
    torch.save(backbone.state_dict(), path)
    overrides = {"data": str(tiny_data), "out": str(tmp_path / "run"), "model": "csf-res2net50"}
    cfg = build_config("csf-res2net50", {**overrides, "backbone_weights": str(path)})
    trainer = Trainer(cfg)
    try:
        loaded = trainer.model.backbone.state_dict()
        for key, value in backbone.state_dict().items():
            torch.testing.assert_close(loaded[key], value, msg=key)
    finally:
        trainer.close()


def test_train_backbone_weights_need_a_backbone(tiny_data, tmp_path, capsys):
    args = ["train", "--model", "csnet-l-x1", "--data", str(tiny_data), "--out", str(tmp_path)]
    assert main([*args, "--backbone-weights", "x.pth", "--workers", "0"]) == 2
    assert "has no pretrained backbone" in capsys.readouterr().err


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_predict_with_a_csf_checkpoint(csf_checkpoint, tiny_data, tmp_path, backend):
    out = tmp_path / "maps"
    args = ["predict", str(tiny_data / "images"), "-o", str(out), "--weights", str(csf_checkpoint)]
    assert main([*args, "--backend", backend, "--size", "96", "--quiet"]) == 0
    maps = sorted(out.glob("*.png"))
    assert len(maps) == 8
    assert Image.open(maps[0]).size == (40, 36)


def test_torch_fused_backend_names_the_model(csf_checkpoint):
    with pytest.raises(ValueError, match="torch-fused backend is for CSNet"):
        make_backend("torch-fused", None, str(csf_checkpoint))


def test_export_cli_checks_csf_parity(csf_checkpoint, tmp_path, capsys):
    out = tmp_path / "csf.onnx"
    assert main(["export", "--weights", str(csf_checkpoint), "--out", str(out)]) == 0
    assert out.is_file() and "max |logit difference| vs torch" in capsys.readouterr().err


def test_server_serves_csf(csf_checkpoint, tiny_data):
    predictor = Predictor(make_backend("torch", None, str(csf_checkpoint)), size=96)
    data = (tiny_data / "images" / "00.jpg").read_bytes()
    with TestClient(create_app(predictor, ServerSettings(workers=1))) as client:
        r = client.post("/v1/saliency", files={"file": ("00.jpg", data, "image/jpeg")})
    assert r.status_code == 200
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(r.content))), predictor(data))
