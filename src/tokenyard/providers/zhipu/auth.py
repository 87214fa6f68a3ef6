"""Zhipu credentials: the raw API key, or a short-lived HS256 JWT signed with it.

Facts (providers.md §7.2; checked in MetaGLM/zhipuai-sdk-python-v4 at ``ccbec4c``):

* A key has the form ``<id>.<secret>``. ``core/_jwt_token.py`` signs
  ``{"api_key": <id>, "exp": <ms epoch>, "timestamp": <ms epoch>}`` — **milliseconds** —
  with HS256 and the secret, header ``{"alg": "HS256", "sign_type": "SIGN"}`` (PyJWT adds
  ``"typ": "JWT"`` and sorts header keys, so the header sent is that). The token lives
  210 s and the SDK caches it for 180 s, i.e. it is renewed 30 s before it expires.
* ``_client.py`` sends ``Authorization: Bearer <jwt>`` only when ``disable_token_cache`` is
  False; its default is True, so the current SDK sends the raw key as the bearer. Both are
  accepted; tokenyard signs by default (the key's secret never travels) and the provider's
  ``jwt=False`` sends the raw key like the SDK's default.
* A key without a dot cannot be signed and is sent as it is.

The signature is computed here with ``hmac`` (no JWT library needed). The cache lives in
the instance (one per provider), and time comes from an injected clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable

from tokenyard.wire.json import dumps

TOKEN_TTL_S = 210.0
RENEW_BEFORE_S = 30.0
_HEADER = {"alg": "HS256", "sign_type": "SIGN", "typ": "JWT"}


def _b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def sign(key_id: str, secret: str, now_s: float, ttl_s: float = TOKEN_TTL_S) -> str:
    """The JWT the SDK's ``generate_token`` makes for ``key_id`` at ``now_s``."""
    now_ms = round(now_s * 1000)
    payload = {"api_key": key_id, "exp": now_ms + round(ttl_s * 1000), "timestamp": now_ms}
    signing_input = _b64url(dumps(_HEADER)) + b"." + _b64url(dumps(payload))
    signature = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + _b64url(signature)).decode()


def split_key(api_key: str) -> tuple[str, str] | None:
    """(id, secret) of a signable key, None for a key that is sent raw."""
    key_id, dot, secret = api_key.partition(".")
    if not dot or not key_id or not secret or "." in secret:
        return None
    return key_id, secret


class Tokens:
    """Bearer credentials per API key, signed tokens cached until shortly before expiry."""

    def __init__(
        self,
        *,
        jwt: bool,
        clock: Callable[[], float],
        ttl_s: float = TOKEN_TTL_S,
        renew_before_s: float = RENEW_BEFORE_S,
    ) -> None:
        self._jwt = jwt
        self._clock = clock
        self._ttl_s = ttl_s
        self._renew_before_s = min(renew_before_s, ttl_s / 2)
        self._cache: dict[str, tuple[str, float]] = {}

    def bearer(self, api_key: str) -> str:
        parts = split_key(api_key) if self._jwt else None
        if parts is None:
            return api_key
        now = self._clock()
        cached = self._cache.get(api_key)
        if cached is not None and now < cached[1]:
            return cached[0]
        token = sign(*parts, now, self._ttl_s)
        # Drop what has expired so a rotated pool does not grow the cache for ever.
        self._cache = {k: v for k, v in self._cache.items() if now < v[1]}
        self._cache[api_key] = (token, now + self._ttl_s - self._renew_before_s)
        return token

    def secrets(self, api_key: str | None) -> tuple[str, ...]:
        """Everything derived from the key that must never appear in a message."""
        if not api_key:
            return ()
        parts = split_key(api_key)
        cached = self._cache.get(api_key)
        derived = (parts[1],) if parts else ()
        return (api_key, *derived, *((cached[0],) if cached else ()))
