"""The SalMetric protocol on all of ECSSD against the compiled tool (slow: predicts maps).

``tests/fixtures/salmetric/ecssd.json`` holds what the authors' SalMetric printed on the
1000 ECSSD maps of each released checkpoint, with a digest of those maps. The test makes
the maps again with ``sod100k predict``; where they are the same files (same digest) the
protocol must give the tool's numbers to 1e-6 (in fact bit for bit). Maps that differ
(another backend or CPU changed a gray level somewhere) cannot be compared with the
recorded numbers: regenerate with ``scripts/salmetric_fixtures.py ecssd``. With
``SOD100K_ECSSD_MAPS=DIR`` the maps are taken from ``DIR/MODEL`` instead of predicted.
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
    if maps_digest(ev.pairing.pairs) != expected["maps_sha256"]:
        pytest.skip("these maps differ from the recorded ones; regenerate the fixture")
    [result] = ev.results
    assert result.count == expected["images"] == 1000
    for metric in salmetric.METRICS:
        assert abs(result.metrics[metric] - expected[metric]) <= 1e-6
        assert np.float32(result.metrics[metric]) == np.float32(expected[metric])
    np.testing.assert_allclose(result.precision, expected["precision"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(result.recall, expected["recall"], rtol=0, atol=1e-6)
