"""The DashScope native adapter (``api: dashscope``): the HTTP calls and :func:`build`.

Headers (SDK ``api_entities/http_request.py``): ``Authorization: Bearer <key>``,
``Content-Type: application/json``; a streamed call adds ``Accept: text/event-stream``,
``X-DashScope-SSE: enable`` and ``X-Accel-Buffering: no``. Optional headers (e.g.
``X-DashScope-WorkSpace``) come from the provider's configured headers.

Thinking and stream-only models: a non-streamed call with ``enable_thinking: true`` is
refused ("parameter.enable_thinking must be set to false for non-streaming calls"), and
some models (QwQ, ``*-thinking``, open Qwen3 that think by default) only stream
(providers.md §6.2). So :meth:`DashScopeProvider.chat` streams upstream whenever the client
asked for thinking, and retries streamed once when a non-streamed call is refused for that
reason; the stream is folded into one completion.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping

from tokenyard.config import ProviderConfig
from tokenyard.errors import UpstreamError, UpstreamTimeout
from tokenyard.providers.base import Call, ChatResult, EmbeddingResult, Provider
from tokenyard.providers.dashscope.failure import classify, decode, error_fields, needs_stream
from tokenyard.providers.dashscope.request import (
    EMBEDDING_BATCH,
    EMBEDDING_PATH,
    MULTIMODAL_MARKERS,
    embedding_batches,
    encode_chat,
    thinking,
)
from tokenyard.providers.dashscope.response import chat_body, collect, embedding_body
from tokenyard.providers.dashscope.stream import DashScopeStream
from tokenyard.providers.http import UpstreamHttp, configured_timeouts
from tokenyard.providers.transport import HttpClient, Response
from tokenyard.wire.json import JSONObject, dumps
from tokenyard.wire.usage import Usage

DEFAULT_BASE_URL = "https://dashscope.aliyuncs.com"
_STREAM_HEADERS = {
    "Accept": "text/event-stream",
    "X-DashScope-SSE": "enable",
    "X-Accel-Buffering": "no",
}


class _StreamRequired(Exception):
    """A non-streamed call was refused because the model (or thinking) needs a stream."""


class DashScopeProvider:
    """``base_url`` is the host (``https://dashscope.aliyuncs.com``, ``-intl``, ``-us`` or a
    workspace host); a trailing ``/api/v1`` is accepted. ``multimodal_markers``: model-name
    fragments that select the multimodal endpoint. ``embedding_batch``: texts per call."""

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
        extra_headers: dict[str, str] | None = None,
        multimodal_markers: tuple[str, ...] = MULTIMODAL_MARKERS,
        embedding_batch: int = EMBEDDING_BATCH,
        clock: Callable[[], float] = time.time,
    ):
        self.name = name
        base = base_url.rstrip("/")
        self._base = base.removesuffix("/api/v1")
        self._timeout_s = timeout_s
        self._http = UpstreamHttp(
            name=name,
            client=client,
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
            first_byte_timeout_s=first_byte_timeout_s,
            idle_timeout_s=idle_timeout_s,
            map_error=self._failure,
        )
        self._headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            **(extra_headers or {}),
        }
        self._markers = tuple(m.lower() for m in multimodal_markers)
        self._batch = max(1, embedding_batch)
        self._clock = clock

    def _headers_for(self, api_key: str | None, stream: bool) -> dict[str, str]:
        headers = {**self._headers, **_STREAM_HEADERS} if stream else dict(self._headers)
        if api_key is not None:
            headers["Authorization"] = f"Bearer {api_key}"
        return headers

    def _failure(
        self, status: int, body: bytes, headers: Mapping[str, str], secret: str | None
    ) -> UpstreamError:
        code, message = decode(body)
        retry_after = headers.get("Retry-After")
        return classify(
            status, code, message, provider=self.name, secret=secret, retry_after=retry_after
        )

    def _failure_unless_stream_required(
        self, status: int, body: bytes, headers: Mapping[str, str], secret: str | None
    ) -> UpstreamError:
        """For a non-streamed call: raises _StreamRequired when only a stream would do."""
        if needs_stream(*decode(body)):
            raise _StreamRequired
        return self._failure(status, body, headers, secret)

    async def _post(
        self, path: str, payload: JSONObject, api_key: str | None, *, stream: bool = False
    ) -> Response:
        """POST and wait for the response headers; non-200 answers become UpstreamErrors."""
        return await self._http.post(
            self._base + path,
            dumps(payload),
            self._headers_for(api_key, stream),
            api_key,
            stream=stream,
            map_error=None if stream else self._failure_unless_stream_required,
        )

    async def _read_json(self, response: Response, api_key: str | None) -> JSONObject:
        doc = await self._http.read_json(response)
        if not isinstance(doc, dict):
            raise UpstreamError(
                f"provider {self.name} sent a body that is not JSON", retryable=True
            )
        if doc.get("code") and "output" not in doc:  # an error object sent with HTTP 200
            code, message = error_fields(doc)
            raise classify(200, code, message, provider=self.name, secret=api_key)
        return doc

    async def chat(self, call: Call) -> ChatResult:
        if thinking(call.body):
            return await self._chat_via_stream(call)
        path, payload = encode_chat(
            call.body, call.upstream_model, stream=False, markers=self._markers
        )
        try:
            response = await self._post(path, payload, call.api_key)
        except _StreamRequired:
            return await self._chat_via_stream(call)
        doc = await self._read_json(response, call.api_key)
        body, usage = chat_body(doc, call.upstream_model, int(self._clock()))
        return ChatResult(body=body, usage=usage)

    async def _chat_via_stream(self, call: Call) -> ChatResult:
        stream = await self.open_stream(call)
        try:
            async with asyncio.timeout(self._timeout_s):
                chunks = [chunk async for chunk in stream.chunks()]
        except TimeoutError:
            raise UpstreamTimeout(f"provider {self.name} did not finish in time") from None
        finally:
            await stream.aclose()
        usage = stream.usage or Usage()
        return ChatResult(body=collect(chunks, usage), usage=usage)

    async def open_stream(self, call: Call) -> DashScopeStream:
        path, payload = encode_chat(
            call.body, call.upstream_model, stream=True, markers=self._markers
        )
        response = await self._post(path, payload, call.api_key, stream=True)
        return DashScopeStream(
            response,
            provider=self.name,
            model=call.upstream_model,
            secret=call.api_key,
            clock=self._clock,
        )

    async def embed(self, call: Call) -> EmbeddingResult:
        pages = []
        for payload in embedding_batches(call.body, call.upstream_model, self._batch):
            response = await self._post(EMBEDDING_PATH, payload, call.api_key)
            pages.append(await self._read_json(response, call.api_key))
        as_base64 = call.body.get("encoding_format") == "base64"
        body, usage = embedding_body(pages, call.upstream_model, as_base64=as_base64)
        return EmbeddingResult(body=body, usage=usage)

    async def close(self) -> None:
        return None  # the HTTP client belongs to the composition root


def build(name: str, cfg: ProviderConfig, client: HttpClient) -> Provider:
    """The registry's constructor for ``api: dashscope`` (the native API)."""
    return DashScopeProvider(
        name=name,
        base_url=cfg.base_url or DEFAULT_BASE_URL,
        client=client,
        extra_headers=dict(cfg.headers),
        **configured_timeouts(cfg),
    )
