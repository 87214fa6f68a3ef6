"""A scripted upstream: it answers every request with the bytes a test put in its script.

The round-trip properties build a provider's wire answer themselves (from generated
content) and need it delivered exactly as cut: each piece of :attr:`Reply.pieces` is written
and flushed on its own (TCP_NODELAY is aiohttp's default), so a stream reaches the adapter
split where the test split it — inside an SSE line or inside a multi-byte character.
WebSocket calls (Spark) get each piece as one text frame. Every request is recorded, its
JSON body decoded, so a test can read back what the adapter sent.

:class:`Bench` runs the server and the HTTP client on one event loop in a daemon thread,
so that a hundred Hypothesis examples share one loop, one server and one connection pool;
:meth:`Bench.stream` and :meth:`Bench.send` put a call through an adapter there.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypedDict, TypeVar

from aiohttp import web

from tokenyard.providers.base import Call, Provider
from tokenyard.providers.transport import HttpClient
from tokenyard.wire.usage import Usage

T = TypeVar("T")


class Timeouts(TypedDict):
    timeout_s: float
    connect_timeout_s: float
    first_byte_timeout_s: float
    idle_timeout_s: float


TIMEOUTS: Timeouts = {
    "timeout_s": 10,
    "connect_timeout_s": 5,
    "first_byte_timeout_s": 10,
    "idle_timeout_s": 10,
}
"""An adapter's timeouts against the scripted upstream (``**TIMEOUTS``): generous, since it
answers at once."""


@dataclass(frozen=True)
class Reply:
    pieces: list[bytes]
    status: int = 200
    content_type: str = "application/json"


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any  # the decoded JSON body (the first frame on a WebSocket)


@dataclass
class ScriptedUpstream:
    reply: Reply = field(default_factory=lambda: Reply([b"{}"]))
    requests: list[Recorded] = field(default_factory=list)

    def answer(self, reply: Reply) -> None:
        self.reply = reply
        self.requests.clear()

    @property
    def last(self) -> Recorded:
        return self.requests[-1]

    def _record(self, request: web.Request, body: Any) -> None:
        self.requests.append(
            Recorded(
                request.method,
                request.path,
                dict(request.query),
                {k.lower(): v for k, v in request.headers.items()},
                body,
            )
        )

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request)
        self._record(request, json.loads(await request.read()))
        reply = self.reply
        response = web.StreamResponse(
            status=reply.status, headers={"Content-Type": reply.content_type}
        )
        await response.prepare(request)
        for piece in reply.pieces:
            await response.write(piece)
            await asyncio.sleep(0)  # let each piece leave on its own
        await response.write_eof()
        return response

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        first = await ws.receive()
        self._record(request, json.loads(first.data))
        for piece in self.reply.pieces:
            await ws.send_str(piece.decode())
        await ws.close()
        return ws


class Bench:
    """A :class:`ScriptedUpstream` served on 127.0.0.1 and an HTTP client, both on one
    event loop in a daemon thread; :meth:`run` runs a coroutine there."""

    def __init__(self) -> None:
        self.upstream = ScriptedUpstream()
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._client: HttpClient | None = None

    @property
    def client(self) -> HttpClient:
        assert self._client is not None
        return self._client

    def start(self) -> None:
        self._thread.start()
        self.run(self._start())

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.upstream.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        self._client = HttpClient()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=60)

    def call(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run ``make()`` on the loop (the coroutine is created there, too)."""

        async def main() -> T:
            return await make()

        return self.run(main())

    def stream(self, adapter: Provider, call: Call) -> tuple[list[bytes], Usage | None]:
        """The payloads of ``call`` streamed through ``adapter``, drained to the end, and the
        usage the adapter recorded (read after the stream is closed)."""

        async def main() -> tuple[list[bytes], Usage | None]:
            opened = await adapter.open_stream(call)
            try:
                payloads = [payload async for payload in opened]
            finally:
                await opened.aclose()
            return payloads, opened.usage

        return self.run(main())

    def send(self, adapter: Provider, call: Call, *, stream: bool) -> None:
        """Put ``call`` through ``adapter``, streamed or not, for a test that reads only what
        reached the upstream."""
        if stream:
            self.stream(adapter, call)
        else:
            self.call(lambda: adapter.chat(call))

    def stop(self) -> None:
        async def _stop() -> None:
            if self._client is not None:
                await self._client.close()
            if self._runner is not None:
                await self._runner.cleanup()

        try:
            self.run(_stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            self._loop.close()
