"""One connection to an upstream's origin, carrying one exchange at a time: httptools'
callbacks feed the current :class:`Response`; when the exchange is over the connection goes
back to its pool or is closed."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

import httptools

from tokenyard.deadline_timer import DeadlineTimer
from tokenyard.providers.transport.response import Response, TransportError

if TYPE_CHECKING:
    from tokenyard.providers.transport.client import HttpClient

Origin = tuple[str, str, int]  # scheme, host, port


class Connection(asyncio.Protocol):
    """One TCP (or TLS) connection to an origin, carrying one exchange at a time."""

    def __init__(self, pool: HttpClient, origin: Origin):
        self._pool = pool
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()  # made by the loop's create_connection
        self.closed = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._response: Response | None = None
        self._head: asyncio.Future[Response] | None = None
        self._raw: list[tuple[bytes, bytes]] = []
        self._length: bytes | None = None
        self._encoding: bytes | None = None
        self._chunked = False
        self._ends_at_close = False  # the current body: neither a length nor chunks
        self._keep_alive = False
        self._paused = False
        self._interim = False
        self._timer = DeadlineTimer(self.loop, self._head_expired)  # the head's

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._response is None:  # nothing asked: an upstream talking out of turn
            self._abort()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._broken(TransportError(f"malformed HTTP response: {exc}"))
        except Exception as exc:  # a callback refused (a second answer to one request…)
            self._broken(TransportError(f"unexpected HTTP response: {type(exc).__name__}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._timer.stop()
        response = self._response
        if response is not None and response.complete:
            pass
        elif response is not None and exc is None and self._head is None and self._ends_at_close:
            response._finish()  # a body framed by the connection's end: complete now
        else:
            self._broken(TransportError("the connection was closed mid-response"))
        self._pool.lost(self)

    # -- httptools callbacks --------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._raw.append((name, value))
        lowered = name.lower()
        if lowered == b"content-length":
            self._length = value
        elif lowered == b"content-encoding":
            self._encoding = value
        elif lowered == b"transfer-encoding":
            self._chunked = b"chunked" in value.lower()

    def on_headers_complete(self) -> None:
        raw, length, encoding, chunked = self._raw, self._length, self._encoding, self._chunked
        self._raw, self._length, self._encoding, self._chunked = [], None, None, False
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (103 Early Hints…): the real one follows
            self._interim = True
            return
        response, head = self._response, self._head
        if response is None or head is None:
            raise TransportError("a second answer to one request")
        response._headers_done(status, raw, length, encoding)
        self._ends_at_close = length is None and not chunked
        self._head = None
        self._timer.clear()
        if not head.done():
            head.set_result(response)

    def on_body(self, body: bytes) -> None:
        if self._interim:
            return
        assert self._response is not None
        self._response._feed(body)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        self._keep_alive = self._parser.should_keep_alive()
        assert self._response is not None
        self._response._finish()

    # -- used by the pool and the response ------------------------------------------------

    def send(
        self, request: bytes, idle_timeout_s: float | None, deadline: float | None
    ) -> asyncio.Future[Response]:
        """Write ``request``; the future is its response once the headers are in, or
        ``TimeoutError`` past ``deadline`` (on the loop's clock)."""
        assert self.transport is not None
        self._response = Response(self, idle_timeout_s)
        self._head = self.loop.create_future()
        self._keep_alive = False
        if deadline is None:
            self._timer.clear()
        else:
            self._timer.set(deadline)
        self.transport.write(request)
        return self._head

    def _head_expired(self) -> None:
        head = self._head
        if head is not None and not head.done():
            head.set_exception(TimeoutError())

    def pause(self) -> None:
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self.transport is not None and not self.closed:
            self._paused = False
            self.transport.resume_reading()

    def done(self, *, reusable: bool) -> None:
        """The exchange is over: back to the pool, or closed."""
        self._response = None
        if reusable and self._keep_alive and not self.closed and not self._paused:
            self._pool.idle(self)  # the parser goes on with the next message as it is
        else:
            self._abort()
            self._pool.lost(self)

    def _broken(self, error: TransportError) -> None:
        head, self._head = self._head, None
        self._timer.clear()
        if head is not None and not head.done():
            head.set_exception(error)
        if self._response is not None:
            self._response._fail(error)
        self._abort()

    def _abort(self) -> None:
        self.closed = True
        self._timer.stop()
        if self.transport is not None:
            self.transport.close()
