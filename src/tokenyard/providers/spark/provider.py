"""The ``api: spark`` provider: one adapter, two transports, chosen per key by its shape.

* ``app_id:api_key:api_secret`` (three non-empty parts) → the classic WebSocket API
  (ws.py) at ``ws_base_url`` (default ``wss://spark-api.xf-yun.com``; the path and
  ``domain`` come from the upstream model name, models.py).
* anything else → the OpenAI-compatible HTTP API (http.py) at ``base_url`` (default
  ``https://spark-api-open.xf-yun.com/v1``; use ``…/v2`` for X1), the key sent as
  ``Authorization: Bearer <APIPassword>``.

So one provider may mix both kinds of keys in its pool. Spark has no embeddings API here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlsplit

import aiohttp

from tokenyard.config import ProviderConfig
from tokenyard.errors import UpstreamRejected
from tokenyard.providers.base import Call, ChatResult, ChatStream, EmbeddingResult
from tokenyard.providers.http import Timeouts, configured_timeouts
from tokenyard.providers.spark.http import SparkHTTP
from tokenyard.providers.spark.signing import ws_credentials
from tokenyard.providers.spark.ws import SparkWebSocket
from tokenyard.providers.transport import HttpClient

DEFAULT_HTTP_BASE = "https://spark-api-open.xf-yun.com/v1"
DEFAULT_WS_BASE = "wss://spark-api.xf-yun.com"


class SparkProvider:
    def __init__(
        self,
        *,
        name: str,
        base_url: str = DEFAULT_HTTP_BASE,
        client: HttpClient,
        ws_session: aiohttp.ClientSession | None = None,
        timeout_s: float,
        connect_timeout_s: float,
        first_byte_timeout_s: float,
        idle_timeout_s: float,
        extra_headers: dict[str, str] | None = None,
        ws_base_url: str = DEFAULT_WS_BASE,
        clock: Callable[[], float] = time.time,
    ):
        self.name = name
        timeouts = Timeouts(
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
            first_byte_timeout_s=first_byte_timeout_s,
            idle_timeout_s=idle_timeout_s,
        )
        self._http = SparkHTTP(
            name=name,
            base_url=base_url,
            client=client,
            extra_headers=extra_headers,
            clock=clock,
            **timeouts,
        )
        self._ws = SparkWebSocket(
            name=name,
            base_url=ws_base_url,
            session=ws_session,
            extra_headers=extra_headers,
            clock=clock,
            **timeouts,
        )

    async def chat(self, call: Call) -> ChatResult:
        creds = ws_credentials(call.api_key)
        if creds is not None:
            return await self._ws.chat(call, creds)
        return await self._http.chat(call)

    async def open_stream(self, call: Call) -> ChatStream:
        creds = ws_credentials(call.api_key)
        if creds is not None:
            return await self._ws.open_stream(call, creds)
        return await self._http.open_stream(call)

    async def embed(self, call: Call) -> EmbeddingResult:
        raise UpstreamRejected(f"provider {self.name} (iFlytek Spark) does not offer embeddings")

    async def close(self) -> None:
        await self._ws.close()  # the HTTP client belongs to the composition root


def build(name: str, cfg: ProviderConfig, client: HttpClient) -> SparkProvider:
    """The registry's factory. ``base_url`` with a ``ws``/``wss`` scheme sets the WebSocket
    base (the HTTP base stays the default), any other sets the HTTP base."""
    base = cfg.base_url
    websocket = base is not None and urlsplit(base).scheme in ("ws", "wss")
    return SparkProvider(
        name=name,
        base_url=base if base is not None and not websocket else DEFAULT_HTTP_BASE,
        ws_base_url=base if base is not None and websocket else DEFAULT_WS_BASE,
        client=client,
        extra_headers=cfg.headers,
        **configured_timeouts(cfg),
    )
