"""Our checkpoint format: one file holding the layer config, the weights and metadata.

It is a ``torch.save`` of plain containers only (strings, numbers, tensors), so it loads
with ``torch.load(weights_only=True)``: no code runs when a checkpoint is opened.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from sod100k.checkpoints.errors import CHECKPOINT_FORMS, CheckpointError
from sod100k.utils.files import atomic_save
from sod100k.utils.sniff import UnreadableTorchFile, load_plain

FORMAT = "sod100k.checkpoint/1"


def save_checkpoint(
    path: str | Path,
    arch: str,
    config: dict[str, Any],
    state_dict: dict[str, torch.Tensor],
    metadata: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write a checkpoint atomically (a crash never leaves a truncated file behind).

    Args:
        path: File to write.
        arch: Architecture name (``"csnet"``, ``"csf-res2net50"``).
        config: The network's config as JSON-ready data.
        state_dict: Parameters and buffers; stored on the CPU.
        metadata: JSON-serialisable notes (source, epoch, training info).
        extra: Training state (optimizer, scheduler, RNG) for resuming; inference
            ignores it.
    """
    payload: dict[str, Any] = {
        "format": FORMAT,
        "arch": arch,
        "config": json.dumps(config),
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        "metadata": json.dumps(metadata or {}),
    }
    if extra:
        payload["extra"] = extra
    atomic_save(path, lambda f: torch.save(payload, f))


def is_native_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a readable checkpoint in our format.

    Args:
        path: Any file.

    Returns:
        ``True`` when [`read_checkpoint`][sod100k.checkpoints.native.read_checkpoint]
        accepts it.
    """
    try:
        read_checkpoint(path)
    except CheckpointError:
        return False
    return True


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load and check a checkpoint in our format.

    The file is opened with ``torch.load(weights_only=True)``: no code runs. A file that
    is not a checkpoint is refused with what it is instead (an image, a text file, ...).

    Args:
        path: The checkpoint file.

    Returns:
        The payload: ``format``, ``arch``, ``config`` and ``metadata`` (as dicts),
        ``state_dict`` and, if saved, ``extra``.

    Raises:
        CheckpointError: No such file, not a sod100k checkpoint (for instance a released
            ``.pth.tar``), or a corrupt config, metadata or state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        payload = load_plain(path)
    except UnreadableTorchFile as e:
        raise CheckpointError(
            f"{path}: not a sod100k checkpoint but {e}; {CHECKPOINT_FORMS}"
        ) from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not a sod100k checkpoint (a torch file without the '{FORMAT}' "
            f"format tag); {CHECKPOINT_FORMS}"
        )
    try:
        payload["config"] = json.loads(payload["config"])
        payload["metadata"] = json.loads(payload.get("metadata", "{}"))
    except (KeyError, TypeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: corrupt config or metadata: {e}") from e
    if not isinstance(payload.get("state_dict"), dict):
        raise CheckpointError(f"{path}: checkpoint has no state_dict")
    return payload
