"""Gemini ``streamGenerateContent?alt=sse`` → canonical ``chat.completion.chunk`` payloads.

Wire facts (python-genai ``_api_client.py`` ``HttpResponse._aiter_response_stream``;
providers.md §1.1, §4.4):

* Each SSE event is ``data: <GenerateContentResponse>`` then a blank line; there is no
  ``[DONE]``: the stream ends when the connection closes. Each event carries only the *new*
  parts; ``usageMetadata`` rides on events (the last one is complete) and ``finishReason`` on
  each candidate's last event.
* An error after HTTP 200 arrives as raw, possibly multi-line JSON *without* ``data:``; the SDK
  collects such lines until its ``{``/``}`` count balances. :func:`documents` does the same,
  counting ``[``/``]`` too, so that a list-wrapped error (``[{"error": …}]``) stays whole.
* Function calls arrive whole (``partialArgs``/``willContinue`` are "not supported in Gemini
  API" per the SDK), so each becomes one tool-call delta with id, name and all arguments.

Lines are split by ``wire.sse.lines`` rather than ``StreamReader.readline``, so that a large
event (inline image data, long signatures) has no line-length limit.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterator

from tokenyard.errors import UpstreamError, UpstreamTimeout
from tokenyard.providers.gemini.failure import error_object, mid_stream
from tokenyard.providers.gemini.response import (
    blocked,
    candidate_index,
    finish_reason,
    read_parts,
    usage_from_gemini,
)
from tokenyard.providers.http import stream_body
from tokenyard.providers.transport import Response
from tokenyard.wire.json import JSONDecodeError, JSONObject, dumps, loads
from tokenyard.wire.sse import lines
from tokenyard.wire.usage import Usage

_SSE_FIELDS = (b":", b"event:", b"id:", b"retry:")


async def documents(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """The JSON documents of a Gemini stream: SSE ``data:`` events, and raw JSON (an error
    body) gathered until its braces balance."""
    data: list[bytes] = []
    raw: list[bytes] = []
    balance = 0
    async for line in lines(chunks):
        if not raw and line.startswith(b"data:"):
            data.append(line[6:] if line[5:6] == b" " else line[5:])
            continue
        if not line.strip():
            if data:
                yield b"\n".join(data)
                data = []
            continue
        if not raw and (line.startswith(_SSE_FIELDS) or line.strip() in (b"[", b"]", b",")):
            continue
        balance += line.count(b"{") + line.count(b"[") - line.count(b"}") - line.count(b"]")
        raw.append(line)
        if balance <= 0:
            yield b"\n".join(raw)
            raw, balance = [], 0
    if data:
        yield b"\n".join(data)
    if raw:
        yield b"\n".join(raw)


class GeminiStream:
    """Translates one Gemini SSE stream, event by event, into canonical chunks."""

    def __init__(
        self,
        response: Response,
        *,
        provider: str,
        secret: str | None,
        model: str,
        created: int,
        fallback_id: str,
    ):
        self.usage: Usage | None = None
        self._response = response
        self._provider = provider
        self._secret = secret
        self._model = model
        self._created = created
        self._id = fallback_id
        self._response_id: str | None = None
        self._started: set[int] = set()
        self._finished: set[int] = set()
        self._tool_count: dict[int, int] = {}
        self._done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for raw in documents(stream_body(self._response, self._provider)):
                for chunk in self._translate(self._decode(raw)):
                    yield dumps(chunk)
        except TimeoutError:
            raise UpstreamTimeout(f"provider {self._provider} went silent mid-stream") from None
        if not self._started or self._started - self._finished:
            raise UpstreamError(
                f"provider {self._provider} ended the stream before it finished", retryable=True
            )
        self._done = True

    def _decode(self, raw: bytes) -> JSONObject:
        try:
            doc = loads(raw)
        except JSONDecodeError:
            raise UpstreamError(
                f"provider {self._provider} sent a malformed stream event", retryable=True
            ) from None
        err = error_object(doc)
        if err is not None:
            raise mid_stream(err, provider=self._provider, secret=self._secret)
        if not isinstance(doc, dict):
            raise UpstreamError(
                f"provider {self._provider} sent a malformed stream event", retryable=True
            )
        return doc

    def _first_event(self, doc: JSONObject) -> None:
        response_id = doc.get("responseId")
        self._response_id = response_id if isinstance(response_id, str) else ""
        if self._response_id:
            self._id = f"chatcmpl-{self._response_id}"
        version = doc.get("modelVersion")
        if isinstance(version, str) and version:
            self._model = version

    def _chunk(self, index: int, delta: JSONObject, finish: str | None = None) -> JSONObject:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [choice],
        }

    def _start(self, index: int) -> Iterator[JSONObject]:
        if index not in self._started:
            self._started.add(index)
            yield self._chunk(index, {"role": "assistant", "content": ""})

    def _translate(self, doc: JSONObject) -> Iterator[JSONObject]:
        if self._response_id is None:
            self._first_event(doc)
        if isinstance(doc.get("usageMetadata"), dict):
            self.usage = usage_from_gemini(doc["usageMetadata"])
        candidates = [c for c in doc.get("candidates") or () if isinstance(c, dict)]
        if not candidates and blocked(doc):
            yield from self._start(0)
            self._finished.add(0)
            yield self._chunk(0, {}, "content_filter")
        for position, candidate in enumerate(candidates):
            yield from self._candidate(candidate_index(candidate, position), candidate)

    def _candidate(self, index: int, candidate: JSONObject) -> Iterator[JSONObject]:
        yield from self._start(index)
        count = self._tool_count.get(index, 0)
        pieces = read_parts(candidate, f"{self._response_id}:{index}", count)
        delta: JSONObject = {}
        if reasoning := "".join(pieces.thoughts):
            delta["reasoning_content"] = reasoning
        if text := "".join(pieces.text):
            delta["content"] = text
        if pieces.tool_calls:
            delta["tool_calls"] = [
                {"index": count + n, **call} for n, call in enumerate(pieces.tool_calls)
            ]
            self._tool_count[index] = count + len(pieces.tool_calls)
        if delta:
            yield self._chunk(index, delta)
        native = candidate.get("finishReason")
        if native:
            self._finished.add(index)
            yield self._chunk(index, {}, finish_reason(native, index in self._tool_count))

    async def aclose(self) -> None:
        # Read to its end: the connection goes back to the pool; otherwise it is closed,
        # which cancels the generation upstream.
        if self._done:
            self._response.release()
        else:
            self._response.close()
