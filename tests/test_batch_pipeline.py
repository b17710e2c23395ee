"""The overlapped batch pipeline: same maps as the Predictor, bad files skipped."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from sod100k.data.images import load_rgb
from sod100k.infer.batch import plan_jobs, run_batch
from sod100k.infer.predictor import Predictor
from sod100k.infer.runtime import make_backend


@pytest.fixture(scope="module")
def predictor(weights_x1) -> Predictor:
    return Predictor(make_backend("onnx", None, str(weights_x1), threads=1), size=96)


@pytest.fixture
def folder(ecssd, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for path in sorted((ecssd / "images").iterdir())[:7]:
        shutil.copy(path, src / path.name)
    (src / "0003.jpg").write_bytes((src / "0003.jpg").read_bytes()[:200])  # truncated
    (src / "zz.png").write_bytes(b"\x89PNG not really")
    return src


@pytest.mark.parametrize(("batch", "streams"), [(1, 2), (3, 1), (4, 3)])
def test_pipeline_matches_predictor_and_skips_bad_files(
    predictor, folder, tmp_path, batch, streams
) -> None:
    jobs, failed = plan_jobs([folder], tmp_path / "out")
    assert not failed and len(jobs) == 8
    report = run_batch(
        jobs, predictor, batch_size=batch, workers=2, progress=False, streams=streams
    )
    assert sorted(p.name for p in report.written) == sorted(
        f"{n:04d}.png" for n in range(1, 8) if n != 3
    )
    assert sorted(src.rsplit("/", 1)[-1] for src, _ in report.failed) == ["0003.jpg", "zz.png"]
    for path in report.written:
        expected = predictor(load_rgb(folder / path.with_suffix(".jpg").name))
        got = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        np.testing.assert_array_equal(got, expected)
    assert not list((tmp_path / "out").glob(".*.tmp"))  # no temporary files left behind
