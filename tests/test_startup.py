"""What start-up imports: with the exported graph cached, the CPU path runs without torch.

``import torch`` is the largest start-up cost of a command (about 0.95 of 2 CPU-seconds),
and the ``openvino`` and ``onnx`` backends need it only to export a graph that is not in
the cache yet. Each check runs in a fresh interpreter, where ``sys.modules`` shows what
was really imported.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

#: Runs ``sod100k ARGS`` and prints whether torch was imported on the way.
PREDICT = """
import sys
from sod100k.cli import main
status = main(sys.argv[1:])
print("torch" in sys.modules)
sys.exit(status)
"""


def _python(code: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_importing_the_package_and_the_commands_imports_no_torch() -> None:
    code = (
        "import sys, sod100k, sod100k.api, sod100k.cli, sod100k.cli.predict, "
        "sod100k.cli.serve, sod100k.server, sod100k.models, sod100k.checkpoints, "
        "sod100k.infer.runtime, sod100k.infer.video\n"
        "print(sorted(m for m in sys.modules if m.partition('.')[0] in ('torch', 'onnx')))"
    )
    assert _python(code) == "[]"


def test_public_names_still_resolve_on_first_use() -> None:
    code = (
        "import sys, sod100k\n"
        "from sod100k import load_model, save_model\n"
        "from sod100k.models import CSNet, CSFRes2NetConfig\n"
        "from sod100k.checkpoints import read_checkpoint\n"
        "net = sod100k.create_model('csnet-l-x1')\n"
        "print(type(net) is CSNet, callable(load_model), 'torch' in sys.modules)"
    )
    assert _python(code) == "True True True"


def test_cached_graph_predict_never_imports_torch(tmp_path: Path, monkeypatch, weights_x1) -> None:
    monkeypatch.setenv("SOD100K_CACHE", str(tmp_path / "cache"))
    image = tmp_path / "photo.png"
    Image.fromarray(np.full((40, 30, 3), 128, np.uint8)).save(image)
    args = ["predict", str(image), "-o", str(tmp_path / "map.png"), "-w", str(weights_x1)]
    args += ["--backend", "openvino", "-q"]
    assert _python(PREDICT, *args) == "True"  # the first start exports: torch is needed
    assert list((tmp_path / "cache" / "onnx").glob("*.onnx"))
    assert _python(PREDICT, *args) == "False"  # later starts read the cached graph
    assert Image.open(tmp_path / "map.png").size == (30, 40)
