"""The HTTP/1.1 client the gateway calls upstreams with: kept-alive connections per origin,
requests written in one piece, responses parsed by httptools (llhttp, uvicorn's parser).

Why not aiohttp's client (docs/decisions/0014): a POST and its read cost 71 µs of CPU at
concurrency 16 and 154 µs alone through aiohttp's ``ClientSession``, against 22 and 68 µs
here (``bench/client.py``). The gateway makes one such call per request: that was a tenth
of its whole cost per request, and a fifth of the 0.5 ms latency goal at concurrency 1.

What it does, and no more, since it only ever talks to configured upstream APIs:

- ``POST`` with a body of known length; no redirects (an API that redirects is
  misconfigured, and its status becomes the provider's error), no cookies, no proxy;
- responses framed by Content-Length, chunked, or the connection's end; ``gzip`` and
  ``deflate`` bodies are inflated (none is asked for, but some servers send them anyway);
- one idle connection per origin is reused last-in first-out; one idle for longer than
  ``keepalive_s``, or closed by the upstream, is dropped; a response read to its end goes
  back to the pool, anything else closes its connection (which cancels a generation);
- a new connection tries the host's addresses 250 ms apart (happy eyeballs), all within
  ``connect_timeout_s``; TLS is verified against the system's trust store and host name;
- a response's body is buffered up to :data:`HIGH_WATER` bytes, beyond which the socket is
  no longer read until the reader catches up, as a slow client slows its upstream;
- a streamed response's reads can be bounded by ``idle_timeout_s`` (``TimeoutError``).

Every failure of the connection or of the upstream's HTTP is a :class:`TransportError`;
timeouts are ``TimeoutError``. Callers (providers/http.py) translate both.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import cast
from urllib.parse import urlsplit

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

HIGH_WATER = 1024 * 1024
"""Body bytes buffered before the socket is paused; reading resumes below a quarter."""

USER_AGENT = "tokenyard"
_OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_URLS_CACHED = 1024


class TransportError(Exception):
    """The connection could not be made, broke off, or carried broken HTTP."""


Origin = tuple[str, str, int]  # scheme, host, port


class _Target:
    """What one URL makes of a request: its origin, and the request's first bytes."""

    __slots__ = ("head", "origin")

    def __init__(self, url: str):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        self.origin: Origin = (parts.scheme, parts.hostname, port)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host = parts.netloc.rpartition("@")[2]
        self.head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\n"


_HEADERS_CACHED = 1024
_header_cache: dict[tuple[tuple[str, str], ...], str] = {}


def _header_block(headers: Mapping[str, str]) -> str:
    """:func:`_header_lines`, remembered: a provider sends the same few sets (per key)."""
    key = tuple(headers.items())
    block = _header_cache.get(key)
    if block is None:
        if len(_header_cache) >= _HEADERS_CACHED:
            _header_cache.clear()
        block = _header_cache[key] = _header_lines(headers)
    return block


def _header_lines(headers: Mapping[str, str]) -> str:
    """The caller's headers, checked, but for those the client writes itself; our
    User-Agent unless the caller sent one (a provider's configured headers may)."""
    lines = []
    agent = f"User-Agent: {USER_AGENT}\r\n"
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in _OWN_HEADERS:
            continue
        line = f"{name}: {value}\r\n"
        if "\r" in line[:-2] or "\n" in line[:-2] or "\0" in line:
            raise ValueError(f"header {name!r} contains a line break")
        if lowered == "user-agent":
            agent = ""
        lines.append(line)
    return agent + "".join(lines)


class Response:
    """One upstream response: its status and headers at once, its body as it arrives.

    Read it with :meth:`read` or :meth:`chunks`, then :meth:`release` it (back to the pool
    when read to its end, closed otherwise); :meth:`close` always closes the connection.
    """

    def __init__(self, conn: _Connection, idle_timeout_s: float | None):
        self._conn: _Connection | None = conn
        self._idle_timeout_s = idle_timeout_s
        self.status = 0
        self.content_length: int | None = None
        self._raw_headers: list[tuple[bytes, bytes]] = []
        self._headers: CIMultiDictProxy[str] | None = None
        self._buffer: deque[bytes] = deque()
        self._buffered = 0
        self._inflate: zlib._Decompress | None = None
        self._inflated = False  # some output came: the format guess was right
        self._complete = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0

    # -- fed by the connection ----------------------------------------------------------

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        """The response's headers, looked up by any case (made when first asked for: the
        hot path needs only the length, read as the headers arrive)."""
        if self._headers is None:
            self._headers = CIMultiDictProxy(
                CIMultiDict(
                    (n.decode("latin-1"), v.decode("latin-1")) for n, v in self._raw_headers
                )
            )
        return self._headers

    def _headers_done(
        self,
        status: int,
        raw: list[tuple[bytes, bytes]],
        length: bytes | None,
        encoding: bytes | None,
    ) -> None:
        self.status = status
        self._raw_headers = raw
        self.content_length = int(length) if length is not None and length.isdigit() else None
        if encoding is not None and encoding.strip().lower() in (b"gzip", b"deflate"):
            self._inflate = zlib.decompressobj(47)  # gzip or zlib header, either
            self.content_length = None  # what it unpacks to is unknown

    def _feed(self, data: bytes) -> None:
        if self._error is not None:
            return
        if self._inflate is not None:
            try:
                data = self._inflate.decompress(data)
            except zlib.error:
                if not self._inflated and b"deflate" in self._encoding():
                    self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate
                    self._feed(data)
                    return
                self._fail(TransportError("the body does not inflate"))
                return
            self._inflated = True
        if data:
            self._buffer.append(data)
            self._buffered += len(data)
            if self._buffered > HIGH_WATER and self._conn is not None:
                self._conn.pause()
            self._wake()

    def _encoding(self) -> bytes:
        return b",".join(
            v.lower() for n, v in self._raw_headers if n.lower() == b"content-encoding"
        )

    def _finish(self) -> None:
        if self._error is not None:
            return
        if self._inflate is not None:
            rest = self._inflate.flush()
            if rest:
                self._buffer.append(rest)
                self._buffered += len(rest)
            if not self._inflate.eof:
                self._fail(TransportError("the compressed body was cut short"))
                return
        self._complete = True
        self._wake()

    def _fail(self, error: BaseException) -> None:
        if not self._complete and self._error is None:
            self._error = error
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- read by the caller ---------------------------------------------------------------

    @property
    def released(self) -> bool:
        """Released or closed: the connection is no longer this response's."""
        return self._conn is None

    @property
    def complete(self) -> bool:
        """The whole body has arrived (it may still be buffered)."""
        return self._complete

    async def _wait(self) -> None:
        """Until more of the body (or its end, or a failure) arrives; within the idle
        timeout. One timer serves many waits: it is armed by the first, and when it fires
        early (a later wait moved the deadline) it arms itself again for the rest."""
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        if self._idle_timeout_s is not None:
            self._deadline = loop.time() + self._idle_timeout_s
            if self._timer is None:
                self._timer = loop.call_at(self._deadline, self._check_idle)
        try:
            await waiter
        finally:
            self._waiter = None

    def _check_idle(self) -> None:
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done():
            return  # not waiting: the next wait arms a timer again
        loop = asyncio.get_running_loop()
        if loop.time() >= self._deadline:
            waiter.set_exception(TimeoutError())
        else:
            self._timer = loop.call_at(self._deadline, self._check_idle)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _take(self) -> bytes:
        data = self._buffer[0] if len(self._buffer) == 1 else b"".join(self._buffer)
        self._buffer.clear()
        self._buffered = 0
        if self._conn is not None:
            self._conn.resume()
        return data

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives: everything buffered at each step, never empty."""
        while True:
            if self._buffer:
                yield self._take()
            elif self._error is not None:
                raise self._error
            elif self._complete:
                return
            else:
                await self._wait()

    async def read(self) -> bytes:
        """The whole body."""
        if self._complete and len(self._buffer) == 1:  # it came in one piece: the usual case
            return self._take()
        pieces = [piece async for piece in self.chunks()]
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def release(self) -> None:
        """Done with the response: its connection back to the pool if the body was read to
        its end, closed otherwise. Idempotent."""
        self._stop_timer()
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.done(reusable=self._complete and not self._buffer and self._error is None)

    def close(self) -> None:
        """Done with the response, and its connection closed whatever the state."""
        self._stop_timer()
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.done(reusable=False)


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection to an origin, carrying one exchange at a time."""

    def __init__(self, pool: HttpClient, origin: Origin):
        self._pool = pool
        self.origin = origin
        self.transport: asyncio.Transport | None = None
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
        raw, length, encoding = self._raw, self._length, self._encoding
        self._raw, self._length, self._encoding = [], None, None
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (103 Early Hints…): the real one follows
            self._interim = True
            return
        response, head = self._response, self._head
        if response is None or head is None:
            raise TransportError("a second answer to one request")
        response._headers_done(status, raw, length, encoding)
        self._ends_at_close = length is None and not self._chunked
        self._chunked = False
        self._head = None
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

    def send(self, request: bytes, idle_timeout_s: float | None) -> asyncio.Future[Response]:
        assert self.transport is not None
        self._response = Response(self, idle_timeout_s)
        self._head = asyncio.get_running_loop().create_future()
        self._keep_alive = False
        self.transport.write(request)
        return self._head

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
        if head is not None and not head.done():
            head.set_exception(error)
        if self._response is not None:
            self._response._fail(error)
        self._abort()

    def _abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class HttpClient:
    """Kept-alive HTTP/1.1 connections to any number of origins; one per provider."""

    def __init__(self, *, keepalive_s: float = 60.0, ssl_context: ssl.SSLContext | None = None):
        self._keepalive_s = keepalive_s
        self._ssl = ssl_context
        self._idle: dict[Origin, list[_Connection]] = {}
        self._busy: set[_Connection] = set()
        self._targets: dict[str, _Target] = {}
        self._closed = False

    async def post(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        connect_timeout_s: float,
        idle_timeout_s: float | None = None,
    ) -> Response:
        """Send the request and wait for the response's headers (bounded by the caller, and
        by ``idle_timeout_s`` when given, as every later read of the body is)."""
        target = self._target(url)
        request = (
            f"{target.head}{_header_block(headers)}Content-Length: {len(body)}\r\n\r\n".encode(
                "latin-1"
            )
            + body
        )
        conn = self._reuse(target.origin) or await self._connect(target.origin, connect_timeout_s)
        self._busy.add(conn)
        head = conn.send(request, idle_timeout_s)
        timer = None
        if idle_timeout_s is not None:
            timer = asyncio.get_running_loop().call_later(idle_timeout_s, _expire, head)
        try:
            return await head
        except BaseException:
            conn.done(reusable=False)  # cancelled or timed out: the upstream stops too
            raise
        finally:
            if timer is not None:
                timer.cancel()

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    def connections(self) -> tuple[int, int]:
        """How many connections carry an exchange, and how many wait idle."""
        return len(self._busy), sum(len(idle) for idle in self._idle.values())

    async def close(self) -> None:
        self._closed = True
        for conn in [*self._busy, *(c for idle in self._idle.values() for c in idle)]:
            conn._abort()
        self._busy.clear()
        self._idle.clear()

    # -- the pool ---------------------------------------------------------------------------

    def _target(self, url: str) -> _Target:
        target = self._targets.get(url)
        if target is None:
            if len(self._targets) >= _URLS_CACHED:
                self._targets.clear()
            target = self._targets[url] = _Target(url)
        return target

    def _reuse(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        oldest_kept = time.monotonic() - self._keepalive_s
        while idle:
            conn = idle.pop()
            transport = conn.transport
            alive = not conn.closed and transport is not None and not transport.is_closing()
            if alive and conn.idle_since >= oldest_kept:
                return conn
            conn._abort()
        return None

    async def _connect(self, origin: Origin, timeout_s: float) -> _Connection:
        if self._closed:
            raise TransportError("the client is closed")
        scheme, host, port = origin
        tls = (self._ssl or _default_tls()) if scheme == "https" else None
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout_s):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self, origin),
                    host,
                    port,
                    ssl=tls,
                    server_hostname=host if tls is not None else None,
                    # RFC 8305: the next address is tried after 250 ms, so that an IPv6
                    # address with no route does not use up the whole connect timeout
                    happy_eyeballs_delay=0.25,
                )
        except TimeoutError:
            raise TransportError(f"connecting timed out after {timeout_s} s") from None
        except (OSError, ssl.SSLError) as exc:
            raise TransportError(f"could not connect: {type(exc).__name__}") from None
        return conn

    def idle(self, conn: _Connection) -> None:
        self._busy.discard(conn)
        if self._closed:
            conn._abort()
            return
        conn.idle_since = time.monotonic()
        self._idle.setdefault(conn.origin, []).append(conn)

    def lost(self, conn: _Connection) -> None:
        self._busy.discard(conn)
        idle = self._idle.get(conn.origin)
        if idle and conn in idle:
            idle.remove(conn)


def _expire(head: asyncio.Future[Response]) -> None:
    if not head.done():
        head.set_exception(TimeoutError())


@functools.cache
def _default_tls() -> ssl.SSLContext:
    """The system's trust store, with verification and host names checked; made once."""
    return ssl.create_default_context()
