"""Released checkpoints: exact import, parity with the reference logits, our format."""

import os
import pickle
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from sod100k import load_model, save_model
from sod100k.checkpoints.errors import CHECKPOINT_FORMS, CheckpointError
from sod100k.checkpoints.native import read_checkpoint
from sod100k.checkpoints.reference import convert_key, read_reference_bin
from sod100k.cli import main
from sod100k.models.flops import count_flops, count_params

RELEASES = {
    "x1": ("csnet-L-x1", 93_647, 0.569e9),
    "x2": ("csnet-L-x2", 140_894, 0.993e9),
}


@pytest.fixture(scope="module", params=sorted(RELEASES))
def release(request, weights_x1, weights_x2):
    key = request.param
    folder = {"x1": weights_x1, "x2": weights_x2}[key]
    name, params, flops = RELEASES[key]
    return key, folder, name, params, flops


def test_parity_with_reference_logits(release, parity_dir):
    key, folder, name, _, _ = release
    model = load_model(f"csnet-l-{key}", weights=folder)
    data = np.load(parity_dir / f"{name}.npz")
    with torch.no_grad():
        logits = model(torch.from_numpy(data["inputs"]))[:, 0].numpy()
    assert logits.shape == data["logits"].shape
    assert np.abs(logits - data["logits"]).max() < 1e-4


def test_parameter_and_flop_counts(release):
    _key, folder, _, params, flops = release
    model = load_model(weights=folder)
    assert count_params(model) == params
    assert abs(count_flops(model) - flops) < 0.0005e9


def test_official_to_ours_round_trip(release, tmp_path):
    key, folder, name, _, _ = release
    official = load_model(weights=folder)
    path = tmp_path / f"{name}.pt"
    save_model(path, official, metadata={"note": "converted"})
    payload = torch.load(path, map_location="cpu", weights_only=True)
    assert payload["format"] == "sod100k.checkpoint/1"
    ours = load_model(f"csnet-l-{key}", weights=path)
    assert ours.checkpoint_metadata["note"] == "converted"
    x = torch.randn(2, 3, 96, 80)
    with torch.no_grad():
        assert torch.equal(official(x), ours(x))


def test_key_mapping():
    assert convert_key("module.stage2.0.conv1x1.bns.1.weight") == "stages.2.0.expand.norms.1.weight"
    assert convert_key("stage4.3.conv3x3_2.prelus.0.weight") == "stages.4.3.dw2.acts.0.weight"
    assert convert_key("oct_fuse.ms.convs.2.msconv.4.weight") == "head.multiscale.2.convs.4.weight"
    assert convert_key("oct_fuse.ms.convs.0.bn.running_var") == "head.multiscale.0.norm.running_var"
    assert convert_key("oct_fuse.fuse1x1.conv.weight") == "head.merge.conv.weight"
    assert convert_key("cls_layer.bias") == "classifier.bias"


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned-by-pickle",))


def test_malicious_layer_config_pickle_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "evil.bin"
    bad.write_bytes(pickle.dumps([_Exploit()]))
    with pytest.raises(CheckpointError, match=r"evil\.bin.*refusing to load global"):
        read_reference_bin(bad)
    assert not (tmp_path / "pwned-by-pickle").exists()


def test_malicious_pickle_in_a_release_folder_is_refused(tmp_path, weights_x1):
    (tmp_path / "m.pth.tar").write_bytes((weights_x1 / "csnet-L-x1.pth.tar").read_bytes())
    (tmp_path / "m.bin").write_bytes(pickle.dumps({"x": _Exploit()}))
    with pytest.raises(CheckpointError, match="refusing"):
        load_model(weights=tmp_path)


class _Unsafe:
    """An object ``weights_only`` loading refuses (its class would be imported)."""


def _jpeg(path):
    Image.new("RGB", (32, 24)).save(path, "JPEG")


def _zip(path):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("notes.txt", "hello")


WRONG_FILES = {
    "photo.jpg": (_jpeg, "but a JPEG image (32x24)"),
    "empty.pt": (lambda p: p.write_bytes(b""), "but an empty file (0 bytes)"),
    "notes.pt": (lambda p: p.write_text("definitely not a checkpoint"), "but a text file"),
    "random.pt": (lambda p: p.write_bytes(bytes(range(256)) * 4), "neither a zip nor a pickle"),
    "bundle.pt": (_zip, "but a zip archive without a torch data.pkl"),
    "unsafe.pt": (
        lambda p: torch.save({"x": _Unsafe()}, p),
        "a torch file holding an object of type test_checkpoints._Unsafe, not only tensors "
        "and plain containers; refused, since loading it could run code from the file",
    ),
}


@pytest.mark.parametrize("name", sorted(WRONG_FILES))
def test_wrong_checkpoint_files_say_what_they_are(tmp_path, name):
    """Never torch's advice to load the file unsafely: what the file is, and what a
    checkpoint looks like."""
    make, what = WRONG_FILES[name]
    path = tmp_path / name
    make(path)
    with pytest.raises(CheckpointError) as e:
        load_model("csnet-l-x1", weights=path)
    message = str(e.value)
    assert message.startswith(f"{path}: not a sod100k checkpoint")
    assert what in message and CHECKPOINT_FORMS in message
    assert "weights_only" not in message and "Re-running" not in message


@pytest.mark.parametrize("command", ["predict", "prune"])
def test_cli_says_what_a_wrong_weights_file_is_in_one_line(tmp_path, capsys, command):
    photo = tmp_path / "photo.jpg"
    _jpeg(photo)
    args = {"predict": ["predict", "-w", str(photo), str(photo), "-o", str(tmp_path / "o.png")],
            "prune": ["prune", str(photo), "--out", str(tmp_path / "p.pt")]}[command]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "weights_only" not in err
    assert f"sod100k {command}: error: {photo}: not a sod100k checkpoint but a JPEG image" in err
    assert not (tmp_path / "o.png").exists() and not (tmp_path / "p.pt").exists()


def test_a_plain_torch_file_is_not_taken_for_a_checkpoint(tmp_path):
    path = tmp_path / "plain.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="format tag"):
        read_checkpoint(path)


def test_missing_weights_and_empty_folder(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        load_model("csnet-l-x1", weights=tmp_path / "nope")
    with pytest.raises(CheckpointError, match=r"a folder without NAME.pth.tar \+ NAME.bin, best.pt "
                       r"or last.pt \(it is empty\); a checkpoint is"):  # fmt: skip
        load_model("csnet-l-x1", weights=tmp_path)
    (tmp_path / "csnet.pth.tar").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"\(it holds csnet.pth.tar\)"):
        load_model("csnet-l-x1", weights=tmp_path)


def test_weights_that_do_not_fit_the_config(tmp_path, weights_x1):
    model = load_model(weights=weights_x1)
    state = model.state_dict()
    state["classifier.weight"] = torch.zeros(1, 3, 1, 1)
    from sod100k.checkpoints.native import save_checkpoint

    save_checkpoint(tmp_path / "bad.pt", "csnet", model.config.to_dict(), state)
    with pytest.raises(CheckpointError, match=r"wrong shape: classifier\.weight"):
        load_model(weights=tmp_path / "bad.pt")


def test_unknown_preset_name():
    with pytest.raises(ValueError, match="unknown model 'csnet-xxl'"):
        load_model("csnet-xxl")


def _saved(tmp_path, config) -> str:
    from sod100k.models.csnet import CSNet

    path = tmp_path / f"{config.name or 'unnamed'}.pt"
    save_model(path, CSNet(config))
    return str(path)


def test_a_named_model_must_be_what_the_checkpoint_holds(tmp_path, weights_x1):
    """The preset itself or a pruned form of it (no width above the preset's, and a
    config named after no other preset); without a model name the checkpoint decides."""
    from sod100k.models.config import unpruned

    pruned_x1 = load_model(weights=weights_x1).config.with_name("csnet-l-x1-pruned")
    assert load_model("csnet-l-x1", _saved(tmp_path, pruned_x1)).config == pruned_x1
    with pytest.raises(CheckpointError, match=r"holds csnet-l-x1-pruned, not the csnet-l-x2 named"):
        load_model("csnet-l-x2", _saved(tmp_path, pruned_x1))
    custom = _saved(tmp_path, unpruned(30))  # a net of the user's own width, unnamed
    with pytest.raises(
        CheckpointError,
        match=r"not the csnet-l-x1 named nor a pruned form of it \(unit 0 output has 15 "
        r"channels on branch 0, not at most 10\)",
    ):
        load_model("csnet-l-x1", custom)
    assert load_model("csnet-l-x2", custom).config == unpruned(30)  # fits: could be pruned x2
    assert load_model(weights=custom).config == unpruned(30)
    with pytest.raises(CheckpointError, match=r"a csnet model .* not the csf-res2net50 named"):
        load_model("csf-res2net50", custom)
