"""Backend selection by name (``torch``; further backends register here)."""

from __future__ import annotations

from sod100k.checkpoints.loading import load_model
from sod100k.infer.backends import Backend, TorchBackend

BACKENDS = ("torch",)


def make_backend(
    name: str,
    model: str | None,
    weights: str | None,
    device: str = "cpu",
    threads: int | None = None,
) -> Backend:
    if name == "torch":
        if threads:
            import torch

            torch.set_num_threads(threads)
        return TorchBackend(load_model(model, weights, device=device), device)
    raise ValueError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")
