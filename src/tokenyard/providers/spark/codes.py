"""Spark business error codes → :class:`UpstreamError` (retryable or not).

A WebSocket frame with ``header.code != 0``, or an HTTP body/chunk with ``code != 0``, is an
error. The code table is iFlytek's (xfyun.cn/doc/spark/接口说明.html "服务错误码", repeated
in the official Java SDK's README, ``iFLYTEK-OP/websdk-java`` websdk-java-spark); how each
class is treated follows providers.md §14.2:

* 10013, 10019, 10021 — input failed content moderation: the client's own request, not
  retried, ``code="content_filter"``.
* 10014 — the *output* failed moderation: callers end the answer with
  ``finish_reason="content_filter"`` (§14.2 "Content filtered (output)"); only when nothing
  could be answered at all is it an error like the input case.
* 10907 — history + question over the token limit: ``context_length_exceeded``.
* 10003, 10004, 10005, 10163 — the request's format, schema or values were refused: not
  retried. (Whether these can also be caused by our own translation is **unverified**.)
* 10006, 10007, 10008, 10110, 11201, 11202, 11203 — concurrency, flow control, capacity,
  daily/second/concurrent quotas: retryable, rate limited.
* 10015, 10016, 11200 — the app id is blacklisted or lacks the licence/quota: our
  credential, retryable on another key.
* anything else (10000-10002, 10009-10012, 10222, 10223, unknown) — upstream failure,
  retryable.
"""

from __future__ import annotations

from tokenyard.errors import UpstreamError, UpstreamRejected
from tokenyard.providers.failure import scrub

OUTPUT_FILTERED = 10014
_INPUT_FILTERED = frozenset({10013, 10019, 10021})
_CONTEXT = frozenset({10907})
_INVALID = frozenset({10003, 10004, 10005, 10163})
_RATE = frozenset({10006, 10007, 10008, 10110, 11201, 11202, 11203})
_CREDENTIAL = frozenset({10015, 10016, 11200})


def error_for(code: int, message: str, *, provider: str, secrets: tuple[str, ...]) -> UpstreamError:
    text = message
    for secret in secrets:
        text = scrub(text, secret)
    text = text[:300]
    detail = f"Spark error {code}: {text}" if text else f"Spark error {code}"
    if code in _INPUT_FILTERED or code == OUTPUT_FILTERED:
        return UpstreamRejected(
            f"content filtered by the upstream ({detail})", code="content_filter"
        )
    if code in _CONTEXT:
        return UpstreamRejected(detail, code="context_length_exceeded")
    if code in _INVALID:
        return UpstreamRejected(f"the upstream rejected the request ({detail})")
    if code in _RATE:
        return UpstreamError(
            f"provider {provider} is rate limited ({detail})",
            retryable=True,
            code="upstream_rate_limited",
        )
    if code in _CREDENTIAL:
        return UpstreamError(
            f"provider {provider} refused our credential ({detail})", retryable=True
        )
    return UpstreamError(f"provider {provider} failed ({detail})", retryable=True)


def code_of(value: object) -> int:
    """A ``code`` field as an int (Spark sends numbers; strings are tolerated)."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return 0
