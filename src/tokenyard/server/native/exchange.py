"""One request on the gateway's own HTTP server and its answer: the
:class:`~tokenyard.server.exchange.Exchange` a hot route is written against."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from aiohttp import web
from multidict import CIMultiDict

from tokenyard.errors import ServiceUnavailable, TokenyardError
from tokenyard.server.exchange import Exchange
from tokenyard.server.generation import Generation
from tokenyard.server.http import parse_json, too_large, too_slow
from tokenyard.server.native.answer import head, whole
from tokenyard.server.shutdown import last_words
from tokenyard.wire.json import JSONObject, dumps

if TYPE_CHECKING:
    from tokenyard.server.native.connection import Connection

Route = Callable[[Exchange], Coroutine[Any, Any, None]]

CHUNKED = "Transfer-Encoding: chunked\r\n"
LAST_CHUNK = b"0\r\n\r\n"


class NativeExchange:
    """Made by the connection once the request's head is in; its body arrives through
    :meth:`received` while the route may already run (authentication does not wait for
    it). :meth:`start` runs the route; the answer goes out through the connection."""

    __slots__ = (
        "answered",
        "body",
        "chunked",
        "complete",
        "connection",
        "error",
        "generation",
        "headers",
        "http11",
        "keep_alive",
        "path",
        "request_id",
        "route",
        "started",
        "status",
        "task",
        "too_large",
        "waiter",
    )

    def __init__(
        self, connection: Connection, route: Route, path: str, headers: CIMultiDict[str]
    ) -> None:
        self.connection = connection
        self.route = route
        self.path = path
        self.headers = headers
        self.request_id = ""
        self.generation: Generation  # pinned by the server before the route runs
        self.keep_alive = True  # as the client asked; the answer may close all the same
        self.http11 = True  # an HTTP/1.0 client gets a stream its connection's end ends
        self.chunked = False  # the answer is a chunked stream
        self.body: bytes | bytearray = b""
        self.complete = False  # the body has all arrived
        self.too_large = False
        self.error: TokenyardError | None = None  # the body broke HTTP
        self.waiter: asyncio.Future[None] | None = None
        self.task: asyncio.Task[None] | None = None
        self.status = 0  # of the answer, once its head is out
        self.started = False  # the answer's head is out
        self.answered = False  # all of the answer is out

    @property
    def app(self) -> web.Application:
        return self.connection.service.app

    # -- the connection's calls ------------------------------------------------------------

    def start(self) -> None:
        self.task = self.connection.loop.create_task(self.connection.service.serve(self))

    def received(self, data: bytes) -> None:
        if self.answered or self.too_large:
            return  # an answer went out early, or will: the rest of the body is dropped
        if len(self.body) + len(data) > self.connection.limits.max_body_bytes:
            self.too_large, self.body = True, b""
            self._wake()
        elif not self.body:
            self.body = data
        else:
            if isinstance(self.body, bytes):
                self.body = bytearray(self.body)
            self.body += data

    def arrived(self) -> None:
        self.complete = True
        self._wake()

    def broken(self, error: TokenyardError) -> None:
        self.error = error
        self._wake()

    def connection_lost(self) -> None:
        """The client hung up: the route is cancelled at once (its upstream call is closed,
        what was produced is settled), as aiohttp's ``handler_cancellation`` does."""
        if self.task is not None and not self.task.done():
            self.task.cancel()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    # -- what the route sees (server/exchange.py) ------------------------------------------

    async def json(self) -> JSONObject:
        return parse_json(await self.read(), self.connection.limits)

    async def read(self) -> bytes:
        """The whole body, within the limits of size (413) and time (408)."""
        if not (self.complete or self.too_large or self.error):
            self.waiter = self.connection.loop.create_future()
            try:
                async with asyncio.timeout(self.connection.limits.body_timeout_s):
                    await self.waiter
            except TimeoutError:
                raise too_slow(self.connection.limits) from None
            finally:
                self.waiter = None
        if self.too_large:
            raise too_large(self.connection.limits)
        if self.error is not None:
            raise self.error
        return bytes(self.body) if isinstance(self.body, bytearray) else self.body

    def answer(self, body: Any, headers: dict[str, str], status: int = 200) -> None:
        self._answer(status, headers, dumps(body))

    def answer_json(self, data: bytes, headers: dict[str, str]) -> None:
        self._answer(200, headers, data)

    def _answer(self, status: int, headers: dict[str, str], data: bytes) -> None:
        headers["Content-Type"] = "application/json"
        self.connection.send(whole(status, headers, data, keep_alive=self._keeping(headers)))
        self.status, self.started = status, True

    async def open_stream(self, headers: dict[str, str]) -> None:
        self.chunked = self.http11
        if not self.chunked:
            self.keep_alive = False
        framing = CHUNKED if self.chunked else ""
        self.connection.write(head(200, headers, framing, keep_alive=self._keeping(headers)))
        self.status, self.started = 200, True
        if self.connection.backed_up:
            await self.connection.drain()

    async def write(self, data: bytes) -> None:
        if self.connection.lost:
            raise ConnectionResetError("the client has gone")
        if self.chunked:
            data = b"%x\r\n%b\r\n" % (len(data), data)
        self.connection.write(data)
        if self.connection.backed_up:
            await self.connection.drain()

    def _keeping(self, headers: dict[str, str]) -> bool:
        """Whether the connection stays open after this answer: not when the client or
        the shutdown says otherwise, nor when the body has not all arrived (an early
        answer: the rest is dropped, then the connection closed). An HTTP/1.0 client is
        told when it does."""
        self.keep_alive = self.keep_alive and self.complete and not self.connection.stopping
        if self.keep_alive and not self.http11:
            headers["Connection"] = "keep-alive"
        return self.keep_alive

    # -- the server's calls (server/native/service.py) -------------------------------------

    def has_begun(self) -> bool:
        return self.started

    async def end_with(self, error: ServiceUnavailable) -> None:
        """Cut by the shutdown mid-stream: the stream's last words (server/shutdown.py)."""
        await self.write(last_words(self.path, error))

    def fail(self, status: int, body: Any, headers: dict[str, str]) -> None:
        """An error is the answer; if the answer had begun, the connection is cut."""
        if not self.started:
            self.answer(body, headers, status)
        else:
            self.cut()

    def cut(self) -> None:
        """The answer cannot be finished: no last chunk (the client must see the cut), and
        the connection closes."""
        self.keep_alive = self.chunked = False

    def finish(self) -> None:
        """The route is done: end the answer, and let the connection go on."""
        if self.answered:
            return
        self.answered = True
        if self.started and self.chunked and not self.connection.lost:
            self.connection.send(LAST_CHUNK)
        self.connection.answered(self)
