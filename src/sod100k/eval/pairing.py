"""Match prediction files to ground-truth masks by file stem."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sod100k.data.images import list_images

#: How many names an error message lists before it says "and N more".
SHOWN_NAMES = 5


class PairingError(ValueError):
    """Predictions and masks do not match; the message says which files."""


@dataclass(frozen=True)
class Pairing:
    """Matched ``(prediction, mask)`` paths, sorted by stem, and what did not match."""

    pairs: list[tuple[Path, Path]]
    missing: list[str]
    extra: list[str]


def _names(stems: list[str]) -> str:
    shown = ", ".join(stems[:SHOWN_NAMES])
    more = len(stems) - SHOWN_NAMES
    return shown + (f" and {more} more" if more > 0 else "")


def _by_stem(folder: Path, role: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise PairingError(f"{folder}: {role} folder does not exist")
    files = list_images(folder, recursive=False)
    if not files:
        raise PairingError(f"{folder}: no {role} images found")
    found: dict[str, Path] = {}
    for path in files:
        if path.stem in found:
            raise PairingError(
                f"{folder}: two {role} files share the stem {path.stem!r} "
                f"({found[path.stem].name}, {path.name})"
            )
        found[path.stem] = path
    return found


def pair_by_stem(pred_dir: str | Path, gt_dir: str | Path, allow_missing: bool = False) -> Pairing:
    """Pair ``pred_dir/STEM.*`` with ``gt_dir/STEM.*``.

    Ground-truth masks without a prediction are *missing*, predictions without a mask
    are *extra*. Either is an error unless ``allow_missing``, which scores the
    intersection instead.
    """
    preds = _by_stem(Path(pred_dir), "prediction")
    masks = _by_stem(Path(gt_dir), "ground-truth")
    missing = sorted(set(masks) - set(preds))
    extra = sorted(set(preds) - set(masks))
    common = sorted(set(preds) & set(masks))
    if (missing or extra) and not allow_missing:
        problems = []
        if missing:
            problems.append(f"{len(missing)} mask(s) without a prediction: {_names(missing)}")
        if extra:
            problems.append(f"{len(extra)} prediction(s) without a mask: {_names(extra)}")
        raise PairingError(
            f"{pred_dir} vs {gt_dir}: {'; '.join(problems)} "
            "(use --allow-missing to score the common files)"
        )
    if not common:
        raise PairingError(f"{pred_dir} vs {gt_dir}: no file stem in common")
    return Pairing([(preds[s], masks[s]) for s in common], missing, extra)
