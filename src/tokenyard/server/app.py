"""The composition root: everything is built here, once, and passed down."""

from __future__ import annotations

import random

from aiohttp import web

from tokenyard.config import Config
from tokenyard.gateway.flow import Gateway
from tokenyard.identity.revocation import MemoryEpoch, RevocationEpoch
from tokenyard.identity.service import Identity
from tokenyard.pool.keys import KeyPool
from tokenyard.providers.registry import Upstreams, build_upstreams
from tokenyard.routing.catalog import Catalog
from tokenyard.server import admin_api, client_api
from tokenyard.server.http import MAX_BODY, json_response
from tokenyard.server.middleware import edge
from tokenyard.store import Database
from tokenyard.store.accounts import SqlAccounts

DATABASE = web.AppKey("database", Database)
UPSTREAMS = web.AppKey("upstreams", Upstreams)


async def healthz(_request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    if await request.app[DATABASE].ping():
        return json_response({"status": "ready"})
    return json_response({"status": "database unreachable"}, status=503)


async def build_app(config: Config, *, epoch: RevocationEpoch | None = None) -> web.Application:
    """The gateway as an aiohttp application. Migrations are not run here: the CLI runs them
    once before any worker starts."""
    app = web.Application(middlewares=[edge], client_max_size=config.server.max_body_bytes)
    app[MAX_BODY] = config.server.max_body_bytes
    database = Database(config.database)
    upstreams = await build_upstreams(config.providers)
    rng = random.Random()  # noqa: S311 — load spreading, not security
    app[DATABASE] = database
    app[UPSTREAMS] = upstreams
    app[client_api.IDENTITY] = Identity(SqlAccounts(database.engine), epoch or MemoryEpoch())
    app[client_api.GATEWAY] = Gateway(
        catalog=Catalog(config),
        providers=upstreams.providers,
        pools={name: KeyPool(name, p.keys, rng) for name, p in config.providers.items()},
        markup=config.billing.markup,
    )
    if config.admin_key:
        app[admin_api.ADMIN_KEY] = config.admin_key

    async def close(_app: web.Application) -> None:
        await upstreams.close()
        await database.close()

    app.on_cleanup.append(close)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    client_api.add_routes(app)
    admin_api.add_routes(app)
    return app
