"""The composition root: everything is built here, once, and passed down."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from opentelemetry.sdk.trace.export import SpanExporter

from tokenyard.billing.reaper import Reaper, new_owner
from tokenyard.billing.wallet import Wallet
from tokenyard.config import Config
from tokenyard.identity.revocation import MemoryEpoch, RevocationEpoch
from tokenyard.identity.service import Identity
from tokenyard.obs.metrics import MetricsSink
from tokenyard.obs.request_log import RequestLog
from tokenyard.obs.tracing import build_tracing
from tokenyard.payments import build_processors
from tokenyard.routing.health import HealthBook
from tokenyard.server import (
    admin_api,
    admin_watch,
    client_api,
    messages_api,
    metrics_api,
    openapi,
    payments_api,
    reload,
)
from tokenyard.server import ui as dashboard_ui
from tokenyard.server.generation import (
    CURRENT,
    Current,
    Lasting,
    build_generation,
    health_policy,
    pin,
)
from tokenyard.server.http import json_response
from tokenyard.server.limits import ServerLimits
from tokenyard.server.middleware import edge
from tokenyard.server.reload import RELOADER, WORKERS, Reloader
from tokenyard.server.sharing import share
from tokenyard.server.shutdown import DRAIN, Drain
from tokenyard.server.state import (
    ADMIN_KEY,
    DATABASE,
    IDENTITY,
    LEDGER,
    LIMITS,
    PROCESSORS,
    REPORTS,
    SINKS,
)
from tokenyard.store import Database
from tokenyard.store.accounts import SqlAccounts
from tokenyard.store.ledger import SqlLedger
from tokenyard.store.limits import KeyLimiter, MemoryLimiter
from tokenyard.store.redis_bus import RedisBus
from tokenyard.store.redis_limits import RedisLimiter
from tokenyard.store.redis_link import RedisLink
from tokenyard.store.reports import SqlReports


async def healthz(_request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    if await request.app[DATABASE].ping():
        return json_response({"status": "ready"})
    return json_response({"status": "database unreachable"}, status=503)


def _lasting(
    app: web.Application,
    config: Config,
    wallet: Wallet,
    limiter: KeyLimiter,
    epoch: RevocationEpoch,
    *,
    link: RedisLink | None,
) -> tuple[Lasting, RedisBus | None, RevocationEpoch]:
    """What outlives a config reload; with Redis, key and circuit moves are shared with
    every other process (server/sharing.py)."""
    rng = random.Random()  # noqa: S311 — load spreading, not security
    health = HealthBook(health_policy(config))
    lasting = Lasting(wallet=wallet, limiter=limiter, health=health, rng=rng)
    bus = RedisBus(config.redis, link=link) if config.redis else None
    if bus is not None:
        epoch, lasting.on_cool = share(bus, lambda: app[CURRENT].generation.pools, health, epoch)
    return lasting, bus, epoch


def _trace(app: web.Application, exporter: SpanExporter | None) -> None:
    """Traces of finished requests, when OTEL_* asks for them (obs/tracing.py)."""
    tracing = build_tracing(os.environ, exporter)
    if tracing is not None:
        app[SINKS].append(tracing)
        app.on_cleanup.append(lambda _app: asyncio.to_thread(tracing.shutdown))


def _log_requests(app: web.Application, database: Database, config: Config) -> None:
    """The request log (obs/request_log.py): a sink, its batch writer and purge job. Its
    cleanup context is added after the one that closes the database, so it is torn down
    (what is queued written) before it."""
    request_log = RequestLog(database, config.logging)
    app[SINKS].append(request_log)

    async def running(_app: web.Application) -> AsyncIterator[None]:
        request_log.start()
        yield
        await request_log.close()

    app.cleanup_ctx.append(running)


def _commit_at_once_when_alone(database: Database, drain: Drain) -> None:
    """With one request in flight, no other operation can join its hold's or its charge's
    group commit: the SQLite writer then commits at once (store/sqlite_writer.py)."""
    writer = database.sqlite_writer()
    if writer is not None:
        writer.alone = lambda: drain.in_flight <= 1


async def build_app(
    config: Config,
    *,
    epoch: RevocationEpoch | None = None,
    span_exporter: SpanExporter | None = None,
    config_path: str | None = None,
    workers: int = 1,
) -> web.Application:
    """The gateway as an aiohttp application. Migrations are not run here: the CLI runs them
    once before any worker starts. ``span_exporter`` (tests) turns tracing on without OTEL_*.
    ``config_path`` is the file a reload re-reads (server/reload.py); ``workers`` how many
    processes serve the port, so that ``POST /admin/reload`` can reach them all."""
    drain = Drain()  # what SIGTERM waits for, then ends (server/shutdown.py)
    app = web.Application(
        middlewares=[edge, pin, drain.middleware], client_max_size=config.server.max_body_bytes
    )
    app[DRAIN] = drain
    app[LIMITS] = ServerLimits.of(config.server)
    database = Database(config.database)
    app[DATABASE] = database
    link = RedisLink() if config.redis else None  # one view of Redis for all its users
    limiter: KeyLimiter = RedisLimiter(config.redis, link=link) if config.redis else MemoryLimiter()
    holds = database.hold_store()
    _commit_at_once_when_alone(database, drain)
    owner, host, pid = new_owner()
    wallet = Wallet(holds, owner=owner)
    lasting, bus, epoch = _lasting(app, config, wallet, limiter, epoch or MemoryEpoch(), link=link)
    current = Current(await build_generation(1, config, lasting))
    app[CURRENT] = current
    app[RELOADER] = Reloader(current, lasting, config_path)
    app[WORKERS] = workers
    app[IDENTITY] = Identity(SqlAccounts(database.engine), epoch)
    ledger = SqlLedger(database.engine)
    reaper = Reaper(
        ledger,
        holds,
        active=lambda: wallet.active,
        owner=owner,
        host=host,
        pid=pid,
        interval_s=config.billing.reaper_interval_s,
        stale_after_s=config.billing.stale_after_s,
    )
    app[LEDGER] = ledger
    payment_session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    app[PROCESSORS] = build_processors(config.payments, payment_session, time.time)
    app[REPORTS] = SqlReports(database.engine)
    app[SINKS] = []  # where finished request records go (obs/record.py)
    _trace(app, span_exporter)
    if config.admin_key:
        app[ADMIN_KEY] = config.admin_key

    async def background(_app: web.Application) -> AsyncIterator[None]:
        await reaper.run_once()  # releases what a crashed predecessor left, before serving
        task = asyncio.create_task(reaper.run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await reaper.stop()
        await holds.close()
        if bus is not None:
            await bus.close()
        await limiter.close()
        await payment_session.close()
        await current.close()  # the upstream clients of every generation
        await database.close()

    app.cleanup_ctx.append(background)
    _log_requests(app, database, config)  # after `background`: flushed before the database closes
    metrics_api.install(app, config, reserved=lambda: len(wallet.active), environ=os.environ)
    if link is not None:
        _report_redis(app, link)
    _add_routes(app)
    return app


def _report_redis(app: web.Application, link: RedisLink) -> None:
    """``tokenyard_redis_up`` follows the process's view of Redis (store/redis_link.py)."""
    sink = next(s for s in app[SINKS] if isinstance(s, MetricsSink))
    link.on_change = sink.track_redis()


def _add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    client_api.add_routes(app)
    admin_api.add_routes(app)
    reload.add_routes(app)
    admin_watch.add_routes(app)
    payments_api.add_routes(app)
    messages_api.add_routes(app)
    openapi.add_routes(app)  # GET /openapi.json, the description of all of the above
    dashboard_ui.add_routes(app)  # the web dashboard under /ui
