"""Training validation scores with PySODMetrics' current F-measure API, without warnings."""

import csv
import warnings

import numpy as np
import py_sod_metrics
import pytest
import torch

from sod100k.checkpoints.loading import save_model
from sod100k.cli import main
from sod100k.models.config import unpruned
from sod100k.models.csnet import CSNet


def test_validation_max_f_without_deprecation_warning(tiny_data, tmp_path):
    torch.manual_seed(0)
    init = tmp_path / "tiny.pt"
    save_model(init, CSNet(unpruned(4)))
    out = tmp_path / "run"
    args = [
        "train", "--init", str(init), "--data", str(tiny_data), "--val", str(tiny_data),
        "--out", str(out), "--size", "32", "--batch-size", "4", "--epochs", "1",
        "--workers", "0",
    ]  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(args) == 0
    assert not [w for w in caught if "FmeasureV2" in str(w.message)]
    [row] = list(csv.DictReader((out / "metrics.csv").open()))
    assert 0.0 < float(row["val_max_f"]) <= 1.0


def test_fmeasure_v2_curve_is_the_deprecated_classs_curve(rng):
    """The switch keeps the number: FmeasureV2's dynamic F is the old Fmeasure curve."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecated class warns when it is made
        old = py_sod_metrics.Fmeasure()
        new = py_sod_metrics.FmeasureV2(
            metric_handlers={
                "f": py_sod_metrics.FmeasureHandler(
                    with_dynamic=True, with_adaptive=False, beta=0.3
                )
            }
        )
        for _ in range(3):
            gt = (rng.random((20, 30)) > 0.6).astype(np.uint8) * 255
            pred = rng.integers(0, 256, (20, 30), dtype=np.uint8)
            old.step(pred=pred, gt=gt)
            new.step(pred=pred, gt=gt)
    np.testing.assert_allclose(
        new.get_results()["f"]["dynamic"], old.get_results()["fm"]["curve"], atol=1e-12
    )
    assert float(new.get_results()["f"]["dynamic"].max()) == pytest.approx(
        float(old.get_results()["fm"]["curve"].max())
    )
