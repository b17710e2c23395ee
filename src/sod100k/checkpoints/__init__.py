"""Checkpoint I/O: our single-file format and the import of the reference checkpoints.

The readers and writers import torch, so they are imported on first use
(:mod:`sod100k.utils.lazy`): :class:`CheckpointError` and finding a checkpoint's files
(:mod:`sod100k.checkpoints.locate`) stay torch-free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sod100k.checkpoints.errors import CheckpointError
from sod100k.utils.lazy import lazy_attributes

if TYPE_CHECKING:
    from sod100k.checkpoints.native import read_checkpoint, save_checkpoint

__all__ = ["CheckpointError", "read_checkpoint", "save_checkpoint"]

__getattr__ = lazy_attributes(
    __name__,
    {name: "sod100k.checkpoints.native" for name in ("read_checkpoint", "save_checkpoint")},
)
