"""Relaying an upstream stream to the client as SSE, and what it cost."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass

from tokenyard.billing.money import format_nano
from tokenyard.errors import TokenyardError
from tokenyard.providers.base import Call, ChatStream, Provider
from tokenyard.wire.json import dumps, loads
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
    byte becomes an error event. ``served.cost_nano`` is set when the upstream is done,
    however it ends (also when the client leaves)."""

    def __init__(
        self,
        *,
        opened: OpenedStream,
        served: Served,
        price: Callable[[Usage], int],
        prompt_estimate: int,
        include_usage: bool,
    ):
        self.served = served
        self._opened = opened
        self._price = price
        self._prompt_estimate = prompt_estimate
        self._include_usage = include_usage
        self._chunks = 0

    async def frames(self) -> AsyncGenerator[bytes, None]:
        opened = self._opened
        try:
            if opened.first is not None:
                self._chunks = 1
                yield frame(opened.first)
                async for payload in opened.iterator:
                    self._chunks += 1
                    yield frame(payload)
        except TokenyardError as exc:
            log.warning(
                "upstream stream broke",
                extra={"fields": {"provider": self.served.provider, "error": exc.code}},
            )
            yield frame(dumps(exc.body()))
        finally:
            await opened.stream.aclose()
            self.served.cost_nano = self._price(self._usage())
        if self._include_usage:
            yield frame(self._usage_chunk())
        yield DONE_FRAME

    def _usage(self) -> Usage:
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
        usage = self._usage().to_openai()
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
