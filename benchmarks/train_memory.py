"""Peak memory and step time of the CSNet training step, with and without activation
checkpointing (``sod100k train --checkpoint-activations``).

Each cell runs in a fresh interpreter, one after the other (their peaks must not add
up), and runs the trainer's CPU step exactly as ``sod100k train`` builds it for the
default recipe (the ``Trainer``'s own model, channels-last ``StepLoss`` with dynamic
weight decay, Adam with the recipe's weight-decay groups and allocator setting) on a
random batch of ``--batch`` images at ``--size``. It reports the peak resident memory of
the process (``getrusage``: libraries, model, batch and the step's tensors) and the
median wall-clock and CPU time of ``--steps`` steps after one warm-up step (CPU time
varies less with other load on the machine).

Usage:
    python benchmarks/train_memory.py [--models csnet-l-x1 csnet-l-x2] [--batch 24]
        [--size 224] [--threads 2] [--steps 2] [--out benchmarks/results] [--note TEXT]

Writes ``train-memory.json`` and ``train-memory.md`` to ``--out``.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import harness


def measure(cell: dict) -> dict:
    """One cell in this process: build the trainer's step, run it, report memory and time."""
    import tempfile

    import numpy as np
    import torch
    from PIL import Image

    from sod100k.train.config import build_config
    from sod100k.train.loop import Trainer
    from sod100k.train.memory import peak_rss_bytes

    torch.set_num_threads(cell["threads"])
    with tempfile.TemporaryDirectory(prefix="sod100k-train-memory-") as tmp:
        data = Path(tmp) / "data"  # one pair: the Trainer wants a dataset folder
        (data / "images").mkdir(parents=True)
        (data / "masks").mkdir()
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(data / "images" / "a.png")
        Image.fromarray(np.zeros((32, 32), np.uint8)).save(data / "masks" / "a.png")
        overrides = {
            "data": str(data),
            "out": str(Path(tmp) / "run"),
            "model": cell["model"],
            "checkpoint_activations": cell["checkpoint"],
            "workers": 0,
        }
        trainer = Trainer(build_config("csnet", overrides))
        g = torch.Generator().manual_seed(1)
        x = torch.randn(cell["batch"], 3, cell["size"], cell["size"], generator=g)
        y = torch.rand(cell["batch"], 1, cell["size"], cell["size"], generator=g)
        before = peak_rss_bytes()
        times, cpu = [], []
        for _ in range(1 + cell["steps"]):  # the inner loop of Trainer.train_epoch
            start, start_cpu = time.perf_counter(), time.process_time()
            loss, _, _ = trainer.step_loss(x, y)
            loss.backward()
            trainer.optimizer.step()
            trainer.optimizer.zero_grad(set_to_none=True)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        trainer.close()
    return {
        **cell,
        "rss_before_step_gb": round(before / 1e9, 3),
        "peak_rss_gb": round(peak_rss_bytes() / 1e9, 3),
        "step_s": [round(t, 3) for t in times[1:]],
        "median_step_s": round(statistics.median(times[1:]), 3),
        "cpu_s": [round(t, 3) for t in cpu[1:]],
        "median_cpu_s": round(statistics.median(cpu[1:]), 3),
    }


COLUMNS = {
    "model": "model",
    "activations": "activations",
    "peak_rss_gb": "peak RSS GB",
    "memory": "memory",
    "median_step_s": "step s",
    "time": "time",
    "median_cpu_s": "step CPU s",
    "cpu_time": "CPU time",
}


def main() -> None:
    cell = harness.worker_cell(sys.argv)
    if cell is not None:
        harness.emit(measure(cell))
        return
    p = harness.parser(__doc__, threads=2)
    p.add_argument("--models", nargs="+", default=["csnet-l-x1", "csnet-l-x2"])
    p.add_argument("--batch", type=int, default=24)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--steps", type=int, default=2, help="timed steps after one warm-up step")
    args = p.parse_args()
    if args.steps < 1:
        p.error("--steps must be >= 1")
    meta = harness.start("train_memory", args.note)
    rows, plain = [], {}
    for model in args.models:
        for checkpoint in (False, True):
            cell = {
                "model": model,
                "checkpoint": checkpoint,
                "batch": args.batch,
                "size": args.size,
                "threads": args.threads,
                "steps": args.steps,
            }
            row = harness.run_cell(__file__, cell)
            base = plain.setdefault(model, row)
            row["activations"] = "checkpointed" if checkpoint else "kept (default)"
            row["memory"] = f"x{row['peak_rss_gb'] / base['peak_rss_gb']:.2f}"
            row["time"] = f"x{row['median_step_s'] / base['median_step_s']:.2f}"
            row["cpu_time"] = f"x{row['median_cpu_s'] / base['median_cpu_s']:.2f}"
            rows.append(row)
    intro = (
        f"Peak RSS and step time of the default CSNet training step, batch {args.batch} at "
        f"{args.size}x{args.size}, {args.threads} threads, with and without "
        "--checkpoint-activations (each cell in a fresh process)."
    )
    harness.write_results(
        args.out, "train-memory", meta, rows, harness.markdown_table(COLUMNS, rows), intro=intro
    )
    print(harness.markdown_table(COLUMNS, rows))


if __name__ == "__main__":
    main()
