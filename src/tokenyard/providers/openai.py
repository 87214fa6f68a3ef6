"""The OpenAI wire family (``api: openai``): OpenAI and every OpenAI-compatible server.

The canonical form is the wire form, so this is the fast path: the request is forwarded with
only what must change (model name, ``stream_options``, the vendor's renames), and stream
chunks are relayed as received; only chunks that carry usage or a vendor's own reasoning
field are decoded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from tokenyard.errors import UpstreamError, UpstreamTimeout
from tokenyard.providers.base import Call, ChatResult, EmbeddingResult
from tokenyard.providers.failure import from_status, openai_retry_after, scrub
from tokenyard.providers.http import UpstreamHttp, stream_body
from tokenyard.providers.transport import HttpClient, Response
from tokenyard.providers.vendors import VendorSpec
from tokenyard.wire.json import JSONDecodeError, JSONObject, dumps, loads
from tokenyard.wire.sse import DONE, read_events
from tokenyard.wire.usage import Usage, usage_from_openai

_JSON = {"Content-Type": "application/json"}


class OpenAIProvider:
    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        vendor: VendorSpec,
        client: HttpClient,
        timeout_s: float,
        connect_timeout_s: float,
        first_byte_timeout_s: float,
        idle_timeout_s: float,
        extra_headers: dict[str, str] | None = None,
    ):
        self.name = name
        self._base = base_url.rstrip("/")
        self._vendor = vendor
        self._http = UpstreamHttp(
            name=name,
            client=client,
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
            first_byte_timeout_s=first_byte_timeout_s,
            idle_timeout_s=idle_timeout_s,
            map_error=self._failure,
        )
        self._headers = {**_JSON, **(extra_headers or {})}

    # -- requests -------------------------------------------------------------------

    def encode_chat(self, call: Call, *, stream: bool) -> bytes:
        spec = self._vendor
        body = dict(call.body)
        body["model"] = call.upstream_model
        if stream:
            body["stream"] = True
            if spec.stream_usage_option:
                asked = body.get("stream_options")
                body["stream_options"] = {
                    **(asked if isinstance(asked, dict) else {}),
                    "include_usage": True,
                }
        else:
            body.pop("stream", None)
            body.pop("stream_options", None)
        target = spec.max_tokens_field
        if target is not None:
            limit = body.pop("max_completion_tokens", None)
            limit = body.pop("max_tokens", None) if limit is None else limit
            if limit is not None:
                body.pop("max_tokens", None)
                body[target] = limit
        for old, new in spec.rename.items():
            if old in body:
                body[new] = body.pop(old)
        for param in spec.drop:
            body.pop(param, None)
        if spec.temperature_max is not None:
            temperature = body.get("temperature")
            if isinstance(temperature, int | float) and temperature > spec.temperature_max:
                body["temperature"] = spec.temperature_max
        if not spec.developer_role:
            messages = body.get("messages")
            if isinstance(messages, list) and any(
                isinstance(m, dict) and m.get("role") == "developer" for m in messages
            ):
                body["messages"] = [
                    {**m, "role": "system"} if m.get("role") == "developer" else m for m in messages
                ]
        return dumps(body)

    def _auth(self, api_key: str | None) -> dict[str, str]:
        if api_key is None:
            return self._headers
        return {**self._headers, "Authorization": f"Bearer {api_key}"}

    def _failure(
        self, status: int, body: bytes, headers: Mapping[str, str], secret: str | None
    ) -> UpstreamError:
        return from_status(
            status,
            body,
            provider=self.name,
            secret=secret,
            retry_after_s=openai_retry_after(headers),
        )

    async def _post(
        self, path: str, payload: bytes, api_key: str | None, *, stream: bool = False
    ) -> Response:
        """POST and wait for the response headers; non-200 answers become UpstreamErrors."""
        return await self._http.post(
            self._base + path, payload, self._auth(api_key), api_key, stream=stream
        )

    async def _read_json(self, response: Response, secret: str | None) -> JSONObject:
        doc = await self._http.read_json(response)
        if not isinstance(doc, dict) or "error" in doc:
            message = scrub(str(doc.get("error") if isinstance(doc, dict) else doc), secret)
            raise UpstreamError(f"provider {self.name} failed: {message[:300]}", retryable=True)
        return doc

    # -- the three operations -------------------------------------------------------

    async def chat(self, call: Call) -> ChatResult:
        response = await self._post(
            "/chat/completions", self.encode_chat(call, stream=False), call.api_key
        )
        body = await self._read_json(response, call.api_key)
        if not isinstance(body.get("choices"), list):  # no answer a client could read
            raise UpstreamError(
                f"provider {self.name} sent a body that is no chat completion", retryable=True
            )
        raw_usage = body.get("usage")
        usage = (
            usage_from_openai(raw_usage, self._vendor.cached_tokens_field)
            if isinstance(raw_usage, dict)
            else Usage()
        )
        body["usage"] = {**(raw_usage or {}), **usage.to_openai()}
        if self._vendor.reasoning_field != "reasoning_content":
            for choice in body.get("choices") or ():
                _rename(choice.get("message"), self._vendor.reasoning_field)
        return ChatResult(body=body, usage=usage)

    async def open_stream(self, call: Call) -> OpenAIStream:
        response = await self._post(
            "/chat/completions", self.encode_chat(call, stream=True), call.api_key, stream=True
        )
        return OpenAIStream(response, self._vendor, self.name, call.api_key)

    async def embed(self, call: Call) -> EmbeddingResult:
        body = dict(call.body)
        body["model"] = call.upstream_model
        response = await self._post("/embeddings", dumps(body), call.api_key)
        doc = await self._read_json(response, call.api_key)
        raw_usage = doc.get("usage")
        prompt = raw_usage.get("prompt_tokens", 0) if isinstance(raw_usage, dict) else 0
        return EmbeddingResult(body=doc, usage=Usage(prompt_tokens=int(prompt or 0)))

    async def close(self) -> None:
        return None  # the HTTP client belongs to the composition root


def _rename(obj: Any, field: str) -> None:
    if isinstance(obj, dict) and field in obj:
        value = obj.pop(field)
        if value is not None:
            obj["reasoning_content"] = value


def _carries_usage(data: bytes) -> bool:
    at = data.find(b'"usage"')
    while at != -1:
        rest = data[at + 7 : at + 16].lstrip(b" :")
        if rest[:1] == b"{":
            return True
        at = data.find(b'"usage"', at + 7)
    return False


class OpenAIStream:
    """Relays an OpenAI-wire SSE stream as canonical chunk payloads."""

    def __init__(
        self,
        response: Response,
        vendor: VendorSpec,
        provider: str,
        secret: str | None,
    ):
        self.usage: Usage | None = None
        self._response = response
        self._vendor = vendor
        self._provider = provider
        self._secret = secret
        self._reasoning_key = f'"{vendor.reasoning_field}"'.encode()
        self._rename_reasoning = vendor.reasoning_field != "reasoning_content"

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for event in read_events(stream_body(self._response, self._provider)):
                data = event.data
                if data == DONE:
                    return
                if event.event == b"error" or data.startswith(b'{"error"'):
                    raise self._mid_stream_error(data)
                if data[:1] != b"{" or (data[-1:] != b"}" and data.rstrip()[-1:] != b"}"):
                    # Relayed unparsed, so checked for the shape of a JSON object at least:
                    # a cut-off chunk must not reach the client as if it were one.
                    raise UpstreamError(
                        f"provider {self._provider} sent a malformed stream chunk",
                        retryable=True,
                    )
                if _carries_usage(data) or (self._rename_reasoning and self._reasoning_key in data):
                    rewritten = self._rewrite(data)
                    if rewritten is None:
                        continue
                    data = rewritten
                yield data
        except TimeoutError:
            raise UpstreamTimeout(f"provider {self._provider} went silent mid-stream") from None
        # Every OpenAI-wire server ends a whole stream with [DONE] (providers.md §1.1): one
        # that ends without it was cut off, and the client must not take it for complete.
        raise UpstreamError(
            f"provider {self._provider} ended the stream before [DONE]", retryable=True
        )

    def _rewrite(self, data: bytes) -> bytes | None:
        """Take usage out of a chunk (recording it) and normalise reasoning; None when
        nothing is left to relay."""
        try:
            chunk = loads(data)
        except JSONDecodeError:
            raise UpstreamError(
                f"provider {self._provider} sent a malformed stream chunk", retryable=True
            ) from None
        usage = chunk.pop("usage", None)
        choices = chunk.get("choices") or []
        for choice in choices:
            usage = choice.pop("usage", None) or usage  # Moonshot: choices[0].usage
            if self._rename_reasoning:
                _rename(choice.get("delta"), self._vendor.reasoning_field)
        if isinstance(usage, dict):
            self.usage = usage_from_openai(usage, self._vendor.cached_tokens_field)
        if not choices:
            return None
        return dumps(chunk)

    def _mid_stream_error(self, data: bytes) -> UpstreamError:
        try:
            doc = loads(data)
            err = doc.get("error", doc) if isinstance(doc, dict) else doc
            message = err.get("message", "") if isinstance(err, dict) else str(err)
        except JSONDecodeError:
            message = ""
        message = scrub(str(message), self._secret)[:300]
        return UpstreamError(
            f"provider {self._provider} failed mid-stream: {message}", retryable=True
        )

    async def aclose(self) -> None:
        # Back to the pool when read to its end; closed (cancelling the upstream) otherwise.
        self._response.release()
