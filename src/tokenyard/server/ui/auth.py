"""Signing in to and out of the dashboard.

One form takes either the admin key (an operator session that sees everything) or a client
key ``ty-…`` (a session that sees only that key's account); a second one on the same page
takes a portal user's e-mail and password (a session for that user's account, subject
``user:<id>``; identity/portal.py checks the password). The forms carry a CSRF
token bound to a short-lived pre-session cookie, so another site cannot sign a browser in
under the attacker's key. The admin key is compared in constant time; a wrong key says
nothing about which kind was wrong.
"""

from __future__ import annotations

import hmac
import secrets

from aiohttp import web

from tokenyard.errors import AuthenticationFailed, PermissionDenied
from tokenyard.identity.keys import KEY_MARK
from tokenyard.server.state import ADMIN_KEY, IDENTITY, PORTAL
from tokenyard.server.ui import session as sessions
from tokenyard.server.ui.render import UI, current_session, page, render, see_other

LOGIN_S = 1800


def _secure(request: web.Request) -> bool:
    return request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"


def form_token(request: web.Request, response: web.Response, nonce: str) -> None:
    """Set the pre-session cookie that the token of a sign-in or sign-up form is bound to."""
    response.set_cookie(
        sessions.LOGIN_COOKIE,
        nonce,
        max_age=LOGIN_S,
        path="/ui",
        httponly=True,
        samesite="Strict",
        secure=_secure(request),
    )


def new_form_token(secret: bytes) -> tuple[str, str]:
    """A fresh (nonce, CSRF token) pair for a form shown before there is a session."""
    nonce = secrets.token_urlsafe(16)
    return nonce, sessions.csrf_token(secret, "login:" + nonce)


def form_token_ok(request: web.Request, secret: bytes, token: object) -> bool:
    nonce = request.cookies.get(sessions.LOGIN_COOKIE, "")
    return bool(nonce) and sessions.csrf_ok(
        secret, "login:" + nonce, token if isinstance(token, str) else None
    )


def start_session(request: web.Request, session: sessions.Session, location: str) -> web.Response:
    """Redirect to ``location`` with the session cookie set (and the pre-session one gone)."""
    secret = request.app[UI].secret
    assert secret is not None  # a session is only started with a secret
    response = see_other(location)
    response.set_cookie(
        sessions.COOKIE,
        sessions.encode(session, secret),
        max_age=sessions.SESSION_S,
        path="/ui",
        httponly=True,
        samesite="Strict",
        secure=_secure(request),
    )
    response.del_cookie(sessions.LOGIN_COOKIE, path="/ui")
    return response


def _login_form(
    request: web.Request, *, status: int = 200, error: str | None = None, email: str = ""
) -> web.Response:
    ui = request.app[UI]
    signup = request.app[PORTAL].signup != "off"
    if ui.secret is None:
        return render(
            request,
            "login.html",
            status=503,
            disabled=True,
            token="",
            error=None,
            email="",
            signup=False,
        )
    nonce, token = new_form_token(ui.secret)
    response = render(
        request,
        "login.html",
        status=status,
        disabled=False,
        token=token,
        error=error,
        email=email,
        signup=signup,
    )
    form_token(request, response, nonce)
    return response


async def login_form(request: web.Request) -> web.Response:
    if await current_session(request) is not None:
        return see_other("/ui")
    return _login_form(request)


async def login(request: web.Request) -> web.Response:
    ui = request.app[UI]
    if ui.secret is None:
        return _login_form(request)
    form = await request.post()
    if not form_token_ok(request, ui.secret, form.get("csrf")):
        return _login_form(request, status=403, error="The form expired; please try again.")
    email, password = form.get("email"), form.get("password")
    if isinstance(email, str) and email.strip():
        return await _password_login(request, email.strip(), password)
    key = form.get("key")
    session = await _prove(request, key.strip() if isinstance(key, str) else "")
    if session is None:
        return _login_form(request, status=401, error="That key is not valid here.")
    return start_session(request, session, "/ui")


async def _password_login(request: web.Request, email: str, password: object) -> web.Response:
    try:
        user = await request.app[PORTAL].sign_in(
            email, password if isinstance(password, str) else ""
        )
    except (AuthenticationFailed, PermissionDenied) as exc:
        return _login_form(request, status=exc.status, error=exc.message, email=email[:320])
    now = request.app[UI].clock()
    session = sessions.new_session("account", f"user:{user.id}", user.account_id, now)
    return start_session(request, session, "/ui")


async def _prove(request: web.Request, key: str) -> sessions.Session | None:
    now = request.app[UI].clock()
    if key.startswith(KEY_MARK):
        try:
            principal = await request.app[IDENTITY].authenticate(key)
        except AuthenticationFailed:
            return None
        return sessions.new_session("account", f"key:{principal.key_id}", principal.account_id, now)
    expected = request.app.get(ADMIN_KEY, "")
    if expected and hmac.compare_digest(key.encode(), expected.encode()):
        return sessions.new_session("admin", "admin", None, now)
    return None


@page()
async def logout(_request: web.Request, _session: sessions.Session) -> web.Response:
    response = see_other("/ui/login")
    response.del_cookie(sessions.COOKIE, path="/ui")
    return response
