"""Inline media in OpenAI content parts: base64 ``data:`` URLs (RFC 2397).

Clients send images and files inline as ``data:<media type>;base64,<payload>``; upstream
families that take inline media (Anthropic ``source.data``, Gemini ``inlineData``) want the
media type and the base64 payload apart, and the payload forwarded as is, never decoded.
"""

from __future__ import annotations

import re

from tokenyard.errors import UpstreamRejected

_MEDIA_TYPE = re.compile(r"[\w.+-]+/[\w.+-]+")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")


def parse_data_url(url: str) -> tuple[str, str] | None:
    """``data:<type>;base64,<payload>`` → (media type in lower case, base64 payload); None
    for a URL that is not a ``data:`` URL. Raises UpstreamRejected for a data URL that is
    malformed, not base64-encoded, without a media type or without valid base64 data."""
    if not url.startswith("data:"):
        return None
    header, comma, payload = url.partition(",")
    if not comma:
        raise UpstreamRejected("malformed data URL in the request")
    fields = header[5:].split(";")
    media_type = fields[0].strip().lower()
    if "base64" not in (f.strip().lower() for f in fields[1:]):
        raise UpstreamRejected("data URLs must be base64-encoded (data:<type>;base64,...)")
    if _MEDIA_TYPE.fullmatch(media_type) is None:
        raise UpstreamRejected("data URL without a media type (data:<type>;base64,...)")
    data = payload.strip()
    if _BASE64.fullmatch(data) is None:
        raise UpstreamRejected("a data URL holds no valid base64 data")
    return media_type, data
