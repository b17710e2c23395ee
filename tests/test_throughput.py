"""Throughput settings change the speed, never the output: same logits, same files, same
order and reports as the one-image-at-a-time path; ``--precision auto`` picks by CPU."""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from sod100k.cli import main
from sod100k.data.images import load_rgb
from sod100k.infer.backends import concurrency
from sod100k.infer.batch import encode_image, plan_jobs, run_batch
from sod100k.infer.predictor import Predictor
from sod100k.infer.preprocess import preprocess
from sod100k.infer.runtime import make_backend, resolve_precision
from sod100k.infer.video import predict_video
from test_video import make_clip

#: Names of the ECSSD images used; 0557 is stored as grayscale.
NAMES = ["0001", "0002", "0003", "0004", "0005", "0557"]


@pytest.fixture(scope="module")
def folder(ecssd, tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("in")
    for name in NAMES:
        shutil.copy(ecssd / "images" / f"{name}.jpg", src / f"{name}.jpg")
    (src / "0003b.jpg").write_bytes((src / "0003.jpg").read_bytes()[:300])  # truncated
    return src


@pytest.fixture(scope="module")
def latency(weights_x2) -> Predictor:
    """The one-image setting: one stream, all threads."""
    return Predictor(make_backend("openvino", None, str(weights_x2), threads=2, streams=1))


@pytest.fixture(scope="module")
def throughput(weights_x2) -> Predictor:
    """OpenVINO's throughput setting, as predict uses for folders and videos."""
    return Predictor(make_backend("openvino", None, str(weights_x2), streams=None))


def test_throughput_logits_are_the_same_bits(folder, latency, throughput) -> None:
    x = np.stack([preprocess(load_rgb(folder / f"{n}.jpg"), 224) for n in NAMES[:4]])
    reference = latency.backend(x)
    assert concurrency(throughput.backend, (1, 3, 224, 224)) >= 1
    one_by_one = [throughput.backend(x[i : i + 1]) for i in range(4)]
    np.testing.assert_array_equal(np.concatenate(one_by_one), reference)
    np.testing.assert_array_equal(throughput.backend(x), reference)


def test_folder_files_are_the_bytes_of_the_sequential_path(
    folder, latency, weights_x2, tmp_path, capsys
) -> None:
    out = tmp_path / "out"
    assert main(["predict", str(folder), "-o", str(out), "-w", str(weights_x2), "-q"]) == 1
    err = capsys.readouterr().err
    assert "0003b.jpg" in err and "truncated" in err
    assert sorted(p.name for p in out.iterdir()) == [f"{n}.png" for n in NAMES]
    for name in NAMES:  # the old way: one image at a time, latency setting
        rgb = load_rgb(folder / f"{name}.jpg")
        expected = encode_image(latency.predict_batch([rgb])[0], ".png")
        assert (out / f"{name}.png").read_bytes() == expected, name


@pytest.mark.parametrize(("batch", "streams"), [(1, None), (3, 2), (8, 1)])
def test_reports_come_in_job_order(folder, throughput, tmp_path, batch, streams) -> None:
    jobs, _ = plan_jobs([folder], tmp_path / "out")
    report = run_batch(jobs, throughput, batch, workers=2, progress=False, streams=streams)
    good = [j.dst for j in jobs if not j.src.name.startswith("0003b")]
    assert report.written == good
    assert [name for name, _ in report.failed] == [str(folder / "0003b.jpg")]


def test_video_masks_are_the_same_in_every_setting(tmp_path, latency, throughput, monkeypatch):
    # The masks handed to the encoder, not the decoded output: libx264's threads make its
    # bits vary from run to run even in one setting.
    from sod100k.infer import video

    masks: list[np.ndarray] = []
    monkeypatch.setattr(
        video, "make_frame_renderer", lambda *a: lambda rgb, sal: masks.append(sal) or sal
    )
    clip = make_clip(tmp_path / "clip.mp4", frames=9)
    predict_video(
        clip, tmp_path / "a.mp4", latency, "mask", batch_size=8, streams=1, progress=False
    )
    old, masks[:] = list(masks), []
    predict_video(
        clip, tmp_path / "b.mp4", throughput, "mask", batch_size=1, streams=None, progress=False
    )
    assert len(old) == len(masks) == 9
    for a, b in zip(old, masks, strict=True):
        np.testing.assert_array_equal(a, b)
    # audio packets travel between the batches in flight: all of them arrive
    with av.open(str(clip)) as src, av.open(str(tmp_path / "b.mp4")) as out:
        assert out.streams.audio[0].frames == src.streams.audio[0].frames > 0
        assert out.streams.video[0].frames == 9


@pytest.mark.parametrize(
    ("flags", "backend", "expected"),
    [
        ({"avx2", "avx512f", "amx_tile", "amx_bf16"}, "openvino", "bf16"),  # Xeon with AMX
        ({"avx2", "avx512f", "avx512_bf16"}, "openvino", "bf16"),  # AVX-512 BF16 only
        ({"avx2", "avx512f", "avx512_vnni"}, "openvino", "fp32"),  # no bf16 arithmetic
        ({"avx2", "fma"}, "openvino", "fp32"),  # AVX2-only EPYC
        (set(), "openvino", "fp32"),  # flags unknown (not Linux)
        ({"amx_bf16", "avx512_bf16"}, "onnx", "fp32"),  # no bf16 path in ONNX Runtime
    ],
)
def test_auto_precision_follows_the_cpu_flags(flags, backend, expected) -> None:
    assert resolve_precision("auto", backend, frozenset(flags)) == expected
    assert resolve_precision("fp32", backend, frozenset(flags)) == "fp32"


@pytest.mark.parametrize("flags", [{"amx_bf16"}, {"avx2"}])
def test_auto_precision_builds_what_it_resolves_to(flags, monkeypatch, weights_x1) -> None:
    from sod100k.infer import runtime

    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset(flags))
    backend = make_backend("openvino", None, str(weights_x1), threads=1, precision="auto")
    assert backend.precision == ("bf16" if "amx_bf16" in flags else "fp32")
    onnx = make_backend("onnx", None, str(weights_x1), threads=1, precision="auto")
    assert onnx.name == "onnx"  # auto never refuses a backend


def test_cli_offers_auto_and_keeps_fp32_the_default(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "{fp32,bf16,auto}" in text
    assert "fp32 (default: the same maps as torch, on every machine)" in text
