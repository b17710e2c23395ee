"""Images/s of one CSNet training step (forward, BCE + DWD, backward, Adam).

Each variant runs in its own subprocess (so that no allocator, thread pool or compiled
code of one disturbs the next), one after the other, and reports the median step time
of ``--steps`` steps after ``--warmup`` warm-up steps:

* ``reference``: the SOD100K reference code (``--reference PATH``, a checkout that holds
  ``CSNet_training/``), run on CPU through the shims of ``ref_shims.py``; its step is
  train.py's: ``model(x)``, BCE, ``+ 3.0 * model.get_flops()``, ``zero_grad``,
  ``backward``, ``step``, ``clear_flops``, with train.py's two Adam groups;
* ``eager``: our trainer's loss, NCHW, not compiled (the unoptimised path);
* ``fast``: our trainer's default CPU path (``StepLoss`` with channels-last);
* ``compiled``: ``fast`` plus ``torch.compile`` (``--compile``; the compile time is
  reported separately, it is paid once per training run).

Usage:
    python benchmarks/train_speed.py [--reference ~/SOD100K] [--model csnet-l-x2]
        [--batch 24] [--size 224] [--threads 2] [--steps 3] [--warmup 1] [--compile]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from harness import cpu_model

HERE = Path(__file__).resolve().parent
REFERENCE_WIDTH = {"csnet-l-x1": 1.0, "csnet-l-x2": 2.0}  # build_model's ``expand``


def _our_step(args: argparse.Namespace, variant: str) -> tuple[Callable[[], float], int]:
    from sod100k.models import create_model
    from sod100k.train.dwd import DynamicWeightDecay
    from sod100k.train.step import StepLoss
    from sod100k.utils.malloc import keep_freed_memory

    if variant != "eager":
        keep_freed_memory()  # as the trainer does on CPU
    torch.manual_seed(0)
    model = create_model(args.model).train()
    dwd = DynamicWeightDecay(model)
    gamma_ids = {id(p) for p in dwd.gammas()}
    plain = [p for p in model.parameters() if id(p) not in gamma_ids]
    gammas = [p for p in model.parameters() if id(p) in gamma_ids]
    opt = torch.optim.Adam(
        [{"params": plain, "weight_decay": 5e-3}, {"params": gammas, "weight_decay": 0.0}],
        lr=1e-4,
        betas=(0.9, 0.99),
    )
    loss_fn = StepLoss(model, dwd, channels_last=variant != "eager", compile=variant == "compiled")
    x, y = _batch(args)

    def step() -> float:
        loss, _, _ = loss_fn(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    return step, sum(p.numel() for p in model.parameters())


def _reference_step(args: argparse.Namespace) -> tuple[Callable[[], float], int]:
    sys.path.insert(0, str(HERE))
    import ref_shims

    csnet = ref_shims.install(args.reference)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(sys.stderr):
        model = csnet.build_model(
            basic_split=[0.5, 0.5], save_path=tmp, expand=REFERENCE_WIDTH[args.model]
        )
        model.flops_hook(expandflop=1.0)  # AUTO.FLOPS.EXPAND of csnet-L-x2_train.yml
    model.set_batchsize(args.batch)
    picked, normal = [], []  # train.py's groups, its duplicated 'conv3x3_1.bns' test included
    for name, p in model.named_parameters():
        in_bn = "conv1x1.bns" in name or "conv3x3_1.bns" in name
        (picked if "stage" in name and in_bn and "weight" in name else normal).append(p)
    opt = torch.optim.Adam(
        [
            {"params": normal, "lr": 1e-4, "weight_decay": 5e-3},
            {"params": picked, "lr": 1e-4, "weight_decay": 0.0},
        ],
        lr=1e-4,
        betas=(0.9, 0.99),
        eps=1e-8,
        weight_decay=5e-3,
    )
    x, y = _batch(args)

    def step() -> float:  # train.py train(), one iteration
        model.train()
        output = model(x)
        loss = F.binary_cross_entropy_with_logits(output, y)
        value = loss.item()
        loss = loss + 3.0 * model.get_flops()
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.clear_flops()
        return value

    return step, sum(p.numel() for p in model.parameters())


def _batch(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(args.batch, 3, args.size, args.size, generator=g)
    y = torch.rand(args.batch, 1, args.size, args.size, generator=g)
    return x, y


def worker(args: argparse.Namespace) -> None:
    """Time one variant in this process; print one JSON line."""
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    if args.worker == "reference":
        step, params = _reference_step(args)
    else:
        step, params = _our_step(args, args.worker)
    first = time.perf_counter()
    step()
    warm = [time.perf_counter() - first]
    for _ in range(args.warmup - 1):
        t = time.perf_counter()
        step()
        warm.append(time.perf_counter() - t)
    times, cpu = [], []
    for _ in range(args.steps):
        t, c = time.perf_counter(), time.process_time()
        step()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    result = {
        "variant": args.worker,
        "params": params,
        "setup_s": first - start,
        "warmup_s": warm,
        "step_s": times,
        "median_s": statistics.median(times),
        "cpu_s": cpu,
        "median_cpu_s": statistics.median(cpu),
    }
    print(json.dumps(result), flush=True)


def run_variant(args: argparse.Namespace, variant: str) -> dict:
    """Run ``variant`` in a fresh interpreter and return its JSON result."""
    cmd = [sys.executable, __file__, "--worker", variant]
    for name in ("model", "batch", "size", "threads", "steps", "warmup"):
        cmd += [f"--{name}", str(getattr(args, name))]
    if args.reference:
        cmd += ["--reference", str(args.reference)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{variant}: worker failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--reference", type=Path, help="SOD100K checkout (holds CSNet_training/)")
    p.add_argument("--model", default="csnet-l-x2", choices=sorted(REFERENCE_WIDTH))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=3, help="timed steps per variant (median)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first (>= 1)")
    p.add_argument("--batch", type=int, default=24)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--compile", action="store_true", help="also time the torch.compile path")
    p.add_argument("--variants", help="comma-separated subset of the variants to run")
    p.add_argument("--json", type=Path, help="also write the raw results here")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.warmup < 1 or args.steps < 1:
        p.error("--warmup and --steps must be >= 1")
    if args.worker:
        worker(args)
        return
    if args.reference:
        sys.path.insert(0, str(HERE))
        import ref_shims

        args.reference = ref_shims.training_dir(args.reference)
    variants = ["reference"] if args.reference else []
    variants += ["eager", "fast"] + (["compiled"] if args.compile else [])
    if args.variants:
        variants = [v for v in args.variants.split(",") if v]
    print(
        f"# {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, torch {torch.__version__}, "
        f"{cpu_model()}, {args.threads} threads, {args.model}, batch {args.batch}, "
        f"{args.size}x{args.size}, median of {args.steps} steps after {args.warmup} warm-up"
    )
    results = []
    for variant in variants:
        results.append(run_variant(args, variant))
        r = results[-1]
        print(f"#   {variant}: steps {', '.join(f'{t:.2f}' for t in r['step_s'])} s", flush=True)
    base = next((r for r in results if r["variant"] == "reference"), results[0])
    name = base["variant"]
    print(
        f"| variant | params | first step (s) | step (s) | images/s | vs {name} "
        f"| CPU time/step (s) | CPU time vs {name} |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['variant']} | {r['params']:,} | {r['warmup_s'][0]:.1f} | {r['median_s']:.2f} "
            f"| {args.batch / r['median_s']:.2f} | {base['median_s'] / r['median_s']:.2f}x "
            f"| {r['median_cpu_s']:.2f} | {base['median_cpu_s'] / r['median_cpu_s']:.2f}x |"
        )
    if args.json:
        payload = {"args": {k: str(v) for k, v in vars(args).items()}, "results": results}
        args.json.write_text(json.dumps(payload, indent=1))


if __name__ == "__main__":
    main()
