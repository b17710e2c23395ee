"""``sod100k serve --ray``: the options, and deploying the service on Ray Serve."""

from __future__ import annotations

import argparse
import signal
import sys
import time

from sod100k.cli.common import CLIError, model_and_weights, model_label, positive
from sod100k.cli.ray_predict import ray_group


def add_ray_args(p: argparse.ArgumentParser) -> None:
    """The ``cluster (Ray Serve)`` option group of ``serve``."""
    g = ray_group(
        p,
        "Ray Serve",
        "Deploy the same API on a Ray cluster: Serve's proxy listens on --host/--port and "
        "spreads requests over replicas; the limits above apply per replica.",
        "deploy on Ray Serve (deleted again when this command stops)",
    )
    g.add_argument(
        "--replicas", type=int, default=None, help="a fixed number of replicas (default 1)"
    )
    g.add_argument(
        "--min-replicas",
        type=int,
        default=None,
        help="autoscale: fewest replicas (with --max-replicas)",
    )
    g.add_argument("--max-replicas", type=int, default=None, help="autoscale: most replicas")
    g.add_argument(
        "--target-requests",
        type=float,
        default=None,
        help="autoscale: requests in flight per replica to aim for (default: its CPUs)",
    )
    g.add_argument(
        "--ray-cpus-per-replica",
        type=int,
        default=1,
        metavar="C",
        help="CPUs each replica holds; it runs C request threads (default %(default)s)",
    )
    g.add_argument(
        "--ray-proxy-every-node",
        action="store_true",
        help="a proxy on every node (behind a load balancer), not only on the head node",
    )


def _scaling(args: argparse.Namespace):
    from sod100k.distributed.serve import Scaling

    positive("ray-cpus-per-replica", args.ray_cpus_per_replica)
    autoscale = args.min_replicas is not None or args.max_replicas is not None
    if autoscale and args.replicas is not None:
        raise CLIError("give --replicas, or --min-replicas/--max-replicas, not both")
    if not autoscale:
        return Scaling(
            replicas=positive("replicas", args.replicas or 1), cpus=args.ray_cpus_per_replica
        )
    low = args.min_replicas if args.min_replicas is not None else 1
    high = args.max_replicas if args.max_replicas is not None else max(low, 1)
    if low < 0 or high < max(low, 1):
        raise CLIError(f"need 0 <= --min-replicas <= --max-replicas, >= 1; got {low}, {high}")
    target = args.target_requests or float(args.ray_cpus_per_replica)
    return Scaling(None, low, high, target, args.ray_cpus_per_replica)


def run(args: argparse.Namespace) -> int:
    """Deploy, print the URL, wait for Ctrl-C or SIGTERM, delete the service.

    Raises:
        CLIError: Ray missing, no cluster, unusable weights or scaling options.
    """
    from sod100k.cli.serve import settings_from_args
    from sod100k.distributed import RayMissingError
    from sod100k.distributed.cluster import ClusterError, check_address, connect
    from sod100k.distributed.model import ModelSpec
    from sod100k.distributed.serve import deploy, undeploy

    scaling = _scaling(args)
    stopped_by: list[int] = []
    try:
        address = check_address(args.ray or None)
        model, weights = model_and_weights(args)  # missing weights: the command line's words
        spec = ModelSpec.load(model, weights, args.backend, args.size, args.precision, args.device)
        connect(address, quiet=args.verbose == 0)
        # From here on both signals set a flag the main thread polls (ray.init may have
        # replaced Python's SIGINT handler, a backgrounded process may have inherited
        # SIGINT ignored), so a stop during the deployment still deletes the service.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda signum, frame: stopped_by.append(signum))
        settings = settings_from_args(args, model_label(spec.model, spec.weights))
        url = deploy(spec, settings, scaling, args.host, args.port, args.ray_proxy_every_node)
    except (RayMissingError, ClusterError, ValueError) as e:
        raise CLIError(str(e)) from e
    print(
        f"sod100k serving on Ray Serve at {url} (Ctrl-C stops and deletes it)",
        file=sys.stderr,
        flush=True,
    )
    while not stopped_by:
        time.sleep(0.2)
    undeploy()
    return 130 if stopped_by[0] == signal.SIGINT else 0
