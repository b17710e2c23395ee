"""``sod100k predict/cutout --ray``: the options, and the run of planned jobs on a cluster.

The local command plans the run (:mod:`sod100k.infer.inputs`) and reports it; with
``--ray`` the planned jobs go to :func:`sod100k.distributed.batch.predict_files` instead
of the local pipeline. Inputs or ``-o`` given as URIs are planned here
(:mod:`sod100k.distributed.plan`), since the local planner only knows paths.
"""

from __future__ import annotations

import argparse
import os
import sys

from sod100k.cli.common import CLIError, Failures, batch_size, model_and_weights, positive
from sod100k.infer.batch import Renderer
from sod100k.infer.inputs import STDIO, Job

#: ``--ray`` given without an address: Ray's own default (see ``connect``).
DEFAULT_ADDRESS = ""


def ray_group(p: argparse.ArgumentParser, engine: str, description: str, does: str):
    """The option group of a ``--ray`` command, with ``--ray [ADDRESS]`` in it.

    Args:
        p: the sub-command's parser.
        engine: ``Ray`` or ``Ray Serve``, for the group's title.
        description: what the group does, shown under its title.
        does: what ``--ray`` does, the start of its help.
    """
    g = p.add_argument_group(
        f"cluster ({engine}; needs the ray extra: pip install 'sod100k[ray]')", description
    )
    g.add_argument(
        "--ray",
        nargs="?",
        const=DEFAULT_ADDRESS,
        default=None,
        metavar="ADDRESS",
        help=f"{does}: auto (the cluster started with 'ray start' on this machine, or "
        "$RAY_ADDRESS), local (a new cluster on this machine), HOST:PORT or "
        "ray://HOST:PORT; without a value, auto if a cluster runs, else local",
    )
    return g


def add_ray_args(p: argparse.ArgumentParser) -> None:
    """The ``cluster (Ray)`` option group of ``predict`` and ``cutout``."""
    g = ray_group(
        p,
        "Ray",
        "Run on a Ray cluster with Ray Data. Inputs and -o must be paths every node sees "
        "(shared storage) or URIs pyarrow understands (s3://, gs://, hdfs://, file://).",
        "run on Ray",
    )
    g.add_argument(
        "--ray-actors",
        type=int,
        default=None,
        metavar="N",
        help="actors (model copies) in the pool; default: as many as the cluster's CPUs fit",
    )
    g.add_argument(
        "--ray-cpus-per-actor",
        type=int,
        default=None,
        metavar="C",
        help="CPUs each actor holds and runs the network on (default 2, fewer on smaller nodes)",
    )


def check_ray_options(args: argparse.Namespace, videos: list[str]) -> str | None:
    """Refuse what ``--ray`` cannot do; return the address for ``connect``.

    Raises:
        CLIError: videos, standard input or output, ``--streams``, a bad address or pool.
    """
    from sod100k.distributed.cluster import check_address

    if videos:
        raise CLIError(f"--ray runs on images; run the video {videos[0]} without --ray")
    if STDIO in args.inputs or args.output == STDIO:
        raise CLIError("--ray reads and writes files; standard input/output run without --ray")
    if args.streams is not None:
        raise CLIError("--streams is for a local run; with --ray use --ray-actors")
    if args.threads is not None:
        raise CLIError(
            "with --ray each actor runs as many threads as it holds CPUs: "
            "use --ray-cpus-per-actor instead of --threads"
        )
    if args.device != "cpu":
        raise CLIError("--ray runs the network on the CPUs of the cluster; drop --device")
    for name in ("ray_actors", "ray_cpus_per_actor"):
        if getattr(args, name) is not None:
            positive(name.replace("_", "-"), getattr(args, name))
    try:
        return check_address(args.ray or None)
    except ValueError as e:
        raise CLIError(str(e)) from e


def uses_uris(args: argparse.Namespace) -> bool:
    """Whether an input or ``-o`` is a URI (planned by :mod:`sod100k.distributed.plan`)."""
    from sod100k.distributed.storage import is_uri

    return any(is_uri(x) for x in [*args.inputs, args.output or ""])


def run_uris(args: argparse.Namespace, render: Renderer) -> int:
    """Plan and run a job whose inputs or output are URIs; the exit status as ``run``'s.

    Raises:
        CLIError: no ``-o``, a ``-o`` naming a file, or a filesystem pyarrow cannot open.
    """
    from sod100k.distributed.plan import plan_uris
    from sod100k.infer.inputs import has_image_suffix

    if args.output is None or has_image_suffix(args.output):
        raise CLIError("with URI inputs or output, -o must name an output folder (or prefix)")
    try:
        plan = plan_uris(args.inputs, args.output, args.skip_existing)
    except (OSError, ValueError) as e:
        raise CLIError(str(e)) from e
    failures = Failures()
    for what, message in plan.failed:
        print(f"error: {what}: {message}", file=sys.stderr)
        failures.add(what, message)
    report = run_items(plan.items, args, render) if plan.items else None
    written = len(report.written) if report else 0
    line = f"wrote {written} {args.format} image(s) to {args.output}"
    if plan.existing:
        line += f"; kept {len(plan.existing)} existing output(s) (--skip-existing)"
    print(line, file=sys.stderr)
    if plan.skipped:
        print(
            f"skipped {len(plan.skipped)} file(s) that are not images by their suffix",
            file=sys.stderr,
        )
    for what, message in report.failed if report else []:
        failures.add(what, message)
    failures.report()
    return 1 if failures else 0


def run_jobs(jobs: list[Job], args: argparse.Namespace, render: Renderer):
    """Run planned local-path jobs on the cluster ``--ray`` names.

    Returns:
        A report with ``written`` and ``failed``, like the local ``run_batch``'s.

    Raises:
        CLIError: Ray missing, no cluster, a pool that does not fit, unusable weights.
    """
    items = [(os.path.abspath(j.src), os.path.abspath(j.dst), j.name) for j in jobs]
    return run_items(items, args, render)


def run_items(items: list[tuple[str, str, str]], args: argparse.Namespace, render: Renderer):
    """Run ``(src, dst, name)`` items on the cluster (see :func:`run_jobs`)."""
    from sod100k.distributed import RayMissingError
    from sod100k.distributed.batch import DEFAULT_ACTOR_STREAMS, plan_pool, predict_files
    from sod100k.distributed.cluster import ClusterError, connect
    from sod100k.distributed.model import ModelSpec

    model, weights = model_and_weights(args)  # missing weights: the command line's words
    try:
        spec = ModelSpec.load(model, weights, args.backend, args.size, args.precision, args.device)
        connect(args.ray or None, quiet=args.verbose == 0)
        actors, cpus = plan_pool(args.ray_actors, args.ray_cpus_per_actor)
    except (RayMissingError, ClusterError, ValueError) as e:
        raise CLIError(str(e)) from e
    if not args.quiet:
        print(f"ray: {actors} actor(s) of {cpus} CPU(s)", file=sys.stderr)
    report = predict_files(
        items,
        spec,
        render,
        actors=actors,
        cpus_per_actor=cpus,
        batch_size=batch_size(args, DEFAULT_ACTOR_STREAMS),
        workers=args.workers,
        streams=DEFAULT_ACTOR_STREAMS,
        progress=not args.quiet and len(items) > 1,
    )
    if report.removed_temporaries:
        print(
            f"removed {report.removed_temporaries} temporary file(s) left by lost workers "
            "(their outputs were written again)",
            file=sys.stderr,
        )
    return report
