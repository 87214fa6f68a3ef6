"""Relaying an upstream stream to the client as SSE, and what it cost."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from tokenyard.billing.money import format_nano
from tokenyard.errors import TokenyardError
from tokenyard.obs.record import current
from tokenyard.providers.base import Call, ChatStream, Provider
from tokenyard.wire.json import JSONDecodeError, JSONObject, dumps, loads
from tokenyard.wire.sse import DONE_FRAME, frame
from tokenyard.wire.usage import Usage

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Served:
    """Which upstream answered, after how many calls, and what it cost."""

    model: str
    provider: str
    attempts: int
    cost_nano: int = 0

    @property
    def cost(self) -> str:
        return format_nano(self.cost_nano)


@dataclass(slots=True)
class OpenedStream:
    """An upstream stream that has delivered its first chunk (None: it ended at once).
    Until then a failure is the attempt's; after it, it is the client's stream's."""

    stream: ChatStream
    iterator: AsyncIterator[bytes]
    first: bytes | None

    @classmethod
    async def open(cls, provider: Provider, call: Call) -> OpenedStream:
        stream = await provider.open_stream(call)
        iterator = aiter(stream)
        try:
            first = await anext(iterator, None)
        except BaseException:
            await stream.aclose()
            raise
        return cls(stream, iterator, first)


class StreamRelay:
    """Yields SSE frames as upstream chunks arrive — never buffered — then the usage chunk
    (when the client asked for it, with its cost) and ``[DONE]``. A failure after the first
    byte becomes an error event.

    The charge is committed before the last frames are yielded. A client that leaves ends
    the iteration early: the upstream is closed at once (cancelling its work) and what it
    produced until then is charged — its reported usage if it got that far, else the prompt
    estimate and one token per relayed chunk. :meth:`aclose` does the same for a relay that
    was never iterated."""

    def __init__(
        self,
        *,
        opened: OpenedStream,
        served: Served,
        settle: Callable[[Usage], Awaitable[int]],
        prompt_estimate: int,
        include_usage: bool,
    ):
        self.served = served
        self._opened = opened
        self._settle = settle
        self._settled = False
        self._prompt_estimate = prompt_estimate
        self._include_usage = include_usage
        self._chunks = 0
        self.failure: TokenyardError | None = None
        record = current()
        # The request log keeps the answer's text: gathered only when it is asked for.
        self._record = record if record is not None and record.capture else None
        self._text: list[str] = []

    async def payloads(self) -> AsyncGenerator[bytes, None]:
        """Canonical chunk payloads as they arrive. When it ends — also early — the upstream
        is closed and the charge committed; a broken upstream is left in ``failure``."""
        opened = self._opened
        try:
            if opened.first is not None:
                self._chunks = 1
                self._keep(opened.first)
                yield opened.first
                async for payload in opened.iterator:
                    self._chunks += 1
                    self._keep(payload)
                    yield payload
        except TokenyardError as exc:
            log.warning(
                "upstream stream broke",
                extra={"fields": {"provider": self.served.provider, "error": exc.code}},
            )
            self.failure = exc
        finally:
            await self.aclose()  # also on GeneratorExit: the client left

    async def frames(self) -> AsyncGenerator[bytes, None]:
        """The OpenAI SSE stream: chunks, an error event if the upstream broke, the usage
        chunk when asked for, ``[DONE]``."""
        payloads = self.payloads()
        try:
            async for payload in payloads:
                yield frame(payload)
        finally:
            await payloads.aclose()
        if self.failure is not None:
            yield frame(dumps(self.failure.body()))
        if self._include_usage:
            yield frame(self._usage_chunk())
        yield DONE_FRAME

    async def aclose(self) -> None:
        """Close the upstream and charge what it produced; idempotent."""
        if self._settled:
            return
        self._settled = True
        if self._record is not None:
            self._record.keep_completion("".join(self._text))
        await self._opened.stream.aclose()
        self.served.cost_nano = await self._settle(self.usage())

    def _keep(self, payload: bytes) -> None:
        if self._record is not None and b'"content"' in payload:
            text = delta_text(payload)
            if text:
                self._text.append(text)

    def usage(self) -> Usage:
        usage = self._opened.stream.usage
        if usage is not None:
            return usage
        # The upstream reported nothing (a cut stream, or a vendor without stream usage):
        # estimate — OpenAI-wire servers stream about one token per chunk.
        return Usage(
            prompt_tokens=self._prompt_estimate, completion_tokens=max(0, self._chunks - 1)
        )

    def _usage_chunk(self) -> bytes:
        first = self._opened.first
        envelope = loads(first) if first else {}
        usage = self.usage().to_openai()
        usage["cost"] = float(self.served.cost)
        return dumps(
            {
                "id": envelope.get("id", ""),
                "object": "chat.completion.chunk",
                "created": envelope.get("created", 0),
                "model": envelope.get("model", ""),
                "choices": [],
                "usage": usage,
            }
        )


def completion_text(body: JSONObject) -> str | None:
    """The first choice's answer in a chat completion: its text, or its tool calls as JSON."""
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    message = choices[0].get("message")
    if not isinstance(message, dict):
        return None
    content = message.get("content")
    if isinstance(content, str):
        return content
    calls = message.get("tool_calls")
    return dumps(calls).decode() if calls else None


def delta_text(payload: bytes) -> str | None:
    """The text a stream chunk adds to the first choice."""
    try:
        chunk = loads(payload)
    except JSONDecodeError:
        return None
    choices = chunk.get("choices") if isinstance(chunk, dict) else None
    if not isinstance(choices, list):
        return None
    for choice in choices:
        if isinstance(choice, dict) and choice.get("index", 0) == 0:
            delta = choice.get("delta")
            content = delta.get("content") if isinstance(delta, dict) else None
            return content if isinstance(content, str) else None
    return None
