"""Attributes of a package that are imported on first use (PEP 562 ``__getattr__``).

``import torch`` is most of the start-up time of a command that runs a cached graph with
OpenVINO or ONNX Runtime (about a CPU-second of two). Packages whose public names include
torch code (``load_model``, ``CSNet``, ...) list those names here instead of importing
them, so ``import sod100k`` and ``from sod100k.models.config import ...`` stay torch-free,
while ``sod100k.load_model`` still works as an attribute and in ``from ... import``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_attributes(package: str, homes: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports ``name`` from ``homes[name]``.

    Args:
        package: The module's ``__name__``.
        homes: Attribute name -> the module that defines it.

    Returns:
        The function to assign to the module's ``__getattr__``; it caches what it imports
        in the module, so each name is looked up once.
    """

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
