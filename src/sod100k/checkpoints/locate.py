"""Which checkpoint file(s) a weights argument names, and in which format, without torch.

Finding the files needs no tensors, so it lives apart from the loaders: a command that
finds the exported graph of these files in the graph cache (:mod:`sod100k.infer.graph_cache`)
never has to import torch.
"""

from __future__ import annotations

from pathlib import Path

from sod100k.checkpoints.errors import CHECKPOINT_FORMS, CheckpointError
from sod100k.utils.sniff import describe_folder

#: Files a training run folder holds, in order of preference.
RUN_CHECKPOINTS = ("best.pt", "last.pt")


def find_reference_files(folder: Path) -> tuple[Path, Path] | None:
    """Find a released checkpoint's two files in a folder.

    Args:
        folder: The folder to look in.

    Returns:
        The ``(.pth.tar, .bin)`` pair (same stem preferred), or ``None`` if the folder
        holds no such pair.
    """
    tars = sorted(folder.glob("*.pth.tar")) + sorted(folder.glob("*.pth"))
    bins = sorted(folder.glob("*.bin"))
    if not tars or not bins:
        return None
    for tar in tars:
        stem = tar.name.removesuffix(".tar").removesuffix(".pth")
        match = folder / f"{stem}.bin"
        if match.exists():
            return tar, match
    return tars[0], bins[0]


def resolve_weights(weights: str | Path) -> tuple[str, Path, Path | None]:
    """Find the checkpoint file(s) that ``weights`` names and say which format they are.

    Args:
        weights: A released checkpoint folder (``.pth.tar`` + ``.bin``), a ``.pth.tar``
            file with its ``.bin`` beside it, one of our checkpoint files, or a training
            run folder (``best.pt``, else ``last.pt``).

    Returns:
        ``("native", file, None)`` or ``("reference", pth, bin)``.

    Raises:
        CheckpointError: Nothing usable is there; the message names the path.
    """
    path = Path(weights).expanduser()
    if path.is_dir():
        pair = find_reference_files(path)
        if pair is not None:
            return "reference", pair[0], pair[1]
        for name in RUN_CHECKPOINTS:
            if (path / name).is_file():
                return "native", path / name, None
        raise CheckpointError(
            f"{path}: a folder without NAME.pth.tar + NAME.bin, best.pt or last.pt "
            f"({describe_folder(path)}); {CHECKPOINT_FORMS}"
        )
    if not path.exists():
        raise CheckpointError(f"{path}: no such file or folder; {CHECKPOINT_FORMS}")
    if path.name.endswith((".pth.tar", ".pth")):
        bins = sorted(path.parent.glob("*.bin"))
        stem = path.name.removesuffix(".tar").removesuffix(".pth")
        bin_path = path.parent / f"{stem}.bin"
        if bin_path.exists() or bins:
            return "reference", path, bin_path if bin_path.exists() else bins[0]
    return "native", path, None
