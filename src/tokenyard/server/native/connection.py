"""One client connection to the gateway's own HTTP/1.1 server (decision 0015).

An ``asyncio.Protocol`` with httptools' request parser (llhttp). Each request whose method
and path are a hot route becomes an :class:`~tokenyard.server.native.exchange.NativeExchange`,
answered in order (pipelined requests wait their turn). The first request that is not
hands the whole connection to aiohttp's protocol: it gets the transport and every byte
received since the connection was last between two requests at the end of a read, so it
parses that request from its first byte and serves the connection from then on.

The limits of ``server:`` hold here as in aiohttp: a head must arrive within
``header_timeout_s`` (slow clients are cut), as must the next request on a kept-alive
connection; a head line over ``max_header_bytes``, or more than ``max_headers`` headers,
is refused with 400; the body's size and time are the exchange's. An answer sent before
its request's body has all arrived lets the rest arrive and drops it, for as long as
aiohttp would linger, so the client reads the answer rather than a reset.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, cast

import httptools
from multidict import CIMultiDict

from tokenyard.deadline_timer import DeadlineTimer
from tokenyard.errors import InvalidRequest, TokenyardError
from tokenyard.server.http import linger_s
from tokenyard.server.native.answer import error_answer
from tokenyard.server.native.exchange import NativeExchange

if TYPE_CHECKING:
    from tokenyard.server.native.service import Service

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
QUEUED_MAX = 2
"""Requests read but not yet answered past which the connection stops reading (a client
that pipelines cannot make the server hold more than this)."""


class _Refused(Exception):
    """Raised in a parser callback to stop parsing a request that breaks a limit."""


class Connection(asyncio.Protocol):
    def __init__(self, service: Service) -> None:
        self.service = service
        self.limits = service.limits
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.window: list[bytes] | None = []  # what a hand-off would pass on (module doc)
        self.begun = 0  # requests begun within the window
        self.in_head = False  # a request's head is arriving
        self.head_bytes = 0  # of the head arriving
        self.url = b""
        self.fields: list[tuple[str, str]] = []
        self.refusal: TokenyardError | None = None
        self.last_words = b""  # an answer to write before closing (a refused request's)
        self.reading: NativeExchange | None = None  # whose body is arriving
        self.queue: deque[NativeExchange] = deque()  # read, not yet answered; [0] is answering
        self.handing_off = False
        self.closing = False  # close once the queue is answered
        self.lost = False
        self.unsent: list[bytes] | None = None  # written in this turn of the loop, not yet sent
        self.write_paused = False
        self.drain_waiter: asyncio.Future[None] | None = None
        self.loop = asyncio.get_running_loop()  # made by the loop's server: lives on it
        self.timer = DeadlineTimer(self.loop, self._expired)  # each head, a linger

    # -- the transport's calls -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.service.connections.add(self)
        self._arm(self.limits.header_timeout_s)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost = True
        self.service.connections.discard(self)
        self.timer.stop()
        for exchange in self.queue:
            exchange.connection_lost()
        self.queue.clear()
        self.reading = None
        self._wake_writer()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake_writer()

    def data_received(self, data: bytes) -> None:
        if self.handing_off:
            if self.window is not None:
                self.window.append(data)
            return
        if self.closing and self.reading is None:
            return  # nothing more is taken: only a body being dropped is still read
        if self.window is not None:
            self.window.append(data)
        if self.in_head:
            self.head_bytes += len(data)
        if not self._parse(data):
            return
        if self.handing_off:
            self._hand_off()
        elif self.in_head:  # a head may take every line at its longest, no more
            if self.head_bytes > self.limits.max_header_bytes * (self.limits.max_headers + 2):
                self._refuse(InvalidRequest("the request head is too large"))
        elif self.reading is None:  # between requests at the end of a read: a clean start
            self.window, self.begun = [], 0

    def _parse(self, data: bytes) -> bool:
        """Feed the parser; False when it refused the request (answered, closing)."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if not self.handing_off:  # an upgrade to a hot route: none is one
                self._refuse(InvalidRequest("this route cannot be upgraded"))
                return False
        except httptools.HttpParserError:
            if self.closing:  # bytes after the client's last request: ignored
                return False
            if not self.handing_off:
                self._refuse(self.refusal or InvalidRequest("the request is not valid HTTP/1.1"))
                return False
        return True

    def eof_received(self) -> bool:
        return False  # the transport closes; an answer still being written is cut

    # -- the parser's calls ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.begun += 1
        self.in_head = True
        self.head_bytes = 0
        self.url = b""
        self.fields = []

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.limits.max_header_bytes:
            self.refusal = InvalidRequest("the request line is too long")
            raise _Refused

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) + len(value) + 2 > self.limits.max_header_bytes:
            self.refusal = InvalidRequest("a request header is too long")
            raise _Refused
        if len(self.fields) >= self.limits.max_headers:
            self.refusal = InvalidRequest("the request has too many headers")
            raise _Refused
        self.fields.append((name.decode("latin-1"), value.decode("utf-8", "surrogateescape")))

    def on_headers_complete(self) -> None:
        self.in_head = False
        if self.handing_off or self.closing:
            return  # the connection is aiohttp's, or takes no more requests
        path, _, _ = self.url.partition(b"?")
        route = self.service.routes.get((self.parser.get_method(), path))
        if route is None or self.parser.should_upgrade():  # aiohttp serves the rest
            if self.window is None or self.begun != 1:  # it follows a hot request in a read
                self.closing = True  # which cannot be split off: the client must retry
            else:
                self.handing_off = True
            return
        self.timer.clear()
        self.window = None  # no hand-off until the connection is between requests again
        exchange = NativeExchange(self, route, path.decode(), CIMultiDict(self.fields))
        exchange.keep_alive = self.parser.should_keep_alive()
        exchange.http11 = self.parser.get_http_version() == "1.1"
        self.reading = exchange
        self.queue.append(exchange)
        length = exchange.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > self.limits.max_body_bytes:
            exchange.too_large = True  # refused before a byte of it is sent or read
        elif exchange.headers.get("Expect", "").lower() == "100-continue":
            self.write(CONTINUE)
        if len(self.queue) == 1:
            exchange.start()

    def on_body(self, body: bytes) -> None:
        if self.reading is not None:
            self.reading.received(body)

    def on_message_complete(self) -> None:
        exchange, self.reading = self.reading, None
        if exchange is None:
            return
        exchange.arrived()
        if not exchange.keep_alive:  # the client's last request: what follows is ignored
            self.closing = True
        if exchange.answered:  # an early answer: the rest of the body was dropped
            self._next()
        elif len(self.queue) >= QUEUED_MAX and self.transport is not None:
            self.transport.pause_reading()

    # -- answers ---------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Send ``data``. What is written in one turn of the loop goes out in one send: the
        frames of an upstream read, or an answer's head and first frame, are one syscall."""
        if self.lost:
            return
        if self.unsent is None:
            self.unsent = [data]
            self.loop.call_soon(self.flush)
        else:
            self.unsent.append(data)

    def send(self, data: bytes) -> None:
        """Send ``data`` now, after what this turn wrote before it: for the last bytes of an
        answer, which nothing in this turn will follow."""
        if self.unsent is not None:
            self.unsent.append(data)
            self.flush()
        elif not self.lost and self.transport is not None:
            self.transport.write(data)

    def flush(self) -> None:
        unsent, self.unsent = self.unsent, None
        if unsent and not self.lost and self.transport is not None:
            self.transport.write(unsent[0] if len(unsent) == 1 else b"".join(unsent))

    def close(self) -> None:
        """Close once what was written is sent."""
        self.flush()
        if self.transport is not None:
            self.transport.close()

    @property
    def stopping(self) -> bool:
        return self.service.stopping

    @property
    def backed_up(self) -> bool:
        """``drain`` would wait or raise; else a writer need not call it (a coroutine for
        each frame of a stream)."""
        return self.write_paused or self.lost

    async def drain(self) -> None:
        """Wait while the transport's buffer is over its high-water mark."""
        if self.lost:
            raise ConnectionResetError("the client has gone")
        if not self.write_paused:
            return
        self.drain_waiter = self.loop.create_future()
        try:
            await self.drain_waiter
        finally:
            self.drain_waiter = None
        if self.lost:
            raise ConnectionResetError("the client has gone")

    def _wake_writer(self) -> None:
        waiter = self.drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def answered(self, exchange: NativeExchange) -> None:
        """``exchange`` (the queue's first) is answered in full."""
        if self.lost or self.transport is None:
            return
        if not exchange.keep_alive or self.stopping:
            self.closing = True
        if exchange is self.reading:  # its body is still arriving: linger, then go on
            self._arm(linger_s(self.limits))
            return
        self._next()

    def _next(self) -> None:
        """The queue's first request is answered and read: on to the next, or idle."""
        assert self.transport is not None
        if self.queue:
            self.queue.popleft()
        if self.queue:  # a pipelined request read before anything went wrong: its turn
            self.queue[0].start()
            if not self.transport.is_reading():
                self.transport.resume_reading()
            return
        if self.closing:
            if self.last_words:
                self.write(self.last_words)
            self.close()
            return
        if self.handing_off:
            self._hand_off()
            return
        self._arm(self.limits.header_timeout_s)  # the next request's head, in time
        if not self.transport.is_reading():
            self.transport.resume_reading()

    def _refuse(self, error: TokenyardError) -> None:
        """A request that breaks a limit or HTTP itself: answered with its 400 once the
        queue ahead of it is, then the connection is closed (what follows it cannot be
        trusted). A body that breaks off is its own exchange's 400."""
        assert self.transport is not None
        self.closing = True
        self.transport.pause_reading()
        if self.reading is not None:
            self.reading.broken(error)
            self.reading = None
        elif self.queue:
            self.last_words = error_answer(error)
        else:
            self.write(error_answer(error))
            self.close()

    # -- handing off -----------------------------------------------------------------------

    def _hand_off(self) -> None:
        transport = self.transport
        if transport is None or self.lost:
            return
        if self.queue:  # the answers ahead go out first
            transport.pause_reading()
            return
        self.flush()
        self.timer.stop()
        self.service.connections.discard(self)
        protocol = self.service.aiohttp_protocol()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if not transport.is_reading():
            transport.resume_reading()
        for data in self.window or ():
            protocol.data_received(data)
        self.window = None

    # -- the timer -------------------------------------------------------------------------

    def _arm(self, seconds: float) -> None:
        """Cut the connection ``seconds`` from now unless the timer is cleared before."""
        self.timer.set(self.loop.time() + seconds)

    def _expired(self) -> None:
        """No head in time, or a dropped body that did not end in time: cut."""
        self.close()

    def close_if_idle(self) -> None:
        """At shutdown: an idle connection closes now, a busy one after its answer."""
        self.closing = True
        if not self.queue and self.reading is None:
            self.close()
