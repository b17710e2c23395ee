"""``--protocol`` on evaluate and benchmark: SalMetric numbers, both side by side, reports."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import salmetric_cases
from conftest import ecssd_subset
from sod100k.cli import main
from sod100k.eval import evaluate_folders, salmetric
from sod100k.eval.report import read_results

CASES = json.loads((Path(__file__).parent / "fixtures/salmetric/cases.json").read_text())["cases"]


def folders_of_case(name: str, root: Path) -> tuple[Path, Path]:
    """The generated case as a prediction folder and a mask folder (same stems)."""
    pred_dir, gt_dir = root / "method", root / "DS" / "masks"
    pred_dir.mkdir(parents=True)
    gt_dir.mkdir(parents=True)
    for i, (pred, mask) in enumerate(salmetric_cases.CASES[name]()):
        cv2.imwrite(str(pred_dir / f"{i:02d}.png"), pred)
        cv2.imwrite(str(gt_dir / f"{i:02d}.png"), mask)
    return pred_dir, gt_dir


def evaluate(*args: str | Path) -> int:
    return main(["evaluate", *map(str, args), "-q"])


def test_both_protocols_side_by_side(tmp_path: Path, capsys) -> None:
    pred_dir, gt_dir = folders_of_case("sizes", tmp_path)
    out = tmp_path / "out"
    code = evaluate("--pred", pred_dir, "--gt", gt_dir, "--protocol", "both", "-o", out)
    assert code == 0
    table = capsys.readouterr().out
    assert "pysodmetrics" in table and "salmetric" in table
    pysod, sal = read_results(out / "results.json")
    assert (pysod.protocol, sal.protocol) == ("pysodmetrics", "salmetric")
    assert set(sal.metrics) == {"MAE", "maxF", "meanF"}
    # The same numbers as the compiled tool printed for this case (4 threads).
    for metric in salmetric.METRICS:
        assert sal.metrics[metric] == pytest.approx(CASES["sizes"][metric], abs=1e-6)
    assert sal.metrics["maxF"] != pytest.approx(pysod.metrics["maxF"], abs=1e-3)
    md = (out / "results.md").read_text()
    assert "| Protocol |" in md and "| DS | method | salmetric | 6 |" in md
    assert "| - |" in md  # salmetric has no S-measure
    rows = (out / "results.csv").read_text().splitlines()
    assert rows[0].startswith("dataset,method,protocol,images,MAE,maxF")
    assert rows[2].startswith("DS,method,salmetric,6,")
    assert (out / "pr.png").stat().st_size > 1000


def test_salmetric_alone_and_its_thread_count(tmp_path: Path) -> None:
    pred_dir, gt_dir = folders_of_case("mixed", tmp_path)
    for threads in salmetric_cases.MIXED_THREADS:
        ev = evaluate_folders(
            pred_dir, gt_dir, "m", "DS", progress=False, protocol="salmetric",
            salmetric_threads=threads, workers=1,
        )  # fmt: skip
        [result] = ev.results
        key = "mixed" if threads == 4 else f"mixed@{threads}"
        assert np.float32(result.metrics["MAE"]) == np.float32(CASES[key]["MAE"])


def test_map_taller_than_its_mask_is_skipped_or_resized(tmp_path: Path, capsys) -> None:
    pred_dir, gt_dir = folders_of_case("sizes", tmp_path)
    tall = cv2.imread(str(pred_dir / "03.png"), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(pred_dir / "03.png"), cv2.resize(tall, (48, 80)))  # mask is 48x64
    assert evaluate("--pred", pred_dir, "--gt", gt_dir, "--protocol", "salmetric") == 1
    err = capsys.readouterr().err
    assert "03.png" in err and "read past the end of the mask" in err
    args = ("--pred", pred_dir, "--gt", gt_dir, "--protocol", "salmetric")
    assert evaluate(*args, "--size-mismatch", "resize") == 0


def test_results_without_protocol_read_as_pysodmetrics(tmp_path: Path) -> None:
    pred_dir, gt_dir = folders_of_case("ties", tmp_path)
    assert evaluate("--pred", pred_dir, "--gt", gt_dir, "-o", tmp_path / "out") == 0
    path = tmp_path / "out" / "results.json"
    payload = json.loads(path.read_text())
    del payload["results"][0]["protocol"]  # a file written before protocols existed
    path.write_text(json.dumps(payload))
    [result] = read_results(path)
    assert result.protocol == "pysodmetrics"
    payload["results"][0]["protocol"] = "salmetric"  # wrong metrics for that protocol
    path.write_text(json.dumps(payload))
    with pytest.raises(ValueError, match="expected metrics"):
        read_results(path)


def test_bad_protocol_options_are_usage_errors(tmp_path: Path, capsys) -> None:
    pred_dir, gt_dir = folders_of_case("ties", tmp_path)
    with pytest.raises(SystemExit):
        evaluate("--pred", pred_dir, "--gt", gt_dir, "--protocol", "dss")
    assert evaluate("--pred", pred_dir, "--gt", gt_dir, "--salmetric-threads", "0") == 2
    assert "salmetric-threads" in capsys.readouterr().err


def test_benchmark_with_both_protocols(tmp_path: Path, ecssd: Path, weights_x1: Path) -> None:
    images, masks = ecssd_subset(ecssd, tmp_path, ("0001", "0002"))
    code = main(
        [
            "benchmark",
            "--model",
            "csnet-l-x1",
            "--weights",
            str(weights_x1),
            "--dataset",
            f"tiny={images}:{masks}",
            "--protocol",
            "both",
            "-o",
            str(tmp_path / "out"),
            "-q",
        ]
    )
    assert code == 0
    results = read_results(tmp_path / "out" / "results.json")
    assert [(r.dataset, r.protocol, r.count) for r in results] == [
        ("tiny", "pysodmetrics", 2),
        ("tiny", "salmetric", 2),
    ]
    assert results[1].metrics["maxF"] > 0.7
