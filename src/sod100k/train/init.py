"""BatchNorm initialisation of a net trained from scratch.

The SOD100K authors trained with PyTorch 1.0, whose ``BatchNorm`` initialised gamma from
U(0, 1) and beta to 0 (PyTorch changed gamma to 1 in a later release; pytorch/pytorch
issue 12259). The reference code does not override it, so the released nets started
from random gammas. Under dynamic weight decay, whose gradient dominates early on, that
matters: gammas that start at 1 all fall in lockstep, gammas from U(0, 1) do not.
"""

from __future__ import annotations

import torch
from torch import nn

#: ``uniform``: gamma ~ U(0, 1), beta 0 (PyTorch 1.0, the reference); ``ones``: gamma 1,
#: beta 0 (PyTorch >= 1.2).
BN_INITS = ("uniform", "ones")


@torch.no_grad()
def init_batchnorm(model: nn.Module, mode: str, seed: int) -> int:
    """Re-initialise the affine parameters of every BatchNorm of ``model``.

    The gammas are drawn from a generator of their own, seeded with ``seed``, in module
    order, so the other parameters (drawn from the global generator when the net was
    built) are the same in both modes.

    Args:
        model: the freshly built network (changed in place).
        mode: one of :data:`BN_INITS`.
        seed: seed of the gamma draws (``uniform`` only).

    Returns:
        The number of BatchNorm layers initialised.

    Raises:
        ValueError: ``mode`` is not one of :data:`BN_INITS`.
    """
    if mode not in BN_INITS:
        raise ValueError(f"bn_init must be one of {BN_INITS}, got {mode!r}")
    generator = torch.Generator().manual_seed(seed)
    count = 0
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
            if mode == "uniform":
                draw = torch.rand(m.weight.shape, generator=generator, dtype=m.weight.dtype)
                m.weight.copy_(draw)
            else:
                m.weight.fill_(1.0)
            m.bias.zero_()
            count += 1
    return count
