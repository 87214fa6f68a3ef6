"""Anthropic clients in front of Anthropic upstreams: the body goes through untouched.

When every attempt of a model's plan is an upstream that speaks the Messages API itself,
``/v1/messages`` relays the client's request and the upstream's answer byte for byte (only
``model`` is set to the upstream's name), so nothing the canonical form cannot carry is
lost: ``cache_control``, thinking blocks and their signatures, new fields. Usage is read
from the answer as it passes, and the charge is committed before the final
``message_stop`` event (or, unstreamed, before the body) is written.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from tokenyard.errors import UpstreamError
from tokenyard.providers.anthropic.response import usage_from_anthropic
from tokenyard.wire.json import JSONDecodeError, JSONObject, dumps, loads
from tokenyard.wire.usage import Usage


class RawResponse(Protocol):
    """The part of an HTTP response the relay needs."""

    @property
    def content(self) -> AsyncIterable[bytes]: ...

    async def read(self) -> bytes: ...

    def release(self) -> Any: ...


@runtime_checkable
class SpeaksMessages(Protocol):
    async def messages_raw(
        self,
        body: bytes,
        api_key: str | None,
        *,
        stream: bool,
        headers: Mapping[str, str] | None = None,
    ) -> Any: ...


class UsageReader:
    """Accumulates Anthropic usage from a message or from stream events (the input counts
    come with ``message_start``, the output count — cumulative — with ``message_delta``)."""

    def __init__(self) -> None:
        self.fields: JSONObject = {}

    def merge(self, usage: object) -> None:
        if isinstance(usage, dict):
            self.fields.update({k: v for k, v in usage.items() if v is not None})

    def event(self, data: bytes) -> None:
        if b'"usage"' not in data:
            return
        try:
            doc = loads(data)
        except JSONDecodeError:
            return
        if not isinstance(doc, dict):
            return
        message = doc.get("message")
        self.merge(message.get("usage") if isinstance(message, dict) else doc.get("usage"))

    def usage(self, prompt_estimate: int) -> Usage:
        if not self.fields:
            return Usage(prompt_tokens=prompt_estimate)
        return usage_from_anthropic(self.fields)


async def relay_stream(
    response: RawResponse,
    settle: Callable[[Usage], Awaitable[int]],
    prompt_estimate: int,
) -> AsyncGenerator[bytes, None]:
    """The upstream's SSE lines as they arrive; the charge is committed just before the
    ``message_stop`` event, or when the stream ends in any other way. A stream that ends
    neither with ``message_stop`` nor with the upstream's own ``event: error`` — it broke off,
    went silent, or was cut short — gets an ``event: error`` of ours after the charge, as the
    Messages API ends a stream that fails, so the client never takes it for complete."""
    reader = UsageReader()
    settled = ended = False
    failure: UpstreamError | None = None
    try:
        async for line in response.content:
            if line.startswith(b"data:"):
                reader.event(line[5:].strip())
            elif line.startswith(b"event: message_stop") and not settled:
                settled = ended = True
                await settle(reader.usage(prompt_estimate))
            elif line.startswith(b"event: error"):
                ended = True
            yield line
    except UpstreamError as exc:
        failure = exc
    finally:
        response.release()
        if not settled:
            settled = True
            await settle(reader.usage(prompt_estimate))
    if not ended:
        yield _error_event(failure)


def _error_event(failure: UpstreamError | None) -> bytes:
    kind = "overloaded_error" if failure is not None and failure.status == 503 else "api_error"
    message = failure.message if failure is not None else "the upstream stream was cut short"
    error = {"type": "error", "error": {"type": kind, "message": message}}
    return b"event: error\ndata: " + dumps(error) + b"\n\n"


def message_usage(body: bytes, prompt_estimate: int) -> Usage:
    reader = UsageReader()
    try:
        doc = loads(body)
    except JSONDecodeError:
        return Usage(prompt_tokens=prompt_estimate)
    if isinstance(doc, dict):
        reader.merge(doc.get("usage"))
    return reader.usage(prompt_estimate)
