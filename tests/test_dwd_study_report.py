"""benchmarks/dwd_study_report.py: the pre-registered verdict rules, case by case."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import dwd_study_report as report


def facts(**changes) -> dict:
    """A run that meets every 'reproduced' criterion; ``changes`` override parts."""
    live = np.full(700, 0.01)
    dead = np.full(340, 1e-12)  # 32.7 % below 1e-6, 10 empty decades above
    base = {
        "dwd_expand": np.concatenate([dead, live]),
        "plain_expand": np.concatenate([np.full(50, 1e-7), np.full(990, 0.01)]),  # 4.8 %
        "dwd_var_expand": 1.5e-6,
        "unpruned": {arm: {"max_f": 0.80, "mae": 0.10} for arm in report.ARMS},
        "gap": {arm: {"made": True, "met": True, "removed": 0.45, "max_f": 0.795, "mae": 0.102}
                for arm in report.ARMS},
        "key": {"dwd": {"made": True, "met": True, "max_f": 0.78, "mae": 0.11},
                "plain": {"made": True, "met": True, "max_f": 0.75, "mae": 0.12},
                "slim": {"made": True, "met": True, "max_f": 0.785, "mae": 0.11}},
        "noise_f": 0.004,
        "noise_mae": 0.002,
    }  # fmt: skip
    base.update(changes)
    return base


def test_a_run_meeting_every_criterion_is_reproduced():
    v = report.verdict(facts())
    assert v["outcome"] == "reproduced"
    assert v["criterion_1"]["empty_decades_above"] == pytest.approx(10)
    assert v["criterion_2"]["max_f_drop"] == pytest.approx(0.005)


def test_too_few_dead_gammas_at_the_operating_point_is_not_reproduced():
    spread = np.logspace(-3, -1, 1040)  # none below 1e-6, no gap of 2 decades
    v = report.verdict(facts(dwd_expand=spread))
    assert v["outcome"] == "not reproduced" and v["criterion_1"]["fails_clearly"]


def test_few_dead_gammas_off_the_operating_point_is_inconclusive():
    spread = np.logspace(-3, -1, 1040)
    v = report.verdict(facts(dwd_expand=spread, dwd_var_expand=1e-3))
    assert v["outcome"] == "inconclusive" and not v["criterion_1"]["fails_clearly"]


def test_dead_gammas_without_three_empty_decades_are_not_enough():
    d = facts()["dwd_expand"].copy()
    d[:5] = 1e-7 * 5  # a few between the dead cluster and 1e-6: the gap above shrinks
    d[340:345] = 2e-6
    v = report.verdict(facts(dwd_expand=d))
    assert not v["criterion_1"]["holds"] and v["outcome"] == "inconclusive"


def test_criterion_one_needs_three_times_the_plain_share():
    plain = np.concatenate([np.full(120, 1e-9), np.full(920, 0.01)])  # 11.5 % -> x2.8
    assert report.verdict(facts(plain_expand=plain))["outcome"] == "inconclusive"


def test_a_gap_cut_costing_more_than_twice_the_noise_is_not_reproduced():
    gap = facts()["gap"] | {"dwd": {"made": True, "met": True, "removed": 0.45, "max_f": 0.77,
                                    "mae": 0.102}}  # fmt: skip
    v = report.verdict(facts(gap=gap))  # drop 0.03 > 0.01 + 2 * 0.004
    assert v["outcome"] == "not reproduced" and v["criterion_2"]["misses_by_more_than_2_noise"]
    gap["dwd"]["max_f"] = 0.786  # drop 0.014: missed, but within twice the noise
    assert report.verdict(facts(gap=gap))["outcome"] == "inconclusive"


def test_a_gap_that_removes_too_little_or_cannot_be_cut_is_not_reproduced():
    gap = facts()["gap"] | {"dwd": {"made": True, "met": True, "removed": 0.2, "max_f": 0.80,
                                    "mae": 0.10}}  # fmt: skip
    assert report.verdict(facts(gap=gap))["outcome"] == "not reproduced"
    gap = facts()["gap"] | {"dwd": {"made": False, "error": "empties unit 3"}}
    assert report.verdict(facts(gap=gap))["outcome"] == "not reproduced"


def test_criterion_three_against_plain_and_slim():
    key = facts()["key"]
    key["slim"] = key["slim"] | {"max_f": 0.77}
    key["dwd"] = key["dwd"] | {"max_f": 0.765}  # plain + 0.015: missed within 2 noise
    assert report.verdict(facts(key=key))["outcome"] == "inconclusive"
    key["dwd"] = key["dwd"] | {"max_f": 0.755}  # plain + 0.005 < plain + 0.02 - 0.008
    assert report.verdict(facts(key=key))["outcome"] == "not reproduced"
    key = facts()["key"]
    key["slim"] = key["slim"] | {"max_f": 0.795}  # dwd 0.78 < slim - 0.01, within 2 noise
    assert report.verdict(facts(key=key))["outcome"] == "inconclusive"
    key["dwd"] = key["dwd"] | {"met": False}
    key["slim"] = key["slim"] | {"max_f": 0.785}
    assert not report.verdict(facts(key=key))["criterion_3"]["holds"]


def test_empty_decades_and_widest_gap():
    g = np.array([0.0, 1e-30, 1e-9, 1e-2, 0.5])
    assert report.empty_decades_above(g, 1e-6) == pytest.approx(7)
    assert report.widest_gap_decades(g) == pytest.approx(21)  # 1e-30 .. 1e-9
    assert report.empty_decades_above(np.array([0.1, 0.2]), 1e-6) == 0.0


def test_the_report_states_the_machine_each_launch_ran_on():
    meta = report.harness.run_meta(["dwd_study.py", "--out", "run"], note="quiet")
    meta["machine"]["cpu_model"] = "Some CPU 9000"
    assert report.launches({"launches": [meta]}) == [meta]
    (fallback,) = report.launches({})
    assert "the study recorded none" in fallback["note"]
    assert "Some CPU 9000" in report.harness.describe_meta(meta)


RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "dwd-study-v2"


def test_the_committed_evidence_matches_its_results_json():
    """The 12 committed checkpoints load, are the nets results.json describes (their
    parameter counts), and the recorded verdict is what the rules give for the recorded
    numbers. (``dwd_study_report.py RUN --verify ECSSD`` re-scores them on ECSSD.)"""
    import json

    from sod100k.checkpoints.loading import load_model
    from sod100k.models.flops import count_params

    payload = json.loads((RESULTS / "results.json").read_text())
    stages = payload["stages"]
    stage_of = {
        "trained": "train-{}",
        "pruned-gap": "prune-{}-gap",
        "pruned-55": "prune-{}--55%",
        "finetuned-55": "ft-{}",
    }
    assert len(payload["checkpoints"]) == 12
    for arm in report.ARMS:
        for name, stage in stage_of.items():
            path = RESULTS / f"{arm}-{name}.pt"
            assert path.stat().st_size < report.MAX_BYTES
            assert (
                count_params(load_model(weights=str(path))) == stages[stage.format(arm)]["params"]
            )
    rescored = payload["rescored"]
    assert len(rescored) == 12 and all(v["ok"] for v in rescored.values())
    # The rules, applied again to the recorded scores and the trained nets' own gammas.
    from dwd_study import gamma_arrays  # benchmarks/ is on the path (above)

    expand = {
        arm: gamma_arrays(load_model(weights=str(RESULTS / f"{arm}-trained.pt")))["expand"]
        for arm in report.ARMS
    }
    again = report.verdict(report.facts_of(stages, expand, "-55%"))
    assert json.loads(json.dumps(again)) == payload["verdict"]
    assert payload["verdict"]["outcome"] == "not reproduced"
    assert payload["verdict"]["criterion_2"]["removed"] == pytest.approx(1 - 206446 / 210985)
