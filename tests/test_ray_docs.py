"""The ``SaliencyPredictor`` example of docs/guide/cluster.md runs as written.

It starts its own 2-CPU cluster (``ray.init``), in a child process run from a folder
beside ``../shared``, as the page says to run it from the repository root; no other
cluster of the test run is alive meanwhile (the Ray test modules shut theirs down).
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from PIL import Image

pytest.importorskip("ray", reason="the ray extra is not installed")

from conftest import ROOT, shared_path

PAGE = ROOT / "docs" / "guide" / "cluster.md"


def _example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.S)
    (example,) = [b for b in blocks if "SaliencyPredictor" in b]
    return example


@pytest.mark.timeout(300)
def test_the_saliency_predictor_example_runs_as_written(tmp_path):
    shared = shared_path()
    work = tmp_path / "repo"
    work.mkdir()
    (tmp_path / "shared").symlink_to(shared)  # ../shared, as beside the repository
    proc = subprocess.run(
        [sys.executable, "-c", _example()], cwd=work, capture_output=True, text=True, timeout=280
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    written = sorted((work / "cutouts").glob("*.png"))
    assert len(written) == 8
    first = Image.open(written[0])
    assert first.mode == "RGBA" and proc.stdout.count("(") == 8
