"""Beyond one machine: batch prediction on Ray Data and serving on Ray Serve.

Everything here needs the ``ray`` extra (``pip install "sod100k[ray]"``); nothing imports
Ray until it is used, so the rest of the package (and ``sod100k predict`` without
``--ray``) works without it.

* :class:`~sod100k.distributed.predictor.SaliencyPredictor`: a callable class for
  ``Dataset.map_batches`` that adds a saliency-map column (and a cut-out column).
* :class:`~sod100k.distributed.model.ModelSpec`: the model an actor builds, prepared once
  on the driver so that the workers need no weights of their own.
* :func:`~sod100k.distributed.batch.predict_files`: what ``sod100k predict --ray`` runs.
* :mod:`sod100k.distributed.serve`: what ``sod100k serve --ray`` deploys.
"""

from __future__ import annotations

from types import ModuleType

#: The one-line hint given when Ray is missing.
INSTALL_HINT = 'Ray is not installed: pip install "sod100k[ray]" (or scripts/install.sh --dev)'


class RayMissingError(ImportError):
    """The ``ray`` extra is not installed; the message says how to install it."""


def require_ray() -> ModuleType:
    """Import Ray (with Ray Data), or raise :class:`RayMissingError` with the install hint."""
    try:
        import ray
        import ray.data  # the extra brings both; a bare `ray` lacks pyarrow
    except ImportError as e:
        raise RayMissingError(INSTALL_HINT) from e
    return ray


# The public entry points; none of them imports Ray until it runs.
from sod100k.distributed.cluster import pool_size  # noqa: E402
from sod100k.distributed.model import ModelSpec  # noqa: E402
from sod100k.distributed.predictor import SaliencyPredictor  # noqa: E402

__all__ = [
    "INSTALL_HINT",
    "ModelSpec",
    "RayMissingError",
    "SaliencyPredictor",
    "pool_size",
    "require_ray",
]
