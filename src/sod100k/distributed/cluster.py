"""Connecting to a Ray cluster and sizing actor pools from its resources."""

from __future__ import annotations

import logging
import math
import re

from sod100k.distributed import require_ray

log = logging.getLogger(__name__)

#: ``--ray`` values besides an address: ``auto`` joins the cluster running on this
#: machine (or at ``$RAY_ADDRESS``), ``local`` always starts a new one here.
SPECIAL_ADDRESSES = ("auto", "local")
_ADDRESS = re.compile(r"^(ray://)?[\w.\-\[\]:]+:\d+$")


class ClusterError(RuntimeError):
    """The cluster cannot be reached or cannot run the job; the message says why."""


def check_address(address: str | None) -> str | None:
    """``address`` if it is ``None``, ``auto``, ``local``, ``HOST:PORT`` or ``ray://HOST:PORT``.

    Raises:
        ValueError: anything else (for instance an input path taken for the address).
    """
    if address is None or address in SPECIAL_ADDRESSES or _ADDRESS.match(address):
        return address
    raise ValueError(
        f"--ray {address}: not a cluster address (give auto, local, HOST:PORT or "
        "ray://HOST:PORT; put --ray after the inputs)"
    )


def connect(address: str | None = None, quiet: bool = True) -> None:
    """Join (or start) the Ray cluster at ``address``; do nothing if already connected.

    Args:
        address: ``None`` (Ray's default: ``$RAY_ADDRESS``, else a cluster started on
            this machine with ``ray start``, else a new local one), ``auto`` (a running
            cluster only), ``local`` (a new local cluster), or ``HOST:PORT`` /
            ``ray://HOST:PORT``.
        quiet: keep Ray's own progress bars and worker logs off the terminal (the caller
            shows its own progress).

    Raises:
        ClusterError: no cluster at ``address``.
    """
    ray = require_ray()
    if quiet:
        from ray.data import DataContext

        ctx = DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        # Ray Data warns about its own disabled progress bars and tuning hints.
        logging.getLogger("ray.data").setLevel(logging.ERROR)
    if ray.is_initialized():
        return
    kwargs: dict = {"logging_level": logging.WARNING, "log_to_driver": not quiet}
    if address in (None, "local"):
        kwargs["include_dashboard"] = False  # ignored when joining; saves ~200 MB here
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise ClusterError(f"cannot reach a Ray cluster at {address}: {e}") from e


def node_cpus() -> list[float]:
    """The CPUs of every live node of the connected cluster."""
    ray = require_ray()
    return [n["Resources"].get("CPU", 0.0) for n in ray.nodes() if n.get("Alive")]


def pool_size(cpus_per_actor: float = 1.0, reserve_cpus: float = 0.0) -> int:
    """How many actors of ``cpus_per_actor`` CPUs fit the cluster with ``reserve_cpus`` free.

    An actor cannot span nodes, so each node fits ``floor(cpus / cpus_per_actor)``. Keep a
    reserve whenever other tasks of the same job need CPUs: a ``read_binary_files`` or
    ``read_images`` stage runs read tasks that each need one, and an actor pool that
    holds every CPU starves them, which hangs the job (an actor waits for input that no
    read task can produce).

    Args:
        cpus_per_actor: CPUs each actor asks for.
        reserve_cpus: CPUs to leave free for the job's other tasks.

    Returns:
        The pool size (at least 1 when any node fits an actor).

    Raises:
        ClusterError: no node has ``cpus_per_actor`` CPUs (beside the reserve).
    """
    cpus = node_cpus()
    fits = sum(math.floor(c / cpus_per_actor + 1e-9) for c in cpus)
    spare = sum(cpus) - fits * cpus_per_actor
    if spare < reserve_cpus:
        fits -= math.ceil((reserve_cpus - spare) / cpus_per_actor - 1e-9)
    if fits < 1:
        raise ClusterError(
            f"no room for an actor of {cpus_per_actor:g} CPU(s) with {reserve_cpus:g} CPU(s) "
            f"kept free: the nodes have {', '.join(f'{c:g}' for c in cpus) or 'no'} CPUs"
        )
    return fits
