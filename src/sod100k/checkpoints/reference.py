"""Import of the released SOD100K reference checkpoints (``NAME.pth.tar`` + ``NAME.bin``).

Both files are pickles from the net. The ``.pth.tar`` is read with
``torch.load(weights_only=True)``; the ``.bin`` layer config with a restricted unpickler
that admits only numpy arrays, lists and numbers. Parameter names are mapped onto ours
in `convert_state_dict`, the one place that knows the reference layout.
"""

from __future__ import annotations

import io
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sod100k.checkpoints.errors import CheckpointError
from sod100k.models.config import ConfigError, HeadConfig, LayerConfig, UnitConfig
from sod100k.utils.sniff import UnreadableTorchFile, load_plain

#: The only globals a reference ``.bin`` layer config may name.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        if module.startswith("numpy.core"):
            module = module.replace("numpy.core", "numpy._core", 1)
        return super().find_class(module, name)


def read_reference_bin(path: str | Path) -> list[Any]:
    """Read a reference ``.bin`` layer-config pickle safely.

    The unpickler admits only numpy arrays, lists and numbers; any other global is
    refused before it can run.

    Args:
        path: The ``.bin`` file.

    Returns:
        The raw list of per-unit width arrays.

    Raises:
        CheckpointError: Unreadable, refused or not a list.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read layer config: {e}") from e
    try:
        obj = _NumpyOnlyUnpickler(io.BytesIO(data)).load()
    except Exception as e:  # any unpickling failure means: not a layer config we accept
        raise CheckpointError(f"{path}: not a reference layer config: {e}") from e
    if not isinstance(obj, list):
        raise CheckpointError(f"{path}: expected a list, got {type(obj).__name__}")
    return obj


def _ints(v: Any) -> tuple[int, ...]:
    arr = np.atleast_1d(np.asarray(v, dtype=np.float64))
    if arr.ndim != 1 or not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
        raise ConfigError(f"expected integral channel counts, got {v!r}")
    return tuple(int(x) for x in arr)


def layer_config_from_reference(raw: list[Any], name: str = "") -> LayerConfig:
    """Turn the reference list-of-arrays layer config into a ``LayerConfig``.

    Args:
        raw: What [`read_reference_bin`][sod100k.checkpoints.reference.read_reference_bin]
            returned.
        name: Label of the config (the checkpoint's name).

    Returns:
        The validated layer config.

    Raises:
        CheckpointError: The list does not have the reference layout.
        sod100k.models.config.ConfigError: The widths do not describe a working CSNet.
    """
    try:
        depths = _ints(raw[-1])
        n_units = 1 + sum(depths)
        if len(raw) != n_units + 4:
            raise ConfigError(f"expected {n_units + 4} entries, got {len(raw)}")
        units = tuple(UnitConfig(_ints(e[0]), _ints(e[1])) for e in raw[:n_units])
        h0, h1, h2 = raw[n_units : n_units + 3]
        dils = tuple(_ints(row) for row in np.asarray(h1[2]))
        head = HeadConfig(
            in_channels=_ints(h0[0]),
            fuse_channels=_ints(h0[1]),
            dilation_channels=dils,
            out_channels=sum(_ints(h2[1])),
        )
        if _ints(h1[0]) != head.fuse_channels:
            raise ConfigError("head: multiscale inputs differ from fuse outputs")
        if _ints(h1[1]) != head.multiscale_channels or _ints(h2[0]) != _ints(h1[1]):
            raise ConfigError("head: multiscale widths differ from their dilation widths")
        return LayerConfig(units, head, depths, name)
    except (IndexError, TypeError, ValueError) as e:
        raise CheckpointError(f"malformed reference layer config: {e}") from e


_RENAMES = [
    (r"^stage(\d)\.(\d+)\.conv1x1\.", r"stages.\1.\2.expand."),
    (r"^stage(\d)\.(\d+)\.conv3x3_1\.", r"stages.\1.\2.dw1."),
    (r"^stage(\d)\.(\d+)\.conv3x3_2\.", r"stages.\1.\2.dw2."),
    (r"^oct_fuse\.fuse\.", "head.fuse."),
    (r"^oct_fuse\.fuse1x1\.", "head.merge."),
    (r"^oct_fuse\.ms\.convs\.(\d+)\.msconv\.", r"head.multiscale.\1.convs."),
    (r"^oct_fuse\.ms\.convs\.(\d+)\.bn\.", r"head.multiscale.\1.norm."),
    (r"^oct_fuse\.ms\.convs\.(\d+)\.prelu\.", r"head.multiscale.\1.act."),
    (r"^cls_layer\.", "classifier."),
    (r"\.bns\.(\d+)\.", r".norms.\1."),
    (r"\.prelus\.(\d+)\.", r".acts.\1."),
]


def convert_key(key: str) -> str:
    """Map one reference parameter name to ours.

    Args:
        key: A key of a reference state dict (a ``module.`` prefix is dropped).

    Returns:
        The key in our names (for example ``cls_layer.weight`` -> ``classifier.weight``,
        ``stage2.0.conv1x1.bns.0.weight`` -> ``stages.2.0.expand.norms.0.weight``).
    """
    key = key.removeprefix("module.")
    for pattern, repl in _RENAMES:
        key = re.sub(pattern, repl, key)
    return key


def convert_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename every key of a reference state dict to ours.

    Args:
        state: The reference state dict.

    Returns:
        The same tensors under our names.
    """
    return {convert_key(k): v for k, v in state.items()}


def load_reference(pth: str | Path, bin_path: str | Path) -> tuple[LayerConfig, dict, dict]:
    """Load a released reference checkpoint.

    Args:
        pth: The ``.pth.tar`` weights (read with ``torch.load(weights_only=True)``).
        bin_path: The ``.bin`` layer config.

    Returns:
        ``(layer config, state dict in our names, metadata)``.

    Raises:
        CheckpointError: Either file is unreadable or malformed; the message names it.
    """
    pth, bin_path = Path(pth), Path(bin_path)
    try:
        name = pth.name.removesuffix(".tar").removesuffix(".pth")
        raw = layer_config_from_reference(read_reference_bin(bin_path), name=name)
    except ConfigError as e:
        raise CheckpointError(f"{bin_path}: {e}") from e
    try:
        ckpt = load_plain(pth)
    except UnreadableTorchFile as e:
        raise CheckpointError(f"{pth}: not a loadable torch checkpoint but {e}") from e
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"{pth}: no 'state_dict' in the checkpoint")
    meta = {
        "source": "sod100k-reference",
        "source_file": pth.name,
        "epoch": int(ckpt.get("epoch", -1)),
        "arch": str(ckpt.get("arch", "")),
    }
    return raw, convert_state_dict(ckpt["state_dict"]), meta
