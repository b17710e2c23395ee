"""Build the authors' SalMetric tool and record its outputs as test fixtures.

The SOD100K authors' evaluator (``CSNet_training/SalMetric`` in ShangHua-Gao/SOD100K) is
C++ with OpenCV. Its CMakeLists requires CUDA, which the code never uses, so ``build``
compiles it directly with g++ (the same ``-std=c++0x``, no optimisation flags, as its
CMakeLists) into two binaries:

* ``salmetric``: the unmodified tool;
* ``salmetric-precise``: the same source, included by a five-line wrapper of ours that
  only sets ``std::cout``'s precision to 9 significant digits before calling the tool's
  ``main`` (float32 values then print exactly; the stock tool prints 6 digits).

``cases`` runs the tool on the generated maps/masks of ``tests/salmetric_cases.py`` and
writes ``tests/fixtures/salmetric/cases.json``; ``ecssd`` runs it on folders of saliency
maps and writes ``tests/fixtures/salmetric/ecssd.json`` (with a digest of the maps, so that
a test can tell whether it has the same maps). Nothing of the reference is kept.

Usage (Debian: ``apt-get install g++ libopencv-dev pkg-config``)::

    python scripts/salmetric_fixtures.py build --source SOD100K/CSNet_training/SalMetric \
        --out /tmp/salmetric-build
    python scripts/salmetric_fixtures.py cases --salmetric /tmp/salmetric-build/salmetric-precise
    python scripts/salmetric_fixtures.py ecssd --salmetric /tmp/salmetric-build/salmetric-precise \
        --masks ../shared/data/ECSSD/masks --maps csnet-l-x1=/tmp/ecssd-x1 csnet-l-x2=/tmp/ecssd-x2
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

import salmetric_cases  # noqa: E402  (after making tests/ importable)
from sod100k.eval.pairing import pair_by_stem  # noqa: E402
from sod100k.utils.files import atomic_write_text  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "salmetric"

WRAPPER = """\
// Runs SalMetric's own main() with std::cout printing 9 significant digits.
#include <iomanip>
#include <iostream>
#define main salmetric_main
#include "sal_metric.cpp"
#undef main
int main(int argc, char* argv[]) {
    std::cout << std::setprecision(9);
    return salmetric_main(argc, argv);
}
"""

_ROW = re.compile(
    r"Threshold (\d+):\s+MAE: (\S+)\s+Precision: (\S+)\s+Recall: (\S+)\s+Fmeasure: (\S+)"
)
_SUMMARY = {
    "maxF": "Max_F-measre:",
    "meanF": "Mean_F-measre:",
    "MAE": "MAE:",
    "precision_at_maxF": "Precision:",
    "recall_at_maxF": "Recall:",
}


def build(source: Path, out: Path, optimize: bool = False) -> None:
    """Compile the stock tool and the precision wrapper with g++ and pkg-config's OpenCV.

    ``optimize`` adds ``-O2`` (binaries ``*-O2``): the same IEEE float32/double
    operations in the same order (no ``-ffast-math``, no FMA on baseline x86-64), about
    ten times faster on all of ECSSD; the ``cases`` outputs of both builds are identical.
    """
    out.mkdir(parents=True, exist_ok=True)
    flags = subprocess.run(
        ["pkg-config", "--cflags", "--libs", "opencv4"], capture_output=True, text=True, check=True
    ).stdout.split()
    wrapper = out / "salmetric_precise.cpp"
    wrapper.write_text(WRAPPER)
    common = ["g++", "-std=c++0x", f"-I{source / 'include'}", f"-I{source / 'src'}"]
    suffix = "-O2" if optimize else ""
    if optimize:
        common.append("-O2")
    for target, src in (
        ("salmetric", source / "src" / "sal_metric.cpp"),
        ("salmetric-precise", wrapper),
    ):
        cmd = [*common, str(src), "-o", str(out / (target + suffix)), *flags, "-lpthread"]
        print("+", shlex.join(cmd), file=sys.stderr)
        subprocess.run(cmd, check=True)


def run_tool(binary: Path, list_file: Path, threads: int | None = None) -> dict:
    """Run the tool on a list file; parse its curves and summary lines."""
    cmd = [str(binary), str(list_file)] + ([str(threads)] if threads else [])
    start = time.perf_counter()
    text = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    seconds = time.perf_counter() - start
    rows = [m.groups() for m in _ROW.finditer(text)]
    if [int(r[0]) for r in rows] != list(range(256)):
        raise RuntimeError(f"{binary}: unexpected output:\n{text[:2000]}")
    result: dict = {
        "threads": threads or 4,
        "precision": [float(r[2]) for r in rows],
        "recall": [float(r[3]) for r in rows],
        "fmeasure": [float(r[4]) for r in rows],
        "size_warnings": text.count("should share the same size"),
        "tool_seconds": round(seconds, 2),
    }
    for key, label in _SUMMARY.items():
        line = next(ln for ln in text.splitlines() if ln.startswith(label))
        result[key] = float(line.split()[-1])
    return result


def cases(binary: Path, out: Path, only: list[str] | None = None) -> None:
    """Run the tool on every generated case (or ``only`` those, keeping the others'
    records from ``out``); ``mixed`` also with other thread counts."""
    records = json.loads(out.read_text())["cases"] if only and out.exists() else {}
    with tempfile.TemporaryDirectory(prefix="salmetric-cases-") as tmp:
        for name in only or salmetric_cases.CASES:
            list_file = salmetric_cases.write_case(name, Path(tmp))
            counts = salmetric_cases.MIXED_THREADS if name == "mixed" else (None,)
            for threads in counts:
                key = name if threads in (None, 4) else f"{name}@{threads}"
                records[key] = {"case": name, **run_tool(binary, list_file, threads)}
                print(f"{key}: maxF {records[key]['maxF']} MAE {records[key]['MAE']}")
    atomic_write_text(out, json.dumps(_header(binary) | {"cases": records}, indent=1) + "\n")
    print(f"wrote {out}", file=sys.stderr)


def ecssd(binary: Path, masks: Path, maps: list[str], out: Path) -> None:
    """Run the tool on each ``NAME=FOLDER`` of maps against ``masks`` (pairs by stem)."""
    records = {}
    with tempfile.TemporaryDirectory(prefix="salmetric-ecssd-") as tmp:
        for spec in maps:
            name, _, folder = spec.partition("=")
            pairs = pair_by_stem(folder, masks).pairs
            list_file = Path(tmp) / f"{name}.txt"
            list_file.write_text("".join(f"{p.resolve()} {m.resolve()}\n" for p, m in pairs))
            record = run_tool(binary, list_file)
            record.update(images=len(pairs), maps_sha256=salmetric_cases.maps_digest(pairs))
            records[name] = record
            print(f"{name}: {len(pairs)} images, maxF {record['maxF']} MAE {record['MAE']}")
    atomic_write_text(out, json.dumps(_header(binary) | {"datasets": records}, indent=1) + "\n")
    print(f"wrote {out}", file=sys.stderr)


def _header(binary: Path) -> dict:
    opencv = subprocess.run(
        ["pkg-config", "--modversion", "opencv4"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "tool": "SalMetric (ShangHua-Gao/SOD100K CSNet_training/SalMetric), printed at 9 digits",
        "binary": binary.name,
        "opencv": opencv,
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="compile the tool and the precision wrapper")
    b.add_argument("--source", type=Path, required=True, help="the SalMetric folder")
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--optimize", action="store_true", help="-O2 (same results, faster)")
    c = sub.add_parser("cases", help="record the tool's outputs on the generated cases")
    c.add_argument("--salmetric", type=Path, required=True, help="salmetric-precise binary")
    c.add_argument("--out", type=Path, default=FIXTURES / "cases.json")
    c.add_argument("--only", nargs="+", choices=list(salmetric_cases.CASES), help="re-run these")
    e = sub.add_parser("ecssd", help="record the tool's outputs on folders of maps")
    e.add_argument("--salmetric", type=Path, required=True, help="salmetric-precise binary")
    e.add_argument("--masks", type=Path, required=True)
    e.add_argument("--maps", nargs="+", required=True, metavar="NAME=FOLDER")
    e.add_argument("--out", type=Path, default=FIXTURES / "ecssd.json")
    args = p.parse_args()
    if args.cmd == "build":
        build(args.source, args.out, args.optimize)
    elif args.cmd == "cases":
        cases(args.salmetric, args.out, args.only)
    else:
        ecssd(args.salmetric, args.masks, args.maps, args.out)


if __name__ == "__main__":
    main()
