"""Parameter and FLOP counts (FLOPs = 2 x multiply-adds, as the SOD100K paper reports)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module) -> int:
    """Number of parameters (weights, biases, BN and PReLU parameters; no buffers).

    Args:
        model: Any module.

    Returns:
        The total element count of ``model.parameters()``.
    """
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, height: int = 224, width: int = 224) -> int:
    """FLOPs of one forward pass on a ``1 x 3 x height x width`` input.

    Uses PyTorch's own operator-level counter, which counts each multiply-add of a
    convolution or matrix product as 2 FLOPs (element-wise ops are not counted).

    Args:
        model: The network; run once in eval mode, its training flag is restored.
        height: Input height in pixels.
        width: Input width in pixels.

    Returns:
        FLOPs (2 x multiply-adds).
    """
    param = next(model.parameters())
    x = torch.zeros(1, 3, height, width, device=param.device, dtype=param.dtype)
    was_training = model.training
    model.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    model.train(was_training)
    return int(counter.get_total_flops())
