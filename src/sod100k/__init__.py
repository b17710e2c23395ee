"""sod100k: tiny, fast salient object detection (CSNet, gOctConv, SOD100K).

The top level holds what most programs need:

* [`saliency`][sod100k.api.saliency] (alias ``predict``),
  [`remove_background`][sod100k.api.remove_background] and
  [`overlay`][sod100k.api.overlay]: one call from an image to a map, a cut-out or a
  preview;
* [`load_model`][sod100k.checkpoints.loading.load_model] /
  [`save_model`][sod100k.checkpoints.loading.save_model]: the network as a
  ``torch.nn.Module``, from released weights, our checkpoints or a training run;
* [`create_model`][sod100k.models.registry.create_model],
  [`list_presets`][sod100k.models.registry.list_presets] and
  [`LayerConfig`][sod100k.models.config.LayerConfig]: build networks by preset name or
  from explicit widths;
* [`set_max_megapixels`][sod100k.data.images.set_max_megapixels]: decode images larger
  than 100 MP.

``import sod100k`` does not import torch: ``load_model`` and ``save_model`` (and the
networks) import it on first use, so a program that runs a cached graph with OpenVINO
or ONNX Runtime starts without it (:mod:`sod100k.utils.lazy`).
"""

from typing import TYPE_CHECKING

from sod100k.api import overlay, predict, remove_background, saliency
from sod100k.data.images import set_max_megapixels
from sod100k.models import LayerConfig, create_model, list_presets
from sod100k.utils.lazy import lazy_attributes

if TYPE_CHECKING:
    from sod100k.checkpoints.loading import load_model, save_model

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
    "set_max_megapixels",
]

__getattr__ = lazy_attributes(
    __name__,
    {"load_model": "sod100k.checkpoints.loading", "save_model": "sod100k.checkpoints.loading"},
)
