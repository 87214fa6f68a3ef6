"""One upstream response: its status and headers at once, its body buffered as it arrives,
read by the caller at its own pace (the connection pauses past :data:`HIGH_WATER`)."""

from __future__ import annotations

import asyncio
import zlib
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from multidict import CIMultiDict, CIMultiDictProxy

from tokenyard.deadline_timer import DeadlineTimer

if TYPE_CHECKING:
    from tokenyard.providers.transport.connection import Connection

HIGH_WATER = 1024 * 1024
"""Body bytes buffered before the socket is paused; reading resumes once the reader has
taken what was buffered."""


class TransportError(Exception):
    """The connection could not be made, broke off, or carried broken HTTP."""


class Response:
    """One upstream response: its status and headers at once, its body as it arrives.

    Read it with :meth:`read` or :meth:`chunks`, then :meth:`release` it (back to the pool
    when read to its end, closed otherwise); :meth:`close` always closes the connection.
    """

    def __init__(self, conn: Connection, idle_timeout_s: float | None):
        self._conn: Connection | None = conn
        self._loop = conn.loop
        self._idle_timeout_s = idle_timeout_s
        self.status = 0
        self.content_length: int | None = None
        self._raw_headers: list[tuple[bytes, bytes]] = []
        self._headers: CIMultiDictProxy[str] | None = None
        self._buffer: deque[bytes] = deque()
        self._buffered = 0
        self._inflate: zlib._Decompress | None = None
        self._deflate = False  # Content-Encoding: deflate (zlib-wrapped, or raw by some servers)
        self._inflated = False  # some output came: the format guess was right
        self._complete = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._timer: DeadlineTimer | None = None  # the idle timeout's, made by the first wait

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
        coding = encoding.strip().lower() if encoding is not None else b""
        if coding in (b"gzip", b"deflate"):
            self._inflate = zlib.decompressobj(47)  # gzip or zlib header, either
            self._deflate = coding == b"deflate"
            self.content_length = None  # what it unpacks to is unknown

    def _feed(self, data: bytes) -> None:
        if self._error is not None:
            return
        if self._inflate is not None:
            try:
                data = self._inflate.decompress(data)
            except zlib.error:
                if self._deflate and not self._inflated:
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
        timeout. One re-pointed timer serves all the waits (deadline_timer.py)."""
        loop = self._loop
        self._waiter = waiter = loop.create_future()
        if self._idle_timeout_s is not None:
            if self._timer is None:
                self._timer = DeadlineTimer(loop, self._idle)
            self._timer.set(loop.time() + self._idle_timeout_s)
        try:
            await waiter
        finally:
            self._waiter = None

    def _idle(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():  # else the next wait times itself
            waiter.set_exception(TimeoutError())

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
        self._end(reusable=self._complete and not self._buffer and self._error is None)

    def close(self) -> None:
        """Done with the response, and its connection closed whatever the state."""
        self._end(reusable=False)

    def _end(self, *, reusable: bool) -> None:
        if self._timer is not None:
            self._timer.stop()
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.done(reusable=reusable)
