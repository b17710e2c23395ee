"""The SalMetric protocol on all of ECSSD against the compiled tool (slow: predicts maps).

``tests/fixtures/salmetric/ecssd.json`` holds what the authors' SalMetric printed on the
1000 ECSSD maps of each released checkpoint, with a digest of those map files. The test
makes the maps again with ``sod100k predict`` and scores them with our protocol:

* where they are the same files (same digest), the numbers must be the tool's to 1e-6
  and equal as float32 (in fact bit for bit);
* otherwise (another backend or CPU changed a gray level somewhere, or the PNG encoder
  wrote the same pixels in other bytes) they must be within :data:`NEAR` of the tool's,
  for max F, mean F, MAE and every point of the precision and recall curves. Maps that
  differ that way move the numbers by far less: OpenVINO and torch maps of csnet-l-x1
  made on a Xeon (1 pixel in 35,000 one gray level apart between them) scored within
  2.4e-7 of the record, curves within 1.8e-6. Real protocol errors move them by far
  more: counting ``pred >= t`` instead of ``pred > t`` moves mean F by 1.1e-3 and
  shifts both curves by one threshold.

So the test fails whenever the numbers are wrong, and never skips. With
``SOD100K_ECSSD_MAPS=DIR`` the maps are taken from ``DIR/MODEL`` instead of predicted.
Regenerate the fixture with ``scripts/salmetric_fixtures.py ecssd``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from salmetric_cases import maps_digest
from sod100k.cli import main
from sod100k.eval import evaluate_folders, salmetric

FIXTURE = Path(__file__).parent / "fixtures" / "salmetric" / "ecssd.json"
#: Largest difference from the tool's numbers allowed for maps other than the recorded
#: ones (see the module docstring for what moves them how far).
NEAR = 2e-5


@pytest.mark.slow
@pytest.mark.parametrize("model", ["csnet-l-x1", "csnet-l-x2"])
def test_ecssd_matches_the_compiled_tool(model: str, ecssd: Path, tmp_path: Path) -> None:
    expected = json.loads(FIXTURE.read_text())["datasets"][model]
    weights = ecssd.parents[1] / "weights" / f"csnet-L-{model[-2:]}"
    given = os.environ.get("SOD100K_ECSSD_MAPS")
    maps = Path(given) / model if given else tmp_path / "maps"
    if not given:
        assert main(["predict", str(ecssd / "images"), "-o", str(maps), "-m", model,
                     "-w", str(weights), "-q"]) == 0  # fmt: skip
    ev = evaluate_folders(maps, ecssd / "masks", model, "ECSSD", progress=False,
                          protocol="salmetric")  # fmt: skip
    same_maps = maps_digest(ev.pairing.pairs) == expected["maps_sha256"]
    tolerance = 1e-6 if same_maps else NEAR
    [result] = ev.results
    assert result.count == expected["images"] == 1000
    for metric in salmetric.METRICS:
        error = abs(result.metrics[metric] - expected[metric])
        assert error <= tolerance, (metric, result.metrics[metric], expected[metric], same_maps)
        if same_maps:
            assert np.float32(result.metrics[metric]) == np.float32(expected[metric])
    np.testing.assert_allclose(result.precision, expected["precision"], rtol=0, atol=tolerance)
    np.testing.assert_allclose(result.recall, expected["recall"], rtol=0, atol=tolerance)
