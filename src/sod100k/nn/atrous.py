"""Dilated 3x3 convolution as an ordinary convolution on a space-to-batch input.

oneDNN runs a dilated convolution on CPU several times slower than the same convolution
without dilation (CSF head, 16 x 26 x 112 x 112 -> 5 channels, forward + backward on one
core: 39 ms at dilation 1, 96-120 ms at dilations 2-16). A convolution of dilation ``d``
only ever combines pixels whose coordinates agree modulo ``d``, so it splits into
``d * d`` independent ordinary convolutions, one per residue class (the "space to batch"
form of atrous convolution, as TensorFlow's ``atrous_conv2d``):

1. zero-pad height and width up to multiples of ``d`` (the convolution's own zero
   padding already treats those pixels as zero),
2. move the ``d * d`` residue classes into the batch dimension,
3. convolve with the same weight, dilation 1, padding ``k // 2``,
4. move them back and crop.

Every output pixel is the same sum of the same products as the dilated convolution's, so
the result equals it up to the order of floating-point additions inside the convolution
(float64: < 1e-15 relative).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from sod100k.nn.reductions import is_channels_last


def space_to_batch(x: Tensor, d: int) -> Tensor:
    """``(N, C, d*h, d*w)`` -> ``(d*d*N, C, h, w)``, residue class ``(r, s)`` at batch
    block ``r * d + s``; a channels-last ``x`` gives a channels-last result."""
    n, c, hh, ww = x.shape
    h, w = hh // d, ww // d
    if is_channels_last(x):
        y = x.permute(0, 2, 3, 1).reshape(n, h, d, w, d, c).permute(2, 4, 0, 1, 3, 5)
        return y.reshape(d * d * n, h, w, c).permute(0, 3, 1, 2)
    y = x.reshape(n, c, h, d, w, d).permute(3, 5, 0, 1, 2, 4)
    return y.reshape(d * d * n, c, h, w)


def batch_to_space(y: Tensor, d: int) -> Tensor:
    """The inverse of :func:`space_to_batch` (keeps the memory layout too)."""
    dn, c, h, w = y.shape
    n = dn // (d * d)
    if is_channels_last(y):
        x = y.permute(0, 2, 3, 1).reshape(d, d, n, h, w, c).permute(2, 3, 0, 4, 1, 5)
        return x.reshape(n, h * d, w * d, c).permute(0, 3, 1, 2)
    x = y.reshape(d, d, n, c, h, w).permute(2, 3, 4, 0, 5, 1)
    return x.reshape(n, c, h * d, w * d)


def atrous_conv2d(x: Tensor, weight: Tensor, dilation: int) -> Tensor:
    """``F.conv2d(x, weight, None, 1, dilation * (k // 2), dilation)`` for an odd square
    kernel ``k``, computed with dilation 1 on the space-to-batch form of ``x``.

    The output keeps ``x``'s memory layout (channels-last stays channels-last).

    Args:
        x: ``(N, C, H, W)`` input, any ``H``, ``W``.
        weight: ``(O, C, k, k)`` weight, ``k`` odd.
        dilation: The dilation ``d >= 1``.

    Returns:
        ``(N, O, H, W)``, the "same"-padded dilated convolution of ``x``.
    """
    d = int(dilation)
    pad = weight.shape[-1] // 2
    if d == 1:
        return F.conv2d(x, weight, None, 1, pad, 1)
    h, w = x.shape[-2:]
    ph, pw = -h % d, -w % d
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph))
    y = F.conv2d(space_to_batch(x, d), weight, None, 1, pad, 1)
    y = batch_to_space(y, d)
    return y[..., :h, :w] if ph or pw else y
