"""Dashboard sessions: stateless, HMAC-signed cookies, and the CSRF tokens derived from them.

Why signed cookies and not a session table or memory: with ``--workers N`` (and several
replicas) one browser's requests land on different processes, and a session must work on
all of them without a shared store. The cookie carries who is signed in, the account they
may see and an expiry; an HMAC-SHA256 over it makes it unforgeable.

The signing key is derived from the configured ``admin_key`` (HMAC of a fixed label), so
every process of one deployment agrees on it without new config, and rotating the admin key
signs every dashboard user out. Without an ``admin_key`` the dashboard is off.

A session's *subject* says how it was proven: ``admin`` (the admin key) or ``key:<id>`` (a
client key; the page handlers re-check on each request that this key is still valid, so
revoking it ends the session) or ``user:<id>`` (a portal user's password; re-checked on
each request too, so disabling the account ends the session).

CSRF: each session has a random nonce; the token on its forms is an HMAC of that nonce, so
it is per session, needs no storage and is checked in constant time. Signing out deletes the
cookie; a copied cookie stays valid until it expires (``SESSION_S``) unless the admin key
is rotated or, for a client session, its key revoked.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from typing import Literal

from tokenyard.immutable import immutable

SESSION_S = 8 * 3600
COOKIE = "ty_session"
LOGIN_COOKIE = "ty_login"  # a pre-session nonce: the sign-in form has a CSRF token too
Role = Literal["admin", "account"]


@immutable
class Session:
    role: Role
    subject: str  # "admin" | "key:<key id>" | "user:<user id>"
    account_id: str | None  # the one account a non-admin sees; None for admins
    expires: float  # epoch seconds
    nonce: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def may_see(self, account_id: str) -> bool:
        return self.is_admin or self.account_id == account_id

    @property
    def key_id(self) -> str | None:
        kind, _, ident = self.subject.partition(":")
        return ident if kind == "key" else None

    @property
    def user_id(self) -> str | None:
        kind, _, ident = self.subject.partition(":")
        return ident if kind == "user" else None


def signing_key(admin_key: str) -> bytes:
    return hmac.new(admin_key.encode(), b"tokenyard/ui-session/v1", hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, label: str, payload: str) -> str:
    return _b64(hmac.new(secret, f"{label}:{payload}".encode(), hashlib.sha256).digest())


def new_session(role: Role, subject: str, account_id: str | None, now: float) -> Session:
    return Session(role, subject, account_id, now + SESSION_S, secrets.token_urlsafe(16))


def encode(session: Session, secret: bytes) -> str:
    payload = _b64(
        json.dumps(
            {
                "r": session.role,
                "s": session.subject,
                "a": session.account_id,
                "e": session.expires,
                "n": session.nonce,
            },
            separators=(",", ":"),
        ).encode()
    )
    return f"{payload}.{_mac(secret, 'session', payload)}"


def decode(cookie: str | None, secret: bytes, now: float) -> Session | None:
    """The session in a cookie, or None when it is absent, forged, malformed or expired."""
    if not cookie or cookie.count(".") != 1:
        return None
    payload, mac = cookie.split(".")
    if not hmac.compare_digest(mac.encode(), _mac(secret, "session", payload).encode()):
        return None
    try:
        data = json.loads(_unb64(payload))
        session = Session(data["r"], data["s"], data["a"], float(data["e"]), data["n"])
    except (ValueError, KeyError, TypeError):
        return None
    if session.role not in ("admin", "account") or session.expires <= now:
        return None
    if session.role == "account" and not session.account_id:
        return None
    return session


def csrf_token(secret: bytes, nonce: str) -> str:
    return _mac(secret, "csrf", nonce)


def csrf_ok(secret: bytes, nonce: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(
        (given or "").encode(), csrf_token(secret, nonce).encode()
    )
