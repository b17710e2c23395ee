"""What OpenVINO's bf16 mode costs in ECSSD accuracy, estimated by EMULATION in PyTorch.

Why emulation: OpenVINO runs bf16 only on CPUs with AVX512-BF16 or AMX; elsewhere
``--precision bf16`` runs fp32, so on such a machine its accuracy cannot be measured by
running it. This script predicts every image of ``--images`` with each checkpoint
through the reference protocol (``sod100k predict``'s preprocessing and postprocessing,
224 x 224) and scores the maps with PySODMetrics (max F, beta^2 = 0.3; MAE), as
``benchmarks/int8_openvino.py`` does, three times:

* ``fp32``: the ``torch-fused`` backend, in float32: the folded weights OpenVINO is
  given (BatchNorm and the x100 weight scale folded into the conv weights and biases;
  its merged convs compute each output channel exactly as the exported per-pair convs);
* ``bf16 emulated``: the same, with OpenVINO's bf16 arithmetic emulated by hooks
  (:func:`emulate_bf16`): every conv's input and weight is rounded to bf16 (round to
  nearest even), the conv itself runs in fp32 (products summed in fp32, fp32 bias added,
  as bf16 convolution kernels accumulate), and the output of every conv and PReLU, and
  every PReLU input (the sum of a gOctConv's branch contributions), is rounded to bf16,
  as if every tensor passed between layers were stored in bf16. The last op, the
  bilinear upsampling of the classifier's (bf16) output to the input size, stays fp32,
  as OpenVINO returns fp32 logits;
* ``bf16 autocast`` (unless ``--no-autocast``): ``torch.autocast("cpu", torch.bfloat16)``
  around the same model, a second estimate: PyTorch's own bf16 convolutions, with the
  ops autocast leaves alone in the dtype of their inputs.

What may differ from real hardware (so read the emulated cost as an estimate, not a
bound: the extra roundings argue that it errs on the pessimistic side, but the logit
check below found it moving logits about as much as real bf16 did, slightly less):

* OpenVINO fuses each conv with the PReLU, the bias and the branch sum that follow it and
  applies them in fp32 before one rounding; the emulation rounds the conv output, the
  sum and the PReLU output separately (up to two extra roundings per gOctConv);
* the bilinear upsampling between gOctConv branches is not rounded by the emulation
  (its output is added to a bf16 conv output and rounded at the PReLU), while OpenVINO
  may store it in bf16: one rounding fewer on those paths;
* OpenVINO may keep some layers in fp32 (for instance around the network's output), and
  its kernels sum products in a different order (fp32 rounding only, ~1e-7 relative).

As a check against real hardware, the script also reports the largest logit difference
bf16 causes on the input ``benchmarks/openvino_variants.py`` uses (one
``standard_normal`` 1 x 3 x 224 x 224 batch, seed 0): OpenVINO bf16 on an AMX Xeon
moved x2's logits by up to 0.12 (docs/benchmarks/inference.md). Writes
``bf16-emulated.json`` / ``.md`` to ``--out``. Run from the repository root:

    PYTHONPATH=src python benchmarks/bf16_emulated.py --weights ../shared/weights --threads 1
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import shlex
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from int8_accuracy import score_predictor  # benchmarks/int8_accuracy.py, beside this script
from sod100k.data.images import list_images
from sod100k.infer.backends import TorchBackend
from sod100k.infer.predictor import Predictor
from sod100k.infer.runtime import make_backend

MODELS = ("csnet-L-x1", "csnet-L-x2")
MAX_F_DROP = 0.005
MAE_RISE = 0.002


def to_bf16(t: Tensor) -> Tensor:
    """``t`` rounded to the nearest bfloat16 (ties to even), kept as float32."""
    return t.to(torch.bfloat16).to(torch.float32)


def _round_input(module: nn.Module, args: tuple) -> tuple:
    return (to_bf16(args[0]), *args[1:])


def _round_output(module: nn.Module, args: tuple, output: Tensor) -> Tensor:
    return to_bf16(output)


@contextmanager
def emulate_bf16(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model`` with bf16 storage emulated; weights and hooks are restored on exit.

    Conv weights are rounded to bf16 in place (biases and PReLU slopes stay fp32); conv
    and PReLU inputs and outputs are rounded to bf16 by forward hooks.
    """
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    saved = [conv.weight.detach().clone() for conv in convs]
    handles = []
    try:
        with torch.no_grad():
            for conv in convs:
                conv.weight.copy_(to_bf16(conv.weight))
        for m in model.modules():
            if isinstance(m, nn.Conv2d | nn.PReLU):
                handles.append(m.register_forward_pre_hook(_round_input))
                handles.append(m.register_forward_hook(_round_output))
        yield model
    finally:
        for handle in handles:
            handle.remove()
        with torch.no_grad():
            for conv, weight in zip(convs, saved, strict=True):
                conv.weight.copy_(weight)


class AutocastBackend:
    """A torch backend run under ``torch.autocast("cpu", dtype=torch.bfloat16)``."""

    def __init__(self, backend: TorchBackend) -> None:
        self.backend = backend
        self.name = f"{backend.name}-autocast-bf16"
        self.arch = backend.arch

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return self.backend(batch)


def timed_score(backend, images: list[Path], masks: Path) -> dict[str, float]:
    start = time.perf_counter()
    result = score_predictor(Predictor(backend), images, masks)
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def checkpoint(weights: Path, images: list[Path], masks: Path, autocast: bool) -> dict:
    """fp32, emulated bf16 and (optionally) autocast bf16 scores of one checkpoint."""
    backend = make_backend("torch-fused", None, str(weights))
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224), np.float32)
    ref = backend(x)
    results = {"fp32": timed_score(backend, images, masks)}
    print(weights.name, "fp32", results["fp32"], file=sys.stderr)
    with emulate_bf16(backend.model):
        results["bf16 emulated"] = timed_score(backend, images, masks)
        results["bf16 emulated"]["max_logit_diff"] = float(np.abs(backend(x) - ref).max())
    print(weights.name, "bf16 emulated", results["bf16 emulated"], file=sys.stderr)
    if autocast:
        auto = AutocastBackend(backend)
        results["bf16 autocast"] = timed_score(auto, images, masks)
        results["bf16 autocast"]["max_logit_diff"] = float(np.abs(auto(x) - ref).max())
        print(weights.name, "bf16 autocast", results["bf16 autocast"], file=sys.stderr)
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", type=Path, default=Path("../shared/weights"))
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--images", type=Path, default=Path("../shared/data/ECSSD/images"))
    p.add_argument("--masks", type=Path, default=Path("../shared/data/ECSSD/masks"))
    p.add_argument("--limit", type=int, default=0, help="score only the first N images")
    p.add_argument("--no-autocast", action="store_true", help="skip the autocast estimate")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    p.add_argument("--machine", default=platform.processor() or platform.machine())
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    images = list_images(args.images)
    if args.limit:
        images = images[: args.limit]
    results = {
        model: checkpoint(args.weights / model, images, args.masks, not args.no_autocast)
        for model in args.models
    }
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = "PYTHONPATH=src python benchmarks/bf16_emulated.py " + shlex.join(sys.argv[1:])
    lines = [
        f"bf16 EMULATED in PyTorch (this CPU has no bf16 arithmetic), {len(images)} images "
        f"of {args.images} at 224. torch {torch.__version__}, {args.threads} thread(s); "
        f"{args.machine}; {date}. Command: `{command}`",
        "",
        "| model | precision | max F | Δ max F | MAE | Δ MAE | passes the bar "
        "| max logit diff (seed-0 noise) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model, rows in results.items():
        base = rows["fp32"]
        for name, r in rows.items():
            dF, dM = r["max_f"] - base["max_f"], r["mae"] - base["mae"]
            r["passes"] = dF >= -MAX_F_DROP and dM <= MAE_RISE
            diff = f"{r['max_logit_diff']:.3f}" if "max_logit_diff" in r else "–"
            lines.append(
                f"| {model} | {name} | {r['max_f']:.4f} | {dF:+.4f} | {r['mae']:.4f} | "
                f"{dM:+.4f} | {'yes' if r['passes'] else 'no'} | {diff} |"
            )
    meta = {"machine": args.machine, "date": date, "command": command, "images": len(images)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bf16-emulated.json").write_text(
        json.dumps({"meta": meta, "results": results}, indent=2)
    )
    (args.out / "bf16-emulated.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
