"""Google RPC error bodies → :class:`UpstreamError` (providers.md §4.5, §14.2).

The body is ``{"error": {"code", "message", "status", "details"[]}}`` (python-genai
``errors.APIError`` reads ``error.code/message/status`` and unwraps a one-element list, which
Google sends outside SSE). Classification:

* a bad key — ``400 INVALID_ARGUMENT`` with ``ErrorInfo.reason: API_KEY_INVALID`` (or
  ``API_KEY_EXPIRED``), ``401 UNAUTHENTICATED``, ``403 PERMISSION_DENIED`` — and
  ``400 FAILED_PRECONDITION`` (region / billing of our project) are *our* fault: retryable;
* any other 400/413/422 is the request's fault → :class:`UpstreamRejected`, with
  ``code="context_length_exceeded"`` for "The input token count (…) exceeds the maximum
  number of tokens allowed (…)";
* ``429 RESOURCE_EXHAUSTED`` → retryable, ``retry_after_s`` from a ``google.rpc.RetryInfo``
  detail's ``retryDelay`` (a protobuf Duration such as ``"35s"``) or a ``Retry-After`` header;
* 404, 5xx (``INTERNAL``, ``UNAVAILABLE``, ``DEADLINE_EXCEEDED``) and the rest → retryable.
"""

from __future__ import annotations

import re

from tokenyard.errors import UpstreamError, UpstreamRejected
from tokenyard.providers.failure import parse_delay, scrub
from tokenyard.wire.json import JSONDecodeError, JSONObject, loads

_CLIENT_FAULT = frozenset({400, 413, 422})
_KEY_REASONS = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED"})
_OUR_STATUSES = frozenset({"UNAUTHENTICATED", "PERMISSION_DENIED", "FAILED_PRECONDITION"})
_OVERFLOW = re.compile(r"input token count.*exceed|exceeds the maximum number of tokens", re.I)
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)s\s*")


def error_object(doc: object) -> JSONObject | None:
    """The ``error`` object of a decoded body (also inside a one-element list), or None."""
    if isinstance(doc, list) and len(doc) == 1:
        doc = doc[0]
    err = doc.get("error") if isinstance(doc, dict) else None
    return err if isinstance(err, dict) else None


def _details(err: JSONObject) -> list[JSONObject]:
    details = err.get("details")
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


def _retry_delay(err: JSONObject) -> float | None:
    for detail in _details(err):
        if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = _DURATION.fullmatch(str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None


def classify(
    status: int,
    err: JSONObject | None,
    *,
    provider: str,
    secret: str | None,
    retry_after: str | None = None,
    stage: str = "answered",
) -> UpstreamError:
    """``status`` is the HTTP status (or ``error.code`` for an error inside a stream)."""
    err = err or {}
    message = scrub(str(err.get("message") or ""), secret)[:500]
    rpc_status = str(err.get("status") or "")
    reasons = {str(d.get("reason")) for d in _details(err)}
    ours = bool(reasons & _KEY_REASONS) or rpc_status in _OUR_STATUSES or status in (401, 403)
    what = f"HTTP {status} {rpc_status}".rstrip()
    if ours:
        return UpstreamError(
            f"provider {provider} {stage} {what}: its credentials or project were refused",
            retryable=True,
        )
    if status in _CLIENT_FAULT:
        overflow = bool(_OVERFLOW.search(message))
        return UpstreamRejected(
            message or f"the upstream rejected the request ({what})",
            code="context_length_exceeded" if overflow else None,
        )
    limited = status == 429 or rpc_status == "RESOURCE_EXHAUSTED"
    return UpstreamError(
        f"provider {provider} {stage} {what}",
        retryable=True,
        code="upstream_rate_limited" if limited else "upstream_failed",
        retry_after_s=_retry_delay(err) or parse_delay(retry_after),
    )


def from_response(
    status: int, body: bytes, *, provider: str, secret: str | None, retry_after: str | None
) -> UpstreamError:
    try:
        err = error_object(loads(body))
    except JSONDecodeError:
        err = None
    return classify(status, err, provider=provider, secret=secret, retry_after=retry_after)


def in_body(
    err: JSONObject, *, provider: str, secret: str | None, stage: str = "answered"
) -> UpstreamError:
    """An ``error`` object found inside a 200 answer or a stream; ``error.code`` stands in for
    the HTTP status."""
    code = err.get("code")
    status = code if isinstance(code, int) and not isinstance(code, bool) else 500
    return classify(status, err, provider=provider, secret=secret, stage=stage)


def mid_stream(err: JSONObject, *, provider: str, secret: str | None) -> UpstreamError:
    return in_body(err, provider=provider, secret=secret, stage="failed mid-stream with")
