"""Running the application: one process, or ``--workers N`` processes on one port.

Workers are forked after migrations ran in the parent; each binds the port with
SO_REUSEPORT and the kernel spreads connections. They share state only through the
database (and Redis when configured) exactly as separate machines would, plus one
shared-memory revocation epoch so a revoked key fails at once in every worker, and one
directory of per-process metric files so that a scrape of any worker sees them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable

from aiohttp import web

from tokenyard.config import Config
from tokenyard.identity.revocation import RevocationEpoch, SharedEpoch
from tokenyard.immutable import immutable
from tokenyard.obs.exposition import forget_process, use_multiprocess
from tokenyard.server.app import build_app
from tokenyard.server.http import linger_s
from tokenyard.server.metrics_api import open_listener
from tokenyard.server.native.service import Service, listen
from tokenyard.server.reload import RELOADER
from tokenyard.server.shutdown import DRAIN
from tokenyard.server.state import LIMITS

log = logging.getLogger(__name__)


YOUNG_GENERATION = 10_000
"""Container objects allocated, net, before the collector's youngest generation is
collected; CPython's default is 700 (see ``freeze_startup_heap``)."""


def freeze_startup_heap() -> int:
    """Keep the cyclic garbage collector off what start-up built and off each request's
    path; returns how many objects were frozen (decision 0016).

    - What exists once the app is built (modules, the app, its config, SQLAlchemy's
      metadata) lives as long as the process. In the collector's oldest generation, every
      full collection walked all of it: ~70 ms, every few thousand requests. ``gc.freeze``
      takes it out of the generations for good. Reference counting still frees it.
    - A request frees almost all it allocates by reference counting, but with 16 in
      flight more than 700 objects are alive at once, so the youngest generation was
      collected every ~30 requests for nothing. At 10,000 it is collected when garbage
      in cycles has built up (an error's traceback, say).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_GENERATION, *gc.get_threshold()[1:])
    return gc.get_freeze_count()


def install_uvloop() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def serve_app(
    app: web.Application,
    host: str,
    port: int,
    *,
    reuse_port: bool = False,
    on_ready: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, then finish in-flight requests and clean up; reload
    the config on SIGHUP."""
    limits = app[LIMITS]  # slow clients and oversized heads are cut off by aiohttp itself
    runner = web.AppRunner(
        app,
        access_log=None,
        # A client that hangs up cancels its request at once: the upstream connection is
        # closed (the provider stops generating) and what it produced is settled
        # (docs/billing.md); otherwise a stalled upstream would be awaited for nobody.
        handler_cancellation=True,
        shutdown_timeout=limits.shutdown_timeout_s,  # a backstop: Drain comes first
        keepalive_timeout=limits.header_timeout_s,
        lingering_time=linger_s(limits),  # after an early answer (server/http.py)
        max_line_size=limits.max_header_bytes,
        max_field_size=limits.max_header_bytes,
        max_headers=limits.max_headers,
    )
    await runner.setup()
    assert runner.server is not None
    # The port is ours: the hot paths are answered by our own server, every other route by
    # aiohttp, to which a connection is handed (server/native/, decision 0015).
    service = Service(app, runner.server)
    listener: asyncio.Server | None = None
    metrics: web.AppRunner | None = None
    try:
        listener = await listen(service, host, port, reuse_port=reuse_port)
        metrics = await open_listener(app, reuse_port=reuse_port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        reloader = app.get(RELOADER)
        if reloader is not None:  # SIGHUP: re-read the config file (server/reload.py)
            loop.add_signal_handler(signal.SIGHUP, reloader.on_hangup)
        frozen = freeze_startup_heap()
        fields = {"host": host, "port": port, "pid": os.getpid(), "gc_frozen": frozen}
        log.info("listening", extra={"fields": fields})
        if on_ready is not None:
            await on_ready()
        await stop.wait()
        listener.close()  # new connections are refused
        service.stop_accepting()
        runner.server.pre_shutdown()
        drain = app[DRAIN]
        log.info("stopping: draining", extra={"fields": {"in_flight": drain.in_flight}})
        await drain.drain(limits.shutdown_timeout_s)
    finally:  # the app's cleanup settles, releases, flushes the request log, closes
        if listener is not None:
            listener.close()
        service.close()
        if metrics is not None:
            await metrics.cleanup()
        await runner.cleanup()


@immutable
class Serving:
    """What every worker is started with."""

    config: Config
    path: str  # the config file, re-read on SIGHUP
    host: str
    port: int
    workers: int


def _worker(serving: Serving, epoch: RevocationEpoch) -> None:
    install_uvloop()

    async def main() -> None:
        app = await build_app(
            serving.config, epoch=epoch, config_path=serving.path, workers=serving.workers
        )
        await serve_app(app, serving.host, serving.port, reuse_port=True)

    asyncio.run(main())


def serve_workers(config: Config, path: str, host: str, port: int, workers: int) -> int:
    """Fork ``workers`` processes and wait; SIGTERM or SIGINT to the parent stops them all,
    SIGHUP makes them all reload ``path``."""
    metrics_dir = tempfile.mkdtemp(prefix="tokenyard-metrics-")  # fresh: no old counts
    try:
        return _fork(Serving(config, path, host, port, workers), metrics_dir)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _fork(serving: Serving, metrics_dir: str) -> int:
    use_multiprocess(metrics_dir)  # before the fork: every worker writes its own files there
    context = multiprocessing.get_context("fork")
    epoch = SharedEpoch(context.Value("q", 0))
    # A worker ignores SIGHUP until its loop handles it: one arriving while it starts must
    # not kill it (SIGHUP's default action).
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    procs = [
        context.Process(target=_worker, args=(serving, epoch), daemon=False)
        for _ in range(serving.workers)
    ]
    for proc in procs:
        proc.start()

    def forward(signum: int, _frame: object) -> None:
        for proc in procs:
            if proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGHUP, forward)  # every worker re-reads the config itself
    code = 0
    for proc in procs:
        proc.join()
        if proc.pid is not None:
            forget_process(proc.pid, metrics_dir)
        if proc.exitcode:
            code = code or 1
            forward(signal.SIGTERM, None)
    sys.stdout.flush()
    return code
