"""Credentials and the HMAC-SHA256-signed WebSocket URL of the classic Spark API.

The signing follows iFlytek's "WebSocket协议通用鉴权URL生成说明"
(xfyun.cn/doc/spark/general_url_authentication.html) and the official Python SDK
(``iflytek/spark-ai-python`` ``sparkai/llm/llm.py`` ``_create_url``):

1. ``date``: now, RFC 1123 in GMT (the server allows 300 s of clock skew).
2. ``signature_origin = "host: {host}\\ndate: {date}\\nGET {path} HTTP/1.1"``.
3. ``signature = base64(HMAC-SHA256(key=APISecret, msg=signature_origin))``.
4. ``authorization_origin = 'api_key="{APIKey}", algorithm="hmac-sha256",
   headers="host date request-line", signature="{signature}"'``.
5. ``authorization = base64(authorization_origin)``; the URL carries ``authorization``,
   ``date`` and ``host`` as form-encoded query parameters.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import field
from email.utils import formatdate
from urllib.parse import urlencode, urlsplit

from tokenyard.immutable import immutable


@immutable
class WsCredentials:
    """``app_id:api_key:api_secret`` as configured for one key of a Spark provider."""

    app_id: str
    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)


def ws_credentials(key: str | None) -> WsCredentials | None:
    """The WebSocket credentials when ``key`` has their shape (three non-empty parts joined
    by ``:``), else None: the key is then an HTTP APIPassword (which may itself be
    ``APIKey:APISecret``, two parts, as some iFlytek consoles show it)."""
    if key is None:
        return None
    parts = key.split(":")
    if len(parts) != 3 or not all(parts):
        return None
    return WsCredentials(app_id=parts[0], api_key=parts[1], api_secret=parts[2])


def rfc1123(epoch_s: float) -> str:
    return formatdate(epoch_s, usegmt=True)


def signature(api_secret: str, host: str, date: str, path: str) -> str:
    origin = f"host: {host}\ndate: {date}\nGET {path} HTTP/1.1"
    digest = hmac.new(api_secret.encode(), origin.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def signed_url(url: str, creds: WsCredentials, now_s: float) -> str:
    """``url`` (``wss://host/path``) with the ``authorization``, ``date`` and ``host`` query
    parameters iFlytek checks at the WebSocket handshake."""
    parts = urlsplit(url)
    host, date = parts.netloc, rfc1123(now_s)
    sig = signature(creds.api_secret, host, date, parts.path)
    origin = (
        f'api_key="{creds.api_key}", algorithm="hmac-sha256", '
        f'headers="host date request-line", signature="{sig}"'
    )
    authorization = base64.b64encode(origin.encode()).decode()
    query = urlencode({"authorization": authorization, "date": date, "host": host})
    return f"{parts.scheme}://{host}{parts.path}?{query}"
