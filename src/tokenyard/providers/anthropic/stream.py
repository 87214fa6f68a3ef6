"""An Anthropic Messages SSE stream → canonical ``chat.completion.chunk`` payloads.

Wire facts (anthropic-sdk-python ``types/raw_message_stream_event.py``,
``raw_message_start_event.py``, ``raw_content_block_start_event.py``,
``raw_content_block_delta.py``, ``raw_message_delta_event.py``,
``message_delta_usage.py``, ``_streaming.py``; providers.md §3.4):

Named events, no ``[DONE]``: ``message_start`` → (``content_block_start`` →
``content_block_delta``* → ``content_block_stop``)+ → ``message_delta`` → ``message_stop``;
``ping`` anywhere (ignored); ``error`` anywhere (raised). Translation:

* ``message_start`` — remember ``id``/``model``/``usage`` (input and cache counts are only
  complete here) and send ``delta: {"role":"assistant","content":""}``.
* ``text_delta`` → ``delta.content``; ``thinking_delta`` → ``delta.reasoning_content``;
  ``signature_delta`` and ``citations_delta`` are dropped.
* A ``tool_use`` block opens OpenAI tool call ``k`` = the number of ``tool_use`` blocks seen
  before it (not the Anthropic block index, which also counts text and thinking blocks):
  its first delta carries ``id``, ``type``, ``function.name`` and empty ``arguments``; each
  ``input_json_delta.partial_json`` is an ``arguments`` fragment on ``k``. A call without
  input may stream no JSON at all (the SDK's accumulator then keeps ``input: {}``); its
  ``content_block_stop`` sends the fragment ``{}``, so that the arguments are a JSON object
  as in the non-streamed answer.
* ``message_delta`` → the finish chunk; its ``usage`` is cumulative and updates the
  recorded usage. ``message_stop`` ends the stream; a stream that ends before it is broken.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from tokenyard.errors import UpstreamError, UpstreamTimeout
from tokenyard.providers.anthropic.failure import mid_stream
from tokenyard.providers.anthropic.response import finish_reason, usage_from_anthropic
from tokenyard.providers.http import stream_body
from tokenyard.providers.transport import Response
from tokenyard.wire.json import JSONDecodeError, JSONObject, dumps, loads
from tokenyard.wire.sse import read_events
from tokenyard.wire.usage import Usage


class AnthropicStream:
    """Translates one Anthropic stream as it arrives; records usage on ``usage``."""

    def __init__(
        self,
        response: Response,
        *,
        provider: str,
        secret: str | None,
        created: int,
        model: str,
    ):
        self.usage: Usage | None = None
        self._response = response
        self._provider = provider
        self._secret = secret
        self._created = created
        self._id = ""
        self._model = model
        self._raw_usage: JSONObject = {}
        self._tools: dict[int, int] = {}  # Anthropic block index → OpenAI tool-call index
        self._without_input: set[int] = set()  # tool blocks with no arguments sent yet
        self._finished = False
        self._stopped = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for event in read_events(stream_body(self._response, self._provider)):
                doc = self._decode(event.data)
                kind = event.event.decode() if event.event else doc.get("type")
                if kind == "error":
                    raise mid_stream(event.data, provider=self._provider, secret=self._secret)
                if kind == "message_stop":
                    self._stopped = True
                    if not self._finished:  # no stop_reason came: close the choice anyway
                        yield dumps(self._chunk({}, "stop"))
                    return
                delta, finish = self._translate(kind, doc)
                if delta is not None:
                    yield dumps(self._chunk(delta, finish))
        except TimeoutError:
            raise UpstreamTimeout(f"provider {self._provider} went silent mid-stream") from None
        raise UpstreamError(
            f"provider {self._provider} ended the stream before message_stop", retryable=True
        )

    def _decode(self, data: bytes) -> JSONObject:
        try:
            doc = loads(data)
        except JSONDecodeError:
            raise UpstreamError(
                f"provider {self._provider} sent a malformed stream event", retryable=True
            ) from None
        if not isinstance(doc, dict):
            raise UpstreamError(
                f"provider {self._provider} sent a malformed stream event", retryable=True
            )
        return doc

    def _chunk(self, delta: JSONObject, finish: str | None = None) -> JSONObject:
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    def _record(self, usage: object) -> None:
        if isinstance(usage, dict):
            self._raw_usage.update({k: v for k, v in usage.items() if v is not None})
            self.usage = usage_from_anthropic(self._raw_usage)

    def _translate(self, kind: object, doc: JSONObject) -> tuple[JSONObject | None, str | None]:
        """(delta, finish_reason) to send for one event; (None, None) sends nothing."""
        if kind == "message_start":
            message = doc.get("message")
            message = message if isinstance(message, dict) else {}
            self._id = str(message.get("id") or "")
            if isinstance(message.get("model"), str):
                self._model = message["model"]
            self._record(message.get("usage"))
            return {"role": "assistant", "content": ""}, None
        if kind in ("content_block_start", "content_block_delta", "content_block_stop"):
            return self._block_event(kind, doc), None
        if kind == "message_delta":
            self._record(doc.get("usage"))
            delta = doc.get("delta")
            stop_reason = delta.get("stop_reason") if isinstance(delta, dict) else None
            if stop_reason is None:
                return None, None
            self._finished = True
            return {}, finish_reason(stop_reason)
        return None, None  # ping and events added later

    def _block_event(self, kind: object, doc: JSONObject) -> JSONObject | None:
        if kind == "content_block_start":
            return self._block_start(doc)
        if kind == "content_block_delta":
            return self._block_delta(doc)
        return self._block_stop(doc)

    def _block_start(self, doc: JSONObject) -> JSONObject | None:
        block = doc.get("content_block")
        kind = block.get("type") if isinstance(block, dict) else None
        if not isinstance(block, dict):
            return None
        if kind == "text" and block.get("text"):
            return {"content": block["text"]}
        if kind == "thinking" and block.get("thinking"):
            return {"reasoning_content": block["thinking"]}
        if kind != "tool_use":
            return None
        index = len(self._tools)
        self._tools[int(doc.get("index") or 0)] = index
        given = block.get("input")
        arguments = dumps(given).decode() if isinstance(given, dict) and given else ""
        if not arguments:
            self._without_input.add(int(doc.get("index") or 0))
        call = {
            "index": index,
            "id": block.get("id"),
            "type": "function",
            "function": {"name": block.get("name"), "arguments": arguments},
        }
        return {"tool_calls": [call]}

    def _block_delta(self, doc: JSONObject) -> JSONObject | None:
        delta = doc.get("delta")
        kind = delta.get("type") if isinstance(delta, dict) else None
        if not isinstance(delta, dict):
            return None
        if kind == "text_delta" and delta.get("text"):
            return {"content": delta["text"]}
        if kind == "thinking_delta" and delta.get("thinking"):
            return {"reasoning_content": delta["thinking"]}
        if kind == "input_json_delta" and delta.get("partial_json"):
            index = self._tools.get(int(doc.get("index") or 0))
            self._without_input.discard(int(doc.get("index") or 0))
            if index is not None:
                fragment = {"index": index, "function": {"arguments": delta["partial_json"]}}
                return {"tool_calls": [fragment]}
        return None  # signature_delta, citations_delta, deltas of server-tool blocks

    def _block_stop(self, doc: JSONObject) -> JSONObject | None:
        block = int(doc.get("index") or 0)
        if block not in self._without_input:
            return None
        self._without_input.discard(block)
        fragment = {"index": self._tools[block], "function": {"arguments": "{}"}}
        return {"tool_calls": [fragment]}

    async def aclose(self) -> None:
        if self._stopped:
            self._response.release()  # read to its end: back to the pool
        else:
            self._response.close()  # cancels the upstream generation
