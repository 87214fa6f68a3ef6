"""The Gemini Developer API family (``api: gemini``): where and how to call.

Wire facts (python-genai ``_api_client.py`` and ``models.py``; providers.md §4.1):

* Base URL ``https://generativelanguage.googleapis.com``, API version ``v1beta`` (appended
  unless the configured URL already ends in a version).
* ``POST /v1beta/models/{model}:generateContent``,
  ``:streamGenerateContent?alt=sse`` (without ``alt=sse`` the stream is one incrementally
  sent JSON array), ``:batchEmbedContents``.
* Auth: header ``x-goog-api-key`` (the SDK's choice; the ``?key=`` query form would put keys
  in access logs).
* Gemini's answers carry no creation time and may lack a response id, so ``created`` comes
  from the injected clock and the id falls back to a random one.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from urllib.parse import quote

from tokenyard.config import ProviderConfig
from tokenyard.errors import UpstreamError
from tokenyard.providers.base import Call, ChatResult, EmbeddingResult, Provider
from tokenyard.providers.gemini.embedding import embed_request, embedding_list, model_path
from tokenyard.providers.gemini.failure import error_object, from_response, in_body
from tokenyard.providers.gemini.media import inline_remote_images
from tokenyard.providers.gemini.request import chat_request
from tokenyard.providers.gemini.response import chat_completion
from tokenyard.providers.gemini.stream import GeminiStream
from tokenyard.providers.http import UpstreamHttp, configured_timeouts
from tokenyard.providers.image_fetch import ImageFetcher
from tokenyard.providers.transport import HttpClient, Response
from tokenyard.wire.json import JSONObject, dumps

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
API_VERSIONS = ("/v1beta", "/v1", "/v1alpha")
_JSON = {"Content-Type": "application/json"}


class GeminiProvider:
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
        external_image_urls: bool = False,
        image_fetcher: ImageFetcher | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.name = name
        base = base_url.rstrip("/")
        self._base = base if base.endswith(API_VERSIONS) else base + "/v1beta"
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
        self._external_urls = external_image_urls
        self._images = image_fetcher
        self._clock = clock

    # -- requests -------------------------------------------------------------------

    def encode_chat(self, call: Call) -> bytes:
        return dumps(
            chat_request(call.body, call.upstream_model, external_urls=self._external_urls)
        )

    async def _downloaded(self, call: Call) -> Call:
        """The call with the image URLs Google cannot fetch replaced by their bytes."""
        if self._images is None:
            return call
        body = await inline_remote_images(
            call.body, self._images, external_urls=self._external_urls
        )
        return call if body is call.body else replace(call, body=body)

    def _url(self, model: str, method: str) -> str:
        return f"{self._base}/{quote(model_path(model), safe='/-._~')}:{method}"

    def _auth(self, api_key: str | None) -> dict[str, str]:
        if api_key is None:
            return self._headers
        return {**self._headers, "x-goog-api-key": api_key}

    def _failure(
        self, status: int, body: bytes, headers: Mapping[str, str], secret: str | None
    ) -> UpstreamError:
        return from_response(
            status,
            body,
            provider=self.name,
            secret=secret,
            retry_after=headers.get("Retry-After"),
        )

    async def _post(
        self, url: str, payload: bytes, api_key: str | None, *, stream: bool = False
    ) -> Response:
        """POST and wait for the response headers; non-200 answers become UpstreamErrors."""
        return await self._http.post(url, payload, self._auth(api_key), api_key, stream=stream)

    async def _read_json(self, response: Response, secret: str | None) -> JSONObject:
        doc = await self._http.read_json(response)
        err = error_object(doc)
        if err is not None:  # an error inside a 200 answer
            raise in_body(err, provider=self.name, secret=secret)
        if not isinstance(doc, dict):
            raise UpstreamError(
                f"provider {self.name} sent a body that is not an object", retryable=True
            )
        return doc

    # -- the three operations -------------------------------------------------------

    async def chat(self, call: Call) -> ChatResult:
        payload = self.encode_chat(await self._downloaded(call))
        url = self._url(call.upstream_model, "generateContent")
        doc = await self._read_json(await self._post(url, payload, call.api_key), call.api_key)
        body, usage = chat_completion(
            doc,
            provider=self.name,
            model=call.upstream_model,
            created=int(self._clock()),
            fallback_id=f"chatcmpl-{uuid.uuid4().hex}",
        )
        return ChatResult(body=body, usage=usage)

    async def open_stream(self, call: Call) -> GeminiStream:
        payload = self.encode_chat(await self._downloaded(call))
        url = self._url(call.upstream_model, "streamGenerateContent?alt=sse")
        response = await self._post(url, payload, call.api_key, stream=True)
        return GeminiStream(
            response,
            provider=self.name,
            secret=call.api_key,
            model=call.upstream_model,
            created=int(self._clock()),
            fallback_id=f"chatcmpl-{uuid.uuid4().hex}",
        )

    async def embed(self, call: Call) -> EmbeddingResult:
        request, texts = embed_request(call.body, call.upstream_model)
        url = self._url(call.upstream_model, "batchEmbedContents")
        response = await self._post(url, dumps(request), call.api_key)
        doc = await self._read_json(response, call.api_key)
        body, usage = embedding_list(
            doc,
            texts,
            provider=self.name,
            model=call.upstream_model,
            as_base64=call.body.get("encoding_format") == "base64",
        )
        return EmbeddingResult(body=body, usage=usage)

    async def close(self) -> None:
        return None  # the HTTP client belongs to the composition root


def build(name: str, cfg: ProviderConfig, client: HttpClient) -> Provider:
    """The registry's entry point for ``api: gemini``."""
    images = cfg.images
    fetcher = (
        ImageFetcher(
            max_bytes=images.max_bytes,
            timeout_s=images.timeout_s,
            max_redirects=images.max_redirects,
            allow_networks=images.allow_networks,
        )
        if images.fetch
        else None
    )
    return GeminiProvider(
        name=name,
        base_url=cfg.base_url or DEFAULT_BASE_URL,
        client=client,
        extra_headers=dict(cfg.headers),
        image_fetcher=fetcher,
        **configured_timeouts(cfg),
    )
