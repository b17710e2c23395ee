"""Checkpoint I/O: our single-file format and the import of the reference checkpoints."""

from sod100k.checkpoints.errors import CheckpointError
from sod100k.checkpoints.native import read_checkpoint, save_checkpoint

__all__ = ["CheckpointError", "read_checkpoint", "save_checkpoint"]
