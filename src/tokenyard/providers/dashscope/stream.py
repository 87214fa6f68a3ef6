"""A DashScope native SSE stream → canonical chunks.

Wire facts (providers.md §1.1, §6.4; SDK ``common/utils.py`` ``_handle_aio_stream``,
``utils/message_utils.py``): frames are ``id:N`` / ``event:result`` / ``:HTTP_STATUS/200`` /
``data:{...}`` (no space after the colon, a comment line, **no** ``[DONE]`` — the stream
ends when the connection does). With ``incremental_output: true`` each event's
``message.content`` / ``reasoning_content`` is a delta and tool calls come as an opening
delta (id, type, name) followed by argument fragments whose ``id`` is empty. Each event's
``usage`` is cumulative: the last one wins — per choice index, since with ``n`` > 1 every
event speaks for one choice (the SDK sums ``output_tokens`` over the indexes).
``finish_reason`` is the string ``"null"`` until the end. ``event:error`` carries
``{"code", "message", "request_id"}`` and is raised, classified like an error answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from tokenyard.errors import UpstreamError, UpstreamTimeout
from tokenyard.providers.dashscope.failure import classify, error_fields
from tokenyard.providers.dashscope.response import (
    choices_of,
    content_text,
    finish_reason,
    usage_of,
    usage_parts,
)
from tokenyard.providers.http import stream_body
from tokenyard.providers.toolcalls import ToolCallDeltas
from tokenyard.providers.transport import Response
from tokenyard.wire.json import JSONDecodeError, JSONObject, dumps, loads
from tokenyard.wire.sse import read_events
from tokenyard.wire.usage import Usage


@dataclass(slots=True)
class _Choice:
    tools: ToolCallDeltas = field(default_factory=ToolCallDeltas)
    finished: bool = False


class Translator:
    """Canonical chunks from decoded DashScope events (no I/O)."""

    def __init__(self, model: str, created: int) -> None:
        self.usage: Usage | None = None
        self._model = model
        self._created = created
        self._head: JSONObject | None = None
        self._choices: dict[int, _Choice] = {}
        self._usages: dict[int, tuple[int, int, int, int]] = {}

    @property
    def finished(self) -> bool:
        return bool(self._choices) and all(c.finished for c in self._choices.values())

    def _chunk(self, index: int, delta: JSONObject, finish: str | None) -> JSONObject:
        assert self._head is not None
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**self._head, "choices": [choice]}

    def feed(self, doc: JSONObject) -> list[JSONObject]:
        if self._head is None:
            self._head = {
                "id": f"chatcmpl-{doc.get('request_id') or 'dashscope'}",
                "object": "chat.completion.chunk",
                "created": self._created,
                "model": self._model,
            }
        out: list[JSONObject] = []
        choices = choices_of(doc.get("output"))
        first_index = 0
        for position, item in enumerate(choices):
            raw: JSONObject = item if isinstance(item, dict) else {}
            index = raw.get("index")
            index = index if isinstance(index, int) else position
            if position == 0:
                first_index = index
            out.extend(self._choice(index, raw))
        if isinstance(doc.get("usage"), dict):
            self._usages[first_index] = usage_parts(doc["usage"])
            self.usage = usage_of(list(self._usages.values()))
        return out

    def _choice(self, index: int, raw: JSONObject) -> list[JSONObject]:
        out: list[JSONObject] = []
        state = self._choices.get(index)
        if state is None:
            state = self._choices[index] = _Choice()
            out.append(self._chunk(index, {"role": "assistant", "content": ""}, None))
        message: Any = raw.get("message")
        message = message if isinstance(message, dict) else {}
        delta: JSONObject = {}
        text = content_text(message.get("content"))
        if text:
            delta["content"] = text
        if isinstance(message.get("reasoning_content"), str) and message["reasoning_content"]:
            delta["reasoning_content"] = message["reasoning_content"]
        calls = message.get("tool_calls")
        if isinstance(calls, list):
            fed = [state.tools.feed(call, at) for at, call in enumerate(calls)]
            if any(d is not None for d in fed):
                delta["tool_calls"] = [d for d in fed if d is not None]
        finish = finish_reason(raw.get("finish_reason"), state.tools.seen)
        if finish is not None:
            state.finished = True
        if delta or finish is not None:
            out.append(self._chunk(index, delta, finish))
        return out


class DashScopeStream:
    def __init__(
        self,
        response: Response,
        *,
        provider: str,
        model: str,
        secret: str | None,
        clock: Callable[[], float],
    ) -> None:
        self._response = response
        self._provider = provider
        self._secret = secret
        self._translator = Translator(model, int(clock()))
        self.usage: Usage | None = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.chunks():
            yield dumps(chunk)

    async def chunks(self) -> AsyncIterator[JSONObject]:
        """Canonical chunks as dicts (also used to fold a stream into one completion)."""
        try:
            async for event in read_events(stream_body(self._response, self._provider)):
                doc = self._decode(event.data)
                if event.event == b"error":
                    code, message = error_fields(doc)
                    raise classify(200, code, message, provider=self._provider, secret=self._secret)
                chunks = self._translator.feed(doc)
                self.usage = self._translator.usage
                for chunk in chunks:
                    yield chunk
        except TimeoutError:
            raise UpstreamTimeout(f"provider {self._provider} went silent mid-stream") from None
        if not self._translator.finished:
            raise UpstreamError(
                f"provider {self._provider} ended the stream before it finished", retryable=True
            )

    def _decode(self, data: bytes) -> JSONObject:
        try:
            doc = loads(data)
        except JSONDecodeError:
            doc = None
        if not isinstance(doc, dict):
            raise UpstreamError(
                f"provider {self._provider} sent a malformed stream event", retryable=True
            )
        return doc

    async def aclose(self) -> None:
        # Back to the pool when read to its end; closed (cancelling the upstream) otherwise.
        self._response.release()
