"""The dashboard's shell: its state in the app, Jinja2 rendering, and the ``page`` wrapper
that every handler goes through, so authentication, CSRF and tenant checks cannot be
forgotten on one page.

Errors become HTML pages here (not the API's JSON): a 403 or 404 inside ``/ui`` is a page
with a way back. Responses are never cached and may not be framed; the CSP allows nothing
but the dashboard's own origin (no inline scripts exist; charts are inline SVG).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from tokenyard.errors import PermissionDenied, TokenyardError
from tokenyard.server.generation import generation_of
from tokenyard.server.state import IDENTITY, PORTAL
from tokenyard.server.ui import session as sessions
from tokenyard.server.ui.format import FILTERS
from tokenyard.store.dashboard import SqlDashboard

HERE = Path(__file__).parent
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'none'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}


@dataclass(slots=True)
class Ui:
    secret: bytes | None  # None: no admin_key configured, the dashboard is off
    dashboard: SqlDashboard
    clock: Callable[[], float] = time.time
    env: jinja2.Environment = field(init=False)

    def __post_init__(self) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.env.filters.update(FILTERS)


UI = web.AppKey("ui", Ui)
UI_SESSION = web.RequestKey("ui_session", sessions.Session)
Page = Callable[[web.Request, sessions.Session], Awaitable[web.StreamResponse]]


def render(
    request: web.Request, template: str, *, status: int = 200, **context: Any
) -> web.Response:
    ui = request.app[UI]
    session: sessions.Session | None = request.get(UI_SESSION)
    csrf = sessions.csrf_token(ui.secret, session.nonce) if session and ui.secret else ""
    text = ui.env.get_template(template).render(
        session=session,
        csrf=csrf,
        currency=generation_of(request).config.billing.currency,
        path=request.path,
        **context,
    )
    return web.Response(
        text=text, status=status, content_type="text/html", headers=SECURITY_HEADERS
    )


def error_page(request: web.Request, status: int, message: str) -> web.Response:
    return render(request, "error.html", status=status, status_code=status, message=message)


def see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, **SECURITY_HEADERS})


async def current_session(request: web.Request) -> sessions.Session | None:
    """The signed-in session, re-checked: a client key must still be valid and its own, a
    portal user must still exist and their account not be disabled."""
    ui = request.app[UI]
    if ui.secret is None:
        return None
    session = sessions.decode(request.cookies.get(sessions.COOKIE), ui.secret, ui.clock())
    if session is None or session.is_admin:
        return session
    return session if await _still_valid(request, session) else None


async def _still_valid(request: web.Request, session: sessions.Session) -> bool:
    account_id = session.account_id or ""
    if session.user_id is not None:
        return await request.app[PORTAL].user_still_valid(session.user_id, account_id)
    if session.key_id is None:
        return False  # a subject kind this version does not know
    row = await request.app[IDENTITY].store.key_by_id(session.key_id)
    if row is None or row.revoked_at is not None or row.account_id != account_id:
        return False
    return row.expires_at is None or row.expires_at.timestamp() > request.app[UI].clock()


def page(*, admin: bool = False) -> Callable[[Page], Callable[[web.Request], Awaitable[Any]]]:
    """Wrap a handler: sign-in required (else to the login form), admin-only pages refused to
    client sessions, the CSRF token checked on every POST, errors rendered as pages."""

    def wrap(handler: Page) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            session = await current_session(request)
            if session is None:
                return see_other("/ui/login")
            request[UI_SESSION] = session
            secret = request.app[UI].secret
            assert secret is not None  # a session exists only with a secret
            try:
                if request.method == "POST":
                    form = await request.post()
                    token = form.get("csrf")
                    if not sessions.csrf_ok(
                        secret, session.nonce, token if isinstance(token, str) else None
                    ):
                        raise PermissionDenied("the form's CSRF token is missing or wrong")
                if admin and not session.is_admin:
                    raise PermissionDenied("this page is for the operator only")
                return await handler(request, session)
            except TokenyardError as exc:
                return error_page(request, exc.status, exc.message)

        return wrapped

    return wrap
