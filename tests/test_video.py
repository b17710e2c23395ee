"""Video prediction: frames streamed through the network into mask, rgba and overlay videos.

Clips are generated here with PyAV: a bright square moving over a dark, noisy background
(the salient object), optionally with a sine tone as audio.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from sod100k.cli import main
from sod100k.cli import predict as predict_cli
from sod100k.infer.predictor import Predictor
from sod100k.infer.runtime import make_backend
from sod100k.infer.video import VideoError, predict_video, video_output_path

FPS = 10


def square_frame(i: int, width: int = 64, height: int = 48) -> np.ndarray:
    rng = np.random.default_rng(i)
    img = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
    x = 3 * i % (width - 20)
    img[height // 4 : height // 4 + 20, x : x + 20] = (235, 200, 40)
    return img


def make_clip(
    path: Path,
    frames: int = 12,
    width: int = 64,
    height: int = 48,
    audio: bool = True,
    codec: str = "libx264",
    faststart: bool = False,
) -> Path:
    """Write a test clip; H.264 (+ AAC audio) in MP4 unless told otherwise."""
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as out:
        video = out.add_stream(codec, rate=FPS)
        video.width, video.height = width, height
        video.pix_fmt = "yuv420p" if codec == "libx264" else "bgr0"
        if audio:
            sound = out.add_stream("aac", rate=16000)
            sound.layout = "mono"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(square_frame(i, width, height), format="rgb24")
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if audio:
            t = np.arange(16000 * frames // FPS) / 16000
            tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
            for k in range(0, tone.shape[1], 1024):
                chunk = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(tone[:, k : k + 1024]), format="fltp", layout="mono"
                )
                chunk.sample_rate, chunk.pts = 16000, k
                out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))
    return path


def read_frames(path: Path, fmt: str, decoder: str | None = None) -> list[np.ndarray]:
    """Every video frame of ``path`` as ``fmt`` arrays (``decoder``: a codec by name)."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        ctx = av.CodecContext.create(decoder, "r") if decoder else stream.codec_context
        frames = []
        for packet in c.demux(stream):
            if packet.size == 0:
                continue
            frames += [f.to_ndarray(format=fmt) for f in ctx.decode(packet)]
        frames += [f.to_ndarray(format=fmt) for f in ctx.decode(None)]
    return frames


def streams(path: Path) -> dict[str, str]:
    with av.open(str(path)) as c:
        return {s.type: s.codec_context.name for s in c.streams}


@pytest.fixture(scope="module")
def predictor(weights_x1) -> Predictor:
    return Predictor(make_backend("auto", "csnet-l-x1", str(weights_x1), threads=2))


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "clip.mp4")


def test_mask_video_keeps_frames_timing_and_audio_and_matches_the_image_predictor(
    tmp_path, clip, predictor
):
    dst = tmp_path / "clip.mp4"
    report = predict_video(clip, dst, predictor, "mask", batch_size=5, progress=False)
    assert (report.frames, report.audio, report.dst) == (12, "copied", dst)
    assert report.fps > 0
    assert streams(dst) == {"video": "h264", "audio": "aac"}
    with av.open(str(clip)) as a, av.open(str(dst)) as b:
        assert b.streams.video[0].frames == 12
        assert abs(a.duration - b.duration) <= 1_000_000 / FPS
        assert b.streams.audio[0].frames == a.streams.audio[0].frames
    inputs, masks = read_frames(clip, "rgb24"), read_frames(dst, "gray")
    assert len(masks) == 12
    assert masks[0].shape == (48, 64)
    expected = predictor.predict_batch(inputs)
    for i, mask in enumerate(masks):
        # H.264 is lossy: close to the map of the same frame, far from the other frames'.
        err = [np.abs(mask.astype(float) - e).mean() for e in expected]
        assert err[i] < 6, (i, err[i])
        assert int(np.argmin(err)) == i
    square = np.zeros((48, 64), bool)
    square[12:32, 0:20] = True
    assert masks[0][square].mean() > masks[0][~square].mean() + 60


def test_rgba_video_is_vp9_webm_with_an_alpha_plane_and_opus_audio(tmp_path, clip, predictor):
    dst = tmp_path / "clip.webm"
    report = predict_video(clip, dst, predictor, "rgba", progress=False)
    assert report.audio == "re-encoded from aac to libopus"
    assert streams(dst) == {"video": "vp9", "audio": "opus"}
    # FFmpeg's own VP9 decoder drops the alpha plane; libvpx's reads it.
    frames = read_frames(dst, "rgba", decoder="libvpx-vp9")
    assert len(frames) == 12
    alpha = frames[0][..., 3]
    square = np.zeros((48, 64), bool)
    square[12:32, 0:20] = True
    assert alpha[square].mean() > 150 > 60 > alpha[~square].mean()
    np.testing.assert_allclose(
        frames[0][..., :3][square].mean(0), (235, 200, 40), atol=12
    )  # the colours are the input's


def test_rgba_threshold_gives_hard_alpha(tmp_path, clip, predictor):
    dst = tmp_path / "hard.webm"
    predict_video(clip, dst, predictor, "rgba", threshold=128, progress=False)
    alpha = read_frames(dst, "rgba", decoder="libvpx-vp9")[3][..., 3]
    # VP9 is lossy; a hard matte decodes to (nearly) only the two extremes.
    assert ((alpha < 16) | (alpha > 239)).mean() > 0.97


def test_overlay_video_and_odd_sizes_padded_to_even(tmp_path, predictor):
    src = make_clip(tmp_path / "odd.mkv", frames=4, width=63, height=47, codec="ffv1", audio=False)
    dst = tmp_path / "out" / "odd.mp4"
    report = predict_video(src, dst, predictor, "overlay", progress=False)
    assert (report.frames, report.audio) == (4, "none")
    assert streams(dst) == {"video": "h264"}
    frames = read_frames(dst, "rgb24")
    assert len(frames) == 4
    assert frames[0].shape == (48, 64, 3)


def test_truncated_and_unreadable_videos_fail_in_one_line_and_leave_nothing(tmp_path, predictor):
    whole = make_clip(tmp_path / "whole.mp4", faststart=True)
    data = whole.read_bytes()
    cut_index = tmp_path / "cut_index.mp4"  # index at the front, frames cut off
    cut_index.write_bytes(data[: len(data) // 2])
    plain = make_clip(tmp_path / "plain.mp4")
    no_index = tmp_path / "no_index.mp4"  # index at the end, cut off with it
    no_index.write_bytes(plain.read_bytes()[: plain.stat().st_size // 2])
    mkv = make_clip(tmp_path / "whole.mkv", codec="ffv1", audio=False)
    cut_mkv = tmp_path / "cut.mkv"  # no frame count in Matroska: its recorded length
    cut_mkv.write_bytes(mkv.read_bytes()[: mkv.stat().st_size * 6 // 10])
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    out = tmp_path / "out"
    expected = {
        cut_index: "truncated or damaged: 6 of 12 video frames present",
        no_index: "cannot read as a video",
        cut_mkv: "truncated or damaged: video ends at",
        text: "cannot read as a video",
    }
    for src, message in expected.items():
        with pytest.raises(VideoError) as info:
            predict_video(src, out / "x.mp4", predictor, progress=False)
        assert str(info.value).startswith(f"{src}: ")
        assert message in str(info.value)
        assert "\n" not in str(info.value)
    assert not out.exists() or list(out.iterdir()) == []


def test_cli_writes_good_videos_skips_bad_ones_and_never_overwrites_an_input(
    tmp_path, clip, weights_x1, capsys
):
    bad = tmp_path / "bad.webm"
    bad.write_bytes(b"\x1a\x45\xdf\xa3 truncated")
    out = tmp_path / "out"
    argv = ["predict", str(clip), str(bad), "-o", str(out), "-w", str(weights_x1)]
    code = main([*argv, "-m", "csnet-l-x1", "-q", "-f", "overlay", "--batch-size", "4"])
    err = capsys.readouterr().err
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["clip.mp4"]
    assert "12 frames" in err and "fps" in err
    assert f"error: {bad}: cannot read as a video" in err
    assert "1 item(s) failed" in err
    assert video_output_path(clip, out, "rgba") == out / "clip.webm"
    # -o the input's own folder: mask/overlay would be written over clip.mp4 itself.
    before = clip.read_bytes()
    code = main(["predict", str(clip), "-o", str(clip.parent), "-w", str(weights_x1), "-q"])
    assert code == 1
    assert "would overwrite an input" in capsys.readouterr().err
    assert clip.read_bytes() == before


@pytest.mark.parametrize(
    ("output", "fmt", "why"),
    [
        ("afile/out", "mask", "afile is not a folder"),  # a regular file in the way
        ("ro", "mask", "Permission denied"),  # a read-only folder (injected: CI is root)
        ("ro/sub", "rgba", "Permission denied"),  # below one
    ],
)
def test_cli_refuses_an_unwritable_video_output_before_decoding(
    tmp_path, clip, weights_x1, capsys, monkeypatch, deny_writes, output, fmt, why
):
    monkeypatch.chdir(tmp_path)
    Path("afile").write_text("a file, not a folder")
    Path("ro").mkdir()
    deny_writes(Path("ro"))

    def no_model(_args):
        raise AssertionError("the model was loaded for outputs that cannot be written")

    monkeypatch.setattr(predict_cli, "_load_predictor", no_model)
    code = main(["predict", str(clip), "-o", output, "-f", fmt, "-w", str(weights_x1), "-q"])
    assert code == 1
    line = f"{output}: cannot write here ({why}); 1 video(s) not processed"
    assert capsys.readouterr().err.splitlines() == [
        f"error: {line}",
        "1 item(s) failed:",
        f"  {line}",
    ]
    assert not list(Path("ro").iterdir())


def test_a_write_error_while_writing_a_video_is_one_line(tmp_path, clip, predictor, deny_writes):
    """Past the check (the folder went read-only since, the disk filled): a VideoError
    naming the output, not a traceback."""
    deny_writes(tmp_path)
    with pytest.raises(VideoError, match=rf"^{tmp_path}/clip.mp4: cannot write the video "
                       r"\(Permission denied\)$"):  # fmt: skip
        predict_video(clip, tmp_path / "clip.mp4", predictor, progress=False)
    assert not list(tmp_path.iterdir())
