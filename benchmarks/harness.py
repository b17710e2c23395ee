"""What every benchmark shares: the machine, runtime isolation, timing and result files.

A benchmark script is thin: it parses its arguments with :func:`parser` (the common
``--out``, ``--threads``, ``--weights``, ``--warmup``, ``--runs``), runs each runtime's
measurement in a fresh interpreter with :func:`run_cell` (the child sees ``--worker JSON``,
recognised by :func:`worker_cell`, and answers with :func:`emit`), times calls with
:func:`timed` / :func:`median_ms`, and writes its rows with :func:`write_results`: a JSON
file and a Markdown file that carry the command line, the UTC date, the CPU model, its
class and relevant flags, the core count and the library versions beside the numbers.

Why a fresh process per runtime: ONNX Runtime's worker threads keep spinning for a while
after each call and steal the CPU from whatever runs next in the same process (OpenVINO
timed right after ONNX Runtime read 37-38 ms instead of 21-23 ms for x2 at 224).

Why the CPU class: timings differ by machine kind (AVX2 only, AVX-512, AMX), so the docs
keep one table per class and compare figures only within one run.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import logging
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path

log = logging.getLogger("benchmarks")

ROOT = Path(__file__).resolve().parents[1]
#: Where results go unless ``--out`` says otherwise.
RESULTS = Path("benchmarks/results")
#: The CPU flags that decide which kernels the runtimes use: ``/proc/cpuinfo`` name ->
#: the name the docs print, in the order they are printed.
RELEVANT_FLAGS = {
    "avx2": "AVX2",
    "avx512f": "AVX-512F",
    "avx512_vnni": "AVX512-VNNI",
    "avx_vnni": "AVX-VNNI",
    "avx512_bf16": "AVX512-BF16",
    "amx_bf16": "AMX-BF16",
    "amx_int8": "AMX-INT8",
}
#: Libraries whose versions change the numbers.
LIBRARIES = ("torch", "onnxruntime", "openvino", "nncf")


@dataclasses.dataclass(frozen=True)
class Machine:
    """The machine a benchmark ran on, as the header of its table states it."""

    cpu_model: str
    cpu_class: str
    flags: tuple[str, ...]
    cores: int
    versions: dict[str, str]
    python: str = platform.python_version()

    def describe(self) -> str:
        """One line: ``CPU model (class: flags), N cores; lib version, ...``."""
        flags = ", ".join(self.flags) or "none of " + "/".join(RELEVANT_FLAGS.values())
        libs = ", ".join(f"{k} {v}" for k, v in self.versions.items())
        return f"{self.cpu_model} ({self.cpu_class}: {flags}), {self.cores} cores; {libs}"


def lscpu() -> dict[str, str]:
    """``lscpu``'s fields (``{"Model name": ..., "Flags": ...}``); empty where it is absent."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return {
        key.strip(): value.strip()
        for key, sep, value in (line.partition(":") for line in out.splitlines())
        if sep
    }


def _cpuinfo(field: str) -> str:
    """The first ``field`` line of /proc/cpuinfo ('' where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip() == field:
                return value.strip()
    except OSError:
        pass
    return ""


def cpu_model(fields: Mapping[str, str] | None = None) -> str:
    """The CPU's model name as ``lscpu`` prints it; else /proc/cpuinfo's, else the platform's."""
    fields = lscpu() if fields is None else fields
    return (
        fields.get("Model name")
        or _cpuinfo("model name")
        or platform.processor()
        or platform.machine()
        or "unknown CPU"
    )


def cpu_flags(fields: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The relevant flags the CPU has, by their docs names (``("AVX2", "AVX-512F", ...)``)."""
    fields = lscpu() if fields is None else fields
    have = set((fields.get("Flags") or _cpuinfo("flags")).split())
    return tuple(name for flag, name in RELEVANT_FLAGS.items() if flag in have)


def cpu_class(flags: Iterable[str], arch: str | None = None) -> str:
    """The machine kind a speed table is kept per: ``x86-avx2``, ``x86-avx512``,
    ``x86-avx512-amx`` (AMX tiles, which also implies AVX512-BF16 and VNNI), plain
    ``x86``, or the architecture's name elsewhere (``aarch64``)."""
    arch = arch or platform.machine()
    if arch not in ("x86_64", "AMD64", "i686", "x86"):
        return arch.lower()
    flags = set(flags)
    if flags & {"AMX-BF16", "AMX-INT8"}:
        return "x86-avx512-amx"
    if "AVX-512F" in flags:
        return "x86-avx512"
    if "AVX2" in flags:
        return "x86-avx2"
    return "x86"


def library_versions(names: Iterable[str] = LIBRARIES) -> dict[str, str]:
    """Installed versions, read from the package metadata (nothing is imported, so no
    runtime's threads start in the parent process)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def core_count() -> int:
    """CPUs this process may run on (the affinity mask, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine() -> Machine:
    """The machine this process runs on."""
    fields = lscpu()
    flags = cpu_flags(fields)
    return Machine(
        cpu_model=cpu_model(fields),
        cpu_class=cpu_class(flags),
        flags=flags,
        cores=core_count(),
        versions=library_versions(),
    )


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command that ran this script, as one can paste it into a shell at the
    repository root: ``.venv/bin/python benchmarks/speed.py --runs 30``."""
    argv = list(sys.argv if argv is None else argv)
    python = Path(sys.executable)
    try:
        python_shown = str(python.relative_to(Path.cwd()))
    except ValueError:
        python_shown = "python"
    script = Path(argv[0]).resolve() if argv else Path("-")
    try:
        script_shown = str(script.relative_to(ROOT))
    except ValueError:
        script_shown = str(argv[0]) if argv else "-"
    return shlex.join([python_shown, script_shown, *argv[1:]])


def run_meta(argv: Sequence[str] | None = None, note: str = "") -> dict:
    """What goes beside every result: command, UTC date, machine, load average and the
    user's ``note`` (e.g. "other jobs paused")."""
    now = datetime.datetime.now(datetime.UTC)
    return {
        "command": command_line(argv),
        "date": now.strftime("%Y-%m-%d %H:%M UTC"),
        "machine": dataclasses.asdict(machine()),
        "loadavg_1min": round(os.getloadavg()[0], 2),
        "note": note,
    }


def describe_meta(meta: Mapping) -> str:
    """The Markdown lines stating a result's machine, date, load and command."""
    m = Machine(**{**meta["machine"], "flags": tuple(meta["machine"]["flags"])})
    load = meta.get("loadavg_1min")
    load_text = f"; load average {load} at the start" if load is not None else ""
    note = f" {meta['note']}." if meta.get("note") else ""
    return (
        f"Machine: {m.describe()}.{note}  \n"
        f"Date: {meta['date']}{load_text}.  \n"
        f"Command: `{meta['command']}`"
    )


# ---------------------------------------------------------------- timing


def timed(run: Callable[[], object], warmup: int, runs: int) -> list[float]:
    """Seconds of each of ``runs`` calls of ``run()``, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def median_ms(run: Callable[[], object], warmup: int, runs: int, per: int = 1) -> float:
    """Median milliseconds of ``run()`` over ``runs`` calls after ``warmup`` calls,
    divided by ``per`` (the images per call), rounded to 0.01 ms."""
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    return round(1000.0 * statistics.median(timed(run, warmup, runs)) / per, 2)


# ---------------------------------------------------------------- isolation


def run_cell(
    script: str | Path,
    cell: Mapping,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 1800,
) -> dict:
    """Run ``script --worker JSON(cell)`` in a fresh interpreter; its last stdout line.

    Args:
        script: the benchmark script; its ``main`` hands ``cell`` to the measurement when
            :func:`worker_cell` finds it.
        cell: JSON-serialisable settings of one measurement.
        env: extra environment variables for the child (e.g. an allocator setting).
        timeout: seconds before the child is killed.

    Raises:
        RuntimeError: the worker failed (its stderr tail is in the message).
    """
    child_env = dict(os.environ)
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT / "src"), child_env.get("PYTHONPATH", "")) if p
    )
    child_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, str(script), "--worker", json.dumps(dict(cell))],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env,
        check=False,
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
        raise RuntimeError(f"worker {dict(cell)} failed ({proc.returncode}): {tail}")
    lines = proc.stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"worker {dict(cell)} printed no result")
    return json.loads(lines[-1])


def worker_cell(argv: Sequence[str]) -> dict | None:
    """The cell passed with ``--worker JSON``, or None when this is the parent process."""
    if len(argv) >= 3 and argv[1] == "--worker":
        return json.loads(argv[2])
    return None


def emit(result: Mapping) -> None:
    """Print a worker's result as the last stdout line (what :func:`run_cell` reads)."""
    sys.stdout.write(json.dumps(dict(result)) + "\n")
    sys.stdout.flush()


# ---------------------------------------------------------------- arguments


def parser(
    doc: str | None,
    *,
    weights: str | None = None,
    threads: int | list[int] | None = 2,
    timing: tuple[int, int] | None = None,
) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark spells the same way.

    Args:
        doc: the script's docstring; its first line is the description, the rest the
            epilogue of ``--help``.
        weights: default of ``--weights`` (a checkpoint folder, or the folder holding
            ``csnet-L-x1`` / ``csnet-L-x2``); None: no ``--weights`` option.
        threads: default of ``--threads`` (a list: several values may be given); None:
            no ``--threads`` option.
        timing: defaults of ``--warmup`` and ``--runs``; None: neither option.
    """
    head, _, rest = (doc or "").strip().partition("\n")
    p = argparse.ArgumentParser(
        description=head,
        epilog=rest.strip() or None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return add_common_options(p, weights=weights, threads=threads, timing=timing)


def add_common_options(
    p: argparse.ArgumentParser,
    *,
    weights: str | None = None,
    threads: int | list[int] | None = 2,
    timing: tuple[int, int] | None = None,
) -> argparse.ArgumentParser:
    """Add ``--out``, ``--note`` and (as :func:`parser` says) ``--weights``,
    ``--threads``, ``--warmup`` and ``--runs`` to ``p`` (a parser or a sub-command's)."""
    p.add_argument(
        "--out", type=Path, default=RESULTS, help="folder for the JSON and Markdown results"
    )
    p.add_argument(
        "--note", default="", help="free text printed beside the machine ('other jobs paused')"
    )
    if weights is not None:
        p.add_argument("--weights", type=Path, default=Path(weights), help="checkpoint folder")
    if isinstance(threads, list):
        p.add_argument("--threads", type=int, nargs="+", default=threads, help="thread counts")
    elif threads is not None:
        p.add_argument("--threads", type=int, default=threads, help="inference threads")
    if timing is not None:
        p.add_argument("--warmup", type=int, default=timing[0], help="untimed calls first")
        p.add_argument("--runs", type=int, default=timing[1], help="timed calls (median)")
    return p


# ---------------------------------------------------------------- results


def _cell_text(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):  # 4 significant digits: 112.1 ms, 3.456 ms, 0.8974, 0.06455
        return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def markdown_table(columns: Sequence[str] | Mapping[str, str], rows: Iterable[Mapping]) -> str:
    """A Markdown table of ``rows`` (dicts): ``columns`` lists their keys, or maps each
    key to its header; a missing cell prints as an en dash."""
    headers = dict(columns) if isinstance(columns, Mapping) else {c: c for c in columns}
    lines = ["| " + " | ".join(headers.values()) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        lines.append("| " + " | ".join(_cell_text(row.get(c)) for c in headers) + " |")
    return "\n".join(lines)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_results(
    out: Path,
    stem: str,
    meta: Mapping,
    rows: Sequence[Mapping],
    table: str,
    *,
    intro: str = "",
    notes: str = "",
) -> tuple[Path, Path]:
    """Write ``<out>/<stem>.json`` (meta + rows) and ``<out>/<stem>.md`` (intro, the
    machine/date/command lines of ``meta``, the table, notes), each atomically.

    Returns:
        The JSON and Markdown paths.
    """
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"{stem}.json", out / f"{stem}.md"
    _write_atomic(json_path, json.dumps({"meta": meta, "rows": list(rows)}, indent=2) + "\n")
    parts = [p for p in (intro.strip(), describe_meta(meta), table.strip(), notes.strip()) if p]
    _write_atomic(md_path, "\n\n".join(parts) + "\n")
    log.info("wrote %s and %s", json_path, md_path)
    return json_path, md_path


def start(name: str, note: str = "") -> dict:
    """Set up logging, log the machine (CPU model, class, flags) and return the run's meta."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    meta = run_meta(note=note)
    m = meta["machine"]
    logging.getLogger(name).info(
        "%s (%s: %s), %d cores; load average %s",
        m["cpu_model"],
        m["cpu_class"],
        ", ".join(m["flags"]) or "no relevant flags",
        m["cores"],
        meta["loadavg_1min"],
    )
    return meta
