"""A Zhipu SSE stream → canonical chunks.

Wire facts (providers.md §1.1, §7.4; SDK ``core/_sse_client.py``): OpenAI-style
``data: {chunk}`` events ending with ``data: [DONE]``; every delta repeats ``role``;
``delta.reasoning_content`` carries thinking; tool calls arrive whole (one delta per call);
``usage`` rides top-level on the finish chunk. Errors after HTTP 200 come as
``data: {"error": {...}}`` or ``event: error`` (the SDK raises on both) and are classified
by business code like any error body.

Every chunk we yield has the first upstream chunk's id/created/model; a chunk with
``delta: {"role": "assistant", "content": ""}`` goes first (only once an upstream event has
proved the stream healthy, so an early error frame still fails the attempt).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from tokenyard.errors import UpstreamError, UpstreamTimeout
from tokenyard.providers.http import stream_body
from tokenyard.providers.toolcalls import ToolCallDeltas
from tokenyard.providers.transport import Response
from tokenyard.providers.zhipu.failure import classify, error_fields
from tokenyard.providers.zhipu.response import finish_reason, usage_of
from tokenyard.wire.json import JSONDecodeError, JSONObject, dumps, loads
from tokenyard.wire.sse import DONE, read_events
from tokenyard.wire.usage import Usage


class ZhipuStream:
    def __init__(
        self,
        response: Response,
        *,
        provider: str,
        model: str,
        secrets: tuple[str, ...],
        clock: Callable[[], float],
    ) -> None:
        self.usage: Usage | None = None
        self._response = response
        self._provider = provider
        self._model = model
        self._secrets = secrets
        self._clock = clock
        self._head: JSONObject | None = None
        self._tools: dict[int, ToolCallDeltas] = {}
        self._finished = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for event in read_events(stream_body(self._response, self._provider)):
                if event.data == DONE:
                    return
                doc = self._decode(event.data)
                if event.event == b"error" or "error" in doc:
                    raise self._error(doc)
                for chunk in self.translate(doc):
                    yield dumps(chunk)
        except TimeoutError:
            raise UpstreamTimeout(f"provider {self._provider} went silent mid-stream") from None
        if not self._finished:
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
                f"provider {self._provider} sent a malformed stream chunk", retryable=True
            )
        return doc

    def _error(self, doc: JSONObject) -> UpstreamError:
        code, message = error_fields(doc)
        known = classify(200, code, message, provider=self._provider, secrets=self._secrets)
        if known is not None:
            return known
        for secret in self._secrets:
            message = message.replace(secret, "***")
        return UpstreamError(
            f"provider {self._provider} failed mid-stream: {message[:300]}", retryable=True
        )

    def _chunk(self, index: int, delta: JSONObject, finish: str | None) -> JSONObject:
        assert self._head is not None
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**self._head, "choices": [choice]}

    def translate(self, doc: JSONObject) -> list[JSONObject]:
        """The canonical chunks for one upstream chunk (usage recorded, not relayed)."""
        out: list[JSONObject] = []
        if self._head is None:
            created = doc.get("created")
            self._head = {
                "id": str(doc.get("id") or doc.get("request_id") or "chatcmpl-zhipu"),
                "object": "chat.completion.chunk",
                "created": created if isinstance(created, int) else int(self._clock()),
                "model": doc.get("model") or self._model,
            }
            out.append(self._chunk(0, {"role": "assistant", "content": ""}, None))
        if isinstance(doc.get("usage"), dict):
            self.usage = usage_of(doc["usage"])
        choices = doc.get("choices")
        for position, choice in enumerate(choices if isinstance(choices, list) else []):
            if isinstance(choice, dict):
                chunk = self._choice(choice, position)
                if chunk is not None:
                    out.append(chunk)
        return out

    def _choice(self, choice: JSONObject, position: int) -> JSONObject | None:
        index = choice.get("index")
        index = index if isinstance(index, int) else position
        raw: Any = choice.get("delta")
        raw = raw if isinstance(raw, dict) else {}
        delta: JSONObject = {}
        for field in ("content", "reasoning_content"):
            if isinstance(raw.get(field), str) and raw[field]:
                delta[field] = raw[field]
        tools = self._tools.setdefault(index, ToolCallDeltas())
        calls = raw.get("tool_calls")
        if isinstance(calls, list):
            fed = [tools.feed(call, at) for at, call in enumerate(calls)]
            if any(d is not None for d in fed):
                delta["tool_calls"] = [d for d in fed if d is not None]
        finish = finish_reason(choice.get("finish_reason"), self._provider)
        if finish is not None:
            self._finished = True
        if not delta and finish is None:
            return None
        return self._chunk(index, delta, finish)

    async def aclose(self) -> None:
        # Back to the pool when read to its end; closed (cancelling the upstream) otherwise.
        self._response.release()
