"""Matching predictions to masks by stem, and the errors for folders that do not match."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from sod100k.cli import main
from sod100k.eval.pairing import PairingError, pair_by_stem


def write_maps(folder: Path, stems: list[str], suffix: str = ".png") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stem in stems:
        cv2.imwrite(str(folder / f"{stem}{suffix}"), np.zeros((8, 8), np.uint8))


def test_pairs_by_stem_across_suffixes(tmp_path):
    write_maps(tmp_path / "pred", ["a", "b"])
    write_maps(tmp_path / "gt", ["a", "b"], ".bmp")
    pairing = pair_by_stem(tmp_path / "pred", tmp_path / "gt")
    assert [(p.name, g.name) for p, g in pairing.pairs] == [("a.png", "a.bmp"), ("b.png", "b.bmp")]


def test_missing_and_extra_files_are_named(tmp_path):
    write_maps(tmp_path / "pred", ["a", "b", "x"])
    write_maps(tmp_path / "gt", ["a", "b", "c", "d"])
    with pytest.raises(PairingError) as e:
        pair_by_stem(tmp_path / "pred", tmp_path / "gt")
    message = str(e.value)
    assert "2 mask(s) without a prediction: c, d" in message
    assert "1 prediction(s) without a mask: x" in message
    assert "--allow-missing" in message and "\n" not in message


def test_allow_missing_scores_the_intersection(tmp_path):
    write_maps(tmp_path / "pred", ["a", "b", "x"])
    write_maps(tmp_path / "gt", ["a", "b", "c"])
    pairing = pair_by_stem(tmp_path / "pred", tmp_path / "gt", allow_missing=True)
    assert [p.stem for p, _ in pairing.pairs] == ["a", "b"]
    assert pairing.missing == ["c"] and pairing.extra == ["x"]


def test_long_lists_are_shortened(tmp_path):
    write_maps(tmp_path / "pred", ["a"])
    write_maps(tmp_path / "gt", ["a", *(f"m{i}" for i in range(9))])
    with pytest.raises(PairingError, match=r"9 mask\(s\) .*m4 and 4 more"):
        pair_by_stem(tmp_path / "pred", tmp_path / "gt")


def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / "pred").mkdir()
    write_maps(tmp_path / "gt", ["a"])
    with pytest.raises(PairingError, match=r"pred: no prediction images found"):
        pair_by_stem(tmp_path / "pred", tmp_path / "gt")


def test_absent_folder_is_an_error(tmp_path):
    write_maps(tmp_path / "gt", ["a"])
    with pytest.raises(PairingError, match="prediction folder does not exist"):
        pair_by_stem(tmp_path / "nope", tmp_path / "gt")


def test_two_files_with_one_stem_are_refused(tmp_path):
    write_maps(tmp_path / "pred", ["a"])
    write_maps(tmp_path / "pred", ["a"], ".jpg")
    write_maps(tmp_path / "gt", ["a"])
    with pytest.raises(PairingError, match="share the stem 'a'"):
        pair_by_stem(tmp_path / "pred", tmp_path / "gt")


def test_no_common_stem_is_an_error_even_when_allowed(tmp_path):
    write_maps(tmp_path / "pred", ["a"])
    write_maps(tmp_path / "gt", ["b"])
    with pytest.raises(PairingError, match="no file stem in common"):
        pair_by_stem(tmp_path / "pred", tmp_path / "gt", allow_missing=True)


def test_maps_in_sub_folders_pair_as_predict_mirrors_them(tmp_path):
    """``sod100k predict photos -o maps`` mirrors photos/sub/ as maps/sub/."""
    write_maps(tmp_path / "pred", ["a"])
    write_maps(tmp_path / "pred" / "sub", ["b"])
    write_maps(tmp_path / "pred" / "sub" / "deeper", ["c"])
    write_maps(tmp_path / "gt", ["a"], ".bmp")
    write_maps(tmp_path / "gt" / "sub", ["b"], ".bmp")
    write_maps(tmp_path / "gt" / "sub" / "deeper", ["c"], ".bmp")
    pairing = pair_by_stem(tmp_path / "pred", tmp_path / "gt")
    rel = [(p.relative_to(tmp_path).as_posix(), g.relative_to(tmp_path).as_posix())
           for p, g in pairing.pairs]  # fmt: skip
    assert rel == [
        ("pred/a.png", "gt/a.bmp"),
        ("pred/sub/b.png", "gt/sub/b.bmp"),
        ("pred/sub/deeper/c.png", "gt/sub/deeper/c.bmp"),
    ]
    assert pairing.by_name == 0 and not pairing.skipped


def test_nested_maps_meet_flat_masks_by_unique_name(tmp_path):
    write_maps(tmp_path / "pred" / "cats", ["a", "b"])
    write_maps(tmp_path / "pred" / "dogs", ["c"])
    write_maps(tmp_path / "gt", ["a", "b", "c"])
    pairing = pair_by_stem(tmp_path / "pred", tmp_path / "gt")
    assert [(p.parent.name, p.stem, g.stem) for p, g in pairing.pairs] == [
        ("cats", "a", "a"),
        ("cats", "b", "b"),
        ("dogs", "c", "c"),
    ]
    assert pairing.by_name == 3


def test_a_name_in_two_sub_folders_is_never_guessed(tmp_path):
    write_maps(tmp_path / "pred" / "x", ["a"])
    write_maps(tmp_path / "pred" / "y", ["a"])
    write_maps(tmp_path / "gt", ["a"])
    with pytest.raises(PairingError) as e:
        pair_by_stem(tmp_path / "pred", tmp_path / "gt")
    assert "1 mask(s) without a prediction: a" in str(e.value)
    assert "2 prediction(s) without a mask: x/a, y/a" in str(e.value)


def test_files_that_are_not_images_are_listed_as_skipped(tmp_path):
    write_maps(tmp_path / "pred", ["a"])
    (tmp_path / "pred" / "notes.txt").write_text("not a map")
    (tmp_path / "pred" / ".hidden.txt").write_text("ignored")
    write_maps(tmp_path / "gt", ["a"])
    pairing = pair_by_stem(tmp_path / "pred", tmp_path / "gt")
    assert len(pairing.pairs) == 1
    assert pairing.skipped == [tmp_path / "pred" / "notes.txt"]


def test_cli_evaluate_pairs_sub_folders_and_says_what_it_left_out(tmp_path, capsys, caplog):
    write_maps(tmp_path / "maps" / "sub", ["a", "b", "x"])
    (tmp_path / "maps" / "readme.txt").write_text("how these maps were made")
    write_maps(tmp_path / "masks" / "sub", ["a", "b", "c"])
    args = ["evaluate", "--pred", str(tmp_path / "maps"), "--gt", str(tmp_path / "masks"), "-q"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "1 mask(s) without a prediction: sub/c; 1 prediction(s) without a mask: sub/x" in err
    assert main([*args, "--allow-missing"]) == 0
    assert re.search(r"pysodmetrics\s+2\s", capsys.readouterr().out)  # two images scored
    said = caplog.text
    assert "1 mask(s) have no prediction (sub/c)" in said
    assert "1 prediction(s) have no mask and are ignored (sub/x)" in said
    assert (
        f"1 file(s) are not images by their suffix and were skipped ({tmp_path}/maps/readme.txt)"
        in said
    )
