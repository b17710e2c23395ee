"""Match prediction files to ground-truth masks: by path below each folder, then by name.

Both folders are searched recursively, as ``sod100k predict`` writes them: a map
``maps/sub/a.png`` is the prediction for the mask ``masks/sub/a.png`` (any image
suffix). Files left over on both sides are then matched by file stem where the stem is
unique on each side, so that maps in sub-folders still meet masks kept in one flat folder
(and the other way round). Files that are not images by their suffix are listed as
skipped; hidden files and folders are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sod100k.data.images import list_images
from sod100k.utils.sniff import name_list


class PairingError(ValueError):
    """Predictions and masks do not match; the message says which files."""


@dataclass(frozen=True)
class Pairing:
    """Matched ``(prediction, mask)`` paths and what did not match.

    Attributes:
        pairs: Sorted by the mask's path below its folder.
        missing: Masks (path below the mask folder, without suffix) with no prediction.
        extra: Predictions (likewise) with no mask.
        by_name: How many pairs were matched by file name across different sub-folders.
        skipped: Files in either folder that are not images by their suffix.
    """

    pairs: list[tuple[Path, Path]]
    missing: list[str]
    extra: list[str]
    by_name: int = 0
    skipped: list[Path] = field(default_factory=list)


def _key(path: Path, folder: Path) -> str:
    """``sub/a`` for ``folder/sub/a.png``."""
    return path.relative_to(folder).with_suffix("").as_posix()


def _by_key(folder: Path, role: str) -> tuple[dict[str, Path], list[Path]]:
    """Image files below ``folder`` by key, and the other (non-hidden) files there."""
    if not folder.is_dir():
        raise PairingError(f"{folder}: {role} folder does not exist")
    files = list_images(folder)
    if not files:
        raise PairingError(f"{folder}: no {role} images found (sub-folders included)")
    found: dict[str, Path] = {}
    for path in files:
        key = _key(path, folder)
        if key in found:
            raise PairingError(
                f"{folder}: two {role} files share the stem {key!r} "
                f"({found[key].name}, {path.name})"
            )
        found[key] = path
    images = set(files)
    others = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p not in images
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    return found, others


def _unique_stems(keys: set[str]) -> dict[str, str]:
    """File stem -> key, for the stems that occur once among ``keys``."""
    stems: dict[str, list[str]] = {}
    for key in keys:
        stems.setdefault(key.rsplit("/", 1)[-1], []).append(key)
    return {stem: found[0] for stem, found in stems.items() if len(found) == 1}


def pair_by_stem(pred_dir: str | Path, gt_dir: str | Path, allow_missing: bool = False) -> Pairing:
    """Pair the maps below ``pred_dir`` with the masks below ``gt_dir``.

    First by path below each folder without the suffix (``sub/a.png`` with
    ``sub/a.bmp``), then the rest by file stem where it is unique on both sides. Masks
    without a prediction are *missing*, predictions without a mask *extra*; either is an
    error unless ``allow_missing``, which scores the pairs found instead.

    Raises:
        PairingError: a folder is missing or holds no image, two files of a folder have
            the same path but for the suffix, files do not match (without
            ``allow_missing``), or nothing matches.
    """
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    preds, pred_others = _by_key(pred_dir, "prediction")
    masks, mask_others = _by_key(gt_dir, "ground-truth")
    matched = {key: key for key in set(preds) & set(masks)}  # mask key -> prediction key
    pred_left = set(preds) - set(matched)
    mask_left = set(masks) - set(matched)
    pred_stems, mask_stems = _unique_stems(pred_left), _unique_stems(mask_left)
    by_name = 0
    for stem in set(pred_stems) & set(mask_stems):
        matched[mask_stems[stem]] = pred_stems[stem]
        pred_left.discard(pred_stems[stem])
        mask_left.discard(mask_stems[stem])
        by_name += 1
    missing, extra = sorted(mask_left), sorted(pred_left)
    if (missing or extra) and not allow_missing:
        problems = []
        if missing:
            problems.append(f"{len(missing)} mask(s) without a prediction: {name_list(missing)}")
        if extra:
            problems.append(f"{len(extra)} prediction(s) without a mask: {name_list(extra)}")
        raise PairingError(
            f"{pred_dir} vs {gt_dir}: {'; '.join(problems)} "
            "(use --allow-missing to score the common files)"
        )
    if not matched:
        raise PairingError(f"{pred_dir} vs {gt_dir}: no file stem in common")
    pairs = [(preds[matched[key]], masks[key]) for key in sorted(matched)]
    return Pairing(pairs, missing, extra, by_name, pred_others + mask_others)
