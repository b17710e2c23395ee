"""Saliency datasets: image/mask pairs from a folder, with the reference augmentation."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from sod100k.data.images import ImageError, list_images, load_gray, load_rgb
from sod100k.infer.preprocess import MEAN, STD
from sod100k.utils.sniff import describe_folder

log = logging.getLogger(__name__)

#: Random crop of the CSNet recipe (reference CSNet_training/utils/prepare_data.py
#: ``Augment(size_h=15, size_w=15)``): 0..14 px off the top and left, 1..15 px off the
#: bottom and right.
CROP_SPAN = 15

#: Training augmentations: the CSNet recipe (crop 0..14 px per side, flip left-right or
#: up-down with p = 0.5), the CSF/PoolNet recipe (left-right flip with p = 0.5), none.
AUGMENTATIONS = ("csnet", "flip", "none")


class DatasetError(ValueError):
    """A dataset folder that cannot be used (missing folders, no pairs)."""


#: What a dataset folder looks like, for error messages.
LAYOUT = (
    "a dataset folder holds images/ and masks/ (or DUTS-style *-Image/ and *-Mask/), "
    "each mask named as its image (images/a.jpg, masks/a.png)"
)


def find_pair_folders(root: str | Path) -> tuple[Path, Path]:
    """The image and mask folders of a dataset.

    Args:
        root: A dataset folder holding ``images/`` + ``masks/``, or DUTS-style
            ``*-Image/`` + ``*-Mask/``.

    Returns:
        ``(images folder, masks folder)``.

    Raises:
        DatasetError: ``root`` is missing or has neither layout; the message names the
            folder, says what it holds and what is expected.
    """
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"{root}: no such folder; {LAYOUT}")
    if not root.is_dir():
        raise DatasetError(f"{root}: is a file, not a folder; {LAYOUT}")
    if (root / "images").is_dir() and (root / "masks").is_dir():
        return root / "images", root / "masks"
    images = sorted(root.glob("*-Image"))
    masks = sorted(root.glob("*-Mask"))
    if len(images) == 1 and len(masks) == 1:
        return images[0], masks[0]
    raise DatasetError(f"{root}: not a dataset folder ({describe_folder(root)}); {LAYOUT}")


def pair_by_stem(root: str | Path) -> list[tuple[Path, Path]]:
    """Image/mask pairs of a dataset, matched by file stem.

    Images without a mask are skipped with one warning that counts them.

    Args:
        root: A dataset folder (see
            [`find_pair_folders`][sod100k.data.dataset.find_pair_folders]).

    Returns:
        ``(image, mask)`` paths, sorted by image path.

    Raises:
        DatasetError: The folders are missing, hold no images, or no image has a mask.
    """
    image_dir, mask_dir = find_pair_folders(root)
    images = list_images(image_dir)
    if not images:
        raise DatasetError(f"{root}: no image files in {image_dir.name}/; {LAYOUT}")
    masks = {p.stem: p for p in list_images(mask_dir)}
    pairs, unpaired = [], 0
    for image in images:
        if image.stem in masks:
            pairs.append((image, masks[image.stem]))
        else:
            unpaired += 1
    if unpaired and pairs:
        log.warning("%s: %d image(s) without a mask are skipped", root, unpaired)
    if not pairs:
        raise DatasetError(
            f"{root}: none of the {len(images)} image(s) in {image_dir.name}/ has a mask of "
            f"the same name in {mask_dir.name}/ ({len(masks)} mask file(s)); {LAYOUT}"
        )
    return pairs


def _normalise(rgb: np.ndarray) -> torch.Tensor:
    x = (rgb - MEAN) / STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


class SaliencyDataset(Dataset):
    """Pairs of normalised ``3 x H x W`` images and soft ``1 x H x W`` masks in [0, 1].

    As the reference training code: the mask is the stored gray value / 255 (not
    binarised), image and mask are scaled to [0, 1] floats first and then resized
    bilinearly. ``augment`` is one of `AUGMENTATIONS` (``"csnet"``: a random 0..14 px off
    the top and left and 1..15 px off the bottom and right, then a flip with p = 0.5,
    left-right or up-down, equally likely; ``"flip"``: left-right flip with p = 0.5). The
    pair is then resized to ``size`` x ``size``; ``size = 0`` keeps the image's own size.
    Unreadable pairs (and mismatched image/mask sizes) raise `ImageError` naming the
    file, or with ``skip_bad`` are logged as a warning and returned as ``None``, which
    [`collate_skipping_bad`][sod100k.data.dataset.collate_skipping_bad] drops from the
    batch.

    Args:
        root: A dataset folder (``images/`` + ``masks/`` or DUTS layout).
        size: Side of the square output; 0 keeps each image's own size (batch 1).
        augment: ``"csnet"``, ``"flip"`` or ``"none"``.
        skip_bad: Return ``None`` for unreadable pairs instead of raising.

    Raises:
        ValueError: Unknown ``augment``.
        DatasetError: The folders are missing or hold no pairs.
    """

    def __init__(
        self, root: str | Path, size: int = 224, augment: str = "none", skip_bad: bool = False
    ) -> None:
        if augment not in AUGMENTATIONS:
            raise ValueError(f"augment must be one of {AUGMENTATIONS}, got {augment!r}")
        self.pairs = pair_by_stem(root)
        self.size = size
        self.augment = augment
        self.skip_bad = skip_bad

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Read one pair without augmenting or resizing it.

        Args:
            index: Pair index.

        Returns:
            ``(H x W x 3 float32 image, H x W float32 soft mask)``, both in [0, 1].

        Raises:
            ImageError: A file cannot be decoded, or the mask's size differs from the
                image's.
        """
        image_path, mask_path = self.pairs[index]
        rgb, mask = load_rgb(image_path), load_gray(mask_path)
        if rgb.shape[:2] != mask.shape:
            raise ImageError(
                f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]}, image is "
                f"{rgb.shape[1]}x{rgb.shape[0]}"
            )
        return rgb.astype(np.float32) / 255.0, mask.astype(np.float32) / 255.0

    def _augment(self, rgb: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.augment == "flip":
            if np.random.rand() < 0.5:
                rgb, mask = rgb[:, ::-1], mask[:, ::-1]
            return rgb, mask
        h, w = mask.shape
        top, bottom, left, right = np.random.randint(0, CROP_SPAN, size=4) + np.array([0, 1, 0, 1])
        if h - top - bottom >= 2 and w - left - right >= 2:
            rgb = rgb[top : h - bottom, left : w - right]
            mask = mask[top : h - bottom, left : w - right]
        if np.random.rand() < 0.5:
            axis = 1 if np.random.rand() < 0.5 else 0
            rgb, mask = np.flip(rgb, axis), np.flip(mask, axis)
        return rgb, mask

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        try:
            rgb, mask = self.load(index)
        except ImageError as e:
            if not self.skip_bad:
                raise
            log.warning("skipping a bad training pair: %s", e)
            return None
        if self.augment != "none":
            rgb, mask = self._augment(rgb, mask)
        rgb, mask = np.ascontiguousarray(rgb), np.ascontiguousarray(mask)
        if self.size:
            size = (self.size, self.size)
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR)
            mask = cv2.resize(mask, size, interpolation=cv2.INTER_LINEAR)
        return _normalise(rgb), torch.from_numpy(mask)[None]


def collate_skipping_bad(
    samples: list[tuple[torch.Tensor, torch.Tensor] | None],
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Collate a batch, dropping the samples that could not be read.

    Args:
        samples: Dataset items, ``None`` for skipped pairs.

    Returns:
        ``(images, masks)`` stacked from the good samples, or ``None`` when none of them
        could be read (the training loop then skips the batch).
    """
    good = [s for s in samples if s is not None]
    return default_collate(good) if good else None
