"""``load_model``: one entry point for presets, released weights and our checkpoints."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sod100k.checkpoints.errors import CheckpointError
from sod100k.checkpoints.locate import resolve_weights  # also imported from here
from sod100k.checkpoints.native import read_checkpoint, save_checkpoint
from sod100k.checkpoints.reference import load_reference
from sod100k.models import registry
from sod100k.models.config import ConfigError, LayerConfig, wider_than

log = logging.getLogger(__name__)


def load_weights(weights: str | Path) -> tuple[str, Any, dict[str, torch.Tensor], dict]:
    """Read a checkpoint without building the network.

    Args:
        weights: Anything [`resolve_weights`][sod100k.checkpoints.locate.resolve_weights]
            accepts.

    Returns:
        ``(architecture name, config object, state dict in our names, metadata)``.

    Raises:
        CheckpointError: The files cannot be read, are not checkpoints, or name an
            unknown architecture or a malformed config.
    """
    kind, path, bin_path = resolve_weights(weights)
    if kind == "reference":
        config, state, meta = load_reference(path, bin_path)
        return "csnet", config, state, meta
    payload = read_checkpoint(path)
    arch_name = str(payload.get("arch", ""))
    try:
        arch = registry.get_architecture(arch_name)
        config = arch.config_from_dict(payload["config"])
    except (ValueError, ConfigError) as e:
        raise CheckpointError(f"{path}: {e}") from e
    meta = dict(payload["metadata"])
    meta.setdefault("source_file", path.name)
    return arch_name, config, payload["state_dict"], meta


def build_and_load(arch_name: str, config: Any, state: dict[str, torch.Tensor], origin: str):
    """Build a network from its config and load a state dict that must fit it exactly.

    Args:
        arch_name: A registered architecture.
        config: Its config object.
        state: Parameters and buffers in our names.
        origin: Where the weights came from, for error messages.

    Returns:
        The network with the weights loaded (training mode).

    Raises:
        CheckpointError: Missing, unexpected or wrongly shaped keys (up to five of each
            are listed).
    """
    model = registry.get_architecture(arch_name).build(config)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or mismatched:
        parts = []
        for label, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("wrong shape", mismatched),
        ):
            if keys:
                more = f" (+{len(keys) - 5} more)" if len(keys) > 5 else ""
                parts.append(f"{label}: {', '.join(keys[:5])}{more}")
        raise CheckpointError(f"{origin}: weights do not fit the model; " + "; ".join(parts))
    model.load_state_dict(state)
    return model


def check_model_matches(model: str, arch: str, config: Any, origin: str) -> None:
    """Refuse weights that are not the named preset or a pruned form of it.

    A checkpoint agrees with a preset when it has the preset's architecture and, for a
    CSNet, none of its widths exceeds the preset's (pruning only removes channels), and
    its config's name, if it is a preset's (``csnet-L-x2`` of the released folder,
    ``csnet-l-x1-pruned`` of a pruned run), is this preset's.

    Args:
        model: The preset name the caller gave.
        arch: The checkpoint's architecture.
        config: The checkpoint's config object.
        origin: Where the weights came from, for the message.

    Raises:
        ValueError: Unknown preset name.
        CheckpointError: The checkpoint is another model; the message names both.
    """
    preset = registry.get_preset(model)
    label = getattr(config, "name", "") or f"a {arch} model"
    if preset.arch != arch:
        problem = f"a {arch} model ({label}), not the {model} named"
    elif isinstance(config, LayerConfig):
        named = _preset_named(config.name)
        excess = wider_than(config, preset.make_config())
        if named and named != preset.name.lower():
            problem = f"{label}, not the {model} named"
        elif excess:
            problem = f"{label}, not the {model} named nor a pruned form of it ({excess})"
        else:
            return
    else:
        return
    raise CheckpointError(
        f"{origin}: holds {problem}; name the model it holds, or none, to use the "
        "checkpoint as it is"
    )


def _preset_named(name: str) -> str | None:
    """The preset a config name refers to (``csnet-L-x2-pruned`` -> ``csnet-l-x2``)."""
    base = name.lower()
    while base.endswith("-pruned"):
        base = base.removesuffix("-pruned")
    return base if base in registry.list_presets() else None


def load_model(
    model: str | None = None,
    weights: str | Path | None = None,
    device: str | torch.device = "cpu",
) -> nn.Module:
    """Build a model and load its weights.

    A pruned checkpoint builds the net from its own config. The checkpoint's metadata
    (source, epoch, ...) is attached as ``model.checkpoint_metadata``.

    Args:
        model: A preset name (``csnet-l-x1``, ``csnet-l-x2``, ``csf-res2net50``). May be
            omitted when ``weights`` is given: the checkpoint says what it is.
        weights: A folder with the released files (``.pth.tar`` + ``.bin``), one of our
            checkpoint files, or a training run folder (``best.pt``/``last.pt``). Without
            it the net is randomly initialised.
        device: Where to put the model.

    Returns:
        The network in eval mode: it maps a normalised float tensor ``(N, 3, H, W)`` to
        logits ``(N, 1, H, W)``.

    Raises:
        ValueError: Neither ``model`` nor ``weights`` is given, or ``model`` is unknown.
        CheckpointError: The weights cannot be read, or are not ``model`` nor a pruned
            form of it (see
            [`check_model_matches`][sod100k.checkpoints.loading.check_model_matches]).
    """
    if weights is None:
        if model is None:
            raise ValueError("load_model needs a model name, weights, or both")
        net = registry.create_model(model)
    else:
        arch, config, state, meta = load_weights(weights)
        if model is not None:
            check_model_matches(model, arch, config, str(weights))
        net = build_and_load(arch, config, state, str(weights))
        net.checkpoint_metadata = meta
    return net.to(device).eval()


def save_model(
    path: str | Path, model: nn.Module, metadata: dict | None = None, extra: dict | None = None
) -> None:
    """Save a network in our single-file checkpoint format, atomically.

    Args:
        path: File to write.
        model: A network of any registered architecture (it carries its config).
        metadata: JSON-serialisable notes (source, epoch, ...).
        extra: Training state for resuming (optimizer, scheduler, RNG); inference
            ignores it.

    Raises:
        TypeError: ``model`` is not a sod100k network.
    """
    save_checkpoint(
        path, registry.arch_of(model), model.config.to_dict(), model.state_dict(), metadata, extra
    )
