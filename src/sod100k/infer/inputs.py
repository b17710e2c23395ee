"""What a ``predict`` run reads and where each result goes.

Three steps, each a function: :func:`classify_inputs` says what every command-line input
is (standard input, a file, a folder, a glob pattern, or nothing); :func:`resolve_output`
turns ``-o`` into a destination (standard output, one file, a folder, or beside the
inputs) and checks that the output name and the format agree; :func:`plan_run` lists the
images, names every output and refuses any output that would land on an input. Finally
:func:`check_writable` (images) and :func:`split_writable` (anything, videos too) find
unwritable output folders before any model is loaded.
"""

from __future__ import annotations

import glob
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

from sod100k.data.images import IMAGE_SUFFIXES

#: The command-line name of standard input (as an input) and standard output (as ``-o``).
STDIO = "-"
#: How standard input is named in messages.
STDIN_NAME = "<stdin>"

#: Output file suffixes each ``--format`` can be written as; the first is the default.
OUTPUT_SUFFIXES: dict[str, tuple[str, ...]] = {
    "mask": (".png",),
    "rgba": (".png", ".webp"),
    "overlay": (".png", ".jpg", ".jpeg"),
}

InputKind = Literal["stdin", "file", "folder", "glob", "missing"]
OutputKind = Literal["stdout", "file", "folder", "beside"]

_GLOB_MAGIC = re.compile(r"[*?[]")

T = TypeVar("T")


class PlanError(ValueError):
    """The inputs and ``-o`` cannot make a run (a usage error); the message says why."""


@dataclass(frozen=True)
class Input:
    """One command-line input, classified.

    Attributes:
        kind: ``stdin`` (``-``), ``file``, ``folder``, ``glob`` (a pattern that is not
            itself a path) or ``missing``.
        arg: the argument as given.
        path: the file or folder; for a glob, the folder its pattern starts in (matches
            keep their layout below it in an output folder).
    """

    kind: InputKind
    arg: str
    path: Path


@dataclass(frozen=True)
class Destination:
    """Where results go: ``stdout``, one ``file``, a ``folder``, or ``beside`` each input."""

    kind: OutputKind
    path: Path | None = None


@dataclass(frozen=True)
class Job:
    """One image to predict: read ``src`` (or ``data``), write ``dst`` (``None``: stdout)."""

    src: Path
    dst: Path | None
    #: The encoded image when it does not come from a file (standard input).
    data: bytes | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return STDIN_NAME if self.data is not None else str(self.src)


@dataclass
class Plan:
    """The jobs of a run and everything that will not run, for the final report."""

    jobs: list[Job] = field(default_factory=list)
    #: ``(input, message)`` for inputs that cannot be run (missing, would overwrite, ...).
    failed: list[tuple[str, str]] = field(default_factory=list)
    #: Files in input folders or glob matches that are not images by their suffix.
    skipped: list[Path] = field(default_factory=list)
    #: Files in input folders that are outputs of this run (earlier results), not inputs.
    left_out: list[Path] = field(default_factory=list)
    #: Outputs already there, kept as they are (``skip_existing``).
    existing: list[Path] = field(default_factory=list)


def classify_inputs(args: Iterable[str]) -> list[Input]:
    """Say what each command-line input is, without listing any folder.

    An existing path is a file or folder even if its name has glob characters; ``-`` is
    standard input.

    Args:
        args: the inputs as given on the command line.

    Returns:
        One :class:`Input` per argument, in order.
    """
    classified = []
    for arg in args:
        if arg == STDIO:
            classified.append(Input("stdin", arg, Path(STDIN_NAME)))
            continue
        path = Path(arg).expanduser()
        if path.is_dir():
            classified.append(Input("folder", arg, path))
        elif path.exists():
            classified.append(Input("file", arg, path))
        elif _GLOB_MAGIC.search(arg):
            classified.append(Input("glob", arg, _glob_base(path)))
        else:
            classified.append(Input("missing", arg, path))
    return classified


def _glob_base(pattern: Path) -> Path:
    """The folder a pattern starts in: its leading parts without glob characters."""
    parts = []
    for part in pattern.parts[:-1]:
        if _GLOB_MAGIC.search(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path()


def has_image_suffix(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def resolve_output(inputs: Sequence[Input], output: str | None, fmt: str) -> Destination:
    """Turn ``-o`` into a :class:`Destination`, refusing what cannot be meant.

    ``-o`` names a file when the input is one file (or ``-``) and the name has an image
    suffix, and a folder otherwise (always when it ends with ``/``); ``-o -`` is standard
    output. Without ``-o``, ``-``
    goes to standard output and everything else beside its input.

    Args:
        inputs: the classified inputs.
        output: the ``-o`` value, or ``None``.
        fmt: the ``--format`` name (a key of :data:`OUTPUT_SUFFIXES`).

    Returns:
        The destination.

    Raises:
        PlanError: standard input mixed with other inputs, several inputs to one file or
            to standard output, the input file as output, or an output suffix that
            ``fmt`` cannot be written as.
    """
    kinds = [i.kind for i in inputs]
    if "stdin" in kinds and len(kinds) > 1:
        raise PlanError("'-' (standard input) must be the only input")
    single = len(kinds) == 1 and kinds[0] in ("stdin", "file")
    if output is None:
        return Destination("stdout" if kinds == ["stdin"] else "beside")
    if output == STDIO:
        if not single:
            raise PlanError("-o - (standard output) takes exactly one input image")
        return Destination("stdout")
    path = Path(output).expanduser()
    if path.is_dir() or output.endswith(("/", os.sep)):
        if kinds == ["stdin"]:
            raise PlanError(f"-o {output} is a folder; with input '-' give a file name or '-'")
        return Destination("folder", path)
    if has_image_suffix(path) or path.suffix.lower() in OUTPUT_SUFFIXES[fmt]:
        if not single:
            raise PlanError(
                f"-o {output} names an image file, but the inputs are "
                f"{_describe(inputs)}; give a folder (a name without an image suffix)"
            )
        check_suffix(path, fmt)
        if kinds == ["file"] and path.resolve() == inputs[0].path.resolve():
            raise PlanError(f"-o {output} is the input file: choose another name")
        return Destination("file", path)
    if kinds == ["stdin"]:
        raise PlanError(f"-o {output}: with input '-' give an image file name (.png) or '-'")
    return Destination("folder", path)


def check_suffix(path: Path, fmt: str) -> None:
    """Refuse an output file name whose suffix ``fmt`` cannot be written as.

    Raises:
        PlanError: naming the file, the format and the suffixes that would do.
    """
    allowed = OUTPUT_SUFFIXES[fmt]
    if path.suffix.lower() not in allowed:
        what = {"mask": "a mask", "rgba": "a cut-out", "overlay": "an overlay"}[fmt]
        names = " or ".join(allowed)
        given = path.suffix or "a name without suffix"
        hint = ""
        if path.suffix.lower() == ".webp":
            hint = " (a WebP output is a cut-out: add --format rgba, or use sod100k cutout)"
        raise PlanError(f"-o {path}: --format {fmt} writes {what} as {names}, not {given}{hint}")


def _describe(inputs: Sequence[Input]) -> str:
    if len(inputs) > 1:
        return f"{len(inputs)} paths"
    return {"folder": "a folder", "glob": "a pattern", "missing": "a missing path"}.get(
        inputs[0].kind, "one file"
    )


def plan_run(
    inputs: Sequence[Input],
    dest: Destination,
    fmt: str = "mask",
    skip_existing: bool = False,
    stdin: bytes | None = None,
) -> Plan:
    """List the images and name every output; nothing is read or written.

    Folders are searched recursively for :data:`IMAGE_SUFFIXES` (hidden files and
    folders left out); other files there are listed in ``skipped``. Files named on the
    command line are always tried, whatever their suffix. Files under an output folder
    inside a searched folder, and found files that are outputs of this very run, are left
    out of the inputs. An output that would replace an input, or that two inputs would
    share, is a failure.

    Args:
        inputs: from :func:`classify_inputs`.
        dest: from :func:`resolve_output`.
        fmt: the ``--format`` name, used in the names of outputs beside the inputs.
        skip_existing: leave out jobs whose output file already exists.
        stdin: the bytes read from standard input, for an input ``-``.

    Returns:
        The :class:`Plan`.

    Raises:
        PlanError: an output folder that is an input folder, or a folder without a name
            (``/``) to write beside.
    """
    plan = Plan()
    roots = _output_roots(inputs, dest, fmt)
    candidates: list[tuple[Job, bool]] = []  # (job, named on the command line)
    for item in inputs:
        if item.kind == "stdin":
            dst = dest.path if dest.kind == "file" else None
            candidates.append((Job(item.path, dst, data=stdin or b""), True))
        elif item.kind == "file":
            candidates.append((Job(item.path, _file_dst(item.path, dest, fmt)), True))
        elif item.kind == "folder":
            if dest.kind == "folder" and dest.path.resolve() == item.path.resolve():
                raise PlanError(
                    f"-o {dest.path} is the input folder {item.arg}: the results would mix "
                    "with the images; choose another folder"
                )
            found = _scan(sorted(item.path.rglob("*")), item.path, item.path, roots, plan)
            if not found:
                plan.failed.append((item.arg, "no images found (see --help for the suffixes)"))
            base = dest.path if dest.kind == "folder" else _beside_folder(item.path, fmt)
            for src in found:
                rel = src.relative_to(item.path).with_suffix(".png")
                candidates.append((Job(src, base / rel), False))
        elif item.kind == "glob":
            pattern = os.path.expanduser(item.arg)
            matches = [Path(m) for m in sorted(glob.glob(pattern, recursive=True))]
            found = _scan(matches, None, item.path, roots, plan)
            if not found:
                plan.failed.append((item.arg, "no image file matches this pattern"))
            for src in found:
                if dest.kind == "folder":
                    dst = dest.path / _relative_or_name(src, item.path).with_suffix(".png")
                else:
                    dst = _file_dst(src, dest, fmt)
                candidates.append((Job(src, dst), False))
        elif item.kind == "missing":
            plan.failed.append((item.arg, "no such file or folder"))
        # other kinds (a video added to classify_inputs) are run by their own code
    _check_collisions(candidates, plan, skip_existing)
    return plan


def _output_roots(inputs: Sequence[Input], dest: Destination, fmt: str) -> list[Path]:
    """Folders this run writes into as a whole: their files are never inputs."""
    if dest.kind == "folder":
        return [dest.path.resolve()]
    if dest.kind == "beside":
        return [_beside_folder(i.path, fmt).resolve() for i in inputs if i.kind == "folder"]
    return []


def _beside_folder(folder: Path, fmt: str) -> Path:
    folder = folder.resolve()
    if not folder.name:
        raise PlanError(f"{folder}: give -o for the root folder")
    return folder.with_name(f"{folder.name}_{fmt}")


def _file_dst(src: Path, dest: Destination, fmt: str) -> Path | None:
    if dest.kind == "stdout":
        return None
    if dest.kind == "file":
        return dest.path
    if dest.kind == "folder":
        return dest.path / f"{src.stem}.png"
    return src.with_name(f"{src.stem}.{fmt}.png")


def _relative_or_name(path: Path, base: Path) -> Path:
    try:
        return path.resolve().relative_to(base.resolve())
    except ValueError:
        return Path(path.name)


def _scan(
    paths: Iterable[Path], folder: Path | None, base: Path, roots: list[Path], plan: Plan
) -> list[Path]:
    """The image files among ``paths``; others go to ``plan.skipped`` or ``left_out``.

    ``folder`` is the searched folder (hidden names below it are ignored), ``base`` the
    folder the search starts in: files under an output root inside it are left out.
    """
    base = base.resolve()
    roots = [r for r in roots if r != base and r.is_relative_to(base)]
    images = []
    for path in paths:
        rel = path.relative_to(folder) if folder is not None else Path(path.name)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        resolved = path.resolve()
        if any(resolved.is_relative_to(root) for root in roots):
            plan.left_out.append(path)
        elif has_image_suffix(path):
            images.append(path)
        else:
            plan.skipped.append(path)
    return images


def _check_collisions(candidates: list[tuple[Job, bool]], plan: Plan, skip_existing: bool) -> None:
    """Keep the jobs whose output replaces no input and is claimed once."""
    outputs: dict[Path, set[Path]] = {}  # output -> the inputs writing it
    for job, _ in candidates:
        if job.dst is not None:
            outputs.setdefault(job.dst.resolve(), set()).add(job.src.resolve())
    sources = set()
    kept: list[Job] = []
    for job, named in candidates:
        src = job.src.resolve()
        if job.data is None and not named and outputs.get(src, {src}) - {src}:
            plan.left_out.append(job.src)  # an earlier result of another input: not an input
            continue
        kept.append(job)
        if job.data is None:
            sources.add(src)
    claimed: dict[Path, Job] = {}
    for job in kept:
        if job.dst is None:
            plan.jobs.append(job)
            continue
        dst = job.dst.resolve()
        if dst in sources:
            plan.failed.append((job.name, f"output {job.dst} would overwrite an input"))
        elif dst in claimed:
            plan.failed.append((job.name, f"output {job.dst} is already the output of "
                                f"{claimed[dst].name}"))  # fmt: skip
        else:
            claimed[dst] = job
            if skip_existing and job.dst.is_file():
                plan.existing.append(job.dst)
            else:
                plan.jobs.append(job)


def check_writable(jobs: Sequence[Job]) -> tuple[list[Job], list[tuple[str, str]]]:
    """Find output folders that cannot be written, before any model is loaded.

    Each output folder (or, when it does not exist yet, its nearest existing parent) is
    tried by creating and removing a temporary file in it, which also works for root and
    for read-only mounts where permission bits say nothing.

    Args:
        jobs: the planned jobs.

    Returns:
        The jobs whose folder is writable, and one ``(folder, message)`` per folder that
        is not (with how many images it would have held).
    """
    return split_writable(jobs, lambda job: None if job.dst is None else job.dst.parent, "image")


def split_writable(
    items: Sequence[T], folder_of: Callable[[T], Path | None], noun: str
) -> tuple[list[T], list[tuple[str, str]]]:
    """Split ``items`` by whether their output folder can be written (see
    :func:`check_writable`).

    Args:
        items: what is to be written (jobs, video paths, ...).
        folder_of: the output folder of an item, ``None`` when it writes no file.
        noun: what an item is, for the messages (``"image"``, ``"video"``).

    Returns:
        The items whose folder is writable, and ``(folder, "cannot write here (why); N
        <noun>(s) not processed")`` per folder that is not.
    """
    verdicts: dict[Path, str | None] = {}
    blocked: dict[Path, int] = {}
    ok = []
    for item in items:
        folder = folder_of(item)
        if folder is None:
            ok.append(item)
            continue
        if folder not in verdicts:
            verdicts[folder] = _unwritable_reason(folder)
        if verdicts[folder] is None:
            ok.append(item)
        else:
            blocked[folder] = blocked.get(folder, 0) + 1
    failed = [
        (str(folder), f"cannot write here ({verdicts[folder]}); {n} {noun}(s) not processed")
        for folder, n in blocked.items()
    ]
    return ok, failed


def _unwritable_reason(folder: Path) -> str | None:
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is not a folder"
    try:
        fd, name = tempfile.mkstemp(prefix=".sod100k-probe-", dir=probe)
    except OSError as e:
        return e.strerror or str(e)
    os.close(fd)
    os.unlink(name)
    return None
