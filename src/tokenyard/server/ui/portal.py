"""The self-serve portal's pages: sign-up, the account owner's top-up, and the operator's
invite codes and "disable account" button. The rules live in identity/portal.py; this is the
HTML around them.

The sign-up form is shown before there is a session, so its CSRF token is bound to the same
pre-session cookie as the sign-in form. A sign-up that succeeds signs the new user in and
lands on their account page, where the starter credit shows. The top-up answers with a page
that links to the processor's hosted checkout rather than redirecting there: the dashboard's
CSP allows forms to post (and be redirected) only to its own origin.
"""

from __future__ import annotations

from aiohttp import web

from tokenyard.errors import InvalidRequest, PermissionDenied, RateLimited, TokenyardError
from tokenyard.server.generation import generation_of
from tokenyard.server.payments_api import start_checkout
from tokenyard.server.state import IDENTITY, PORTAL
from tokenyard.server.ui import session as sessions
from tokenyard.server.ui.accounts import account_of, account_page
from tokenyard.server.ui.auth import form_token, form_token_ok, new_form_token, start_session
from tokenyard.server.ui.render import UI, current_session, error_page, page, render, see_other
from tokenyard.server.ui.session import Session


def client_address(request: web.Request) -> str:
    """Whom the sign-up limit counts: the TCP peer, or the last address the configured proxy
    header carries (the one the operator's own proxy appended)."""
    header = generation_of(request).config.portal.client_ip_header
    if header:
        last = request.headers.get(header, "").split(",")[-1].strip()
        if last:
            return last[:100]
    return request.remote or "unknown"


def _signup_form(
    request: web.Request,
    *,
    status: int = 200,
    error: str | None = None,
    email: str = "",
    invite: str = "",
) -> web.Response:
    secret = request.app[UI].secret
    assert secret is not None  # checked by the callers
    portal = request.app[PORTAL]
    nonce, token = new_form_token(secret)
    response = render(
        request,
        "signup.html",
        status=status,
        token=token,
        error=error,
        email=email,
        invite=invite,
        invite_only=portal.signup == "invite",
        credit_nano=portal.signup_credit_nano,
    )
    form_token(request, response, nonce)
    return response


def _closed(request: web.Request) -> web.Response | None:
    if request.app[PORTAL].signup == "off":
        return error_page(request, 404, "Sign-up is off on this gateway.")
    if request.app[UI].secret is None:
        return error_page(request, 503, "The dashboard is off: it needs an admin_key.")
    return None


async def signup_form(request: web.Request) -> web.Response:
    closed = _closed(request)
    if closed is not None:
        return closed
    if await current_session(request) is not None:
        return see_other("/ui")
    return _signup_form(request)


async def signup(request: web.Request) -> web.Response:
    closed = _closed(request)
    if closed is not None:
        return closed
    secret = request.app[UI].secret
    assert secret is not None
    form = await request.post()
    fields = {name: form.get(name) for name in ("email", "password", "invite")}
    email, password, invite = (v if isinstance(v, str) else "" for v in fields.values())
    kept = {"email": email.strip()[:320], "invite": invite.strip()[:100]}
    if not form_token_ok(request, secret, form.get("csrf")):
        return _signup_form(
            request, status=403, error="The form expired; please try again.", **kept
        )
    try:
        user = await request.app[PORTAL].sign_up(
            email, password, invite=invite or None, client=client_address(request)
        )
    except RateLimited as exc:
        response = error_page(request, 429, exc.message)
        response.headers["Retry-After"] = str(exc.retry_after_s)
        return response
    except (InvalidRequest, PermissionDenied) as exc:
        return _signup_form(request, status=exc.status, error=exc.message, **kept)
    except TokenyardError as exc:
        return error_page(request, exc.status, exc.message)
    now = request.app[UI].clock()
    session = sessions.new_session("account", f"user:{user.id}", user.account_id, now)
    return start_session(request, session, f"/ui/accounts/{user.account_id}")


@page()
async def topup(request: web.Request, session: Session) -> web.Response:
    """Start a hosted checkout for this account (payments_api.start_checkout) and link to it."""
    row = await account_of(request, session)
    form = await request.post()
    amount, processor = form.get("amount"), form.get("processor")
    try:
        checkout = await start_checkout(
            request.app,
            row.id,
            processor if isinstance(processor, str) and processor else None,
            amount.strip() if isinstance(amount, str) else None,
        )
    except InvalidRequest as exc:
        return account_page(request, row, status=400, error=exc.message)
    return render(request, "topup.html", account=row, checkout=checkout)


@page(admin=True)
async def create_invite(request: web.Request, _session: Session) -> web.Response:
    """A new invite code, in this one response only (only its digest is stored)."""
    code = await request.app[PORTAL].new_invite()
    return render(request, "invite.html", code=code)


@page(admin=True)
async def disable_account(request: web.Request, session: Session) -> web.Response:
    row = await account_of(request, session)
    revoked = await request.app[PORTAL].disable(row.id)
    fresh = await request.app[IDENTITY].store.get_account(row.id) or row
    return account_page(request, fresh, notice=f"Disabled: {revoked or 0} key(s) revoked.")
