"""The evaluate, plot and benchmark commands end to end, on tiny inputs."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import ecssd_subset
from sod100k.cli import main
from sod100k.eval.metrics import METRICS
from sod100k.eval.report import read_results


def perfect_set(root: Path, n: int = 3) -> tuple[Path, Path]:
    pred_dir, gt_dir = root / "method", root / "DS" / "masks"
    pred_dir.mkdir(parents=True)
    gt_dir.mkdir(parents=True)
    for i in range(n):
        gt = np.zeros((40, 50), np.uint8)
        gt[10:30, 10 + i : 30 + i] = 255
        cv2.imwrite(str(gt_dir / f"{i}.png"), np.dstack([gt] * 3))  # masks stored as RGB
        cv2.imwrite(str(pred_dir / f"{i}.png"), gt)
    return pred_dir, gt_dir


def test_evaluate_prints_table_and_writes_reports(tmp_path, capsys):
    pred_dir, gt_dir = perfect_set(tmp_path)
    out = tmp_path / "out"
    assert (
        main(["evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir), "-q", "-o", str(out)]) == 0
    )
    table = capsys.readouterr().out
    assert "DS" in table and "method" in table and "maxF" in table
    [result] = read_results(out / "results.json")
    assert (result.method, result.dataset, result.count) == ("method", "DS", 3)
    assert result.metrics["MAE"] == 0.0 and result.metrics["maxF"] == pytest.approx(1.0)
    assert (out / "results.csv").read_text().splitlines()[0].endswith(",".join(METRICS))
    assert "| DS | method | pysodmetrics | 3 | 0.0000 | 1.000 |" in (out / "results.md").read_text()
    for png in ("pr.png", "fmeasure.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"


def test_evaluate_missing_file_fails_with_one_line(tmp_path, capsys):
    pred_dir, gt_dir = perfect_set(tmp_path)
    (pred_dir / "1.png").unlink()
    assert main(["evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "1 mask(s) without a prediction: 1" in err
    assert (
        main(["evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir), "-q", "--allow-missing"])
        == 0
    )


def test_evaluate_skips_bad_file_and_exits_nonzero(tmp_path, capsys):
    pred_dir, gt_dir = perfect_set(tmp_path)
    (pred_dir / "2.png").write_bytes(b"not a png")
    assert main(["evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir), "-q"]) == 1
    captured = capsys.readouterr()
    assert "1 item(s) failed" in captured.err and "2.png: not an image file" in captured.err
    assert "method" in captured.out  # the other two are still scored


def test_evaluate_empty_folder(tmp_path, capsys):
    _, gt_dir = perfect_set(tmp_path)
    (tmp_path / "empty").mkdir()
    assert main(["evaluate", "--pred", str(tmp_path / "empty"), "--gt", str(gt_dir)]) == 2
    assert "no prediction images found" in capsys.readouterr().err


def test_plot_puts_several_results_on_one_figure(tmp_path):
    pred_dir, gt_dir = perfect_set(tmp_path)
    for name in ("a", "b"):
        assert (
            main(
                [
                    "evaluate",
                    "--pred",
                    str(pred_dir),
                    "--gt",
                    str(gt_dir),
                    "-q",
                    "--name",
                    name,
                    "-o",
                    str(tmp_path / name),
                ]
            )
            == 0
        )
    assert (
        main(
            [
                "plot",
                str(tmp_path / "a" / "results.json"),
                str(tmp_path / "b" / "results.json"),
                "-o",
                str(tmp_path / "fig"),
                "--prefix",
                "ds-",
            ]
        )
        == 0
    )
    assert (tmp_path / "fig" / "ds-pr.png").stat().st_size > 1000
    assert (tmp_path / "fig" / "ds-fmeasure.png").stat().st_size > 1000


def test_plot_refuses_a_foreign_json(tmp_path, capsys):
    bad = tmp_path / "other.json"
    bad.write_text(json.dumps({"results": []}))
    assert main(["plot", str(bad), "-o", str(tmp_path)]) == 2
    assert "other.json: not a sod100k results file" in capsys.readouterr().err


def test_benchmark_predicts_then_scores(tmp_path, ecssd, weights_x1, capsys):
    images, masks = ecssd_subset(ecssd, tmp_path, ("0001", "0002", "0003"))
    code = main(
        [
            "benchmark",
            "--model",
            "csnet-l-x1",
            "--weights",
            str(weights_x1),
            "--dataset",
            f"tiny={images}:{masks}",
            "--pred-root",
            str(tmp_path / "p"),
            "-o",
            str(tmp_path / "out"),
            "-q",
        ]
    )
    assert code == 0
    [result] = read_results(tmp_path / "out" / "results.json")
    assert (result.method, result.dataset, result.count) == ("csnet-l-x1", "tiny", 3)
    assert 0.0 < result.metrics["MAE"] < 0.2 and result.metrics["maxF"] > 0.7
    assert sorted(p.name for p in (tmp_path / "p" / "tiny").iterdir()) == [
        "0001.png",
        "0002.png",
        "0003.png",
    ]
    assert "tiny" in capsys.readouterr().out


def test_benchmark_rejects_a_malformed_dataset(capsys):
    with pytest.raises(SystemExit):
        main(["benchmark", "--dataset", "no-equals-sign"])
    assert "expected NAME=IMAGES_DIR:MASKS_DIR" in capsys.readouterr().err
