"""sod100k: tiny, fast salient object detection (CSNet, gOctConv, SOD100K)."""

from sod100k.api import overlay, predict, remove_background, saliency
from sod100k.checkpoints.loading import load_model, save_model
from sod100k.models import LayerConfig, create_model, list_presets

__version__ = "0.1.0"

__all__ = [
    "LayerConfig",
    "__version__",
    "create_model",
    "list_presets",
    "load_model",
    "overlay",
    "predict",
    "remove_background",
    "saliency",
    "save_model",
]
