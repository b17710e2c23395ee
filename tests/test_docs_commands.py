"""Every ``sod100k`` command in the README's and the docs' shell blocks runs as written.

The shell blocks (```` ```bash ````, ``sh``, ``shell``, ``console``) of README.md and
docs/**/*.md are split into commands (``\\``-continued lines joined, a ``for ... done``
loop kept whole, comment lines dropped). Each command that runs ``sod100k`` (also as
``.venv/bin/sod100k`` or ``python -m sod100k``) is run with bash in a sandbox laid out as
the docs assume (a fresh copy per document), and must exit with status 0:

* the working directory is a repository root (``src``, ``benchmarks``, ``scripts`` and
  ``.venv`` link to this checkout's) with ``../shared`` beside it: a miniature of the
  real one, with the released weights and three image/mask pairs of each dataset;
* the inputs the docs take the reader to have: ``photo.jpg``, ``photos/`` (with a
  sub-folder) and its ``masks/``, ``images/``, ``clip.mp4``, ``a.mp4``, ``b.mov``, the
  datasets ``ECSSD``, ``DUTS-TR``, ``data/ECSSD``, ``data/DUTS-TE``, the weights in
  ``weights/`` and ``~/weights/``, and ``maps/ECSSD`` made by ``sod100k predict``;
* ``PATH`` starts with the virtual environment's ``bin``; no default weights are
  installed, so a command that needs weights must name them (except on pages that say
  their examples take them from ``$SOD100K_WEIGHTS``: :data:`PAGE_ENV`).

Two rewrites, both of setup the test environment has already done or must not touch:
``scripts/install.sh [--dev] &&`` is dropped from the front of a command, and ``/tmp/``
becomes the sandbox's own ``tmp/``. Shell variables assigned in a block (``W=...``,
``export``, ``source``) carry to the block's later commands. Commands that train for
hours or serve until stopped are listed in :data:`SKIP` with the test that covers them;
a skip rule that matches no command fails the test, so the list stays short and current.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import ROOT, SHARED
from test_video import make_clip

SHELL_BLOCKS = ("bash", "sh", "shell", "console")
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SOD100K = re.compile(r"(^|[\s;&|(])(\S*/)?sod100k\s|-m sod100k\s")
#: Lines that set state for the block's later commands.
STATE = re.compile(r"^(\w+=\S*|export \w+=.*|source \S+|\. \S+)$")

#: Commands not run, with the reason and the tests that cover them instead.
SKIP = {
    r"^(torchrun .*-m )?(\S*/)?sod100k (train|finetune)\b": "trains for hours; "
    "tests/test_train*.py train on tiny data",
    r"^(\S*/)?sod100k prune runs/": "prunes the run of a skipped train command; "
    "tests/test_prune.py",
    r"^(\S*/)?sod100k serve\b": "serves until stopped; tests/test_server_live.py and "
    "tests/test_ray_cluster.py start it",
    r"\s--ray\b": "starts or joins a Ray cluster (--ray auto: the one 'ray start' started; "
    "an address; s3:// URIs); tests/test_ray_batch.py and tests/test_ray_cluster.py run "
    "these forms on clusters of their own",
    r"^SOD100K_WEB_RUNTIME=\$PWD/node_modules/": "needs the download of the line before it "
    "(npm install onnxruntime-web); tests/test_web_export.py points SOD100K_WEB_RUNTIME "
    "at a runtime",
}

#: Environment of the pages whose examples say they take the weights from it.
PAGE_ENV = {
    "docs/guide/command-line.md": {"SOD100K_WEIGHTS": "../shared/weights/csnet-L-x2"},
}

#: Image/mask pairs of each dataset in the sandbox.
STEMS = ("0001", "0002", "0003")


@dataclass(frozen=True)
class Command:
    """One command of a shell block, with the state lines before it in its block."""

    document: str
    line: int
    text: str
    state: tuple[str, ...]


def shell_commands(path: Path) -> list[Command]:
    """The commands of the shell blocks of a Markdown file, in order."""
    document = path.relative_to(ROOT).as_posix()
    commands, block, start, language = [], [], 0, None
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fence = raw.strip()
        if fence.startswith("```"):
            if language is None:
                language, block, start = fence[3:].strip() or "-", [], number + 1
            else:
                if language in SHELL_BLOCKS:
                    commands += _split_block(document, start, block)
                language = None
            continue
        if language is not None:
            block.append(raw)
    return commands


def _split_block(document: str, start: int, lines: list[str]) -> list[Command]:
    logical: list[tuple[int, str]] = []  # (first line number, joined text)
    pending: list[str] = []
    for offset, raw in enumerate(lines):
        if not pending:
            first = start + offset
        pending.append(raw.rstrip().removesuffix("\\").strip())
        if not raw.rstrip().endswith("\\"):
            text = " ".join(p for p in pending if p)
            pending = []
            if text and not text.startswith("#"):
                logical.append((first, text))
    commands, state, loop = [], [], None
    for first, text in logical:
        if loop is not None:
            loop = (
                loop[0],
                f"{loop[1]}; {text}" if not loop[1].endswith("do") else f"{loop[1]} {text}",
            )
            if text == "done" or text.endswith("; done"):
                commands.append(Command(document, loop[0], loop[1], tuple(state)))
                loop = None
            continue
        if re.match(r"(for|while) ", text) and not text.endswith("done"):
            loop = (first, text)
        elif STATE.match(text):
            state.append(text)
        else:
            commands.append(Command(document, first, text, tuple(state)))
    return [c for c in commands if SOD100K.search(_without_comment(c.text))]


def _without_comment(text: str) -> str:
    """``text`` without a trailing ``# comment`` (which may mention sod100k)."""
    return re.sub(r"(^|\s)#.*$", "", text)


def skip_reason(command: Command) -> str | None:
    for pattern, reason in SKIP.items():
        if re.search(pattern, command.text):
            return reason
    return None


ALL = [c for doc in DOCUMENTS for c in shell_commands(doc)]


def test_the_extraction_finds_the_commands_and_every_skip_rule_is_used() -> None:
    video = [c.text for c in ALL if c.document == "docs/guide/video.md"]
    assert video[0].startswith("sod100k predict clip.mp4 -o out/ -w weights/csnet-L-x1")
    loops = [c for c in ALL if c.text.startswith("for ")]
    assert loops and all(c.text.endswith("done") for c in loops)
    readme = [c for c in ALL if c.document == "README.md"]
    assert any("$W" in c.text and "W=../shared/weights/csnet-L-x2" in c.state for c in readme)
    unused = [p for p in SKIP if not any(re.search(p, c.text) for c in ALL)]
    assert not unused, f"skip rules that match no command: {unused}"
    assert len([c for c in ALL if skip_reason(c) is None]) >= 30


def _link_images(src: Path, dst: Path, suffix: str, stems=STEMS) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for stem in stems:
        (dst / f"{stem}{suffix}").symlink_to(src / f"{stem}{suffix}")


def _dataset(root: Path, ecssd: Path) -> Path:
    _link_images(ecssd / "images", root / "images", ".jpg")
    _link_images(ecssd / "masks", root / "masks", ".png")
    return root


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A repository root with a miniature ../shared and the docs' example inputs."""
    ecssd = SHARED / "data" / "ECSSD"
    weights = SHARED / "weights"
    if not (ecssd.is_dir() and weights.is_dir()):
        if os.environ.get("CI"):
            pytest.fail(f"{SHARED} is missing; CI must run with ../shared beside the repo")
        pytest.skip(f"{SHARED} not available")
    top = tmp_path_factory.mktemp("docs")
    repo, shared, home = top / "repo", top / "shared", top / "home"
    repo.mkdir()
    for name in ("src", "benchmarks", "scripts", ".venv", "pyproject.toml"):
        (repo / name).symlink_to(ROOT / name)
    (shared / "weights").mkdir(parents=True)
    (home / "weights").mkdir(parents=True)
    for w in weights.iterdir():
        (shared / "weights" / w.name).symlink_to(w)
        (home / "weights" / w.name).symlink_to(w)
    _dataset(shared / "data" / "ECSSD", ecssd)
    _dataset(shared / "data" / "DUTS-TR-2k", ecssd)
    (repo / "weights").symlink_to(home / "weights")
    for name in ("ECSSD", "DUTS-TR", "data/ECSSD", "data/DUTS-TE"):
        _dataset(repo / name, ecssd)
    shutil.copy(ecssd / "images" / f"{STEMS[0]}.jpg", repo / "photo.jpg")
    _link_images(ecssd / "images", repo / "images", ".jpg")
    _link_images(ecssd / "images", repo / "photos", ".jpg", STEMS[:1])
    _link_images(ecssd / "images", repo / "photos" / "sub", ".jpg", STEMS[1:])
    _link_images(ecssd / "masks", repo / "masks", ".png", STEMS[:1])
    _link_images(ecssd / "masks", repo / "masks" / "sub", ".png", STEMS[1:])
    for name in ("clip.mp4", "a.mp4", "b.mov"):
        make_clip(repo / name, frames=4)
    made = subprocess.run(
        ["sod100k", "predict", "data/ECSSD/images", "-o", "../maps-ECSSD", "-q",
         "-w", "weights/csnet-L-x2"],
        cwd=repo, env=_env(top, ""), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    return top


@pytest.fixture
def sandbox(template: Path, tmp_path: Path, document: str) -> Path:
    """A fresh copy of the template for one document (links stay links), with the maps
    ``maps/ECSSD`` if the document scores them."""
    shutil.copytree(template / "repo", tmp_path / "repo", symlinks=True)
    if any("maps/ECSSD" in c.text for c in ALL if c.document == document):
        shutil.copytree(template / "maps-ECSSD", tmp_path / "repo" / "maps" / "ECSSD")
    for name in ("shared", "home"):
        (tmp_path / name).symlink_to(template / name)
    (tmp_path / "tmp").mkdir()
    return tmp_path


def _env(top: Path, document: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOD100K_")}
    env.pop("PYTHONPATH", None)
    env.update(
        HOME=str(top / "home"),
        PATH=f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        TMPDIR=str(top / "tmp"),
    )
    env.update(PAGE_ENV.get(document, {}))
    return env


def _as_run(command: Command, top: Path) -> str:
    text = re.sub(r"^scripts/install\.sh( --dev)? && ", "", command.text)
    lines = [*command.state, text]
    return "set -euo pipefail\n" + "\n".join(lines).replace("/tmp/", f"{top}/tmp/")


@pytest.mark.parametrize("document", [d.relative_to(ROOT).as_posix() for d in DOCUMENTS])
def test_docs_commands_run_as_written(document: str, sandbox: Path) -> None:
    commands = [c for c in ALL if c.document == document]
    failed = []
    for command in commands:
        if skip_reason(command):
            continue
        done = subprocess.run(
            ["bash", "-c", _as_run(command, sandbox)],
            cwd=sandbox / "repo",
            env=_env(sandbox, document),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            tail = "\n    ".join((done.stderr or done.stdout).strip().splitlines()[-4:])
            failed.append(
                f"{document}:{command.line}: exit {done.returncode}: {command.text}\n    {tail}"
            )
    assert not failed, "commands that fail as written:\n" + "\n".join(failed)
