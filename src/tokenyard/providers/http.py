"""The HTTP exchange every HTTP upstream family shares: POST, wait for the headers, read JSON.

Timeouts: the wait for the response headers is bounded by
``first_byte_timeout_s``; a streamed response bounds only the silence between two reads
(``idle_timeout_s``); a complete body must arrive within ``timeout_s``. Connection failures
and timeouts become retryable :class:`UpstreamError`s here (providers.md §14.2); what a
non-200 answer means is the family's own business (``map_error``).

Size: an upstream's body is read into memory, so it is bounded. A non-streamed body (an
error page too) or one stream event longer than :data:`MAX_RESPONSE_BYTES` fails the call
like a broken connection: retryable (docs/reliability.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Protocol, TypedDict

import aiohttp

from tokenyard.config import ProviderConfig
from tokenyard.errors import UpstreamError, UpstreamTimeout
from tokenyard.wire.json import JSONDecodeError, loads

MAX_RESPONSE_BYTES = 64 * 1024 * 1024
"""The most an upstream may send as one non-streamed body or one stream event. Bigger than
any sane answer — a whole context window of text is a few MB; the largest embedding batch
(2,048 inputs of 3,072 dimensions, base64 as the SDKs ask) is about 34 MB — so reaching it
means a broken or hostile upstream, whose body would otherwise be held in memory whole."""


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
                        body = await _bounded(response)
                    except _TooLarge:
                        body = b""  # the status alone says enough
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
                return await _bounded(response)
        except _TooLarge:
            raise UpstreamError(
                f"provider {self.name} sent a body over {MAX_RESPONSE_BYTES} bytes",
                retryable=True,
            ) from None
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


class _TooLarge(Exception):
    """A body over MAX_RESPONSE_BYTES (translated where it is read)."""


async def _bounded(response: aiohttp.ClientResponse) -> bytes:
    """The body, refused beyond MAX_RESPONSE_BYTES: at once when its announced length is
    over, else (chunked, or compressed: what it unpacks to counts) as it arrives."""
    length = response.content_length
    if length is not None and "Content-Encoding" not in response.headers:
        if length > MAX_RESPONSE_BYTES:
            raise _TooLarge
        return await response.read()
    body = bytearray()
    async for chunk in response.content.iter_any():
        body += chunk
        if len(body) > MAX_RESPONSE_BYTES:
            raise _TooLarge
    return bytes(body)


async def stream_body(response: aiohttp.ClientResponse, provider: str) -> AsyncIterator[bytes]:
    """A streamed body as it arrives, for the SSE reader (wire/sse.py), which splits it into
    lines; a line (one event) longer than MAX_RESPONSE_BYTES fails the stream, retryable."""
    since_line_end = 0
    async for chunk in response.content.iter_any():
        end = chunk.rfind(b"\n")
        since_line_end = len(chunk) - end - 1 if end != -1 else since_line_end + len(chunk)
        if since_line_end > MAX_RESPONSE_BYTES:
            raise UpstreamError(
                f"provider {provider} sent a stream event over {MAX_RESPONSE_BYTES} bytes",
                retryable=True,
            )
        yield chunk


def pooled_connections(sessions: Iterable[aiohttp.ClientSession]) -> dict[str, int]:
    """How many connections the sessions' pools hold: ``in_use`` (a request or a stream is
    on it) and ``idle`` (kept alive for the next request; one the upstream has closed in
    the meantime counts until the pool next looks at it). Read at scrape time
    (obs/runtime.py). aiohttp keeps these counts in its connector without a public reader:
    read where they live, and as zero should a future aiohttp keep them elsewhere."""
    in_use = idle = 0
    for session in sessions:
        connector = session.connector
        if connector is None or connector.closed:
            continue
        in_use += len(getattr(connector, "_acquired", ()))
        idle += sum(len(pooled) for pooled in getattr(connector, "_conns", {}).values())
    return {"in_use": in_use, "idle": idle}
