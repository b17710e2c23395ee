"""Model definitions, their configs and the registry of presets.

The networks are torch modules; they are imported when first built or named
(:mod:`sod100k.utils.lazy`), so that the registry, the presets and the configs can be
used without importing torch (a command that runs a cached ONNX graph never needs it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sod100k.models.config import ConfigError, HeadConfig, LayerConfig, UnitConfig, unpruned
from sod100k.models.registry import (
    Architecture,
    Preset,
    create_model,
    get_preset,
    list_presets,
    register_architecture,
    register_preset,
)
from sod100k.utils.lazy import lazy_attributes

if TYPE_CHECKING:
    from torch import nn

    from sod100k.models.csf_res2net import CSFRes2Net, CSFRes2NetConfig
    from sod100k.models.csnet import CSNet


def _build_csnet(config: LayerConfig) -> nn.Module:
    from sod100k.models.csnet import CSNet

    return CSNet(config)


def _build_csf(config: Any) -> nn.Module:
    from sod100k.models.csf_res2net import CSFRes2Net

    return CSFRes2Net(config)


def _csf_config(data: dict[str, Any] | None = None) -> Any:
    """A ``CSFRes2NetConfig``: the default one, or read from checkpoint ``data``."""
    from sod100k.models.csf_res2net import CSFRes2NetConfig

    return CSFRes2NetConfig() if data is None else CSFRes2NetConfig.from_dict(data)


register_architecture(Architecture("csnet", _build_csnet, LayerConfig.from_dict))
register_preset(
    Preset(
        "csnet-l-x1",
        "csnet",
        lambda: unpruned(20, name="csnet-l-x1"),
        "CSNet-L, base width 20, unpruned (released: 93,647 params after pruning)",
    )
)
register_preset(
    Preset(
        "csnet-l-x2",
        "csnet",
        lambda: unpruned(40, name="csnet-l-x2"),
        "CSNet-L, base width 40, unpruned (released: 140,894 params after pruning)",
    )
)
register_architecture(Architecture("csf-res2net50", _build_csf, _csf_config))
register_preset(
    Preset(
        "csf-res2net50",
        "csf-res2net50",
        _csf_config,
        "CSF head on Res2Net-50 v1b 26w4s (random-init backbone unless given ImageNet weights)",
    )
)

__all__ = [
    "CSFRes2Net",
    "CSFRes2NetConfig",
    "CSNet",
    "ConfigError",
    "HeadConfig",
    "LayerConfig",
    "UnitConfig",
    "create_model",
    "get_preset",
    "list_presets",
    "unpruned",
]

__getattr__ = lazy_attributes(
    __name__,
    {
        "CSNet": "sod100k.models.csnet",
        "CSFRes2Net": "sod100k.models.csf_res2net",
        "CSFRes2NetConfig": "sod100k.models.csf_res2net",
    },
)
