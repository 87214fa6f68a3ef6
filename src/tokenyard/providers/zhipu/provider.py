"""The Zhipu GLM / Z.AI adapter (``api: zhipu``): the HTTP calls and :func:`build`.

Endpoints (providers.md §7.1; SDK ``_client.py`` default base): ``POST {base}/chat/completions``
and ``POST {base}/embeddings`` with ``base`` = ``https://open.bigmodel.cn/api/paas/v4`` (China)
or ``https://api.z.ai/api/paas/v4`` (Z.AI). Auth: ``Authorization: Bearer <jwt | key>``
(:mod:`.auth`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from tokenyard.config import ProviderConfig
from tokenyard.errors import UpstreamError
from tokenyard.providers.base import Call, ChatResult, EmbeddingResult, Provider
from tokenyard.providers.http import UpstreamHttp, configured_timeouts
from tokenyard.providers.transport import HttpClient, Response
from tokenyard.providers.zhipu.auth import Tokens
from tokenyard.providers.zhipu.failure import from_response
from tokenyard.providers.zhipu.request import EMBEDDING_BATCH, embedding_batches, encode_chat
from tokenyard.providers.zhipu.response import chat_body, embedding_body
from tokenyard.providers.zhipu.stream import ZhipuStream
from tokenyard.wire.json import JSONObject, dumps

DEFAULT_BASE_URL = "https://open.bigmodel.cn/api/paas/v4"


class ZhipuProvider:
    """``jwt=True`` (default) signs ``id.secret`` keys into 210-second HS256 tokens (cached,
    renewed 30 s before expiry); ``jwt=False`` sends the raw key, as the official SDK does
    by default. ``clock`` (seconds since the epoch) drives token times and ``created``.
    ``embedding_batch``: input strings per embeddings call (64 for embedding-3; embedding-2
    also caps a call at 8K tokens in all)."""

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
        jwt: bool = True,
        clock: Callable[[], float] = time.time,
        embedding_batch: int = EMBEDDING_BATCH,
    ):
        self.name = name
        self._base = base_url.rstrip("/")
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
        self._tokens = Tokens(jwt=jwt, clock=clock)
        self._batch = max(1, embedding_batch)

    def _auth(self, api_key: str | None) -> dict[str, str]:
        if api_key is None:
            return self._headers
        return {**self._headers, "Authorization": f"Bearer {self._tokens.bearer(api_key)}"}

    def _failure(
        self, status: int, body: bytes, headers: Mapping[str, str], secret: str | None
    ) -> UpstreamError:
        return from_response(
            status,
            body,
            provider=self.name,
            secrets=self._tokens.secrets(secret),
            retry_after=headers.get("Retry-After"),
        )

    async def _post(
        self, path: str, payload: JSONObject, api_key: str | None, *, stream: bool = False
    ) -> Response:
        """POST and wait for the response headers; non-200 answers become UpstreamErrors."""
        headers = self._auth(api_key)
        return await self._http.post(
            self._base + path, dumps(payload), headers, api_key, stream=stream
        )

    async def _read_json(self, response: Response, api_key: str | None) -> JSONObject:
        doc = await self._http.read_json(response)
        if not isinstance(doc, dict):
            raise UpstreamError(
                f"provider {self.name} sent a body that is not JSON", retryable=True
            )
        if "error" in doc:  # an error object sent with HTTP 200
            secrets = self._tokens.secrets(api_key)
            raise from_response(200, dumps(doc), provider=self.name, secrets=secrets)
        return doc

    async def chat(self, call: Call) -> ChatResult:
        payload = encode_chat(call.body, call.upstream_model, stream=False)
        response = await self._post("/chat/completions", payload, call.api_key)
        doc = await self._read_json(response, call.api_key)
        body, usage = chat_body(doc, call.upstream_model, int(self._clock()), self.name)
        return ChatResult(body=body, usage=usage)

    async def open_stream(self, call: Call) -> ZhipuStream:
        payload = encode_chat(call.body, call.upstream_model, stream=True)
        response = await self._post("/chat/completions", payload, call.api_key, stream=True)
        return ZhipuStream(
            response,
            provider=self.name,
            model=call.upstream_model,
            secrets=self._tokens.secrets(call.api_key),
            clock=self._clock,
        )

    async def embed(self, call: Call) -> EmbeddingResult:
        pages = []
        for payload in embedding_batches(call.body, call.upstream_model, self._batch):
            response = await self._post("/embeddings", payload, call.api_key)
            pages.append(await self._read_json(response, call.api_key))
        as_base64 = call.body.get("encoding_format") == "base64"
        body, usage = embedding_body(pages, call.upstream_model, as_base64=as_base64)
        return EmbeddingResult(body=body, usage=usage)

    async def close(self) -> None:
        return None  # the HTTP client belongs to the composition root


def build(name: str, cfg: ProviderConfig, client: HttpClient) -> Provider:
    """The registry's constructor for ``api: zhipu`` (JWT signing on; see ZhipuProvider)."""
    return ZhipuProvider(
        name=name,
        base_url=cfg.base_url or DEFAULT_BASE_URL,
        client=client,
        extra_headers=dict(cfg.headers),
        **configured_timeouts(cfg),
    )
