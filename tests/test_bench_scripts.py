"""The maintained benchmark scripts' own logic (no timing): verdicts and table shapes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import precision
import train_speed


def _row(precision_name: str, max_f: float, mae: float, ms: float | None) -> dict:
    return {
        "model": "x2",
        "size": 224,
        "precision": precision_name,
        "max_f": max_f,
        "mae": mae,
        "ms": ms,
    }


def test_precision_rows_are_judged_against_fp32_of_the_same_model_and_size() -> None:
    rows = precision.compare(
        [
            _row("int8", 0.8889, 0.0683, 30.0),
            _row("fp32", 0.8974, 0.0645, 20.0),
            _row("bf16", 0.8971, 0.0647, 16.0),
            {**_row("bf16", 0.5, 0.5, None), "size": 192},  # no fp32 at 192: not judged
        ]
    )
    assert [(r["size"], r["precision"]) for r in rows] == [
        (192, "bf16"),
        (224, "fp32"),
        (224, "bf16"),
        (224, "int8"),
    ]
    by = {(r["size"], r["precision"]): r for r in rows}
    assert "passes" not in by[192, "bf16"] and "passes" not in by[224, "fp32"]
    assert by[224, "bf16"]["passes"] == "yes" and by[224, "bf16"]["speedup"] == "1.25x"
    assert by[224, "bf16"]["d_max_f"] == "-0.0003"
    assert by[224, "int8"]["passes"] == "no" and by[224, "int8"]["d_mae"] == "+0.0038"


def _result(variant: str, step: float) -> dict:
    return {
        "variant": variant,
        "params": 788631,
        "warmup_s": [step],
        "median_s": step,
        "median_cpu_s": 2 * step,
    }


def test_train_speed_names_both_reference_ratios() -> None:
    text = train_speed.table(
        [_result("reference", 19.0), _result("reference-alloc", 10.4), _result("fast", 8.5)], 24
    )
    head, _, *rows = text.splitlines()
    assert "vs reference |" in head and "vs reference-alloc" in head
    assert rows[2].startswith("| fast | 788,631 |") and "2.24x" in rows[2] and "1.22x" in rows[2]
    assert "vs reference-alloc" not in train_speed.table([_result("fast", 8.5)], 24)


def test_reference_alloc_runs_with_the_trainers_allocator_setting() -> None:
    assert train_speed.VARIANTS["reference-alloc"] == {
        "MALLOC_MMAP_MAX_": "0",
        "MALLOC_TRIM_THRESHOLD_": "4294967295",
    }
    assert train_speed.VARIANTS["reference"] == {}


def test_serving_traffic_expects_a_status_for_every_kind(tmp_path: Path) -> None:
    import serving

    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"\xff\xd8 not really a jpeg")
    kinds = serving.traffic(photo, max_upload_mb=0.01)
    by = {k.name: k for k in kinds}
    assert by["saliency"].expected == {200} and by["cutout 20 MP"].expected == {200, 503}
    assert by["oversized"].upload is not None and len(by["oversized"].upload[1]) > 0.01 * 2**20
    assert all(k.expected for k in kinds) and len(by) == len(kinds)
    assert serving.percentiles([], [50, 99]) == [None, None]
    assert serving.percentiles([0.1, 0.2, 0.3], [50]) == [200.0]


def test_throughput_ratio_is_against_the_best_network_cell() -> None:
    import throughput

    net = [
        {"streams": "1", "calls_in_flight": 1, "batch": 8, "images_per_s": 55.0},
        {"streams": "auto", "calls_in_flight": 2, "batch": 1, "images_per_s": 70.0},
        {"streams": "auto", "calls_in_flight": 2, "batch": 4, "images_per_s": 64.0},
    ]
    folder = {"what": "folder", "count": 1000, "seconds": 16.4, "per_s": 61.0, "cpu_s": 31.0}
    video = {"what": "clip", "count": 150, "seconds": 5.0, "per_s": 30.0, "format": "mask"}
    s = throughput.summary(net, folder, [video])
    assert s["network_best"] == "streams auto, batch 1"
    assert s["ratio"] == round(61.0 / 70.0, 3) and s["video_mask_fps"] == 30.0
    text = throughput.tables(net, folder, [video], s)
    assert "61.0 / 70.0 images/s = **0.87**" in text and "**30.0 frames/s** (target >= 25)" in text


def test_throughput_stages_measure_each_stage_and_the_interference(ecssd, tmp_path) -> None:
    import throughput

    files = sorted((ecssd / "images").glob("*.jpg"))[:3]
    costs = throughput._stage_costs(files, 224, tmp_path, throughput._NoNetwork(224))
    assert set(costs) == {"decode", "preprocess", "map", "png", "write"}
    assert all(v > 0 for v in costs.values()) and len(list(tmp_path.glob("*.png"))) == 3
    stages = costs | {"no_network": 3.5, "pipeline": 38.0, "images": 3}
    text = throughput.stages_text(stages, 30.0)
    assert "| sum of the two | 33.5 |" in text
    assert "| beyond the sum: what they cost each other | 4.5 |" in text


def test_ray_scaling_rate_is_the_difference_of_two_whole_runs() -> None:
    import ray_scaling

    # 9 s paid once, then 50 images/s: T(N) = 9 + N / 50
    row = ray_scaling.rate_row(500, [(19.0, 29.0), (19.4, 29.0)])
    assert row["rates"] == pytest.approx([50.0, 500 / 9.6])
    assert row["images_per_s"] == pytest.approx((50.0 + 500 / 9.6) / 2)
    assert row["t_n_s"] == pytest.approx(19.2) and row["start_s"] == pytest.approx(9.4)
    assert row["whole_run_per_s"] == 1000 / 29.0
    assert ray_scaling.check(row, ceiling=65.0) == "ok"
    assert ray_scaling.check(row, ceiling=50.0) == "rate above the network-only ceiling"
    slower = ray_scaling.rate_row(500, [(10.0, 30.0)])  # 25/s, below the whole run's 33/s
    assert ray_scaling.check(slower, ceiling=65.0) == "rate below the whole run's"


def test_every_benchmark_script_is_in_the_index():
    """docs/benchmarks/index.md lists every maintained script (the curated set of issue 24)."""
    root = Path(__file__).resolve().parents[1]
    index = (root / "docs" / "benchmarks" / "index.md").read_text()
    scripts = sorted(p.name for p in (root / "benchmarks").glob("*.py"))
    assert len(scripts) >= 10
    missing = [name for name in scripts if f"`{name}`" not in index]
    assert not missing, f"benchmarks not in docs/benchmarks/index.md: {missing}"
