"""The Anthropic Messages API as an upstream (``api: anthropic``).

Wire facts (anthropic-sdk-python 0.121 ``_client.py``; providers.md §3.1): ``POST
{base_url}/v1/messages`` with ``x-api-key: <key>`` and ``anthropic-version: 2023-06-01``;
the base URL has no ``/v1`` (``https://api.anthropic.com``). API version 2026-10-21 (SDK
2.x, which sends the key as ``Authorization: Bearer``) removed ``temperature``, ``top_p``
and ``top_k`` (platform.claude.com/docs/en/api/migration-2026-10-21); 2023-06-01 is still
served, so it stays the default, and a provider whose configured headers pin a later
version leaves the sampling parameters out. Anthropic has no embeddings
API. Besides the three canonical operations, :meth:`AnthropicProvider.messages_raw` relays
a client's own Anthropic request for the gateway's inbound Anthropic endpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from tokenyard.config import ProviderConfig
from tokenyard.errors import UpstreamError, UpstreamRejected
from tokenyard.providers.anthropic.failure import from_response
from tokenyard.providers.anthropic.raw import RawAnswer
from tokenyard.providers.anthropic.request import encode
from tokenyard.providers.anthropic.response import to_chat_completion
from tokenyard.providers.anthropic.stream import AnthropicStream
from tokenyard.providers.base import Call, ChatResult, EmbeddingResult, Provider
from tokenyard.providers.failure import scrub
from tokenyard.providers.http import UpstreamHttp, configured_timeouts
from tokenyard.providers.transport import HttpClient, Response
from tokenyard.wire.json import JSONObject, dumps

API_VERSION = "2023-06-01"
DEFAULT_BASE_URL = "https://api.anthropic.com"
SAMPLING_REMOVED_IN = "2026-10-21"  # temperature, top_p and top_k answer 400 from this version
_PROTECTED = frozenset({"x-api-key", "authorization", "content-type", "content-length", "host"})


class AnthropicProvider:
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
        default_max_tokens: int = 4096,
        clock: Callable[[], float] = time.time,
    ):
        self.name = name
        base = base_url.rstrip("/")
        self._base = base[:-3] if base.endswith("/v1") else base
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
            "anthropic-version": API_VERSION,
            **(extra_headers or {}),  # may add anthropic-beta, or pin another version
            "Content-Type": "application/json",
        }
        version = next(
            (v for k, v in self._headers.items() if k.lower() == "anthropic-version"), API_VERSION
        )
        self._sampling = version < SAMPLING_REMOVED_IN  # ISO dates compare as strings
        self._default_max_tokens = default_max_tokens
        self._clock = clock

    # -- requests -------------------------------------------------------------------

    def encode_chat(self, call: Call, *, stream: bool) -> bytes:
        return dumps(self.encode_chat_body(call, stream=stream))

    def encode_chat_body(self, call: Call, *, stream: bool) -> JSONObject:
        return encode(
            call.body,
            call.upstream_model,
            stream=stream,
            default_max_tokens=self._default_max_tokens,
            sampling=self._sampling,
        )

    def _auth(self, api_key: str | None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = dict(self._headers)
        if extra:
            headers.update((k, v) for k, v in extra.items() if k.lower() not in _PROTECTED)
        if api_key is not None:
            headers["x-api-key"] = api_key
        return headers

    def _failure(
        self, status: int, body: bytes, headers: Mapping[str, str], secret: str | None
    ) -> UpstreamError:
        return from_response(
            status, body, headers, provider=self.name, secret=secret, now=self._clock()
        )

    async def _post(
        self,
        payload: bytes,
        api_key: str | None,
        *,
        stream: bool,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """POST /v1/messages and wait for the response headers; non-200 → UpstreamError."""
        return await self._http.post(
            self._base + "/v1/messages",
            payload,
            self._auth(api_key, headers),
            api_key,
            stream=stream,
        )

    async def _read_json(self, response: Response, secret: str | None) -> JSONObject:
        doc = await self._http.read_json(response)
        if not isinstance(doc, dict) or doc.get("type") == "error":
            detail = scrub(str(doc.get("error") if isinstance(doc, dict) else doc), secret)
            raise UpstreamError(f"provider {self.name} failed: {detail[:300]}", retryable=True)
        return doc

    # -- the canonical operations ---------------------------------------------------

    async def chat(self, call: Call) -> ChatResult:
        payload = self.encode_chat(call, stream=False)
        response = await self._post(payload, call.api_key, stream=False)
        doc = await self._read_json(response, call.api_key)
        body, usage = to_chat_completion(doc, int(self._clock()))
        return ChatResult(body=body, usage=usage)

    async def open_stream(self, call: Call) -> AnthropicStream:
        payload = self.encode_chat(call, stream=True)
        response = await self._post(payload, call.api_key, stream=True)
        return AnthropicStream(
            response,
            provider=self.name,
            secret=call.api_key,
            created=int(self._clock()),
            model=call.upstream_model,
        )

    async def embed(self, call: Call) -> EmbeddingResult:
        raise UpstreamRejected(f"provider {self.name} (anthropic) does not offer embeddings")

    async def messages_raw(
        self,
        body: bytes,
        api_key: str | None,
        *,
        stream: bool,
        headers: Mapping[str, str] | None = None,
    ) -> RawAnswer:
        """Relay a client's Anthropic Messages request as is (the caller has already put the
        upstream model name in it) and return the 200 response for the caller to copy byte
        for byte and then release. ``headers`` may carry the client's own Anthropic headers:
        pass its ``anthropic-version`` (the body and the answer are in that version's shape;
        SDK 2.x sends 2026-10-21) and ``anthropic-beta``; they never replace our key or the
        content type. Non-200 answers raise like :meth:`chat`."""
        return RawAnswer(
            await self._post(body, api_key, stream=stream, headers=headers), self._http
        )

    async def close(self) -> None:
        return None  # the HTTP client belongs to the composition root


def build(name: str, cfg: ProviderConfig, client: HttpClient) -> Provider:
    """The registry's constructor for ``api: anthropic`` providers."""
    return AnthropicProvider(
        name=name,
        base_url=cfg.base_url or DEFAULT_BASE_URL,
        client=client,
        extra_headers=cfg.headers,
        **configured_timeouts(cfg),
    )
