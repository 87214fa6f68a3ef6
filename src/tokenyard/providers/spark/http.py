"""Spark's OpenAI-compatible HTTP API (credential: an APIPassword, i.e. no three-part key).

``POST {base_url}/chat/completions`` with ``Authorization: Bearer <APIPassword>``
(xfyun.cn/doc/spark/HTTP调用文档.html; base ``https://spark-api-open.xf-yun.com/v1``, X1 at
``…/v2``, providers.md §9.2/§9.3). It is OpenAI's wire with differences this module absorbs:

* every body and every stream chunk carries ``code``/``message``/``sid``; a business error
  can come as HTTP 200 with ``code != 0`` (codes.py), so each one is checked;
* ``finish_reason`` is usually absent (→ response.py ``finish_reason``), ``usage`` may be
  missing (→ estimated) and comes on the last stream chunk unasked;
* stream lines are ``data:{…}`` without the space and every delta repeats ``role``;
* tool calls come as an array only with ``tool_calls_switch: true`` (request.py sends it),
  otherwise as one object (websdk-java ``SparkChatClient``) — both are read; ids are
  synthesised when missing;
* X1 puts reasoning in ``reasoning_content`` (already the canonical name).

Chunks are rebuilt (id, object, created, model, one role chunk first, a final chunk with the
finish reason) rather than relayed, because Spark's chunks lack most of those fields.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping

from tokenyard.errors import UpstreamError, UpstreamTimeout
from tokenyard.providers.base import Call, ChatResult
from tokenyard.providers.failure import from_status, scrub
from tokenyard.providers.http import UpstreamHttp, stream_body
from tokenyard.providers.spark.codes import OUTPUT_FILTERED, code_of, error_for
from tokenyard.providers.spark.models import find_model
from tokenyard.providers.spark.request import http_body
from tokenyard.providers.spark.response import (
    ChunkWriter,
    arguments_text,
    as_object,
    completion,
    completion_id,
    estimated_usage,
    finish_reason,
    tool_call_id,
    tool_calls_of,
    usage_of,
)
from tokenyard.providers.transport import HttpClient, Response
from tokenyard.wire.json import JSONDecodeError, JSONObject, dumps, loads
from tokenyard.wire.sse import DONE, Event, read_events
from tokenyard.wire.usage import Usage


def _sid(doc: JSONObject) -> str | None:
    sid = doc.get("sid") or doc.get("id")
    return sid if isinstance(sid, str) and sid else None


def _checked(doc: object, provider: str, secret: str | None) -> JSONObject:
    """``doc`` when it is a successful body or chunk; raises for errors except 10014."""
    if not isinstance(doc, dict):
        raise UpstreamError(
            f"provider {provider} sent a body that is not an object", retryable=True
        )
    code = code_of(doc.get("code"))
    if code and code != OUTPUT_FILTERED:
        secrets = (secret,) if secret else ()
        raise error_for(code, str(doc.get("message") or ""), provider=provider, secrets=secrets)
    if "error" in doc:
        message = scrub(str(doc["error"]), secret)[:300]
        raise UpstreamError(f"provider {provider} failed: {message}", retryable=True)
    return doc


class SparkHTTP:
    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        client: HttpClient,
        timeout_s: float,
        connect_timeout_s: float,
        first_byte_timeout_s: float,
        idle_timeout_s: float,
        extra_headers: dict[str, str] | None,
        clock: Callable[[], float],
    ):
        self.name = name
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._first_byte_s = first_byte_timeout_s
        self._http = UpstreamHttp(
            name=name,
            client=client,
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
            first_byte_timeout_s=first_byte_timeout_s,
            idle_timeout_s=idle_timeout_s,
            map_error=self._failure,
        )
        self._headers = {"Content-Type": "application/json", **(extra_headers or {})}
        self._clock = clock

    def _encode(self, call: Call, *, stream: bool) -> JSONObject:
        model = find_model(call.upstream_model)
        return http_body(call.body, call.upstream_model, model, stream=stream)

    def _failure(
        self, status: int, body: bytes, headers: Mapping[str, str], secret: str | None
    ) -> UpstreamError:
        """A non-200 answer: by its Spark ``code`` when it has one, else by HTTP status."""
        try:
            doc = loads(body)
        except JSONDecodeError:
            doc = None
        code = code_of(as_object(doc).get("code"))
        if code:
            message = str(as_object(doc).get("message") or "")
            return error_for(code, message, provider=self.name, secrets=(secret,) if secret else ())
        retry_after = headers.get("Retry-After")
        return from_status(status, body, provider=self.name, secret=secret, retry_after=retry_after)

    async def _post(self, payload: JSONObject, api_key: str | None, *, stream: bool) -> Response:
        headers = dict(self._headers)
        if api_key is not None:
            headers["Authorization"] = f"Bearer {api_key}"
        return await self._http.post(self._url, dumps(payload), headers, api_key, stream=stream)

    async def chat(self, call: Call) -> ChatResult:
        payload = self._encode(call, stream=False)
        response = await self._post(payload, call.api_key, stream=False)
        doc = _checked(await self._http.read_json(response), self.name, call.api_key)
        if code_of(doc.get("code")) == OUTPUT_FILTERED:
            raise error_for(
                OUTPUT_FILTERED, str(doc.get("message") or ""), provider=self.name, secrets=()
            )
        choice = as_object((doc.get("choices") or [None])[0])
        message = as_object(choice.get("message"))
        sid = _sid(doc)
        content = str(message.get("content") or "")
        reasoning = str(message.get("reasoning_content") or "")
        calls = tool_calls_of(message.get("tool_calls") or message.get("function_call"), sid)
        usage = usage_of(doc.get("usage")) or estimated_usage(
            call.body.get("messages"), content + reasoning
        )
        created = doc.get("created")
        writer = ChunkWriter(
            completion_id(sid),
            created if isinstance(created, int) else int(self._clock()),
            call.upstream_model,
        )
        finish = finish_reason(
            choice.get("finish_reason"),
            tool_calls=bool(calls),
            completion_tokens=usage.completion_tokens,
            max_tokens=payload.get("max_tokens"),
        )
        body = completion(
            writer,
            content=content,
            reasoning=reasoning,
            tool_calls=calls,
            finish=finish,
            usage=usage,
        )
        return ChatResult(body=body, usage=usage)

    async def open_stream(self, call: Call) -> SparkHTTPStream:
        payload = self._encode(call, stream=True)
        response = await self._post(payload, call.api_key, stream=True)
        events = read_events(stream_body(response, self.name)).__aiter__()
        try:
            async with asyncio.timeout(self._first_byte_s):
                first = await anext(events, None)
            head = None if first is None or first.data == DONE else loads(first.data)
            if head is not None:
                head = _checked(head, self.name, call.api_key)
        except BaseException as exc:
            response.close()
            if isinstance(exc, TimeoutError):
                raise UpstreamTimeout(f"provider {self.name} did not answer in time") from None
            if isinstance(exc, JSONDecodeError):
                raise UpstreamError(
                    f"provider {self.name} sent a malformed stream chunk", retryable=True
                ) from None
            raise
        sid = _sid(head or {})
        created = (head or {}).get("created")
        writer = ChunkWriter(
            completion_id(sid),
            created if isinstance(created, int) else int(self._clock()),
            call.upstream_model,
        )
        return SparkHTTPStream(
            response,
            events,
            first,
            writer,
            provider=self.name,
            secret=call.api_key,
            messages=call.body.get("messages"),
            max_tokens=payload.get("max_tokens"),
        )


class SparkHTTPStream:
    """Rewrites Spark's SSE chunks into canonical ones; records usage, checks codes."""

    def __init__(
        self,
        response: Response,
        events: AsyncIterator[Event],
        first: Event | None,
        writer: ChunkWriter,
        *,
        provider: str,
        secret: str | None,
        messages: object,
        max_tokens: int | None,
    ):
        self.usage: Usage | None = None
        self._response = response
        self._events = events
        self._first = first
        self._writer = writer
        self._provider = provider
        self._secret = secret
        self._messages = messages
        self._max_tokens = max_tokens
        self._text: list[str] = []
        self._calls: dict[int, str] = {}  # tool-call index → id
        self._native_finish: object = None

    def _tool_deltas(self, raw: object, sid: str | None) -> list[JSONObject]:
        items = raw if isinstance(raw, list) else [raw] if isinstance(raw, dict) else []
        out: list[JSONObject] = []
        for position, item in enumerate(i for i in items if isinstance(i, dict)):
            raw_index = item.get("index")
            index = raw_index if isinstance(raw_index, int) else position
            function = as_object(item.get("function"))
            arguments = function.get("arguments")
            fragment = arguments_text(arguments) if arguments is not None else ""
            if index not in self._calls:
                self._calls[index] = item.get("id") or tool_call_id(sid, index)
                name = str(function.get("name") or "")
                out.append(
                    {
                        "index": index,
                        "id": self._calls[index],
                        "type": "function",
                        "function": {"name": name, "arguments": fragment},
                    }
                )
            elif fragment:
                out.append({"index": index, "function": {"arguments": fragment}})
        return out

    def _translate(self, doc: JSONObject) -> list[bytes]:
        writer, out = self._writer, []
        self.usage = usage_of(doc.get("usage")) or self.usage
        for choice in doc.get("choices") or ():
            delta = as_object(as_object(choice).get("delta"))
            for field in ("reasoning_content", "content"):
                text = delta.get(field)
                if isinstance(text, str) and text:
                    self._text.append(text)
                    out.append(writer.chunk({field: text}))
            calls = self._tool_deltas(delta.get("tool_calls"), _sid(doc))
            if calls:
                out.append(writer.chunk({"tool_calls": calls}))
            self._native_finish = as_object(choice).get("finish_reason") or self._native_finish
        return out

    def _finish(self, native: object) -> bytes:
        if self.usage is None:
            self.usage = estimated_usage(self._messages, "".join(self._text))
        reason = finish_reason(
            native,
            tool_calls=bool(self._calls),
            completion_tokens=self.usage.completion_tokens,
            max_tokens=self._max_tokens,
        )
        return self._writer.finish(reason)

    async def _events_from_first(self) -> AsyncIterator[Event]:
        if self._first is not None:
            yield self._first
        async for event in self._events:
            yield event

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._writer.role()
        try:
            async for event in self._events_from_first():
                if event.data == DONE:
                    break
                try:
                    doc = _checked(loads(event.data), self._provider, self._secret)
                except JSONDecodeError:
                    raise UpstreamError(
                        f"provider {self._provider} sent a malformed stream chunk", retryable=True
                    ) from None
                for chunk in self._translate(doc):
                    yield chunk
                if code_of(doc.get("code")) == OUTPUT_FILTERED:
                    self._native_finish = "content_filter"
                    break
            else:
                if self.usage is None and self._native_finish is None:
                    raise UpstreamError(
                        f"provider {self._provider} ended the stream before it was complete",
                        retryable=True,
                    )
        except TimeoutError:
            raise UpstreamTimeout(f"provider {self._provider} went silent mid-stream") from None
        yield self._finish(self._native_finish)

    async def aclose(self) -> None:
        self._response.release()
