"""Registry of model architectures and named presets (``csnet-l-x1``, ``csnet-l-x2``, ...).

An *architecture* knows how to build a network from its config and how to read that
config from a dict; a *preset* is a named config of an architecture. Checkpoints store the
architecture name and the config, so a pruned net is rebuilt from its own config.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the registry itself runs without torch; the networks it builds need it
    from torch import nn


@dataclass(frozen=True)
class Architecture:
    """A network family that checkpoints can name.

    Attributes:
        name: Name stored in checkpoints (``"csnet"``, ``"csf-res2net50"``).
        build: Builds the network from a config object.
        config_from_dict: Reads that config object from checkpoint data.
    """

    name: str
    build: Callable[[Any], nn.Module]
    config_from_dict: Callable[[dict[str, Any]], Any]


@dataclass(frozen=True)
class Preset:
    """A named config of an architecture (what ``--model`` and ``model=`` take).

    Attributes:
        name: Preset name (``"csnet-l-x1"``, ...), matched case-insensitively.
        arch: Name of its architecture.
        make_config: Returns a fresh config of the preset.
        description: One line for ``sod100k info`` and listings.
    """

    name: str
    arch: str
    make_config: Callable[[], Any]
    description: str


_ARCHS: dict[str, Architecture] = {}
_PRESETS: dict[str, Preset] = {}


def register_architecture(arch: Architecture) -> None:
    """Make an architecture known to checkpoints and presets (replacing one of that name).

    Args:
        arch: The architecture.
    """
    _ARCHS[arch.name] = arch


def register_preset(preset: Preset) -> None:
    """Make a preset known to ``create_model``, ``load_model`` and the CLI.

    Args:
        preset: The preset; its architecture must be registered first.

    Raises:
        ValueError: The preset's architecture is unknown.
    """
    if preset.arch not in _ARCHS:
        raise ValueError(f"preset {preset.name}: unknown architecture {preset.arch}")
    _PRESETS[preset.name.lower()] = preset


def get_architecture(name: str) -> Architecture:
    """Look an architecture up by name.

    Args:
        name: As stored in checkpoints.

    Returns:
        The registered architecture.

    Raises:
        ValueError: Unknown name; the message lists the known ones.
    """
    try:
        return _ARCHS[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; known: {sorted(_ARCHS)}") from None


def get_preset(name: str) -> Preset:
    """Look a preset up by name (case-insensitive).

    Args:
        name: A preset name such as ``"csnet-l-x2"``.

    Returns:
        The registered preset.

    Raises:
        ValueError: Unknown name; the message lists the known ones.
    """
    try:
        return _PRESETS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(list_presets())}") from None


def list_presets() -> list[str]:
    """Names of every registered preset.

    Returns:
        Sorted lower-case names (``csf-res2net50``, ``csnet-l-x1``, ``csnet-l-x2``, ...).
    """
    return sorted(_PRESETS)


def create_model(name: str) -> nn.Module:
    """A randomly initialised network of a preset.

    Args:
        name: A preset name (see [`list_presets`][sod100k.models.registry.list_presets]).

    Returns:
        The network, in training mode; use ``load_model`` for trained weights.

    Raises:
        ValueError: Unknown preset name.
    """
    preset = get_preset(name)
    return get_architecture(preset.arch).build(preset.make_config())


def arch_of(model: nn.Module) -> str:
    """The architecture name of a sod100k network.

    Args:
        model: A network built by this package.

    Returns:
        Its ``arch`` attribute (``"csnet"``, ``"csf-res2net50"``).

    Raises:
        TypeError: ``model`` is not a sod100k network.
    """
    arch = getattr(model, "arch", None)
    if not isinstance(arch, str):
        raise TypeError(f"{type(model).__name__} is not a sod100k model (no 'arch')")
    return arch
