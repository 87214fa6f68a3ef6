"""The HTTP exchange every HTTP upstream family shares: POST, wait for the headers, read JSON.

Timeouts: the wait for the response headers is bounded by
``first_byte_timeout_s``; a streamed response bounds only the silence between two reads
(``idle_timeout_s``); a complete body must arrive within ``timeout_s``. Connection failures
and timeouts become retryable :class:`UpstreamError`s here (providers.md §14.2); what a
non-200 answer means is the family's own business (``map_error``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Protocol, TypedDict

import aiohttp

from tokenyard.config import ProviderConfig
from tokenyard.errors import UpstreamError, UpstreamTimeout
from tokenyard.wire.json import JSONDecodeError, loads


class Timeouts(TypedDict):
    """The bounds of an upstream call, as every provider constructor takes them."""

    timeout_s: float
    connect_timeout_s: float
    first_byte_timeout_s: float
    idle_timeout_s: float


def configured_timeouts(cfg: ProviderConfig) -> Timeouts:
    """A provider's configured timeouts; the wait for the first byte defaults to the total."""
    return Timeouts(
        timeout_s=cfg.timeout_s,
        connect_timeout_s=cfg.connect_timeout_s,
        first_byte_timeout_s=cfg.first_byte_timeout_s or cfg.timeout_s,
        idle_timeout_s=cfg.idle_timeout_s,
    )


class ErrorMapper(Protocol):
    """A family's reading of a non-200 answer: its status, body, response headers and the
    credential the request carried (to scrub it from messages). May raise instead."""

    def __call__(
        self, status: int, body: bytes, headers: Mapping[str, str], secret: str | None
    ) -> UpstreamError: ...


class UpstreamHttp:
    """POSTs to one upstream through the composition root's session."""

    def __init__(
        self,
        *,
        name: str,
        session: aiohttp.ClientSession,
        timeout_s: float,
        connect_timeout_s: float,
        first_byte_timeout_s: float,
        idle_timeout_s: float,
        map_error: ErrorMapper,
    ):
        self.name = name
        self.timeout_s = timeout_s
        self._session = session
        self._first_byte_s = first_byte_timeout_s
        # A stream may run for long; only silence between two reads is bounded. The wait for
        # the response headers is bounded by both first_byte_timeout_s and idle_timeout_s.
        self._stream_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout_s, sock_read=idle_timeout_s
        )
        self._call_timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout_s)
        self._map_error = map_error

    async def post(
        self,
        url: str,
        payload: bytes,
        headers: Mapping[str, str],
        secret: str | None,
        *,
        stream: bool = False,
        map_error: ErrorMapper | None = None,
    ) -> aiohttp.ClientResponse:
        """POST and wait for the response headers; a non-200 answer is released and raised as
        ``map_error`` (this call's, else the provider's) reads it."""
        try:
            async with asyncio.timeout(self._first_byte_s):
                response = await self._session.post(
                    url,
                    data=payload,
                    headers=headers,
                    timeout=self._stream_timeout if stream else self._call_timeout,
                )
                if response.status != 200:
                    try:
                        body = await response.read()
                    finally:
                        response.release()
                    mapper = map_error or self._map_error
                    error = mapper(response.status, body, response.headers, secret)
                    error.upstream_status = response.status
                    raise error
                return response
        except TimeoutError:
            raise UpstreamTimeout(f"provider {self.name} did not answer in time") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(
                f"provider {self.name} could not be reached: {type(exc).__name__}",
                retryable=True,
            ) from None

    async def read(self, response: aiohttp.ClientResponse) -> bytes:
        """The whole body of a 200 answer, within ``timeout_s``; the response is released."""
        try:
            async with asyncio.timeout(self.timeout_s):
                return await response.read()
        except TimeoutError:
            raise UpstreamTimeout(f"provider {self.name} did not finish in time") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(
                f"provider {self.name} broke off: {type(exc).__name__}", retryable=True
            ) from None
        finally:
            response.release()

    async def read_json(self, response: aiohttp.ClientResponse) -> object:
        """The decoded body of a 200 answer (any JSON value: the family checks its shape)."""
        raw = await self.read(response)
        try:
            return loads(raw)  # tolerates padding with blank lines (DeepSeek, Spark)
        except JSONDecodeError:
            raise UpstreamError(
                f"provider {self.name} sent a body that is not JSON", retryable=True
            ) from None
