"""Run the SOD100K reference code (``CSNet_training/``) on CPU with current PyTorch.

The reference targets PyTorch 1.x on CUDA. Nothing in its folder is edited; these shims
patch the running interpreter from outside before its modules are imported:

* ``collections.Iterable`` (removed in Python 3.10), used by ``model/conv2d.py``;
* ``.cuda()`` on tensors and modules becomes a no-op;
* ``torch.load`` defaults to ``weights_only=False`` (the reference pickles numpy configs);
* a stub ``torchvision`` (``utils/prepare_data.py`` imports ``transforms`` but never uses it);
* ``np.array`` of ragged nested lists becomes an object array inside ``model/csnet.py``
  (NumPy >= 1.24 raises where NumPy 1.x built one silently).

Used by ``train_speed.py --reference`` and usable by any benchmark that drives the reference.
"""

from __future__ import annotations

import collections
import collections.abc
import functools
import importlib
import sys
import types
from pathlib import Path

import numpy as np
import torch
from torch import nn


def training_dir(path: str | Path) -> Path:
    """The ``CSNet_training`` folder given a SOD100K checkout or that folder itself.

    Raises:
        FileNotFoundError: when neither ``path`` nor ``path/CSNet_training`` holds
            ``model/csnet.py``.
    """
    path = Path(path)
    for candidate in (path, path / "CSNet_training"):
        if (candidate / "model" / "csnet.py").is_file():
            return candidate
    raise FileNotFoundError(f"{path}: no CSNet_training/model/csnet.py (a SOD100K checkout?)")


def _ragged_array(original):
    @functools.wraps(original)
    def array(obj, *args, **kwargs):
        try:
            return original(obj, *args, **kwargs)
        except ValueError:
            if args or kwargs:
                raise
            return original(obj, dtype=object)

    return array


def install(path: str | Path) -> types.ModuleType:
    """Apply the shims, put the reference folder on ``sys.path``, return ``model.csnet``."""
    root = training_dir(path)
    collections.Iterable = collections.abc.Iterable  # type: ignore[attr-defined]
    torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    nn.Module.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    torch.load = functools.partial(torch.load, weights_only=False)
    if "torchvision" not in sys.modules:
        tv = types.ModuleType("torchvision")
        tv.transforms = types.ModuleType("torchvision.transforms")  # type: ignore[attr-defined]
        sys.modules["torchvision"] = tv
        sys.modules["torchvision.transforms"] = tv.transforms  # type: ignore[attr-defined]
    sys.path.insert(0, str(root))
    csnet = importlib.import_module("model.csnet")
    public = {k: getattr(np, k) for k in dir(np) if not k.startswith("__")}
    csnet.np = types.SimpleNamespace(**(public | {"array": _ragged_array(np.array)}))
    return csnet
