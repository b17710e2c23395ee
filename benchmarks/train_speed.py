"""Images/s of one CSNet training step (forward, BCE + DWD, backward, Adam), ours vs the reference.

Each variant runs in its own fresh process (benchmarks/harness.py: no allocator, thread
pool or compiled code of one disturbs the next), one after the other, on the same seeded
batch, and reports the median step time of ``--steps`` steps after ``--warmup`` warm-up
steps, as wall time (images/s) and as CPU time of the process:

* ``reference``: the SOD100K reference code (``--reference PATH``, a checkout that holds
  ``CSNet_training/``) as shipped, run on CPU through the shims of ``ref_shims.py``; its
  step is train.py's: ``model(x)``, BCE, ``+ 3.0 * model.get_flops()``, ``zero_grad``,
  ``backward``, ``step``, ``clear_flops``, with train.py's two Adam groups;
* ``reference-alloc``: the same reference step with the allocator setting our trainer
  applies, given to glibc through the environment (``MALLOC_MMAP_MAX_=0
  MALLOC_TRIM_THRESHOLD_=4294967295``): heap-served large buffers, never trimmed;
* ``eager``: our trainer's loss, NCHW, not compiled, default allocator (the unoptimised
  path);
* ``fast``: our trainer's default CPU path (``StepLoss`` with channels-last and the
  allocator setting);
* ``compiled``: ``fast`` plus ``torch.compile`` (``--compile``; the compile time is
  reported separately, it is paid once per training run).

With ``--reference`` the default variants are ``reference reference-alloc eager fast``,
without it ``eager fast``. Writes ``train-speed-<cpu class>.json`` / ``.md`` to ``--out``.
Run from the repository root:

    .venv/bin/python benchmarks/train_speed.py --reference ~/SOD100K --steps 5
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

import harness

HERE = Path(__file__).resolve().parent
REFERENCE_WIDTH = {"csnet-l-x1": 1.0, "csnet-l-x2": 2.0}  # build_model's ``expand``
#: The allocator setting of ``sod100k.utils.malloc.keep_freed_memory``, as glibc reads it
#: from the environment: serve every allocation from the heap, never trim it.
ALLOCATOR_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "4294967295"}
#: Variant -> extra environment of its process.
VARIANTS = {
    "reference": {},
    "reference-alloc": ALLOCATOR_ENV,
    "eager": {},
    "fast": {},
    "compiled": {},
}


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


def worker(args: argparse.Namespace) -> dict:
    """Time one variant in this process."""
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    if args.variant.startswith("reference"):
        step, params = _reference_step(args)
    else:
        step, params = _our_step(args, args.variant)
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
    return {
        "variant": args.variant,
        "params": params,
        "setup_s": first - start,
        "warmup_s": warm,
        "step_s": times,
        "median_s": statistics.median(times),
        "cpu_s": cpu,
        "median_cpu_s": statistics.median(cpu),
        "allocator_env": {k: os.environ[k] for k in ALLOCATOR_ENV if k in os.environ},
    }


def table(results: list[dict], batch: int) -> str:
    """One row per variant, with its ratio to the reference as shipped (else the first)
    and, where it ran, to the reference with our allocator setting."""
    base = next((r for r in results if r["variant"] == "reference"), results[0])
    alloc = next((r for r in results if r["variant"] == "reference-alloc"), None)
    name = base["variant"]
    rows = [
        {
            "vs_alloc": f"{alloc['median_s'] / r['median_s']:.2f}x" if alloc else None,
            "variant": r["variant"],
            "params": f"{r['params']:,}",
            "first": round(r["warmup_s"][0], 1),
            "step": round(r["median_s"], 2),
            "ips": round(batch / r["median_s"], 2),
            "vs": f"{base['median_s'] / r['median_s']:.2f}x",
            "cpu": round(r["median_cpu_s"], 2),
            "cpu_vs": f"{base['median_cpu_s'] / r['median_cpu_s']:.2f}x",
        }
        for r in results
    ]
    columns = {
        "variant": "variant",
        "params": "params",
        "first": "first step (s)",
        "step": "step (s)",
        "ips": "images/s",
        "vs": f"vs {name}",
        **({"vs_alloc": "vs reference-alloc"} if alloc else {}),
        "cpu": "CPU time/step (s)",
        "cpu_vs": f"CPU time vs {name}",
    }
    return harness.markdown_table(columns, rows)


def main() -> None:
    cell = harness.worker_cell(sys.argv)
    if cell is not None:
        args = argparse.Namespace(**cell)
        if args.reference:
            args.reference = Path(args.reference)
        harness.emit(worker(args))
        return
    p = harness.parser(__doc__, threads=2)
    p.add_argument("--reference", type=Path, help="SOD100K checkout (holds CSNet_training/)")
    p.add_argument("--model", default="csnet-l-x2", choices=sorted(REFERENCE_WIDTH))
    p.add_argument("--steps", type=int, default=3, help="timed steps per variant (median)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first (>= 1)")
    p.add_argument("--batch", type=int, default=24)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--compile", action="store_true", help="also time the torch.compile path")
    p.add_argument(
        "--variants",
        nargs="+",
        choices=list(VARIANTS),
        help="the variants to run (default: all that apply, see above)",
    )
    args = p.parse_args()
    if args.warmup < 1 or args.steps < 1:
        p.error("--warmup and --steps must be >= 1")
    if args.reference:
        sys.path.insert(0, str(HERE))
        import ref_shims

        args.reference = ref_shims.training_dir(args.reference)
    variants = ["reference", "reference-alloc"] if args.reference else []
    variants += ["eager", "fast"] + (["compiled"] if args.compile else [])
    variants = args.variants or variants
    if any(v.startswith("reference") for v in variants) and not args.reference:
        p.error("the reference variants need --reference PATH (a SOD100K checkout)")
    meta = harness.start("train_speed", args.note)
    common = {k: getattr(args, k) for k in ("model", "batch", "size", "threads", "steps", "warmup")}
    common["reference"] = str(args.reference) if args.reference else None
    results = []
    for variant in variants:
        cell = {**common, "variant": variant}
        results.append(harness.run_cell(__file__, cell, env=VARIANTS[variant], timeout=7200))
        steps = ", ".join(f"{t:.2f}" for t in results[-1]["step_s"])
        harness.log.info("%s: steps %s s", variant, steps)
    alloc = " ".join(f"{k}={v}" for k, v in ALLOCATOR_ENV.items())
    intro = (
        f"{args.model}, batch {args.batch}, {args.size} x {args.size}, {args.threads} "
        f"threads; median of {args.steps} steps after {args.warmup} warm-up, each variant "
        f"in its own process. `reference-alloc` ran with `{alloc}`."
    )
    harness.write_results(
        args.out,
        f"train-speed-{meta['machine']['cpu_class']}",
        meta,
        results,
        table(results, args.batch),
        intro=intro,
    )


if __name__ == "__main__":
    main()
