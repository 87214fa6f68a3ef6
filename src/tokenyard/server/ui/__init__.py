"""The web dashboard under ``/ui``: server-rendered pages, signed-cookie sessions, inline SVG
charts, one vendored stylesheet — nothing from a CDN, no JavaScript.

``add_routes`` builds the dashboard's reader and the self-serve portal (identity/portal.py)
from what the composition root put into the app, and registers every route; the session
secret comes from the admin key (see session.py)."""

from __future__ import annotations

import time

from aiohttp import web

from tokenyard.billing.money import to_nano
from tokenyard.identity.portal import Portal, hour_clock, hour_window_ttl_s
from tokenyard.server.generation import CURRENT
from tokenyard.server.state import ADMIN_KEY, DATABASE, IDENTITY, PORTAL
from tokenyard.server.ui import accounts, auth, pages, portal, request_log
from tokenyard.server.ui.render import HERE, UI, Ui
from tokenyard.server.ui.session import signing_key
from tokenyard.store.dashboard import SqlDashboard
from tokenyard.store.limits import KeyLimiter, MemoryLimiter
from tokenyard.store.portal import SqlPortal
from tokenyard.store.redis_limits import RedisLimiter


async def _home(_request: web.Request) -> web.Response:
    raise web.HTTPFound("/ui")


def _portal(app: web.Application) -> Portal:
    """The portal, with its own sign-up limiter: the per-key limiter's sliding window on a
    clock slowed to hours, in Redis when it is configured (shared by every replica)."""
    config = app[CURRENT].generation.config

    def hours() -> float:
        return hour_clock(time.time())

    limiter: KeyLimiter = (
        RedisLimiter(config.redis, hours, ttl_s=hour_window_ttl_s())
        if config.redis
        else MemoryLimiter(hours)
    )

    async def close(_app: web.Application) -> None:
        await limiter.close()

    app.on_cleanup.append(close)
    return Portal(
        SqlPortal(app[DATABASE].engine),
        app[IDENTITY],
        limiter,
        signup=config.portal.signup,
        signup_credit_nano=to_nano(config.billing.signup_credit),
        signups_per_hour=config.portal.signups_per_hour,
    )


def add_routes(app: web.Application) -> None:
    app[PORTAL] = _portal(app)
    admin_key = app.get(ADMIN_KEY)
    app[UI] = Ui(
        secret=signing_key(admin_key) if admin_key else None,
        dashboard=SqlDashboard(app[DATABASE].engine),
    )
    r = app.router
    r.add_get("/ui", pages.overview)
    r.add_get("/ui/", _home)
    r.add_get("/ui/login", auth.login_form)
    r.add_post("/ui/login", auth.login)
    r.add_post("/ui/logout", auth.logout)
    r.add_get("/ui/providers", pages.providers)
    r.add_get("/ui/accounts", accounts.accounts)
    r.add_get("/ui/accounts/{id}", accounts.account)
    r.add_post("/ui/accounts/{id}/credits", accounts.credit)
    r.add_get("/ui/accounts/{id}/keys", accounts.keys)
    r.add_post("/ui/accounts/{id}/keys", accounts.create_key)
    r.add_post("/ui/accounts/{id}/keys/{key_id}/revoke", accounts.revoke_key)
    r.add_get("/ui/accounts/{id}/invoice", accounts.invoice)
    r.add_get("/ui/accounts/{id}/invoice.csv", accounts.invoice_csv)
    r.add_get("/ui/requests", request_log.requests_page)
    r.add_get("/ui/signup", portal.signup_form)
    r.add_post("/ui/signup", portal.signup)
    r.add_post("/ui/accounts/{id}/topups", portal.topup)
    r.add_post("/ui/accounts/{id}/disable", portal.disable_account)
    r.add_post("/ui/invites", portal.create_invite)
    r.add_static("/ui/static", HERE / "static", append_version=False)
