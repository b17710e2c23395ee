"""Matching predictions to masks by stem, and the errors for folders that do not match."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

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
