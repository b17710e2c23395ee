"""Reading images and masks robustly, with one-line errors that name the file.

Every loader in the project (predict, evaluate, training data, the server) goes through
these functions, so that all of them accept the same inputs (grayscale, RGBA, palette,
16-bit, CMYK, EXIF-rotated) and refuse the same bad ones (corrupt, truncated, not an
image, decompression bombs) in the same words.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError, features

#: Images larger than this many megapixels are refused unless the limit is raised (with
#: :func:`set_max_megapixels`, ``$SOD100K_MAX_MEGAPIXELS`` or ``--max-megapixels``).
DEFAULT_MAX_MEGAPIXELS = 100.0
#: Environment variable that sets the limit, in megapixels.
MAX_MEGAPIXELS_ENV = "SOD100K_MAX_MEGAPIXELS"
#: How an "image too large" message says to raise the limit. The Python wording; the
#: command line names its option instead while it runs (see ``sod100k.cli.main``).
RAISE_LIMIT_ADVICE = f"raise it with sod100k.set_max_megapixels(MP) or {MAX_MEGAPIXELS_ENV}=MP"

_max_pixels: int | None = None  # set_max_megapixels(); None: the environment or default
#: Smallest side accepted; the networks need at least 16 px after resizing anyway.
MIN_SIDE = 1

#: Suffixes of the image files taken from folders (``sod100k predict``, evaluation and
#: training data): the raster formats the server accepts, all decoded by Pillow's wheels
#: without extra tools (AVIF where this Pillow was built with it). Multi-frame files
#: (GIF, APNG, animated WebP) give their first frame.
IMAGE_SUFFIXES = (
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".gif", ".bmp", ".dib", ".tif", ".tiff",
    ".webp", ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".jp2", ".j2k", ".qoi",
) + ((".avif",) if features.check_module("avif") else ())  # fmt: skip


class ImageError(ValueError):
    """An input that cannot be used as an image; the message names the file."""


def _megapixels(value: float, source: str) -> int:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ValueError(f"{source}: the image limit must be a positive number of megapixels")
    return int(value * 1e6)


def set_max_megapixels(megapixels: float | None) -> None:
    """Set the largest image that is decoded, for this process.

    Larger images are refused with an [`ImageError`][sod100k.data.images.ImageError]
    naming the file and its size. Pillow's decompression-bomb guard is raised to the
    same limit (it is never lower than ours).

    Args:
        megapixels: The limit in millions of pixels; ``None`` goes back to
            ``$SOD100K_MAX_MEGAPIXELS``, else 100.

    Raises:
        ValueError: ``megapixels`` is not a positive number.
    """
    global _max_pixels
    _max_pixels = None if megapixels is None else _megapixels(megapixels, "max_megapixels")


@contextlib.contextmanager
def decode_limit(megapixels: float | None, advice: str | None = None) -> Iterator[None]:
    """Within the block: the image limit is ``megapixels`` (``None``: unchanged; child
    processes inherit it through ``$SOD100K_MAX_MEGAPIXELS``) and too-large messages
    advise ``advice`` (``None``: unchanged). Both are restored afterwards.

    Raises:
        ValueError: ``megapixels`` is not a positive number.
    """
    global RAISE_LIMIT_ADVICE, _max_pixels
    saved = (_max_pixels, RAISE_LIMIT_ADVICE, os.environ.get(MAX_MEGAPIXELS_ENV))
    try:
        if megapixels is not None:
            set_max_megapixels(megapixels)
            os.environ[MAX_MEGAPIXELS_ENV] = f"{megapixels:g}"
        if advice is not None:
            RAISE_LIMIT_ADVICE = advice
        yield
    finally:
        _max_pixels, RAISE_LIMIT_ADVICE, env = saved
        if env is None:
            os.environ.pop(MAX_MEGAPIXELS_ENV, None)
        else:
            os.environ[MAX_MEGAPIXELS_ENV] = env


def max_pixels() -> int:
    """The largest image decoded, in pixels: :func:`set_max_megapixels`, else
    ``$SOD100K_MAX_MEGAPIXELS``, else 100 MP.

    Raises:
        ValueError: ``$SOD100K_MAX_MEGAPIXELS`` is set to something else than a positive
            number.
    """
    if _max_pixels is not None:
        return _max_pixels
    value = os.environ.get(MAX_MEGAPIXELS_ENV, "").strip()
    if not value:
        return int(DEFAULT_MAX_MEGAPIXELS * 1e6)
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    return _megapixels(number, f"{MAX_MEGAPIXELS_ENV}={value!r}")


def pillow_guard_at_limit() -> int:
    """Raise Pillow's decompression-bomb guard (``PIL.Image.MAX_IMAGE_PIXELS``, 89.5 MP by
    default) to :func:`max_pixels` when it is lower, so that it never refuses an image
    our limit accepts; returns the limit. A lower limit of ours is checked by us."""
    limit = max_pixels()
    if Image.MAX_IMAGE_PIXELS is not None and limit > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = limit
    return limit


def too_large(name: str, pixels: int, size: tuple[int, int] | None = None) -> ImageError:
    """The error for an image over :func:`max_pixels`: the file, its megapixels, the
    limit and how to raise it (:data:`RAISE_LIMIT_ADVICE`)."""
    dims = f"{size[0]}x{size[1]} = " if size else ""
    return ImageError(
        f"{name}: image too large ({dims}{pixels / 1e6:.4g} MP; the limit is "
        f"{max_pixels() / 1e6:g} MP: {RAISE_LIMIT_ADVICE})"
    )


def read_image_bytes(path: str | Path, name: str | None = None) -> bytes:
    """The bytes of an image file, non-empty.

    Args:
        path: the file.
        name: how messages name it (default: ``path``).

    Raises:
        ImageError: the file cannot be read, or is empty; the message names it.
    """
    name = name or str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ImageError(f"{name}: cannot read file ({e.strerror or e})") from e
    if not data:
        raise ImageError(f"{name}: empty file (0 bytes)")
    return data


def _open(source: str | Path | bytes, name: str) -> Image.Image:
    if isinstance(source, bytes):
        if not source:
            raise ImageError(f"{name}: empty file (0 bytes)")
        data = source
    else:
        data = read_image_bytes(source, name)
    limit = pillow_guard_at_limit()
    with warnings.catch_warnings():
        # Pillow warns from its limit up and refuses at twice it: we check ourselves.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > limit:
                raise too_large(name, w * h, (w, h))
            img.load()
        except ImageError:
            raise
        except Image.DecompressionBombError as e:
            found = re.search(r"\((\d+) pixels\)", str(e))
            raise too_large(name, int(found.group(1)) if found else 2 * limit + 1) from e
        except UnidentifiedImageError as e:
            raise ImageError(f"{name}: not an image file (unrecognised format)") from e
        except (OSError, SyntaxError, ValueError) as e:
            raise ImageError(f"{name}: corrupt or truncated image ({e})") from e
    if min(img.size) < MIN_SIDE:
        raise ImageError(f"{name}: image has no pixels ({img.size[0]}x{img.size[1]})")
    return img


def _to_8bit(img: Image.Image) -> Image.Image:
    """Bring 16/32-bit and float modes to 8-bit L, scaling by their real range."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        if img.mode == "F":
            top = 1.0 if arr.max() <= 1.0 else 255.0
        arr = np.clip(arr / top * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L")
    return img


def load_rgb(source: str | Path | bytes, name: str | None = None) -> np.ndarray:
    """Decode an image to ``H x W x 3`` uint8 RGB, honouring EXIF orientation.

    Grayscale is replicated to three channels; alpha is dropped (the colour values are
    kept as stored); palette, CMYK and 16-bit images are converted.

    Args:
        source: A file path or the encoded bytes.
        name: Name used in error messages (default: the path, or ``<bytes>``).

    Returns:
        ``H x W x 3`` uint8 array of the (EXIF-rotated) image.

    Raises:
        ImageError: Unreadable, empty, corrupt or truncated file, not an image, an image
            over [`max_pixels`][sod100k.data.images.max_pixels] (100 MP unless raised), or
            malformed EXIF; the message names the file.
    """
    name = name or (str(source) if not isinstance(source, bytes) else "<bytes>")
    img = _open(source, name)
    try:
        ImageOps.exif_transpose(img, in_place=True)  # no copy when already upright
    except Exception as e:  # malformed EXIF: keep the stored orientation
        raise ImageError(f"{name}: malformed EXIF data ({e})") from e
    img = _to_8bit(img)
    if img.mode == "P":  # palette transparency is only honoured via RGBA
        img = img.convert("RGBA")
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8)


def load_mask(source: str | Path | bytes, name: str | None = None, threshold: int = 128):
    """Read a ground-truth mask as a boolean ``H x W`` array (pixel >= ``threshold``).

    Masks stored as RGB or with values other than 0/255 are converted to luminance
    first, then binarised.

    Args:
        source: A file path or the encoded bytes.
        name: Name used in error messages.
        threshold: Gray level from which a pixel is foreground.

    Returns:
        Boolean ``H x W`` array.

    Raises:
        ImageError: The file cannot be decoded (as for
            [`load_rgb`][sod100k.data.images.load_rgb]).
    """
    return load_gray(source, name) >= threshold


def load_gray(source: str | Path | bytes, name: str | None = None) -> np.ndarray:
    """Read a saliency map or mask as gray levels.

    RGB (and RGBA) is converted to luminance; 16-bit and float images are scaled to
    0-255 by their range.

    Args:
        source: A file path or the encoded bytes.
        name: Name used in error messages.

    Returns:
        ``H x W`` uint8 array.

    Raises:
        ImageError: The file cannot be decoded (as for
            [`load_rgb`][sod100k.data.images.load_rgb]).
    """
    name = name or (str(source) if not isinstance(source, bytes) else "<bytes>")
    img = _to_8bit(_open(source, name))
    if img.mode in ("RGBA", "LA", "PA"):
        img = img.convert("RGBA").convert("RGB")
    if img.mode != "L":
        img = img.convert("L")
    return np.asarray(img, dtype=np.uint8)


def list_images(folder: str | Path, recursive: bool = True) -> list[Path]:
    """Image files under a folder, found by suffix.

    Args:
        folder: The folder.
        recursive: Also search sub-folders.

    Returns:
        Sorted paths with a suffix in ``IMAGE_SUFFIXES`` (any case); hidden files and
        files in hidden folders are skipped. Empty when the folder has none.
    """
    folder = Path(folder)
    pattern = "**/*" if recursive else "*"
    return sorted(
        p
        for p in folder.glob(pattern)
        if p.is_file()
        and p.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def to_rgb(image: str | Path | bytes | Image.Image | np.ndarray) -> np.ndarray:
    """Bring any supported image form to ``H x W x 3`` uint8 RGB.

    Args:
        image: A path or encoded bytes (decoded with
            [`load_rgb`][sod100k.data.images.load_rgb]), a PIL image (EXIF-rotated), or an
            ``H x W`` / ``H x W x 1|3|4`` array: uint8, uint16 (scaled by 255/65535) or
            float in [0, 1].

    Returns:
        A contiguous ``H x W x 3`` uint8 array; alpha is dropped.

    Raises:
        ImageError: A file that cannot be decoded, an array of another shape or dtype,
            or another type of object.
    """
    if isinstance(image, str | Path | bytes):
        return load_rgb(image)
    if isinstance(image, Image.Image):
        img = ImageOps.exif_transpose(image)
        img = _to_8bit(img)
        if img.mode == "P":
            img = img.convert("RGBA")
        return np.asarray(img.convert("RGB"), dtype=np.uint8)
    if isinstance(image, np.ndarray):
        arr = image
        if arr.ndim == 2:
            arr = np.repeat(arr[:, :, None], 3, axis=2)
        if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
            raise ImageError(f"array of shape {image.shape} is not an H x W (x 1/3/4) image")
        if arr.shape[2] == 1:
            arr = np.repeat(arr, 3, axis=2)
        arr = arr[:, :, :3]
        if arr.dtype != np.uint8:
            if np.issubdtype(arr.dtype, np.floating):
                arr = np.clip(arr * 255.0, 0, 255).round().astype(np.uint8)
            elif arr.dtype == np.uint16:
                arr = (arr.astype(np.uint32) * 255 // 65535).astype(np.uint8)
            else:
                raise ImageError(f"unsupported array dtype {arr.dtype}")
        return np.ascontiguousarray(arr)
    raise ImageError(f"cannot use a {type(image).__name__} as an image")
