"""The hot path of a training step: forward pass, BCE-with-logits and the DWD penalty.

:class:`StepLoss` computes the same quantities as the plain eager code, only faster on
CPU: with ``channels_last`` the weights and the batch use the NHWC memory layout, for
which oneDNN's convolutions (the depthwise ones above all) run several times faster than
for NCHW; with ``compile`` the loss is built by ``torch.compile``, which fuses the
element-wise work around the convolutions (BatchNorm, PReLU, the DWD averages, the
gOctConv sums) into generated kernels. Neither changes the arithmetic beyond the
order of floating-point sums: ``tests/test_train_step.py`` compares losses and
gradients with the eager NCHW path in float64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sod100k.train.sparsity import SparsityPenalty

LAYOUTS = ("auto", "channels_last", "contiguous")


def bce_loss(logits: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """BCE-with-logits: the pixel mean, or (``"sum"``, the reference CSF recipe) the pixel
    sum averaged over the batch."""
    if reduction == "sum":
        return F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / len(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


def use_channels_last(layout: str, device: torch.device) -> bool:
    """Whether ``layout`` means NHWC here: ``"auto"`` picks it on CPU only.

    Raises:
        ValueError: for a layout outside :data:`LAYOUTS`.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"memory layout must be one of {LAYOUTS}, got {layout!r}")
    return layout == "channels_last" or (layout == "auto" and device.type == "cpu")


class StepLoss:
    """``loss, bce, penalty`` of one batch; call it, then ``loss.backward()``.

    Args:
        model: the network (moved to NHWC in place when ``channels_last``).
        dwd: the penalty on ``model``'s gammas (dynamic weight decay or L1), or ``None``.
        reduction: ``"mean"`` or ``"sum"`` (see :func:`bce_loss`).
        channels_last: run weights and batch in the NHWC memory layout.
        compile: build the loss with ``torch.compile`` (the first call compiles: minutes
            on CPU, repaid over a training run, not over a handful of steps).
        autocast: device type to run the forward pass under ``torch.autocast``, or
            ``None`` for full precision.
    """

    def __init__(
        self,
        model: nn.Module,
        dwd: SparsityPenalty | None = None,
        reduction: str = "mean",
        channels_last: bool = False,
        compile: bool = False,
        autocast: str | None = None,
    ) -> None:
        self.model = model
        self.dwd = dwd
        self.reduction = reduction
        self.channels_last = channels_last
        self.autocast = autocast
        if channels_last:
            model.to(memory_format=torch.channels_last)
        self._fn = torch.compile(self._loss) if compile else self._loss

    def _loss(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        with torch.autocast(self.autocast or "cpu", enabled=self.autocast is not None):
            logits = self.model(x)
        bce = bce_loss(
            logits if logits.dtype == torch.float64 else logits.float(), y, self.reduction
        )
        penalty = self.dwd.penalty().to(bce.device) if self.dwd else bce.new_zeros(())
        return bce + penalty, bce, penalty

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self._fn(x, y)
