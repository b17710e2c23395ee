"""PReLU with a faster backward pass on CPU.

PyTorch's PReLU backward kernel (``aten::_prelu_kernel_backward``) computes the input
gradient and a per-element weight gradient in one scalar loop, then reduces the latter:
on a 2-core CPU it took 55-69 ms for an 8 x 20 x 224 x 224 activation, a third of a whole
CSNet training step, while one vectorised element-wise pass over the same tensor takes
~3 ms. :class:`PReLU` computes the same gradients from vectorised ATen passes:

* ``pos = threshold_backward(g, x, 0)`` (``g`` where ``x > 0``, else 0: ReLU's backward),
* ``neg = g - pos``,
* ``grad_x = pos + a * neg``, ``grad_a = sum(neg * x)`` over every dim but the channel.

Its forward pass is ``torch.prelu``, its parameter the same ``weight`` as
``nn.PReLU``'s (checkpoints do not change). Under tracing, ONNX export or
``torch.compile`` it is exactly ``nn.PReLU``, so exported graphs keep their PReLU node
and compiled graphs the compiler's own fusion.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sod100k.nn.capture import capturing_graph
from sod100k.nn.reductions import channel_sums


class _PReLUFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, weight)
        return torch.prelu(x, weight)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:  # type: ignore[override]
        x, weight = ctx.saved_tensors
        shape = [1] * x.dim()
        if x.dim() > 1:
            shape[1] = weight.numel()
        a = weight.reshape(shape) if weight.numel() > 1 else weight.reshape(())
        pos = torch.ops.aten.threshold_backward(grad, x, 0)
        neg = grad - pos
        grad_x = torch.addcmul(pos, neg, a) if ctx.needs_input_grad[0] else None
        grad_w = None
        if ctx.needs_input_grad[1]:
            prod = neg.mul_(x)
            if weight.numel() > 1:
                grad_w = channel_sums(prod).reshape(weight.shape)
            else:
                grad_w = prod.sum().reshape(weight.shape)
        return grad_x, grad_w


class PReLU(nn.PReLU):
    """``nn.PReLU`` with the faster backward pass of this module (same parameters)."""

    def forward(self, x: Tensor) -> Tensor:
        needs_grad = torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad)
        if needs_grad and not capturing_graph():
            return _PReLUFunction.apply(x, self.weight)
        return torch.prelu(x, self.weight)
