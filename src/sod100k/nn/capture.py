"""Whether a graph is being captured (tracing, TorchScript, ONNX export, torch.compile).

Some layers swap an operator for a faster but equivalent composition in eager training
on CPU; under graph capture they keep the plain operator, so exported graphs keep their
standard nodes and the compiler sees the operation it knows how to fuse.
"""

from __future__ import annotations

import torch


def capturing_graph() -> bool:
    """True under ``torch.jit`` tracing/scripting, ONNX export or ``torch.compile``."""
    return (
        torch.jit.is_tracing()
        or torch.jit.is_scripting()
        or torch.onnx.is_in_onnx_export()
        or torch.compiler.is_compiling()
    )
