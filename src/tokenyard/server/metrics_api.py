"""``GET /metrics``: Prometheus text, behind the admin key or on its own listener.

The metrics themselves are made in ``obs`` (metrics.py counts request records,
exposition.py renders a scrape); this module wires them to the application: the sink into
``app[SINKS]``, the scrape-time state readers onto the gateway's health book and key pools,
and the route. ``server.metrics_address`` adds a second, unauthenticated listener that
serves nothing but ``/metrics`` — the usual way to let a Prometheus on a private network
scrape without holding the admin key.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Mapping

from aiohttp import web
from prometheus_client import CollectorRegistry

from tokenyard.config import Config
from tokenyard.errors import AuthenticationFailed
from tokenyard.obs.exposition import Exposition, StateCollector, multiprocess_dir
from tokenyard.obs.metrics import MetricsSink, Vocabulary
from tokenyard.obs.runtime import RuntimeCollector
from tokenyard.providers.http import pooled_connections
from tokenyard.server.generation import CURRENT, Generation
from tokenyard.server.http import bearer
from tokenyard.server.state import ADMIN_KEY, SINKS

log = logging.getLogger(__name__)
METRICS = web.AppKey("metrics", Exposition)


def install(
    app: web.Application,
    config: Config,
    *,
    reserved: Callable[[], int],
    environ: Mapping[str, str],
) -> None:
    """Count finished requests and serve ``/metrics`` on the main port (admin key)."""
    words = Vocabulary(config.models, config.providers)
    files = multiprocess_dir(environ)
    sink = MetricsSink(
        CollectorRegistry(auto_describe=True),
        words,
        key_labels=config.server.metrics_key_labels,
        reserved=reserved,
        files=files is not None,
    )
    app[SINKS].append(sink)
    current = app[CURRENT]  # read at scrape time: a config reload changes what there is

    def relabel(generation: Generation) -> None:
        sink.use_vocabulary(Vocabulary(generation.config.models, generation.config.providers))

    current.listeners.append(relabel)

    def circuits() -> dict[str, str]:
        config, health = current.generation.config, current.generation.gateway.health
        deployments = {
            f"{d.provider}/{d.model}" for m in config.models.values() for d in m.deployments
        }
        return {key: health.snapshot(key).circuit.value for key in sorted(deployments)}

    def keys() -> dict[str, list[str]]:
        pools = current.generation.pools
        return {name: [str(k["state"]) for k in pool.status()] for name, pool in pools.items()}

    def in_flight() -> int:
        return current.in_flight(current.generation)

    def connections() -> dict[str, int]:
        return pooled_connections(current.generation.upstreams.clients)

    app[METRICS] = Exposition(
        sink.registry,
        StateCollector(circuits, keys),
        multiprocess_dir=files,
        before=sink.refresh,
        runtime=RuntimeCollector(in_flight=in_flight, connections=connections),
    )
    app.router.add_get("/metrics", _guarded)


async def _guarded(request: web.Request) -> web.Response:
    expected = request.app.get(ADMIN_KEY)
    given = bearer(request) or ""
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise AuthenticationFailed("an admin key is required (or scrape server.metrics_address)")
    return _scrape(request.app[METRICS])


def _scrape(exposition: Exposition) -> web.Response:
    response = web.Response(body=exposition.render())
    response.headers["Content-Type"] = exposition.content_type
    return response


async def open_listener(app: web.Application, *, reuse_port: bool) -> web.AppRunner | None:
    """Start the ``server.metrics_address`` listener for ``app``, if configured. With
    ``--workers N`` every worker binds it (SO_REUSEPORT) and any of them answers a scrape
    with the totals of all (obs/exposition.py)."""
    bind = app[CURRENT].generation.config.server.metrics_bind()
    exposition = app.get(METRICS)
    if bind is None or exposition is None:
        return None

    async def scrape(_request: web.Request) -> web.Response:
        return _scrape(exposition)

    metrics_app = web.Application()
    metrics_app.router.add_get("/metrics", scrape)
    runner = web.AppRunner(metrics_app, access_log=None)
    await runner.setup()
    host, port = bind
    await web.TCPSite(runner, host, port, reuse_port=reuse_port or None).start()
    log.info("metrics listener up", extra={"fields": {"host": host, "port": port}})
    return runner
