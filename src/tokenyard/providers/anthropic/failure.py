"""Anthropic error answers → :class:`~tokenyard.errors.UpstreamError`.

Wire facts (anthropic-sdk-python ``types/shared/error_response.py``, ``error_type.py``,
``_client.py`` ``_make_status_error``, ``_base_client.py`` retry-after handling,
``_streaming.py``; providers.md §3.5, §14.2):

* Body: ``{"type":"error","error":{"type","message"},"request_id"}`` with ``error.type`` one
  of ``invalid_request_error`` (400), ``authentication_error`` (401), ``billing_error``
  (402), ``permission_error`` (403), ``not_found_error`` (404), ``request_too_large`` (413),
  ``rate_limit_error`` (429), ``api_error`` (500), ``timeout_error`` (504),
  ``overloaded_error`` (529).
* The request's own fault — 400 ``invalid_request_error``, 413, 422 — is not retried
  (:class:`UpstreamRejected`); "prompt is too long: N tokens > M maximum" gets
  ``code="context_length_exceeded"``. Two 400s are about *our account*, not the request,
  and are retryable: "Your credit balance is too low …" and "You have reached your
  specified API usage limits …" (seen on real responses), as is ``billing_error``.
* 401/403/404 concern our key or deployment, 429/5xx/529 capacity: all retryable. 529 is
  shown to clients as 503.
* Retry delay: ``retry-after-ms``, else ``retry-after`` (seconds), else the latest
  ``anthropic-ratelimit-*-reset`` (RFC 3339) among the exhausted limits (``*-remaining: 0``),
  else the earliest reset of any limit.
* Mid-stream, ``event: error`` carries the same ``error`` object after HTTP 200.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from tokenyard.errors import UpstreamError, UpstreamRejected
from tokenyard.providers.failure import parse_delay, scrub
from tokenyard.wire.json import JSONDecodeError, loads

_ACCOUNT_MESSAGES = ("credit balance is too low", "reached your specified api usage limits")
_OVERFLOW_MESSAGES = ("prompt is too long", "exceed context limit", "context window")
_LIMITS = ("requests", "tokens", "input-tokens", "output-tokens")
OVERLOADED_STATUS = 503


def error_fields(body: bytes | object) -> tuple[str | None, str]:
    """(``error.type``, ``error.message``) of an Anthropic error body or decoded event."""
    doc = body
    if isinstance(body, bytes):
        try:
            doc = loads(body)
        except JSONDecodeError:
            return None, ""  # e.g. a proxy's HTML page: nothing worth showing a client
    err = doc.get("error", doc) if isinstance(doc, dict) else None
    if not isinstance(err, dict):
        return None, ""
    kind, message = err.get("type"), err.get("message")
    return (kind if isinstance(kind, str) else None), (message if isinstance(message, str) else "")


def _is_context_overflow(message: str) -> bool:
    lowered = message.lower()
    return any(text in lowered for text in _OVERFLOW_MESSAGES)


def from_response(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    *,
    provider: str,
    secret: str | None,
    now: float,
) -> UpstreamError:
    kind, message = error_fields(body)
    message = scrub(message, secret)[:500]
    account = any(text in message.lower() for text in _ACCOUNT_MESSAGES)
    if status in (400, 422) and kind != "billing_error" and not account:
        overflow = _is_context_overflow(message)
        return UpstreamRejected(
            message or f"the upstream rejected the request (HTTP {status})",
            code="context_length_exceeded" if overflow else None,
        )
    if status == 413:
        return UpstreamRejected(
            message or "the request is too large for the upstream",
            status=413,
            code="request_too_large",
        )
    detail = f" ({kind})" if kind else ""
    return UpstreamError(
        f"provider {provider} answered HTTP {status}{detail}: {message[:200]}",
        retryable=True,
        status=OVERLOADED_STATUS if status == 529 or kind == "overloaded_error" else None,
        code="upstream_rate_limited" if status == 429 else "upstream_failed",
        retry_after_s=retry_after(headers, now),
    )


def mid_stream(data: bytes, *, provider: str, secret: str | None) -> UpstreamError:
    """The error of an ``event: error`` that arrived after HTTP 200."""
    kind, message = error_fields(data)
    message = scrub(message, secret)[:300]
    if kind == "invalid_request_error":
        overflow = _is_context_overflow(message)
        return UpstreamRejected(
            message or "the upstream rejected the request",
            code="context_length_exceeded" if overflow else None,
        )
    return UpstreamError(
        f"provider {provider} failed mid-stream ({kind or 'error'}): {message}",
        retryable=True,
        status=OVERLOADED_STATUS if kind == "overloaded_error" else None,
    )


def _epoch(value: str) -> float | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def retry_after(headers: Mapping[str, str], now: float) -> float | None:
    millis = parse_delay(headers.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000
    seconds = parse_delay(headers.get("retry-after"))
    if seconds is not None:
        return seconds
    resets: list[tuple[bool, float]] = []
    for limit in _LIMITS:
        raw = headers.get(f"anthropic-ratelimit-{limit}-reset")
        at = _epoch(raw) if raw else None
        if at is not None:
            full = headers.get(f"anthropic-ratelimit-{limit}-remaining") == "0"
            resets.append((full, at))
    if not resets:
        return None
    exhausted = [at for full, at in resets if full]
    until = max(exhausted) if exhausted else min(at for _, at in resets)
    return max(0.0, until - now)
