"""``sod100k predict`` and ``sod100k cutout``: saliency maps and cut-outs for images and videos.

One file, several files, folders, glob patterns or standard input in; one file, a folder,
files beside the inputs or standard output out (see :mod:`sod100k.infer.inputs` for the
rules). Video files named on the command line are streamed frame by frame into one video
each (:mod:`sod100k.infer.video`). Everything the user can get wrong is refused before the
model is loaded.
"""

from __future__ import annotations

import argparse
import functools
import sys
import textwrap
from pathlib import Path

from sod100k.cli import ray_predict
from sod100k.cli.common import (
    CLIError,
    Failures,
    add_model_args,
    add_runtime_args,
    backend_from_args,
    batch_size,
    check_device,
    positive,
)
from sod100k.data.images import IMAGE_SUFFIXES
from sod100k.infer.batch import RENDERERS, Renderer, render_rgba, run_batch
from sod100k.infer.inputs import (
    Destination,
    Plan,
    PlanError,
    check_writable,
    classify_inputs,
    plan_run,
    resolve_output,
    split_writable,
)
from sod100k.infer.predictor import Predictor
from sod100k.infer.video import VIDEO_SUFFIXES, is_video, predict_videos, video_output_path

EXIT_CODES = """\
exit status:
  0    every input was written (or kept, with --skip-existing)
  1    some inputs failed (each is listed at the end; the others were written)
  2    usage error: a bad option, inputs and -o that cannot go together, an output name
       the format cannot be written as, unusable weights; nothing was written
  130  interrupted (Ctrl-C); the outputs already written are complete"""

FORMS = """\
forms:
  {cmd} photo.jpg                 photo.{fmt}.png beside the input
  {cmd} photo.jpg -o out.png      one file{webp}
  {cmd} a.jpg b.png -o maps       maps/a.png, maps/b.png
  {cmd} photos                    photos_{fmt}/ beside the folder, sub-folders mirrored
  {cmd} photos -o maps            maps/, sub-folders mirrored
  {cmd} 'shots/**/*.jpg' -o maps  a quoted glob, expanded here (** recurses)
  {cmd} - < photo.jpg > out.png   standard input to standard output (PNG)
  {cmd} photo.jpg -o -            standard output
  {cmd} clip.mp4 -o out           out/clip.mp4 (mask, overlay) or out/clip.webm (rgba)
  {cmd} clip.mp4                  clip.{fmt}.mp4 / .webm beside the input

-o names a FILE when the input is one file (or -) and the name has an image suffix, and
a FOLDER otherwise (created if needed). Outputs never replace an input, and files under
the output folder are never read as inputs. Folders and globs take the files ending in
{suffixes};
other files there are listed as skipped. A file named on the command line is always
tried. Progress and messages go to standard error only."""


def add_parser(sub) -> argparse.ArgumentParser:
    """Register ``sod100k predict`` on the sub-command parsers ``sub``."""
    return _add_parser(sub, "predict", fmt=None)


def add_cutout_parser(sub) -> argparse.ArgumentParser:
    """Register ``sod100k cutout`` (``predict`` with ``--format rgba``) on ``sub``."""
    return _add_parser(sub, "cutout", fmt="rgba")


def _add_parser(sub, name: str, fmt: str | None) -> argparse.ArgumentParser:
    shown = fmt or "mask"
    if fmt is None:
        summary = "saliency maps, cut-outs or overlays for images, folders and pipes"
        description = (
            "Write one image per input image, at the input's size: a grey saliency map\n"
            "(--format mask, the default), a cut-out with a soft, edge-refined alpha\n"
            "(--format rgba), or the image tinted where salient (--format overlay)."
        )
        webp = " (.png; .webp with --format rgba; .jpg with overlay)"
    else:
        summary = "cut-outs (background removed) for images, folders and pipes"
        description = (
            "Remove the background: write each input image with a soft, edge-refined\n"
            "alpha (transparent background). The same as 'sod100k predict --format rgba'."
        )
        webp = " (.png, or .webp: lossless WebP with alpha)"
    suffixes = textwrap.fill(" ".join(IMAGE_SUFFIXES), width=88)
    epilog = FORMS.format(cmd=f"sod100k {name}", fmt=shown, webp=webp, suffixes=suffixes)
    p = sub.add_parser(
        name,
        help=summary,
        description=description,
        epilog=epilog + "\n\n" + EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="image file, folder (searched recursively), glob pattern, - for standard input, "
        f"or video file ({', '.join(VIDEO_SUFFIXES)})",
    )
    p.add_argument(
        "--output",
        "-o",
        default=None,
        metavar="PATH",
        help="output file (one input, image suffix), folder, or - for standard output; "
        f"default: beside each input (<stem>.{shown}.png, <folder>_{shown}/)",
    )
    if fmt is None:
        p.add_argument(
            "--format",
            "-f",
            choices=sorted(RENDERERS),
            default="mask",
            help="mask: grey saliency map (.png); rgba: cut-out with soft alpha (.png or "
            ".webp); overlay: image tinted where salient (.png or .jpg); default %(default)s",
        )
    else:
        p.set_defaults(format=fmt)
    p.add_argument(
        "--threshold",
        type=int,
        default=None,
        metavar="0-255",
        help=("" if fmt else "rgba only: ") + "hard alpha: opaque where the map >= this",
    )
    p.add_argument(
        "--skip-existing",
        action="store_true",
        help="keep outputs that already exist and compute only the missing ones (resumes an "
        "interrupted run: outputs are written atomically, so an existing one is complete)",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    g = p.add_argument_group("throughput")
    g.add_argument(
        "--workers",
        type=int,
        default=2,
        help="decode threads, and as many encode/write threads (default 2)",
    )
    g.add_argument(
        "--streams",
        type=int,
        default=None,
        help="network calls in flight at once (default: for folders and videos, OpenVINO's "
        "throughput setting, one single-threaded stream per core; for one image, 1: all "
        "threads on it, the lowest latency); OpenVINO shares --threads between its streams",
    )
    add_model_args(p)
    add_runtime_args(p)
    ray_predict.add_ray_args(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Plan and check the whole run, then load the model and write every output.

    Args:
        args: the parsed ``predict``/``cutout`` options.

    Returns:
        0 when every input was written (or kept), 1 when some failed.

    Raises:
        CLIError: a usage error (exit status 2), found before the model is loaded.
    """
    render = _check_options(args)
    videos = [p for p in args.inputs if is_video(p) and Path(p).is_file()]
    images = [p for p in args.inputs if p not in videos]
    if videos and args.output == "-":
        raise CLIError("a video cannot be written to standard output; give -o FOLDER")
    if args.ray is not None:
        ray_predict.check_ray_options(args, videos)
        if ray_predict.uses_uris(args):
            return ray_predict.run_uris(args, render)
    failures = Failures()
    jobs: list = []
    plan = dest = None
    if images or not videos:
        inputs = classify_inputs(images)
        try:
            dest = resolve_output(inputs, args.output, args.format)
            if dest.kind == "stdout" and sys.stdout.isatty():
                raise PlanError(
                    "refusing to write PNG data to a terminal: redirect standard output "
                    "(> out.png) or give -o"
                )
            stdin = _read_stdin() if inputs[0].kind == "stdin" else None
            plan = plan_run(inputs, dest, args.format, args.skip_existing, stdin)
        except PlanError as e:
            raise CLIError(str(e)) from e
        for what, message in plan.failed:
            failures.add(what, message)
        jobs, unwritable = check_writable(plan.jobs)
        for what, message in unwritable:
            failures.add(what, message)
    if videos:
        videos, unwritable = split_writable(
            videos, lambda v: video_output_path(v, args.output, args.format).parent, "video"
        )
        for what, message in unwritable:
            failures.add(what, message)
    _report_planned(failures)
    written = 0
    streams = args.streams
    if streams is None:  # many images or a video: throughput; one image: latency
        streams = None if len(jobs) > 1 or videos else 1
    batch = batch_size(args, streams)
    load = (jobs and args.ray is None) or videos
    predictor = _load_predictor(args, streams) if load else None
    if jobs and args.ray is not None:
        report = ray_predict.run_jobs(jobs, args, render)
    elif jobs:
        report = run_batch(
            jobs,
            predictor,
            batch,
            args.workers,
            render,
            progress=not args.quiet and len(jobs) > 1,
            streams=streams,
        )
    if jobs:
        written = len(report.written)
        for what, message in report.failed:
            failures.add(what, message)
    if plan is not None:
        print(_summary(written, args.format, dest, plan), file=sys.stderr)
        _report_skipped(plan)
    if videos:
        video_report = predict_videos(
            videos,
            args.output,
            predictor,
            args.format,
            threshold=args.threshold,
            batch_size=batch,
            streams=streams,
            progress=not args.quiet,
            taken=images,
        )
        for what, message in video_report.failed:
            failures.add(what, message)
    failures.report()
    return 1 if failures else 0


def _check_options(args: argparse.Namespace) -> Renderer:
    """Validate the options; return the renderer they ask for."""
    if args.batch_size is not None:
        positive("batch-size", args.batch_size)
    positive("size", args.size)
    positive("workers", args.workers)
    if args.streams is not None:
        positive("streams", args.streams)
    if args.threads is not None:
        positive("threads", args.threads)
    check_device(args.device)
    render = RENDERERS[args.format]
    if args.threshold is not None:
        if not 0 <= args.threshold <= 255:
            raise CLIError(f"--threshold must be in 0..255, got {args.threshold}")
        if args.format != "rgba":
            raise CLIError("--threshold only applies to --format rgba")
        render = functools.partial(render_rgba, threshold=args.threshold)
    return render


def _load_predictor(args: argparse.Namespace, streams: int | None) -> Predictor:
    backend, _, _ = backend_from_args(args, args.threads, streams)
    return Predictor(backend, args.size)


def _read_stdin() -> bytes:
    if sys.stdin.isatty():
        raise PlanError("input '-' reads an image from standard input; pipe one in (< photo.jpg)")
    return sys.stdin.buffer.read()


def _report_planned(failures: Failures) -> None:
    for what, message in failures.items:
        print(f"error: {what}: {message}", file=sys.stderr)


def _summary(written: int, fmt: str, dest: Destination, plan: Plan) -> str:
    where = {
        "stdout": "to standard output",
        "file": f"to {dest.path}",
        "folder": f"to {dest.path}",
        "beside": "beside the inputs",
    }[dest.kind]
    line = f"wrote {written} {fmt} image(s) {where}"
    if plan.existing:
        line += f"; kept {len(plan.existing)} existing output(s) (--skip-existing)"
    return line


def _report_skipped(plan: Plan) -> None:
    if plan.left_out:
        print(
            f"left out {len(plan.left_out)} file(s) that are outputs of this run "
            "(under the output folder, or earlier results)",
            file=sys.stderr,
        )
    if plan.skipped:
        print(
            f"skipped {len(plan.skipped)} file(s) that are not images by their suffix "
            "(name a file on the command line to try it anyway):",
            file=sys.stderr,
        )
        for path in plan.skipped:
            print(f"  {path}", file=sys.stderr)
