"""Turning what an HTTP upstream answered (or failed to) into an :class:`UpstreamError`.

Whether another upstream could succeed decides ``retryable`` (providers.md §14.2): rate
limits, overload, 5xx, timeouts, connection failures and our own upstream credentials or
credit being refused are retryable; a request the upstream rejects as invalid is not, and
goes back to the client as a 400 with the upstream's message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

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
    retry_after_s: float | None = None,
) -> UpstreamError:
    """``retry_after_s`` (already read from the headers) wins over ``retry_after`` (the raw
    ``Retry-After`` value)."""
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
        retry_after_s=retry_after_s if retry_after_s is not None else parse_delay(retry_after),
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


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?)(ns|us|µs|ms|h|m|s)")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(value: str | None) -> float | None:
    """A Go-style duration (``6m0s``, ``1.5s``, ``20ms``), as OpenAI's rate-limit reset
    headers carry it, in seconds; None when absent or malformed."""
    if not value:
        return None
    parts = _DURATION_PART.findall(value)
    if "".join(n + u for n, u in parts) != value.strip():
        return None
    return sum(float(n) * _UNIT_S[u] for n, u in parts)


def openai_retry_after(headers: Mapping[str, str]) -> float | None:
    """How long an OpenAI-wire upstream asks us to wait: ``retry-after-ms``, else
    ``Retry-After``, else the ``x-ratelimit-reset-*`` of the limits it says are exhausted
    (``x-ratelimit-remaining-*: 0``; the latest of them), else the earliest reset given."""
    millis = parse_delay(headers.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000.0
    seconds = parse_delay(headers.get("Retry-After"))
    if seconds is not None:
        return seconds
    resets: list[tuple[bool, float]] = []
    for limit in ("requests", "tokens"):
        reset = parse_duration(headers.get(f"x-ratelimit-reset-{limit}"))
        if reset is not None:
            resets.append((headers.get(f"x-ratelimit-remaining-{limit}") == "0", reset))
    if not resets:
        return None
    exhausted = [reset for full, reset in resets if full]
    return max(exhausted) if exhausted else min(reset for _, reset in resets)
