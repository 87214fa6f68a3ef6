"""Turning what an HTTP upstream answered (or failed to) into an :class:`UpstreamError`.

Whether another upstream could succeed decides ``retryable`` (providers.md §14.2): rate
limits, overload, 5xx, timeouts, connection failures and our own upstream credentials or
credit being refused are retryable; a request the upstream rejects as invalid is not, and
goes back to the client as a 400 with the upstream's message.
"""

from __future__ import annotations

from tokenyard.errors import UpstreamError, UpstreamRejected
from tokenyard.wire.json import JSONDecodeError, loads

_CLIENT_FAULT = frozenset({400, 413, 422})
_QUOTA_CODES = frozenset({"insufficient_quota", "billing_error", "Arrearage", "1113"})


def _error_fields(body: bytes) -> tuple[str, str | None]:
    try:
        doc = loads(body)
    except JSONDecodeError:
        return "", None
    err = doc.get("error", doc) if isinstance(doc, dict) else None
    if isinstance(err, str):
        return err, None
    if not isinstance(err, dict):
        return "", None
    message = err.get("message") or err.get("msg") or ""
    code = err.get("code") or err.get("type")
    return str(message), None if code is None else str(code)


def scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


def from_status(
    status: int,
    body: bytes,
    *,
    provider: str,
    secret: str | None,
    retry_after: str | None = None,
) -> UpstreamError:
    message, code = _error_fields(body)
    message = scrub(message, secret)[:500]
    if status in _CLIENT_FAULT and code not in _QUOTA_CODES:
        if code == "context_length_exceeded" or "maximum context length" in message:
            code = "context_length_exceeded"
        return UpstreamRejected(
            message or f"the upstream rejected the request (HTTP {status})",
            code=code if code == "context_length_exceeded" else None,
        )
    return UpstreamError(
        f"provider {provider} answered HTTP {status}",
        retryable=True,
        code="upstream_rate_limited" if status == 429 else "upstream_failed",
        retry_after_s=parse_delay(retry_after),
    )


def parse_delay(value: str | None) -> float | None:
    """A delay header's value (``Retry-After`` seconds, ``retry-after-ms``) as a non-negative
    number; None when absent or not a number (an HTTP date is not read)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
