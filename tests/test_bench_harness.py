"""benchmarks/harness.py: machine info, runtime isolation, timing and result files.

Fast and load-independent: nothing here asserts a timing.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import harness

BENCHMARKS = harness.ROOT / "benchmarks"

XEON_FLAGS = (
    "fpu sse sse2 avx f16c fma avx2 avx512f avx512dq avx512cd avx512bw avx512vl avx_vnni "
    "avx512_bf16 avx512_vnni avx512_fp16 amx_bf16 amx_tile amx_int8"
)
EPYC_FLAGS = "fpu sse sse2 avx f16c fma avx2 bmi2 sha_ni"
SKYLAKE_FLAGS = "fpu sse sse2 avx fma avx2 avx512f avx512dq avx512cd avx512bw avx512vl"


def test_flags_are_read_from_lscpu_by_their_docs_names() -> None:
    fields = {"Model name": "Intel(R) Xeon(R) Processor", "Flags": XEON_FLAGS}
    assert harness.cpu_flags(fields) == (
        "AVX2",
        "AVX-512F",
        "AVX512-VNNI",
        "AVX-VNNI",
        "AVX512-BF16",
        "AMX-BF16",
        "AMX-INT8",
    )
    assert harness.cpu_flags({"Flags": EPYC_FLAGS}) == ("AVX2",)
    # avx512_bf16 must not be mistaken for avx512f, nor amx_tile for a flag we list
    assert "AVX-512F" not in harness.cpu_flags({"Flags": "avx2 avx512_bf16 amx_tile"})


@pytest.mark.parametrize(
    ("flags", "arch", "expected"),
    [
        (XEON_FLAGS, "x86_64", "x86-avx512-amx"),
        (SKYLAKE_FLAGS, "x86_64", "x86-avx512"),
        (EPYC_FLAGS, "x86_64", "x86-avx2"),
        ("fpu sse sse2", "x86_64", "x86"),
        ("", "aarch64", "aarch64"),
    ],
)
def test_cpu_class_follows_the_strongest_relevant_flag(flags, arch, expected) -> None:
    assert harness.cpu_class(harness.cpu_flags({"Flags": flags}), arch) == expected


def test_cpu_model_prefers_lscpu_then_falls_back() -> None:
    assert harness.cpu_model({"Model name": "AMD EPYC 7B13"}) == "AMD EPYC 7B13"
    assert harness.cpu_model({})  # /proc/cpuinfo or the platform: never empty


def test_this_machine_is_described_consistently() -> None:
    m = harness.machine()
    assert m.cpu_model and m.cores >= 1
    assert m.cpu_class == harness.cpu_class(m.flags)
    assert set(m.flags) <= set(harness.RELEVANT_FLAGS.values())
    assert "torch" in m.versions  # read from metadata, without importing it
    text = m.describe()
    assert m.cpu_model in text and m.cpu_class in text and f"{m.cores} cores" in text


def test_library_versions_skip_what_is_not_installed() -> None:
    versions = harness.library_versions(["torch", "surely-not-a-package-sod100k"])
    assert list(versions) == ["torch"]


def test_command_line_is_pasteable_from_the_repository_root() -> None:
    argv = [str(BENCHMARKS / "speed.py"), "--machine", "two words", "--runs", "3"]
    cmd = harness.command_line(argv)
    assert " benchmarks/speed.py --machine 'two words' --runs 3" in cmd


def test_median_ms_warms_up_then_takes_the_median_per_image() -> None:
    calls = []
    ms = harness.median_ms(lambda: calls.append(1), warmup=2, runs=5, per=4)
    assert len(calls) == 7
    assert ms >= 0
    with pytest.raises(ValueError, match="runs"):
        harness.median_ms(lambda: None, warmup=0, runs=0)
    assert len(harness.timed(lambda: None, warmup=1, runs=3)) == 3


def _worker_script(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "cell.py"
    head = (
        "import os, sys\n"
        f"sys.path.insert(0, {str(BENCHMARKS)!r})\n"
        "import harness\n"
        "cell = harness.worker_cell(sys.argv)\n"
    )
    script.write_text(head + body + "\n")
    return script


def test_each_cell_runs_in_its_own_process_with_its_own_environment(tmp_path: Path) -> None:
    script = _worker_script(
        tmp_path,
        'print("noise before the result")\n'
        'harness.emit({"pid": os.getpid(), "x": cell["x"], '
        '"env": os.environ.get("SOD100K_CELL_TEST"), "path": os.environ["PYTHONPATH"]})',
    )
    first = harness.run_cell(script, {"x": 1}, env={"SOD100K_CELL_TEST": "on"})
    second = harness.run_cell(script, {"x": 2})
    assert first["x"] == 1 and second["x"] == 2
    assert len({first["pid"], second["pid"], os.getpid()}) == 3
    assert first["env"] == "on" and second["env"] is None
    assert first["path"].split(os.pathsep)[0] == str(harness.ROOT / "src")


def test_a_failing_cell_raises_with_its_error(tmp_path: Path) -> None:
    script = _worker_script(tmp_path, 'raise SystemExit("cell exploded: " + str(cell["x"]))')
    with pytest.raises(RuntimeError, match="cell exploded: 7"):
        harness.run_cell(script, {"x": 7})


def test_worker_cell_is_none_in_the_parent() -> None:
    assert harness.worker_cell(["speed.py", "--runs", "3"]) is None
    assert harness.worker_cell(["speed.py", "--worker", '{"a": 1}']) == {"a": 1}


def test_results_carry_command_date_cpu_and_flags(tmp_path: Path) -> None:
    meta = harness.run_meta([str(BENCHMARKS / "speed.py"), "--runs", "3"])
    rows = [{"model": "x1", "eager": 112.14, "onnx": 3.456}, {"model": "x2"}]
    table = harness.markdown_table(["model", "eager", "onnx"], rows)
    js, md = harness.write_results(
        tmp_path / "out", "speed", meta, rows, table, intro="Median ms.", notes="A note."
    )
    data = json.loads(js.read_text())
    assert data["rows"] == rows
    assert data["meta"]["machine"]["cpu_class"] == harness.machine().cpu_class
    text = md.read_text()
    m = harness.machine()
    for part in (m.cpu_model, m.cpu_class, *m.flags, meta["date"], "benchmarks/speed.py --runs 3"):
        assert part in text
    assert "| x1 | 112.1 | 3.456 |" in text and "| x2 | – | – |" in text
    assert text.index("Median ms.") < text.index("Machine:") < text.index("| model")
    assert text.rstrip().endswith("A note.")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["speed.json", "speed.md"]


def test_parser_spells_the_common_options_alike() -> None:
    p = harness.parser(
        "Title line.\n\nMore text.", weights="../shared/weights", threads=[1, 2], timing=(1, 5)
    )
    args = p.parse_args(["--threads", "2", "--out", "x"])
    assert args.threads == [2] and args.out == Path("x") and args.runs == 5
    assert args.weights == Path("../shared/weights") and args.warmup == 1
    assert p.description == "Title line."
    single = harness.parser(None, threads=2).parse_args([])
    assert single.threads == 2 and single.out == harness.RESULTS
    assert not hasattr(harness.parser(None, threads=None).parse_args([]), "threads")


def test_markdown_table_takes_headers_for_keys() -> None:
    table = harness.markdown_table({"ms": "network ms"}, [{"ms": 5.0}])
    assert table.splitlines() == ["| network ms |", "|---|", "| 5 |"]
