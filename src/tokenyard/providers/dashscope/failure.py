"""DashScope native error bodies → :class:`UpstreamError` (providers.md §6.3, §6.4, §14.2).

Body: ``{"code": "InvalidApiKey", "message": "...", "request_id": "..."}`` (the SDK's
``_handle_error_message`` also reads ``msg``); a streamed request may get the same object
as the ``data:`` of an SSE error answer, and after HTTP 200 as an ``event:error`` frame.
Codes (DashScope status-code page, mirrored in providers.md §6.4):

* ``InvalidParameter`` (also ``InternalError.Algo.InvalidParameter``), ``BadRequest.*``,
  ``InvalidURL``, ``DataInspectionFailed`` / ``data_inspection_failed`` (content
  moderation: ``code="content_filter"``): the request's own fault → UpstreamRejected
  (``BadRequest.TooLarge`` with status 413). A context overflow ("Range of input length
  should be [1, N]", "input ... exceeds") → ``context_length_exceeded``.
* ``InvalidApiKey``, ``*AccessDenied*``, ``Arrearage``: our key or account → retryable.
* ``Throttling*`` → rate limited, retryable; ``Throttling.AllocationQuota`` speaks of
  "quota" but clears within a minute, so it is a rate limit, not exhausted credit.
* ``InternalError*``, ``RequestTimeOut``, ``ServiceUnavailable`` … → retryable.
* Unknown codes: by HTTP status (400/413/422 rejected, anything else retryable).

:func:`needs_stream` spots the answers that only a streamed call avoids ("enable_thinking
must be set to false for non-streaming calls", "only support stream mode").
"""

from __future__ import annotations

import re

from tokenyard.errors import UpstreamError, UpstreamRejected
from tokenyard.providers.failure import parse_delay, scrub
from tokenyard.wire.json import JSONDecodeError, loads

_OVERFLOW = re.compile(
    r"range of input length|input (?:length|tokens?)[^.]*exceed|exceeds? (?:the )?"
    r"(?:maximum|max) (?:context|input)|maximum context length|context length",
    re.IGNORECASE,
)
_STREAM_ONLY = re.compile(r"non-streaming calls|only support stream", re.IGNORECASE)
_CLIENT_STATUS = frozenset({400, 413, 422})


def error_fields(doc: object) -> tuple[str, str]:
    """(code, message) of a decoded DashScope error (flat, or OpenAI-style nested)."""
    err = doc.get("error", doc) if isinstance(doc, dict) else doc
    if not isinstance(err, dict):
        return "", str(err or "")
    message = err.get("message") or err.get("msg") or ""
    code = err.get("code") or err.get("type") or ""
    return str(code), str(message)


def decode(body: bytes) -> tuple[str, str]:
    """(code, message) of an error answer whose body is JSON or an SSE error event."""
    text = body.strip()
    candidates = [text] + [line[5:] for line in text.splitlines() if line.startswith(b"data:")]
    for candidate in candidates:
        try:
            return error_fields(loads(candidate))
        except JSONDecodeError:
            continue
    return "", ""


def needs_stream(code: str, message: str) -> bool:
    return "InvalidParameter" in code and bool(_STREAM_ONLY.search(message))


def classify(
    status: int,
    code: str,
    message: str,
    *,
    provider: str,
    secret: str | None,
    retry_after: str | None = None,
) -> UpstreamError:
    message = scrub(message, secret)[:500]
    if "DataInspectionFailed" in code or code == "data_inspection_failed":
        return UpstreamRejected(
            message or "the input failed content inspection", code="content_filter"
        )
    if code == "BadRequest.TooLarge" or status == 413:
        return UpstreamRejected(message or "the request is too large", status=413)
    rejected = (
        code.endswith("InvalidParameter")
        or code.startswith("BadRequest")
        or code in ("InvalidURL", "InvalidParameter", "invalid_request_error")
    )
    if rejected or (not code and status in _CLIENT_STATUS):
        overflow = _OVERFLOW.search(message) is not None
        return UpstreamRejected(
            message or f"the upstream rejected the request (HTTP {status})",
            code="context_length_exceeded" if overflow else None,
        )
    if code.startswith("Throttling") or (not code and status == 429):
        return UpstreamError(
            f"provider {provider} is rate limited ({code or status}): {message}",
            retryable=True,
            status=429,
            code="upstream_rate_limited",
            retry_after_s=parse_delay(retry_after),
        )
    if code and status in _CLIENT_STATUS and not _ours(code):
        return UpstreamRejected(message or f"the upstream rejected the request ({code})")
    return UpstreamError(
        f"provider {provider} failed (HTTP {status}, {code or 'no code'}): {message}",
        retryable=True,
        code="upstream_failed",
    )


def _ours(code: str) -> bool:
    """Codes about our key, account or the service, whatever the HTTP status."""
    return (
        code in ("InvalidApiKey", "Arrearage", "RequestTimeOut", "ServiceUnavailable")
        or "AccessDenied" in code  # AccessDenied, AccessDenied.Unpurchased, Model.AccessDenied
        or code.startswith(("InternalError", "ModelServing", "Throttling"))
    )
