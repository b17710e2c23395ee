"""Run each timing cell in its own Python process, so runtimes never share one.

ONNX Runtime's worker threads keep spinning for a while after each call and steal the CPU
from whatever runs next in the same process (OpenVINO timed right after ONNX Runtime read
37-38 ms instead of 21-23 ms for x2 at 224), so a benchmark that compares runtimes starts
a fresh interpreter per cell: ``python SCRIPT --worker JSON`` prints one JSON line with
the cell's results.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def median_ms(run: Callable[[], object], warmup: int, runs: int, per: int = 1) -> float:
    """Median milliseconds of ``run()`` over ``runs`` calls after ``warmup`` calls,
    divided by ``per`` (the images per call)."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return round(1000.0 * statistics.median(times) / per, 2)


def run_cell(script: str | Path, cell: dict, timeout: float = 1800) -> dict:
    """Run ``script --worker JSON(cell)`` in a fresh interpreter; its last stdout line.

    Raises:
        RuntimeError: the worker failed (its stderr tail is in the message).
    """
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, str(script), "--worker", json.dumps(cell)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"worker {cell} failed ({proc.returncode}): {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def worker_cell(argv: list[str]) -> dict | None:
    """The cell passed with ``--worker JSON``, or None when this is the parent process."""
    if len(argv) >= 3 and argv[1] == "--worker":
        return json.loads(argv[2])
    return None


def emit(result: dict) -> None:
    """Print a worker's result as the last stdout line."""
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
