"""Say what a file or folder is, for errors about inputs that are not what was expected;
and open torch files without ever running code from them.

A user who passes a photo as ``--weights`` should hear "a JPEG image", not torch's
unpickling error, and never torch's suggestion to retry with ``weights_only=False``
(which would run whatever code the file holds).
"""

from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

#: How many names a message lists before it says "and N more".
SHOWN_NAMES = 5
#: How many entries of a folder a description names.
SHOWN_ENTRIES = 4

#: Leading bytes of common files that are not torch files, and what they are.
_MAGIC = (
    (b"\x1f\x8b", "a gzip archive"),
    (b"%PDF", "a PDF document"),
    (b"\x1a\x45\xdf\xa3", "a Matroska/WebM video"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"\x7fELF", "an executable (ELF)"),
)


#: How torch's weights-only unpickler names a global it refuses.
_UNSAFE_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


class UnreadableTorchFile(ValueError):
    """A file that ``torch.load(weights_only=True)`` cannot or will not open; the
    message says what the file is instead (without the file name)."""


def name_list(names: Sequence[str], shown: int = SHOWN_NAMES) -> str:
    """``a, b, c, d, e and 3 more``: the first ``shown`` of ``names``."""
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")


def describe_folder(folder: Path) -> str:
    """``"it is empty"`` or ``"it holds a.jpg, b.png, c.txt, sub/ and 3 more"``."""
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    return f"it holds {name_list(names, SHOWN_ENTRIES)}" if names else "it is empty"


def describe_file(path: str | Path) -> str:
    """What a file is, from its first bytes: ``"a JPEG image (640x480)"``, ``"a zip
    archive without a torch data.pkl"``, ``"a text file"``, ..., or ``"neither a zip
    nor a pickle file"``, the two forms ``torch.save`` writes."""
    path = Path(path)
    if path.is_dir():
        return f"a folder ({describe_folder(path)})"
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError as e:
        return f"an unreadable file ({e.strerror or e})"
    if not head:
        return "an empty file (0 bytes)"
    image = _image_kind(path)
    if image:
        return image
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(path)
    if head[0] == 0x80 and len(head) > 1 and head[1] <= pickle.HIGHEST_PROTOCOL:
        return "a pickle file that torch cannot read (damaged, or not written by torch.save)"
    if path.suffix.lower() == ".onnx" and head[0] == 0x08:  # protobuf: ir_version first
        return "an ONNX model"
    if head[4:8] == b"ftyp":
        return "an MP4/QuickTime video"
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return what
    if b"\0" not in head:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            return "a text file"
    return "neither a zip nor a pickle file (the two forms torch.save writes)"


def _image_kind(path: Path) -> str | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # only the header is read: no bomb to fear
            with Image.open(path) as img:
                return f"a {img.format} image ({img.size[0]}x{img.size[1]})"
    except Exception:  # anything Pillow cannot identify is simply not an image
        return None


def _zip_kind(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return "a damaged zip archive"
    if any(n.endswith("data.pkl") for n in names):
        return "a torch zip file that cannot be read (damaged?)"
    return f"a zip archive without a torch data.pkl ({len(names)} member(s))"


def load_plain(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU: tensors and plain containers
    only, no code from the file runs.

    Raises:
        UnreadableTorchFile: the file cannot be read as such, or holds other objects;
            the message says what the file is (it never suggests loading it unsafely).
    """
    import torch  # here: describing files needs no torch (sod100k.checkpoints.locate)

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for files that are not its own
        refused = _UNSAFE_GLOBAL.search(str(e)) if isinstance(e, pickle.UnpicklingError) else None
        if refused:
            raise UnreadableTorchFile(
                f"a torch file holding an object of type {refused.group(1)}, not only tensors "
                "and plain containers; refused, since loading it could run code from the file"
            ) from e
        raise UnreadableTorchFile(describe_file(path)) from e
