"""Video in, video out: a saliency mask, a cut-out with alpha or an overlay for every frame.

Frames stream through three stages that overlap, joined by bounded queues so memory
stays flat however long the clip: a reader thread demuxes and decodes (PyAV, which
bundles FFmpeg) and resizes each frame for the network; the calling thread runs the
network on batches of frames; a writer thread turns logits into output frames, encodes
and muxes them. Audio packets travel through the same queues in file order, so the
output interleaves as the input did.

Outputs (one file per input, written to a temporary file in the output folder and
renamed at the end, so a failed or interrupted run leaves nothing behind):

* ``mask``: grey saliency map, H.264 in MP4;
* ``overlay``: the frame tinted where salient, H.264 in MP4;
* ``rgba``: the frame with the (edge-refined) map as alpha, VP9 with an alpha plane
  (``yuva420p``) in WebM, the one widely played video format with transparency.

Audio is copied unchanged when the output container accepts its codec (AAC, MP3, Opus,
... in MP4; Opus or Vorbis in WebM), else re-encoded (AAC in MP4, Opus in WebM).
"""

from __future__ import annotations

import math
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from tqdm import tqdm

from sod100k.infer.backends import concurrency
from sod100k.infer.cutout import alpha_matte, cutout_rgba, overlay_rgb
from sod100k.infer.predictor import Predictor
from sod100k.infer.preprocess import preprocess
from sod100k.utils.files import atomic_path

#: Input suffixes ``sod100k predict`` treats as videos.
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".flv")

#: Shorter side (pixels) of the grid the rgba alpha refinement is solved on, at most.
REFINE_SIDE = 180


class VideoError(ValueError):
    """A video that cannot be read or written; the message names the file."""


@dataclass(frozen=True)
class OutputSpec:
    """How one ``--format`` is encoded."""

    suffix: str
    container: str
    codec: str
    pix_fmt: str
    #: PyAV ndarray format of the rendered frames.
    frame_format: str
    options: dict[str, str]
    #: Audio codecs the container takes as they are.
    audio_copy: frozenset[str]
    audio_encoder: str
    audio_rate: int | None = None
    container_options: dict[str, str] = field(default_factory=dict)


_H264 = {
    "codec": "libx264",
    "pix_fmt": "yuv420p",
    "options": {"preset": "veryfast", "crf": "18"},
    "audio_copy": frozenset({"aac", "mp3", "mp2", "ac3", "eac3", "alac", "flac", "opus"}),
    "audio_encoder": "aac",
    "container_options": {"movflags": "+faststart"},  # playable while downloading
}

#: ``--format`` -> output encoding.
OUTPUTS: dict[str, OutputSpec] = {
    "mask": OutputSpec(".mp4", "mp4", frame_format="gray", **_H264),
    "overlay": OutputSpec(".mp4", "mp4", frame_format="rgb24", **_H264),
    "rgba": OutputSpec(
        ".webm",
        "webm",
        codec="libvpx-vp9",
        pix_fmt="yuva420p",
        frame_format="rgba",
        # libvpx's real-time mode: its 'good' mode measured 5x slower at 640x360.
        options={"deadline": "realtime", "cpu-used": "8", "row-mt": "1", "crf": "30", "b": "0"},
        audio_copy=frozenset({"opus", "vorbis"}),
        audio_encoder="libopus",
        audio_rate=48000,
    ),
}


@dataclass(frozen=True)
class VideoReport:
    """What :func:`predict_video` did."""

    src: Path
    dst: Path
    frames: int
    seconds: float
    #: ``copied``, ``re-encoded from <codec> to <codec>`` or ``none``.
    audio: str

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else math.inf

    def summary(self) -> str:
        return (
            f"{self.src} -> {self.dst}: {self.frames} frames in {self.seconds:.1f} s "
            f"({self.fps:.1f} fps), audio {self.audio}"
        )


def is_video(path: str | Path) -> bool:
    """Whether ``path`` names a video by its suffix (see :data:`VIDEO_SUFFIXES`)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def video_output_path(src: str | Path, out_dir: str | Path | None, fmt: str) -> Path:
    """``out_dir/<stem>.mp4`` (mask, overlay) or ``out_dir/<stem>.webm`` (rgba).

    Without ``out_dir`` the output goes beside the input as ``<stem>.<fmt>.mp4`` (or
    ``.webm``), the same naming as an image's output beside it.
    """
    src = Path(src)
    if out_dir is None:
        return src.with_name(f"{src.stem}.{fmt}{OUTPUTS[fmt].suffix}")
    return Path(out_dir) / (src.stem + OUTPUTS[fmt].suffix)


def make_frame_renderer(
    fmt: str, threshold: int | None = None
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``render(rgb, saliency_map) -> output frame`` for ``--format fmt``.

    The rgba alpha is refined with the fast guided filter on a grid of at most
    :data:`REFINE_SIDE` pixels on the shorter side (the full-resolution filter costs
    tens of milliseconds per 640x360 frame, more than the network).
    """
    if fmt == "mask":
        return lambda rgb, sal: sal
    if fmt == "overlay":
        return overlay_rgb
    if fmt == "rgba":

        def render(rgb: np.ndarray, sal: np.ndarray) -> np.ndarray:
            subsample = max(1, round(min(sal.shape) / REFINE_SIDE))
            return cutout_rgba(rgb, alpha_matte(rgb, sal, threshold, subsample=subsample))

        return render
    raise ValueError(f"unknown video format {fmt!r}; choose from {', '.join(OUTPUTS)}")


def predict_video(
    src: str | Path,
    dst: str | Path,
    predictor: Predictor,
    fmt: str = "mask",
    *,
    threshold: int | None = None,
    batch_size: int = 8,
    streams: int | None = None,
    progress: bool = True,
) -> VideoReport:
    """Write the ``fmt`` video of ``src`` to ``dst``, streaming frame batches.

    Args:
        src: input video (anything FFmpeg reads).
        dst: output path; written atomically (a temporary file beside it, renamed at
            the end), so on any error nothing is left there.
        predictor: the network and its input size.
        fmt: ``mask``, ``rgba`` or ``overlay`` (see :data:`OUTPUTS`).
        threshold: rgba only: hard alpha, 255 where the refined map is at least this.
        batch_size: frames per network call; about ``(3 + streams) * batch_size``
            decoded frames are in memory at once.
        streams: batches in the network at once; ``None``: as many as the backend runs
            best at once (:func:`~sod100k.infer.backends.concurrency`).
        progress: show a progress bar (frames) on stderr.

    Returns:
        A :class:`VideoReport` with the frame count, time and frames per second.

    Raises:
        VideoError: ``src`` is not a readable video, is truncated or damaged, or the
            output cannot be encoded; the message names the file.
    """
    src, dst = Path(src), Path(dst)
    spec = OUTPUTS[fmt]
    render = make_frame_renderer(fmt, threshold)
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if streams is None:
        streams = concurrency(predictor.backend, (batch_size, 3, predictor.size, predictor.size))
    try:
        inp = av.open(str(src))
    except (av.FFmpegError, OSError) as e:
        raise VideoError(f"{src}: cannot read as a video: {_reason(e)}") from e
    with inp:
        if not inp.streams.video:
            raise VideoError(f"{src}: no video stream")
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        if not vin.codec_context.width or not vin.codec_context.height:
            raise VideoError(f"{src}: video stream has no frame size")
        ain = inp.streams.audio[0] if inp.streams.audio else None
        start = time.perf_counter()
        try:
            with (
                atomic_path(dst) as tmp,
                av.open(
                    str(tmp), "w", format=spec.container, options=spec.container_options
                ) as out,
            ):
                frames, audio = _Pipeline(
                    src, dst, inp, vin, ain, out, spec, predictor, render, batch_size,
                    max(1, streams), progress,
                ).run()  # fmt: skip
        except av.FFmpegError as e:
            raise VideoError(f"{dst}: cannot write the video: {_reason(e)}") from e
        except OSError as e:  # the output folder: permissions, a file in the way, space
            raise VideoError(f"{dst}: cannot write the video ({e.strerror or e})") from e
        return VideoReport(src, dst, frames, time.perf_counter() - start, audio)


@dataclass
class VideoBatchReport:
    """Outcome of :func:`predict_videos`: videos written and ``(input, error)`` pairs."""

    written: list[VideoReport] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def predict_videos(
    inputs: Sequence[str | Path],
    out_dir: str | Path | None,
    predictor: Predictor,
    fmt: str = "mask",
    *,
    threshold: int | None = None,
    batch_size: int = 8,
    streams: int | None = None,
    progress: bool = True,
    taken: Iterable[str | Path] = (),
) -> VideoBatchReport:
    """Run :func:`predict_video` on each input into ``out_dir``; a bad one is skipped.

    Each result or error is printed to stderr as it happens, one line per video.

    Args:
        inputs: video files.
        out_dir: output folder, or None for beside each input (see
            :func:`video_output_path` for the names).
        predictor, fmt, threshold, batch_size, streams, progress: as in
            :func:`predict_video`.
        taken: other paths no output may overwrite (for instance the command's other
            inputs).

    Returns:
        A :class:`VideoBatchReport`.
    """
    report = VideoBatchReport()
    protected = {Path(p).resolve() for p in [*inputs, *taken]}
    seen: dict[Path, Path] = {}
    for raw in inputs:
        src = Path(raw)
        dst = video_output_path(src, out_dir, fmt)
        if dst.resolve() in protected:
            message = f"output {dst} would overwrite an input; choose another --output"
        elif dst.resolve() in seen:
            message = f"output {dst} already taken by {seen[dst.resolve()]}"
        elif not src.is_file():
            message = "no such file"
        else:
            seen[dst.resolve()] = src
            try:
                done = predict_video(
                    src,
                    dst,
                    predictor,
                    fmt,
                    threshold=threshold,
                    batch_size=batch_size,
                    streams=streams,
                    progress=progress,
                )
            except VideoError as e:
                message = str(e)
            else:
                report.written.append(done)
                print(done.summary(), file=sys.stderr)
                continue
        report.failed.append((str(src), message))
        line = message if message.startswith(str(src)) else f"{src}: {message}"
        print(f"error: {line}", file=sys.stderr)
    return report


def _reason(e: BaseException) -> str:
    """FFmpeg's message without the file name PyAV appends."""
    if isinstance(e, av.FFmpegError) and e.strerror:
        return e.strerror[0].lower() + e.strerror[1:]
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


_END = object()


@dataclass
class _Frame:
    pts: int | None
    time_base: Fraction | None
    rgb: np.ndarray
    #: Network input, then (after the network) its logits.
    tensor: np.ndarray


class _Aborted(Exception):
    """Raised inside a stage when another stage failed."""


class _Pipeline:
    """The three stages of :func:`predict_video` and the queues between them."""

    def __init__(
        self,
        src: Path,
        dst: Path,
        inp: Any,
        vin: Any,
        ain: Any,
        out: Any,
        spec: OutputSpec,
        predictor: Predictor,
        render: Callable[[np.ndarray, np.ndarray], np.ndarray],
        batch_size: int,
        streams: int,
        progress: bool,
    ) -> None:
        self.src, self.dst = src, dst
        self.inp, self.vin, self.ain, self.out = inp, vin, ain, out
        self.spec = spec
        self.predictor = predictor
        self.render = render
        self.batch_size = batch_size
        self.streams = streams
        # Enough decoded frames to fill every stream's next batch while the network runs.
        self.decoded: queue.Queue = queue.Queue(maxsize=batch_size * streams + 2)
        self.inferred: queue.Queue = queue.Queue(maxsize=batch_size + 2)
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.written = 0
        self.vout = self._video_stream()
        self.aout, self.audio = self._audio_stream()
        self.progress = progress

    def _video_stream(self) -> Any:
        vin, spec = self.vin, self.spec
        rate = vin.average_rate or vin.guessed_rate or Fraction(25)
        vout = self.out.add_stream(spec.codec, rate=rate, options=dict(spec.options))
        width, height = vin.codec_context.width, vin.codec_context.height
        if spec.pix_fmt.startswith("yuv"):  # 4:2:0 wants even sides; the edge is repeated
            width, height = width + width % 2, height + height % 2
        vout.width, vout.height, vout.pix_fmt = width, height, spec.pix_fmt
        # Keep the input's clock, so frame timing (and sync with the audio) is kept even
        # when the frame rate varies.
        if vin.time_base:
            vout.codec_context.time_base = vin.time_base
        return vout

    def _audio_stream(self) -> tuple[Any, str]:
        ain, spec = self.ain, self.spec
        if ain is None:
            return None, "none"
        name = ain.codec_context.name
        if name in spec.audio_copy:
            return self.out.add_stream_from_template(ain), "copied"
        rate = spec.audio_rate or ain.codec_context.sample_rate or 48000
        aout = self.out.add_stream(spec.audio_encoder, rate=rate)
        aout.layout = "mono" if ain.codec_context.layout.nb_channels == 1 else "stereo"
        return aout, f"re-encoded from {name} to {aout.codec_context.name}"

    # -- the stages -----------------------------------------------------------------

    def run(self) -> tuple[int, str]:
        self.bar = tqdm(
            total=self.vin.frames or None,
            unit="frame",
            desc=self.src.name,
            disable=not self.progress,
            dynamic_ncols=True,
            file=sys.stderr,
        )
        reader = threading.Thread(target=self._guard(self._read), name="sod-video-read")
        writer = threading.Thread(target=self._guard(self._write), name="sod-video-write")
        reader.daemon = writer.daemon = True
        reader.start()
        writer.start()
        try:
            self._guard(self._infer)()
        finally:
            if self.errors:
                self.stop.set()
            reader.join()
            writer.join()
            self.bar.close()
        if self.errors:
            raise self.errors[0]
        return self.written, self.audio

    def _guard(self, stage: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                stage()
            except _Aborted:
                pass
            except BaseException as e:
                self.errors.append(e)
                self.stop.set()

        return run

    def _put(self, q: queue.Queue, item: object) -> None:
        while True:
            if self.stop.is_set():
                raise _Aborted
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                pass

    def _get(self, q: queue.Queue) -> Any:
        while True:
            if self.stop.is_set():
                raise _Aborted
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                pass

    def _read(self) -> None:
        """Demux; decode and resize video frames; pass audio packets on untouched."""
        streams = [self.vin] if self.ain is None else [self.vin, self.ain]
        packets = frames = 0
        end = 0.0  # seconds: where the last decoded frame ends
        period = 1 / float(self.vin.average_rate or self.vin.guessed_rate or 25)
        size = self.predictor.size
        try:
            for packet in self.inp.demux(streams):
                if packet.stream is self.ain:
                    if packet.size:
                        self._put(self.decoded, packet)
                    continue
                packets += packet.size > 0
                for frame in packet.decode():
                    rgb = frame.to_ndarray(format="rgb24")
                    self._put(
                        self.decoded, _Frame(frame.pts, frame.time_base, rgb, preprocess(rgb, size))
                    )
                    frames += 1
                    if frame.pts is not None and frame.time_base:
                        end = max(end, float(frame.pts * frame.time_base) + period)
        except av.FFmpegError as e:
            raise VideoError(
                f"{self.src}: damaged video, cannot decode after frame {frames}: {_reason(e)}"
            ) from e
        declared = self.vin.frames
        if declared and packets < declared:
            raise VideoError(
                f"{self.src}: truncated or damaged: {packets} of {declared} video frames present"
            )
        length = _track_seconds(self.vin) if not declared else None
        if length is not None and end < length - max(3 * period, 0.25):
            raise VideoError(
                f"{self.src}: truncated or damaged: video ends at {end:.2f} s of {length:.2f} s"
            )
        if not frames:
            raise VideoError(f"{self.src}: no video frame could be decoded")
        self._put(self.decoded, _END)

    def _infer(self) -> None:
        """Batch frames through the network, up to ``streams`` batches at once; frames and
        audio packets leave in the order they came."""
        # Each entry: the batch's logits (a future), its frames, and every item from its
        # first frame on (frames and audio packets), in file order.
        running: deque[tuple[Future, list[_Frame], list[Any]]] = deque()
        pending: list[Any] = []
        batch: list[_Frame] = []
        with ThreadPoolExecutor(self.streams, thread_name_prefix="sod-video-infer") as network:
            while True:
                try:
                    item = self.decoded.get(timeout=0.01 if running else 0.1)
                except queue.Empty:
                    if self.stop.is_set():
                        raise _Aborted from None
                    self._pass_on(running, keep=len(running))  # finished batches only
                    continue
                if item is not _END:
                    pending.append(item)
                    if isinstance(item, _Frame):
                        batch.append(item)
                if batch and (len(batch) == self.batch_size or item is _END):
                    # A short last batch is padded: one shape means one compiled network.
                    tensors = [f.tensor for f in batch]
                    tensors += tensors[-1:] * (self.batch_size - len(batch))
                    logits = network.submit(self.predictor.backend, np.stack(tensors))
                    running.append((logits, batch, pending))
                    batch, pending = [], []
                elif not batch and pending:  # audio, and no frame waiting for the network
                    if running:  # it follows the batches in flight
                        running[-1][2].extend(pending)
                    else:
                        for p in pending:
                            self._put(self.inferred, p)
                    pending = []
                self._pass_on(running, keep=0 if item is _END else self.streams)
                if item is _END:
                    self._put(self.inferred, _END)
                    return

    def _pass_on(self, running: deque, keep: int) -> None:
        """Hand finished batches (in order) to the writer, and wait for the oldest ones
        while more than ``keep`` are in flight."""
        while running and (len(running) > keep or running[0][0].done()):
            logits, frames, items = running.popleft()
            for frame, lg in zip(frames, logits.result(), strict=False):
                frame.tensor = lg
            for item in items:
                self._put(self.inferred, item)

    def _write(self) -> None:
        """Render, encode and mux; audio copied or re-encoded; encoders flushed at the end."""
        tb = self.vout.codec_context.time_base
        step = max(1, round(1 / (self.vout.average_rate * tb)))
        last_pts: int | None = None
        while (item := self._get(self.inferred)) is not _END:
            if isinstance(item, _Frame):
                h, w = item.rgb.shape[:2]
                image = self.render(item.rgb, self.predictor.to_map(item.tensor, h, w))
                frame = av.VideoFrame.from_ndarray(_even(image, self.vout), self.spec.frame_format)
                if item.pts is not None and item.time_base:
                    pts = round(item.pts * item.time_base / tb)
                else:
                    pts = 0 if last_pts is None else last_pts + step
                if last_pts is not None:  # encoders want strictly increasing stamps
                    pts = max(pts, last_pts + 1)
                frame.pts, frame.time_base, last_pts = pts, tb, pts
                self._mux(self.vout.encode(frame))
                self.written += 1
                self.bar.update(1)
            elif self.audio == "copied":
                item.stream = self.aout
                self.out.mux(item)
            else:
                for decoded in item.decode():
                    decoded.pts = None  # the encoder counts samples
                    self._mux(self.aout.encode(decoded))
        self._mux(self.vout.encode(None))
        if self.aout is not None and self.audio != "copied":
            self._mux(self.aout.encode(None))

    def _mux(self, packets: list) -> None:
        for p in packets:
            self.out.mux(p)


def _track_seconds(stream: Any) -> float | None:
    """The length a Matroska/WebM muxer recorded for ``stream`` (its ``DURATION`` tag,
    ``HH:MM:SS.nnnnnnnnn``, written when the file was finalised), else ``None``.

    Only this tag is trusted: other containers' stream durations can be estimates (from
    the bit rate, in MPEG-TS), which would flag good files as truncated.
    """
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    try:
        h, m, sec = tag.split(":")
        return int(h) * 3600 + int(m) * 60 + float(sec)
    except (AttributeError, ValueError):
        return None


def _even(image: np.ndarray, stream: Any) -> np.ndarray:
    """Pad ``image`` by repeating its last row/column up to the stream's (even) size."""
    dh, dw = stream.height - image.shape[0], stream.width - image.shape[1]
    if dh == dw == 0:
        return image
    pad = [(0, dh), (0, dw)] + [(0, 0)] * (image.ndim - 2)
    return np.pad(image, pad, mode="edge")
