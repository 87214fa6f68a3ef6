"""Zhipu error bodies → :class:`UpstreamError` (providers.md §7.5, §14.2).

Body: ``{"error": {"code": "1214", "message": "..."}}`` — the code is a **string** business
code, and the HTTP status alone misleads: 429 means a rate limit *or* an empty balance.
Sources: docs.z.ai/api-reference/api-code (the code table), the SDK's ``_http_client.py``
(400/401/429/500/503 classes), issue threads for 1261 ("Prompt exceeds max length", HTTP
400) and 1305 ("该模型当前访问量过大" — model overloaded, also seen after HTTP 200).

Decisions (whether another upstream could succeed):

* 1000–1004 (authentication), 1110–1121 (account: inactive, locked, 1113 in arrears) and
  1220–1222 (no access to the API / API offline): our credential or account — retryable,
  but not a rate limit (``upstream_failed``).
* 1302 concurrency, 1303 frequency, 1305 overloaded, 1304 and 1308–1310 daily / 5-hour usage
  windows (1303/1304/1305/1308 from issue threads, unverified in the code table): rate
  limited and retryable (``upstream_rate_limited``, HTTP 429, Retry-After honoured).
* 1301 unsafe content (and 1300 policy block): the client's input — UpstreamRejected with
  ``code="content_filter"``.
* 1261 prompt too long: UpstreamRejected ``context_length_exceeded``.
* 1210–1215 invalid call parameters: UpstreamRejected — 1211 (unknown model) included, as
  the brief asks, although it is really a deployment misconfiguration.
* 1230/1231/1234 process or network errors: retryable.
* Anything else: by HTTP status, as :func:`tokenyard.providers.failure.from_status` does.
"""

from __future__ import annotations

from tokenyard.errors import UpstreamError, UpstreamRejected
from tokenyard.providers.failure import from_status, parse_delay, scrub
from tokenyard.wire.json import JSONDecodeError, loads

_OUR_ACCOUNT = frozenset(
    {"1000", "1001", "1002", "1003", "1004", "1220", "1221", "1222"}
    | {str(code) for code in range(1100, 1122)}
)
_RATE_LIMITED = frozenset({"1302", "1303", "1304", "1305", "1308", "1309", "1310"})
_CONTENT = frozenset({"1300", "1301"})
_REJECTED = frozenset({"1210", "1211", "1212", "1213", "1214", "1215"})
_TRANSIENT = frozenset({"500", "1200", "1230", "1231", "1234"})


def error_fields(doc: object) -> tuple[str, str]:
    """(code, message) of a decoded Zhipu error body or stream error frame."""
    err = doc.get("error", doc) if isinstance(doc, dict) else doc
    if isinstance(err, str):
        return "", err
    if not isinstance(err, dict):
        return "", ""
    message = err.get("message") or err.get("msg") or ""
    code = err.get("code")
    return ("" if code is None else str(code)), str(message)


def _clean(message: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        message = scrub(message, secret)
    return message[:500]


def classify(
    status: int,
    code: str,
    message: str,
    *,
    provider: str,
    secrets: tuple[str, ...],
    retry_after: str | None = None,
) -> UpstreamError | None:
    """The error a business code means; None when the code says nothing (use the status)."""
    message = _clean(message, secrets)
    if code in _CONTENT:
        return UpstreamRejected(
            message or "the upstream refused unsafe content", code="content_filter"
        )
    if code == "1261":
        return UpstreamRejected(
            message or "the prompt exceeds the model's context", code="context_length_exceeded"
        )
    if code in _REJECTED:
        return UpstreamRejected(message or f"the upstream rejected the request (code {code})")
    if code in _RATE_LIMITED:
        return UpstreamError(
            f"provider {provider} is rate limited (code {code}): {message}",
            retryable=True,
            status=429,
            code="upstream_rate_limited",
            retry_after_s=parse_delay(retry_after),
        )
    if code in _OUR_ACCOUNT or code in _TRANSIENT:
        return UpstreamError(
            f"provider {provider} failed (HTTP {status}, code {code}): {message}",
            retryable=True,
            code="upstream_failed",
        )
    return None


def from_response(
    status: int,
    body: bytes,
    *,
    provider: str,
    secrets: tuple[str, ...],
    retry_after: str | None = None,
) -> UpstreamError:
    """The error for a non-200 answer (or a 200 whose body is an error)."""
    try:
        code, message = error_fields(loads(body))
    except JSONDecodeError:
        code, message = "", ""
    known = classify(
        status, code, message, provider=provider, secrets=secrets, retry_after=retry_after
    )
    if known is not None:
        return known
    if status == 200:
        return UpstreamError(
            f"provider {provider} answered with an error: {_clean(message, secrets)}",
            retryable=True,
        )
    for secret in secrets:
        body = body.replace(secret.encode(), b"***")
    return from_status(
        status,
        body,
        provider=provider,
        secret=secrets[0] if secrets else None,
        retry_after=retry_after,
    )
