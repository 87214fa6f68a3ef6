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

from tokenyard.config import ProviderConfig
from tokenyard.errors import UpstreamError, UpstreamTimeout
from tokenyard.providers.transport import HttpClient, Response, TransportError
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
    """POSTs to one upstream through the composition root's client (providers/transport/)."""

    def __init__(
        self,
        *,
        name: str,
        client: HttpClient,
        timeout_s: float,
        connect_timeout_s: float,
        first_byte_timeout_s: float,
        idle_timeout_s: float,
        map_error: ErrorMapper,
    ):
        self.name = name
        self.timeout_s = timeout_s
        self._client = client
        self._first_byte_s = first_byte_timeout_s
        self._connect_s = connect_timeout_s
        # A stream may run for long; only silence between two reads is bounded. The wait for
        # the response headers is bounded by both first_byte_timeout_s and idle_timeout_s.
        self._idle_s = idle_timeout_s
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
    ) -> Response:
        """POST and wait for the response headers, within ``first_byte_timeout_s``
        (connecting included); a non-200 answer is released and raised as ``map_error``
        (this call's, else the provider's) reads it. The timeout is the transport's
        ``deadline``: its one timer for the headers serves it."""
        deadline = asyncio.get_running_loop().time() + self._first_byte_s
        try:
            response = await self._client.post(
                url,
                payload,
                headers,
                connect_timeout_s=self._connect_s,
                deadline=deadline,
                idle_timeout_s=self._idle_s if stream else None,
            )
            if response.status != 200:
                raise await self._refusal(response, secret, map_error or self._map_error, deadline)
            return response
        except TimeoutError:
            raise UpstreamTimeout(f"provider {self.name} did not answer in time") from None
        except TransportError as exc:
            raise UpstreamError(
                f"provider {self.name} could not be reached: {exc}", retryable=True
            ) from None

    @staticmethod
    async def _refusal(
        response: Response, secret: str | None, mapper: ErrorMapper, deadline: float
    ) -> UpstreamError:
        """A non-200 answer as ``mapper`` reads it: its body (an error page) still read by
        the first-byte deadline, then the response released."""
        try:
            async with asyncio.timeout_at(deadline):
                body = await _bounded(response)
        except _TooLarge:
            body = b""  # the status alone says enough
        finally:
            response.release()
        error = mapper(response.status, body, response.headers, secret)
        error.upstream_status = response.status
        return error

    async def read(self, response: Response) -> bytes:
        """The whole body of a 200 answer, within ``timeout_s``; the response is released.
        A body that has all arrived (most answers: it came with the headers) is read
        without arming the timer."""
        try:
            if response.complete:
                return await _bounded(response)
            async with asyncio.timeout(self.timeout_s):
                return await _bounded(response)
        except _TooLarge:
            raise UpstreamError(
                f"provider {self.name} sent a body over {MAX_RESPONSE_BYTES} bytes",
                retryable=True,
            ) from None
        except TimeoutError:
            raise UpstreamTimeout(f"provider {self.name} did not finish in time") from None
        except TransportError as exc:
            raise UpstreamError(f"provider {self.name} broke off: {exc}", retryable=True) from None
        finally:
            response.release()

    async def read_json(self, response: Response) -> object:
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


async def _bounded(response: Response) -> bytes:
    """The body, refused beyond MAX_RESPONSE_BYTES: at once when its announced length is
    over, else (chunked, or compressed: what it unpacks to counts) as it arrives."""
    length = response.content_length  # None when compressed
    if length is not None:
        if length > MAX_RESPONSE_BYTES:
            raise _TooLarge
        return await response.read()
    body = bytearray()
    async for chunk in response.chunks():
        body += chunk
        if len(body) > MAX_RESPONSE_BYTES:
            raise _TooLarge
    return bytes(body)


async def stream_body(response: Response, provider: str) -> AsyncIterator[bytes]:
    """A streamed body as it arrives, for the SSE reader (wire/sse.py), which splits it into
    lines; a line (one event) longer than MAX_RESPONSE_BYTES fails the stream, retryable, as
    does a connection that breaks off. Silence longer than ``idle_timeout_s`` raises
    ``TimeoutError``, which the family words (a silent stream is not a broken one)."""
    open_line = 0  # bytes of the last line, not yet ended
    try:
        async for chunk in response.chunks():
            ends = chunk.find(b"\n")
            line = open_line + (len(chunk) if ends == -1 else ends)  # the line, in full if ended
            open_line = line if ends == -1 else len(chunk) - chunk.rfind(b"\n") - 1
            if line > MAX_RESPONSE_BYTES:
                raise UpstreamError(
                    f"provider {provider} sent a stream event over {MAX_RESPONSE_BYTES} bytes",
                    retryable=True,
                )
            yield chunk
    except TransportError as exc:
        raise UpstreamError(
            f"provider {provider} broke off the stream: {exc}", retryable=True
        ) from None


def pooled_connections(clients: Iterable[HttpClient]) -> dict[str, int]:
    """How many connections the clients' pools hold: ``in_use`` (a request or a stream is
    on it) and ``idle`` (kept alive for the next request). Read at scrape time
    (obs/runtime.py)."""
    in_use = idle = 0
    for client in clients:
        busy, waiting = client.connections()
        in_use += busy
        idle += waiting
    return {"in_use": in_use, "idle": idle}
