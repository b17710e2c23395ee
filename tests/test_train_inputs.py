"""``train`` and ``finetune`` refuse unusable dataset folders in one line, before writing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sod100k.checkpoints.loading import save_model
from sod100k.cli import main
from sod100k.models import create_model

LAYOUT = "a dataset folder holds images/ and masks/ (or DUTS-style *-Image/ and *-Mask/)"


def bad_folder(kind: str, root: Path, good: Path) -> Path:
    """A dataset folder that cannot be used, of the given ``kind``."""
    path = root / kind
    if kind == "empty":
        path.mkdir()
    elif kind == "file":
        path.write_text("not a folder")
    elif kind == "flat":  # images and masks side by side, no sub-folders
        path.mkdir()
        for f in (good / "images").iterdir():
            shutil.copy(f, path)
    elif kind == "no-masks":
        shutil.copytree(good / "images", path / "images")
        (path / "masks").mkdir()
    elif kind == "no-images":
        (path / "images").mkdir(parents=True)
        shutil.copytree(good / "masks", path / "masks")
    return path  # "missing": nothing there


EXPECTED = {
    "missing": "no such folder",
    "empty": "not a dataset folder (it is empty)",
    "file": "is a file, not a folder",
    "flat": "not a dataset folder (it holds 00.jpg, 01.jpg, 02.jpg, 03.jpg and 4 more)",
    "no-masks": "none of the 8 image(s) in images/ has a mask of the same name in masks/",
    "no-images": "no image files in images/",
}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
@pytest.mark.parametrize("option", ["--data", "--val"])
def test_train_refuses_a_bad_dataset_folder_before_writing(
    kind, option, tiny_data, tmp_path, capsys
) -> None:
    bad = bad_folder(kind, tmp_path, tiny_data)
    folders = {"--data": str(tiny_data), "--val": str(tiny_data), option: str(bad)}
    out = tmp_path / "runs" / "z"
    args = ["train", "-m", "csnet-l-x1", "--out", str(out), "--epochs", "1", "--workers", "0"]
    assert main([*args, *(x for kv in folders.items() for x in kv)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"sod100k train: error: {option} {bad}: {EXPECTED[kind]}" in err
    assert LAYOUT in err
    assert not (tmp_path / "runs").exists()


def test_finetune_refuses_a_bad_dataset_folder_before_writing(tiny_data, tmp_path, capsys):
    pruned = tmp_path / "pruned.pt"
    save_model(pruned, create_model("csnet-l-x1"))
    out = tmp_path / "ft"
    assert main(["finetune", str(pruned), "--data", str(tmp_path / "nodata"), "--out", str(out)])
    err = capsys.readouterr().err
    assert f"sod100k finetune: error: --data {tmp_path / 'nodata'}: no such folder" in err
    assert err.count("\n") == 1 and not out.exists()


def test_train_refuses_a_model_that_is_not_the_init_checkpoints(tiny_data, tmp_path, capsys):
    init = tmp_path / "x1.pt"
    save_model(init, create_model("csnet-l-x1"))
    out = tmp_path / "runs" / "z"
    args = ["train", "--init", str(init), "--data", str(tiny_data), "--out", str(out)]
    assert main([*args, "-m", "csf-res2net50"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"--model csf-res2net50 is a csf-res2net50 preset but --init {init} holds a csnet" in err
    assert not out.exists()
