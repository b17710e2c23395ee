"""``sod100k serve --ray``: the same HTTP service as a Ray Serve deployment.

Each replica builds the very app ``sod100k serve`` runs
(:func:`sod100k.server.create_app`), so routes, the ``{"error": ...}`` shape, the upload
and pixel limits and the large-image slots and queue are the same, per replica; Ray
Serve's proxy spreads requests over the replicas and scales them. The model comes from a
:class:`~sod100k.distributed.model.ModelSpec` made on the driver, so replicas need no
weights of their own.

What Ray Serve's proxy does instead of ``sod100k serve``'s own HTTP layer: the
request-head timeout and the connection cap (``--header-timeout``,
``--max-connections``) are uvicorn protocol settings of the local server and do not
apply; requests beyond what the replicas take wait in Serve's queue, up to
``max_queued_requests``, beyond which Serve answers 503 itself.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from sod100k.distributed import require_ray
from sod100k.distributed.model import ModelSpec
from sod100k.distributed.predictor import actor_threads
from sod100k.server.app import ServerSettings

log = logging.getLogger(__name__)

#: The Serve application's name (``serve status`` shows it).
APP_NAME = "sod100k"


@dataclass(frozen=True)
class Scaling:
    """How many replicas, each holding ``cpus`` CPUs.

    ``replicas`` fixes the count; otherwise Serve autoscales between ``min_replicas`` and
    ``max_replicas``, aiming at ``target_requests`` requests in flight per replica.
    """

    replicas: int | None = 1
    min_replicas: int = 1
    max_replicas: int = 1
    target_requests: float = 2.0
    cpus: float = 1.0

    def options(self) -> dict:
        """Keyword arguments for ``serve.deployment``."""
        if self.replicas is not None:
            return {"num_replicas": self.replicas}
        return {
            "autoscaling_config": {
                "min_replicas": self.min_replicas,
                "max_replicas": self.max_replicas,
                "target_ongoing_requests": self.target_requests,
            }
        }


def build_replica_app(spec: ModelSpec, settings: ServerSettings):
    """The FastAPI app of one replica: the local server's app on this replica's CPUs.

    Runs in the replica. As in ``sod100k serve``, each inference call runs on one
    thread, there are as many request threads as CPUs the replica holds, and the page's
    in-browser mode gets the model's ONNX graph.
    """
    from sod100k.infer.predictor import Predictor
    from sod100k.infer.runtime import serving_threads
    from sod100k.server import create_app
    from sod100k.server.web import add_browser_routes

    workers = actor_threads()
    settings = dataclasses.replace(settings, workers=workers)
    streams = workers + settings.large_slots
    backend = spec.backend_for(serving_threads(spec.backend, streams), streams)
    predictor = Predictor(backend, spec.size)
    app = create_app(predictor, settings)
    add_browser_routes(app, spec.onnx_graph, settings.model_name, spec.size, predictor.quantization)
    return app


def application(spec: ModelSpec, settings: ServerSettings, scaling: Scaling):
    """The Serve application (``serve.run`` it), one ingress deployment named ``sod100k``."""
    require_ray()
    from ray import serve

    def build():  # a plain function: Serve takes it for an app builder, not for an ASGI app
        return build_replica_app(spec, settings)

    @serve.ingress(build)
    class SaliencyService:
        """The sod100k HTTP API on one replica."""

    # a replica runs one request thread per CPU (build_replica_app)
    in_flight = max(1, int(scaling.cpus)) + settings.large_slots + settings.queue_size
    deployment = serve.deployment(
        SaliencyService,
        name=APP_NAME,
        ray_actor_options={"num_cpus": scaling.cpus},
        # Let each replica's own limits decide (its large-image queue answers 503), and
        # bound what waits in front of the replicas.
        max_ongoing_requests=in_flight,
        max_queued_requests=settings.max_connections,
        **scaling.options(),
    )
    return deployment.bind()


def deploy(
    spec: ModelSpec,
    settings: ServerSettings,
    scaling: Scaling,
    host: str = "127.0.0.1",
    port: int = 8000,
    every_node: bool = False,
) -> str:
    """Start Serve's HTTP proxy on ``host:port`` and deploy the service; return its URL.

    Args:
        spec: the model.
        settings: the limits (as ``sod100k serve`` takes them).
        scaling: replicas and their CPUs.
        host: address the proxy binds.
        port: port the proxy binds.
        every_node: a proxy on every node (behind a load balancer) instead of on the
            head node only.
    """
    require_ray()
    from ray import serve

    serve.start(
        proxy_location="EveryNode" if every_node else "HeadOnly",
        http_options={"host": host, "port": port},
    )
    serve.run(application(spec, settings, scaling), name=APP_NAME, route_prefix="/")
    return f"http://{host}:{port}"


def undeploy() -> None:
    """Delete the service from the cluster (the proxy stays, as ``serve run`` leaves it)."""
    from ray import serve

    serve.delete(APP_NAME)
