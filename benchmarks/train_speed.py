"""Images/s of one CSNet training step (forward, BCE + DWD, backward, Adam) at batch 24.

Usage: python benchmarks/train_speed.py [--threads 2] [--steps 3] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
import torch.nn.functional as F

from sod100k.models import create_model
from sod100k.train.dwd import DynamicWeightDecay


def images_per_second(name: str, batch: int, size: int, steps: int, device: str) -> float:
    torch.manual_seed(0)
    model = create_model(name).to(device).train()
    dwd = DynamicWeightDecay(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.99), weight_decay=5e-3)
    x = torch.randn(batch, 3, size, size, device=device)
    y = (torch.rand(batch, 1, size, size, device=device) > 0.5).float()

    def step() -> None:
        loss = F.binary_cross_entropy_with_logits(model(x), y) + dwd.penalty().to(device)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up: allocator, kernels
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--batch", type=int, default=24)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    where = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor()
    print(f"# torch {torch.__version__}, {args.device} ({where}), threads {args.threads}")
    print("| model | batch | size | images/s |")
    print("|---|---|---|---|")
    for name in ("csnet-l-x1", "csnet-l-x2"):
        ips = images_per_second(name, args.batch, args.size, args.steps, args.device)
        print(f"| {name} | {args.batch} | {args.size} | {ips:.1f} |")


if __name__ == "__main__":
    main()
