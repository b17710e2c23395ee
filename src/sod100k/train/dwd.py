"""Dynamic weight decay (SOD100K): a FLOPs-weighted, output-scaled decay on BN gammas.

For every backbone unit (gOctCBR or depthwise CBR) and every output branch ``k`` the
loss gets ``0.5 * f_k * |GAP(out_c)| * gamma_c^2`` per channel ``c``, where ``GAP`` is
the detached global-average of the channel's output (after BN and PReLU), averaged over
the batch, and ``f_k`` grows with the branch's resolution when the expansion factor is
above 1. Channels that contribute little therefore decay fast and their gammas collapse
to ~0, ready for pruning.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn

from sod100k.models.csnet import CSNet
from sod100k.nn.reductions import spatial_means

DEFAULT_COEFFICIENT = 3.0
DEFAULT_EXPAND = 1.0  # reference csnet-L-x2_train.yml: AUTO.FLOPS.EXPAND 1.0


def unit_levels(model: CSNet) -> list[int]:
    """FLOPs level of every branch unit: stages 0 and 1 share level 0, then +1 per stage."""
    levels = []
    for stage, blocks in enumerate(model.stages):
        level = max(stage - 1, 0)
        levels.extend(level for block in blocks for _ in block.units)
    return levels


def branch_flop_weights(model: CSNet, expand: float = DEFAULT_EXPAND) -> list[list[float]]:
    """``f_k`` for every branch ``k`` of every unit of ``model.branch_units()``.

    As in the reference recipe: a unit at level ``L`` of ``n`` levels has base weight
    ``expand^(n-1-L)`` and its branch ``k`` of ``b`` gets ``base * expand^(b-1-k)``, so
    high-resolution (expensive) channels are pushed hardest.
    """
    levels = unit_levels(model)
    n_levels = len(model.stages) - 1
    weights = []
    for unit, level in zip(model.branch_units(), levels, strict=True):
        base = expand ** (n_levels - 1 - level)
        b = len(unit.out_channels)
        weights.append([base * expand ** (b - 1 - k) for k in range(b)])
    return weights


def _at_least_f32(t: Tensor) -> Tensor:
    """float32 for half-precision (AMP) tensors; float64 stays float64."""
    return t if t.dtype == torch.float64 else t.float()


class DynamicWeightDecay:
    """Records per-channel output magnitudes with forward hooks and builds the penalty.

    Only the latest forward pass is kept (detached), so nothing accumulates across
    steps. Call :meth:`penalty` after the forward pass of each training step.
    """

    def __init__(
        self,
        model: CSNet,
        coefficient: float = DEFAULT_COEFFICIENT,
        expand: float = DEFAULT_EXPAND,
    ) -> None:
        self.coefficient = float(coefficient)
        self.terms: list[tuple[nn.BatchNorm2d, float]] = []
        self._magnitude: dict[int, Tensor] = {}
        self._handles = []
        for unit, weights in zip(
            model.branch_units(), branch_flop_weights(model, expand), strict=True
        ):
            for key, norm in unit.norms.items():
                self.terms.append((norm, weights[int(key)]))
            self._handles.append(unit.register_forward_hook(self._record))

    def _record(self, unit: nn.Module, _inputs: tuple, outputs: list) -> None:
        # As the reference: the magnitude of the unit's output, i.e. after BN and PReLU.
        if not (torch.is_grad_enabled() and unit.training):
            return
        for key, norm in unit.norms.items():
            y = _at_least_f32(outputs[int(key)].detach())
            self._magnitude[id(norm)] = spatial_means(y).abs().mean(0)

    def gammas(self) -> Iterator[nn.Parameter]:
        """The BN weights under dynamic decay (to exclude from plain weight decay)."""
        return (norm.weight for norm, _ in self.terms)

    def penalty(self) -> Tensor:
        """``coefficient * sum 0.5 * f_k * |GAP| * gamma^2`` over the last forward pass."""
        total = None
        for norm, weight in self.terms:
            magnitude = self._magnitude.get(id(norm))
            if magnitude is None:
                continue
            term = 0.5 * weight * (magnitude * _at_least_f32(norm.weight) ** 2).sum()
            total = term if total is None else total + term
        self._magnitude.clear()
        if total is None:
            return torch.zeros(())
        return self.coefficient * total

    def remove(self) -> None:
        """Detach the hooks from the model."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
