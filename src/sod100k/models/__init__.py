"""Model definitions, their configs and the registry of presets."""

from sod100k.models.config import ConfigError, HeadConfig, LayerConfig, UnitConfig, unpruned
from sod100k.models.csf_res2net import CSFRes2Net, CSFRes2NetConfig
from sod100k.models.csnet import CSNet
from sod100k.models.registry import (
    Architecture,
    Preset,
    create_model,
    get_preset,
    list_presets,
    register_architecture,
    register_preset,
)

register_architecture(Architecture("csnet", CSNet, LayerConfig.from_dict))
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
register_architecture(Architecture("csf-res2net50", CSFRes2Net, CSFRes2NetConfig.from_dict))
register_preset(
    Preset(
        "csf-res2net50",
        "csf-res2net50",
        CSFRes2NetConfig,
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
