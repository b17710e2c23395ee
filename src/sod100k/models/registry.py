"""Registry of model architectures and named presets (``csnet-l-x1``, ``csnet-l-x2``, ...).

An *architecture* knows how to build a network from its config and how to read that
config from a dict; a *preset* is a named config of an architecture. Checkpoints store the
architecture name and the config, so a pruned net is rebuilt from its own config.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn


@dataclass(frozen=True)
class Architecture:
    name: str
    build: Callable[[Any], nn.Module]
    config_from_dict: Callable[[dict[str, Any]], Any]


@dataclass(frozen=True)
class Preset:
    name: str
    arch: str
    make_config: Callable[[], Any]
    description: str


_ARCHS: dict[str, Architecture] = {}
_PRESETS: dict[str, Preset] = {}


def register_architecture(arch: Architecture) -> None:
    _ARCHS[arch.name] = arch


def register_preset(preset: Preset) -> None:
    if preset.arch not in _ARCHS:
        raise ValueError(f"preset {preset.name}: unknown architecture {preset.arch}")
    _PRESETS[preset.name.lower()] = preset


def get_architecture(name: str) -> Architecture:
    try:
        return _ARCHS[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; known: {sorted(_ARCHS)}") from None


def get_preset(name: str) -> Preset:
    try:
        return _PRESETS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(list_presets())}") from None


def list_presets() -> list[str]:
    return sorted(_PRESETS)


def create_model(name: str) -> nn.Module:
    """A randomly initialised network of the preset ``name``."""
    preset = get_preset(name)
    return get_architecture(preset.arch).build(preset.make_config())


def arch_of(model: nn.Module) -> str:
    arch = getattr(model, "arch", None)
    if not isinstance(arch, str):
        raise TypeError(f"{type(model).__name__} is not a sod100k model (no 'arch')")
    return arch
