"""The native server's one timer per connection (server/native/connection.py): re-pointed
for each request rather than made and cancelled, it must still cut what the limits say
when they say it. In-process, over real sockets, with a stand-in service whose one route
answers at once, so every duration here is the timer's."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest
import uvloop

from tokenyard.server.limits import ServerLimits
from tokenyard.server.native.connection import Connection
from tokenyard.server.native.exchange import NativeExchange

T = TypeVar("T")
CHAT = b"/v1/chat/completions"


def limits(header_timeout_s: float, body_timeout_s: float = 5.0) -> ServerLimits:
    return ServerLimits(
        max_body_bytes=10_000,
        body_timeout_s=body_timeout_s,
        header_timeout_s=header_timeout_s,
        max_header_bytes=1000,
        max_headers=20,
        max_messages=10,
        max_json_depth=10,
        shutdown_timeout_s=1.0,
    )


async def unused_route(exchange: object) -> None:
    """The route's place in the table: the stand-in's ``serve`` answers without it."""


class Service:
    """What a connection asks of server/native/service.py's: limits, the hot route, and a
    ``serve`` that answers without reading the body (an early answer when it has not all
    arrived)."""

    def __init__(self, server_limits: ServerLimits) -> None:
        self.limits = server_limits
        self.routes = {(b"POST", CHAT): unused_route}
        self.connections: set[Connection] = set()
        self.stopping = False
        self.made: list[Connection] = []

    async def serve(self, exchange: NativeExchange) -> None:
        exchange.answer({"ok": True}, {})
        exchange.finish()


def run(main: Coroutine[Any, Any, T], loop: str) -> T:
    runner = uvloop.run if loop == "uvloop" else asyncio.run
    return runner(asyncio.wait_for(main, 3.0))


@asynccontextmanager
async def serving(service: Service) -> AsyncIterator[int]:
    def connection() -> Connection:
        made = Connection(service)  # type: ignore[arg-type]  # the stand-in has what it uses
        service.made.append(made)
        return made

    server = await asyncio.get_running_loop().create_server(connection, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for made in service.made:
            if made.transport is not None:
                made.transport.abort()


def request(body: bytes = b"{}", length: int | None = None) -> bytes:
    size = len(body) if length is None else length
    head = b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (CHAT, size)
    return head + body


async def answer(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    return head + await reader.readexactly(11)  # {"ok":true}


async def closed_after(reader: asyncio.StreamReader, since: float) -> float:
    """Seconds from ``since`` until the server closes the connection."""
    assert await reader.read() == b""
    return time.monotonic() - since


pytestmark = pytest.mark.parametrize("loop", ["uvloop", "asyncio"])


def test_an_idle_connection_is_cut_at_the_header_timeout(loop: str) -> None:
    async def main() -> tuple[float, bool]:
        service = Service(limits(header_timeout_s=0.3))
        async with serving(service) as port:
            started = time.monotonic()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            waited = await closed_after(reader, started)
            writer.close()
            await asyncio.sleep(0.01)
            return waited, not service.made[0].timer.pending

    waited, no_timer = run(main(), loop)
    assert 0.25 <= waited < 0.8
    assert no_timer


def test_the_timeout_counts_from_the_last_answer_not_from_the_first_arming(loop: str) -> None:
    """A request at 0.2 s into a 0.3 s header timeout: the connection is kept past the
    first deadline, and cut a header timeout after its answer."""

    async def main() -> tuple[bytes, float]:
        service = Service(limits(header_timeout_s=0.3))
        async with serving(service) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await asyncio.sleep(0.2)
            writer.write(request())
            answered = await answer(reader)
            since = time.monotonic()
            waited = await closed_after(reader, since)
            writer.close()
            return answered, waited

    answered, waited = run(main(), loop)
    assert answered.startswith(b"HTTP/1.1 200 OK\r\n")
    assert 0.25 <= waited < 0.8


def test_a_head_that_trickles_is_cut_at_the_header_timeout(loop: str) -> None:
    """Kept alive after one answer, the next head arrives a byte at a time, each in time
    for no single read to look idle: cut all the same, the head's whole time counted."""

    async def main() -> float:
        service = Service(limits(header_timeout_s=0.4))
        async with serving(service) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request())
            await answer(reader)
            since = time.monotonic()
            closing = asyncio.ensure_future(closed_after(reader, since))
            for byte in request()[:-10]:
                if closing.done():
                    break
                writer.write(bytes([byte]))
                await asyncio.sleep(0.02)
            waited = await closing
            writer.close()
            return waited

    assert 0.35 <= run(main(), loop) < 0.9


def test_many_requests_on_one_connection_keep_it_open(loop: str) -> None:
    """Requests every 0.1 s for longer than the header timeout: each re-points the timer
    that the first one's deadline set, so none of them finds the connection cut."""

    async def main() -> int:
        service = Service(limits(header_timeout_s=0.25))
        async with serving(service) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            answers = 0
            for _ in range(8):
                writer.write(request())
                await answer(reader)
                answers += 1
                await asyncio.sleep(0.1)
            writer.close()
            return answers

    assert run(main(), loop) == 8


def test_an_early_answer_lingers_for_the_body_timeout_not_the_header_timeout(
    loop: str,
) -> None:
    """The linger after an early answer is shorter than the header timeout whose timer is
    pending: it gets a timer of its own, and the connection closes at the linger's end."""

    async def main() -> tuple[bytes, float]:
        service = Service(limits(header_timeout_s=2.0, body_timeout_s=0.2))
        async with serving(service) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request(b"{", length=100))  # 99 bytes of the body never come
            answered = await answer(reader)
            waited = await closed_after(reader, time.monotonic())
            writer.close()
            return answered, waited

    answered, waited = run(main(), loop)
    assert b"Connection: close\r\n" in answered
    assert waited < 0.6


def test_a_connection_the_client_closes_leaves_no_timer(loop: str) -> None:
    async def main() -> tuple[bool, bool]:
        service = Service(limits(header_timeout_s=5.0))
        async with serving(service) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request())
            await answer(reader)
            connection = service.made[0]
            armed = connection.timer.pending
            writer.close()
            for _ in range(100):
                if connection.lost:
                    break
                await asyncio.sleep(0.005)
            return armed, not connection.timer.pending and connection.lost

    assert run(main(), loop) == (True, True)
