"""The ``--ray`` options and pool sizing, without a cluster (fast; no Ray process starts)."""

from __future__ import annotations

import argparse

import pytest

from sod100k.cli import main
from sod100k.cli.common import CLIError
from sod100k.cli.ray_serve import _scaling
from sod100k.distributed import cluster
from sod100k.distributed.cluster import ClusterError, check_address, pool_size


@pytest.mark.parametrize("address", [None, "auto", "local", "10.0.0.5:6379", "ray://head:10001"])
def test_addresses_ray_understands_are_kept(address):
    assert check_address(address) == address


@pytest.mark.parametrize("address", ["photos", "photos/", "x.jpg", "head"])
def test_anything_else_is_refused_with_a_hint(address):
    with pytest.raises(ValueError, match="put --ray after the inputs"):
        check_address(address)


@pytest.mark.parametrize(
    ("nodes", "cpus", "reserve", "expected"),
    [
        ([2.0], 1, 0, 2),
        ([2.0], 1, 1, 1),  # a 2-CPU machine with read tasks: one actor, one CPU for reads
        ([2.0], 2, 0, 1),
        ([16.0, 16.0, 8.0], 2, 0, 20),
        ([16.0, 16.0, 8.0], 2, 1, 19),
        ([3.0, 3.0], 2, 2, 2),  # the two spare CPUs are the reserve already
        ([1.0, 1.0], 1, 0, 2),  # an actor cannot span nodes
    ],
)
def test_pool_size_fits_whole_actors_per_node_and_keeps_the_reserve(
    monkeypatch, nodes, cpus, reserve, expected
):
    monkeypatch.setattr(cluster, "node_cpus", lambda: nodes)
    assert pool_size(cpus, reserve) == expected


def test_pool_size_refuses_a_cluster_without_room(monkeypatch):
    monkeypatch.setattr(cluster, "node_cpus", lambda: [1.0, 1.0])
    with pytest.raises(ClusterError, match="no room for an actor of 2 CPU"):
        pool_size(2)


def _serve_args(**given) -> argparse.Namespace:
    values = {
        "replicas": None,
        "min_replicas": None,
        "max_replicas": None,
        "target_requests": None,
        "ray_cpus_per_replica": 1,
    }
    return argparse.Namespace(**{**values, **given})


def test_replica_flags():
    assert _scaling(_serve_args()).options() == {"num_replicas": 1}
    assert _scaling(_serve_args(replicas=3)).options() == {"num_replicas": 3}
    auto = _scaling(_serve_args(min_replicas=0, max_replicas=4, ray_cpus_per_replica=2))
    assert auto.options() == {
        "autoscaling_config": {"min_replicas": 0, "max_replicas": 4, "target_ongoing_requests": 2.0}
    }
    assert auto.cpus == 2
    with pytest.raises(CLIError, match="not both"):
        _scaling(_serve_args(replicas=2, max_replicas=4))
    with pytest.raises(CLIError, match="min-replicas"):
        _scaling(_serve_args(min_replicas=3, max_replicas=2))


def test_ray_refuses_what_it_cannot_run(tmp_path, capsys):
    out = str(tmp_path / "o")
    for extra, message in [
        (["--streams", "2"], "--streams is for a local run"),
        (["--threads", "2"], "use --ray-cpus-per-actor instead of --threads"),
        (["--ray-actors", "0"], "--ray-actors must be positive"),
    ]:
        assert main(["predict", str(tmp_path), "-o", out, "--ray", *extra]) == 2
        assert message in capsys.readouterr().err
    assert main(["predict", "-", "-o", out, "--ray"]) == 2
    assert "standard input/output run without --ray" in capsys.readouterr().err
