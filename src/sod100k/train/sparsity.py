"""Sparsity penalties on BatchNorm gammas: dynamic weight decay or network slimming.

* ``dwd``: the SOD100K dynamic weight decay (:mod:`sod100k.train.dwd`);
* ``l1``: network slimming (Liu et al., "Learning Efficient Convolutional Networks
  through Network Slimming", ICCV 2017): ``strength * sum |gamma|``, whose gradient on a
  gamma is ``strength * sign(gamma)``, the method most channel-pruning work compares
  against;
* ``none``: BCE only.

Both penalties act on the same gammas: every BatchNorm of the backbone units (each
block's gOctCBR ``expand`` and its two depthwise CBRs), whose expand gammas decide which
channels the pruning rule keeps.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import torch
from torch import Tensor, nn

from sod100k.models.csnet import CSNet
from sod100k.train.dwd import DynamicWeightDecay

SPARSITY = ("dwd", "l1", "none")
#: Liu et al. 2017 use 1e-4 (and 1e-5 for some nets) with SGD.
DEFAULT_L1_STRENGTH = 1e-4


class SparsityPenalty(Protocol):
    """What the training step needs from a penalty on the gammas."""

    def gammas(self) -> Iterator[nn.Parameter]: ...

    def penalty(self) -> Tensor: ...

    def remove(self) -> None: ...


class L1Sparsity:
    """``strength * sum |gamma|`` over the gammas of every backbone unit."""

    def __init__(self, model: CSNet, strength: float = DEFAULT_L1_STRENGTH) -> None:
        self.strength = float(strength)
        self.norms = [norm for unit in model.branch_units() for norm in unit.norms.values()]

    def gammas(self) -> Iterator[nn.Parameter]:
        """The BN weights under the L1 penalty (exempt from plain weight decay)."""
        return (norm.weight for norm in self.norms)

    def penalty(self) -> Tensor:
        """The penalty of the current gammas (autograd's gradient: strength * sign)."""
        if not self.norms:
            return torch.zeros(())
        total = sum(norm.weight.abs().sum() for norm in self.norms)
        return self.strength * total

    def remove(self) -> None:
        """Nothing to detach (no hooks); for the common interface."""


def build_sparsity(
    model: nn.Module,
    kind: str,
    *,
    dwd_coefficient: float,
    dwd_expand: float,
    l1_strength: float,
) -> SparsityPenalty | None:
    """The penalty ``kind`` on ``model``'s gammas, or ``None`` for ``"none"``.

    Raises:
        ValueError: ``kind`` is unknown, or the model is not a CSNet (both penalties are
            defined on CSNet's units).
    """
    if kind not in SPARSITY:
        raise ValueError(f"sparsity must be one of {SPARSITY}, got {kind!r}")
    if kind == "none":
        return None
    if not isinstance(model, CSNet):
        raise ValueError(
            f"sparsity {kind!r} needs a CSNet, not {type(model).__name__}; "
            "turn it off with --sparsity none"
        )
    if kind == "dwd":
        return DynamicWeightDecay(model, dwd_coefficient, dwd_expand)
    return L1Sparsity(model, l1_strength)


def weight_decay_exempt(
    model: nn.Module, kind: str, penalty: SparsityPenalty | None, gamma_weight_decay: str
) -> set[int]:
    """Ids of the penalised gammas that get no plain weight decay.

    DWD with ``gamma_weight_decay = "reference"``: as the reference train.py builds its
    groups (it tests ``'conv3x3_1.bns'`` twice), only the expand and first depthwise
    gammas; the second depthwise gammas get weight decay on top of DWD. DWD with
    ``"exempt"``, and L1 (network slimming): every penalised gamma. No penalty: none.
    """
    if penalty is None:
        return set()
    if kind == "l1" or gamma_weight_decay == "exempt":
        return {id(p) for p in penalty.gammas()}
    return {
        id(norm.weight)
        for block in model.blocks()
        for unit in (block.expand, block.dw1)
        for norm in unit.norms.values()
    }


def optimizer_groups(
    model: nn.Module,
    kind: str,
    penalty: SparsityPenalty | None,
    weight_decay: float,
    gamma_weight_decay: str = "reference",
) -> list[dict]:
    """Adam parameter groups: the trainable parameters with plain weight decay, then (if
    any) the exempt gammas without it (see :func:`weight_decay_exempt`)."""
    exempt = weight_decay_exempt(model, kind, penalty, gamma_weight_decay)
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups: list[dict] = [
        {"params": [p for p in trainable if id(p) not in exempt], "weight_decay": weight_decay}
    ]
    if exempt:
        groups.append({"params": [p for p in trainable if id(p) in exempt], "weight_decay": 0.0})
    return groups
