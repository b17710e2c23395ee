"""Training memory: the peak resident memory, and activation checkpointing to lower it.

A CSNet training step at the default recipe (batch 24 at 224 x 224) keeps every
intermediate tensor of the forward pass for the backward pass: gigabytes for a net of
100K parameters, because its early units run at full resolution. With activation
checkpointing each backbone block (and the head) keeps only its input; its inside is
computed again, block by block, during the backward pass. The arithmetic is the same:
the recomputation runs the same operators on the same inputs, so losses and gradients
are identical, at the price of a second forward pass through each block.

The one thing a recomputation must not repeat is a side effect: BatchNorm in training
mode updates its running mean and variance (and its batch counter) on every call, so a
plain recomputation would update them twice per step. The recomputation therefore runs
BatchNorm with momentum 0 and puts its batch counter back (the same output; the running
statistics are updated once, by the first pass).
"""

from __future__ import annotations

import contextlib
import resource
import sys
from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from sod100k.models.config import ConfigError


def peak_rss_bytes() -> int:
    """The peak resident set size of this process so far (``getrusage``), in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


def checkpoint_units(model: nn.Module) -> list[nn.Module]:
    """The modules whose insides activation checkpointing recomputes.

    CSNet: every ILBlock of the backbone and the head; CSF + Res2Net-50: every Res2Net
    bottleneck and the head.

    Raises:
        ConfigError: an architecture without checkpointing units.
    """
    from sod100k.models.csf_res2net import CSFRes2Net
    from sod100k.models.csnet import CSNet
    from sod100k.nn.res2net import Bottle2neck

    if isinstance(model, CSNet):
        return [*model.blocks(), model.head]
    if isinstance(model, CSFRes2Net):
        return [m for m in model.backbone.modules() if isinstance(m, Bottle2neck)] + [model.head]
    raise ConfigError(f"checkpoint_activations: not available for {type(model).__name__}")


def enable_activation_checkpointing(model: nn.Module) -> int:
    """Recompute the inside of every :func:`checkpoint_units` module during backward.

    Only training-mode forward passes that record gradients are checkpointed; inference
    and validation run the modules as before. Parameter names and the state dict do not
    change (the modules' ``forward`` is wrapped in place).

    Args:
        model: a CSNet or CSF + Res2Net-50, before it is wrapped by DDP.

    Returns:
        How many modules are checkpointed.
    """
    units = checkpoint_units(model)
    for unit in units:
        unit.forward = _checkpointed(unit, unit.forward)
    return len(units)


def _checkpointed(unit: nn.Module, forward: Callable) -> Callable:
    def run(*args):
        if not (unit.training and torch.is_grad_enabled()):
            return forward(*args)
        calls = 0

        def once_then_quietly(*inputs):
            # The first call is the forward pass; a second one is the recomputation
            # during backward, which must leave the BatchNorm statistics alone.
            nonlocal calls
            calls += 1
            if calls == 1:
                return forward(*inputs)
            with batchnorm_statistics_frozen(unit):
                return forward(*inputs)

        return checkpoint(once_then_quietly, *args, use_reentrant=False)

    return run


@contextlib.contextmanager
def batchnorm_statistics_frozen(module: nn.Module) -> Iterator[None]:
    """Training-mode BatchNorms inside ``module`` run as in training (batch statistics),
    but leave their running statistics and batch counter as they were.

    The running statistics are blended with momentum 0 (``1 * running + 0 * batch``, the
    same value), not bypassed: the operator then saves the same tensors for backward as
    in the first pass, which checkpointing checks. The batch counter is put back.
    """
    norms = [
        m
        for m in module.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats
    ]
    saved = [
        (m.momentum, None if m.num_batches_tracked is None else m.num_batches_tracked.clone())
        for m in norms
    ]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, (momentum, count) in zip(norms, saved, strict=True):
            m.momentum = momentum
            if count is not None:
                m.num_batches_tracked.copy_(count)
