"""The pool of kept-alive connections per origin, and the bytes of a request."""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

import aiohappyeyeballs

from tokenyard.providers.transport.connection import Connection, Origin
from tokenyard.providers.transport.response import Response, TransportError
from tokenyard.wire.http1 import header_line

USER_AGENT = "tokenyard"
_OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


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


@functools.lru_cache(maxsize=1024)
def _target(url: str) -> _Target:
    """:class:`_Target`, remembered: a provider calls the same few URLs."""
    return _Target(url)


@functools.lru_cache(maxsize=1024)
def _header_block(headers: tuple[tuple[str, str], ...]) -> str:
    """:func:`_header_lines`, remembered: a provider sends the same few sets (per key)."""
    return _header_lines(dict(headers))


def _header_lines(headers: Mapping[str, str]) -> str:
    """The caller's headers, checked, but for those the client writes itself; our
    User-Agent unless the caller sent one (a provider's configured headers may)."""
    lines = []
    agent = f"User-Agent: {USER_AGENT}\r\n"
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in _OWN_HEADERS:
            continue
        line = header_line(name, value)
        if lowered == "user-agent":
            agent = ""
        lines.append(line)
    return agent + "".join(lines)


class HttpClient:
    """Kept-alive HTTP/1.1 connections to any number of origins; one per provider."""

    def __init__(self, *, keepalive_s: float = 60.0, ssl_context: ssl.SSLContext | None = None):
        self._keepalive_s = keepalive_s
        self._ssl = ssl_context
        self._idle: dict[Origin, list[Connection]] = {}
        self._busy: set[Connection] = set()
        self._closed = False

    async def post(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        connect_timeout_s: float,
        deadline: float | None = None,
        idle_timeout_s: float | None = None,
    ) -> Response:
        """Send the request and wait for the response's headers: until ``deadline`` (on the
        loop's clock, connecting included) and, when given, within ``idle_timeout_s`` of
        sending, as every later read of the body is. Past either: ``TimeoutError``.

        The connection's one timer, at the earlier of the two, bounds the wait: the caller's
        first-byte timeout is this ``deadline`` rather than an ``asyncio.timeout`` of its
        own, which cost a request as much again (a timeout object, the task's cancel and
        uncancel)."""
        target = _target(url)
        lines = f"{target.head}{_header_block(tuple(headers.items()))}"
        request = f"{lines}Content-Length: {len(body)}\r\n\r\n".encode("latin-1") + body
        conn = self._reuse(target.origin)
        if conn is None:
            async with asyncio.timeout_at(deadline):
                conn = await self._connect(target.origin, connect_timeout_s)
        self._busy.add(conn)
        if idle_timeout_s is not None:
            silence = conn.loop.time() + idle_timeout_s
            deadline = silence if deadline is None else min(deadline, silence)
        head = conn.send(request, idle_timeout_s, deadline)
        try:
            return await head
        except BaseException:
            conn.done(reusable=False)  # cancelled or timed out: the upstream stops too
            raise

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

    def _reuse(self, origin: Origin) -> Connection | None:
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

    async def _connect(self, origin: Origin, timeout_s: float) -> Connection:
        """A new connection to ``origin``: the host's addresses tried 250 ms apart (RFC 8305,
        so that an IPv6 address without a route does not use up the timeout; uvloop's
        ``create_connection`` cannot do it, aiohappyeyeballs does, as for aiohttp), then
        TLS for https, all within ``timeout_s``."""
        if self._closed:
            raise TransportError("the client is closed")
        scheme, host, port = origin
        tls = (self._ssl or _default_tls()) if scheme == "https" else None
        loop = asyncio.get_running_loop()
        sock = conn = None
        try:
            async with asyncio.timeout(timeout_s):
                addresses = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
                sock = await aiohappyeyeballs.start_connection(addresses, happy_eyeballs_delay=0.25)
                _, conn = await loop.create_connection(
                    lambda: Connection(self, origin),
                    sock=sock,
                    ssl=tls,
                    server_hostname=host if tls is not None else None,
                )
        except TimeoutError:
            raise TransportError(f"connecting timed out after {timeout_s} s") from None
        except OSError as exc:  # ssl.SSLError included
            raise TransportError(f"could not connect: {type(exc).__name__}") from None
        finally:
            if conn is None and sock is not None:  # never became a connection's
                sock.close()
        return conn

    def idle(self, conn: Connection) -> None:
        self._busy.discard(conn)
        if self._closed:
            conn._abort()
            return
        conn.idle_since = time.monotonic()
        self._idle.setdefault(conn.origin, []).append(conn)

    def lost(self, conn: Connection) -> None:
        self._busy.discard(conn)
        idle = self._idle.get(conn.origin)
        if idle and conn in idle:
            idle.remove(conn)


@functools.cache
def _default_tls() -> ssl.SSLContext:
    """The system's trust store, with verification and host names checked; made once."""
    return ssl.create_default_context()
