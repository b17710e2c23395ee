"""Two threads' first OpenVINO inferences at the same moment, in fresh processes.

Without the warm-up under a lock in :class:`OpenVinoBackend`, 8 of 20 fresh processes
hung for good (a one-time initialisation in OpenVINO's Python bindings racing for the
GIL). The race exists only once per process, so each trial is a new subprocess.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("openvino")

TRIALS = 8
TIMEOUT_S = 60.0

CHILD = textwrap.dedent(
    """
    import sys, threading
    import numpy as np
    from sod100k.infer.backends import OpenVinoBackend

    backend = OpenVinoBackend(sys.argv[1], threads=1, streams=2)
    shape = (1, 3, 224, 224)
    # Compile first, as a first call does, so that both threads' first inferences start
    # together: without the warm-up under the lock this hung 3 fresh processes in 10.
    backend._compiled_for(shape)
    barrier = threading.Barrier(2)
    x = np.zeros(shape, dtype=np.float32)
    results = []

    def first_inference():
        barrier.wait()
        results.append(backend(x).shape)

    threads = [threading.Thread(target=first_inference) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(results)
    """
)


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory, weights_x2):
    from sod100k.checkpoints.loading import load_model
    from sod100k.infer.onnx_export import export_bytes

    path = tmp_path_factory.mktemp("race") / "csnet.onnx"
    path.write_bytes(export_bytes(load_model("csnet-l-x2", str(weights_x2))))
    return path


def _trial(onnx_file) -> str:
    try:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(onnx_file)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return f"hung for {TIMEOUT_S:.0f} s"
    if done.returncode != 0:
        return f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}"
    return "" if done.stdout.count("(1, 224, 224)") == 2 else f"bad output {done.stdout!r}"


def test_concurrent_first_inferences_never_deadlock(onnx_file):
    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(_trial, [onnx_file] * TRIALS))
    failures = [o for o in outcomes if o]
    assert not failures, f"{len(failures)}/{TRIALS} fresh processes failed: {failures}"
