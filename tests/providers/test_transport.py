"""The upstream HTTP/1.1 client (providers/transport/) against stand-in upstreams that are
real sockets on 127.0.0.1 sending exact bytes, so framing and timing are what the test says.

It proves: the request's bytes (our framing, the caller's headers, none doubled, none able to
inject a line); the three ways a body ends (Content-Length, chunks, the connection's end) and
its inflation; which connections go back to the pool and which are closed (read to the end,
released early, ``Connection: close``, closed or silenced by the upstream, the client closed,
a cancelled call); every broken exchange as a ``TransportError``, every silence beyond
``idle_timeout_s`` and headers not in by the ``deadline`` as a ``TimeoutError``; and that a
large body is read at the reader's pace.
"""

from __future__ import annotations

import asyncio
import gc
import gzip
import re
import socket
import struct
import time
import weakref
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest

from tokenyard.providers.transport import HIGH_WATER, HttpClient, Response, TransportError

pytestmark = pytest.mark.usefixtures("any_loop")  # every test on uvloop and on asyncio

T = TypeVar("T")

OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'
CHUNKED_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)


def run(main: Coroutine[Any, Any, T], limit_s: float = 1.0) -> T:
    """Runs a test's body, failing it rather than hanging when it takes over ``limit_s``."""
    return asyncio.run(asyncio.wait_for(main, limit_s))


class Upstream:
    """A stand-in upstream: each connection it accepts runs its handler; it counts the
    connections, keeps the requests as sent, and counts the connections the client ended."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0
        self.accepted = 0
        self.requests: list[bytes] = []
        self.hangups = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def receive(self, reader: asyncio.StreamReader) -> bytes | None:
        """One request, head and body, as sent; ``None`` when the client ended the connection."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            self.hangups += 1
            return None
        length = re.search(rb"\r\ncontent-length: *(\d+)\r\n", head, re.IGNORECASE)
        request = head + (await reader.readexactly(int(length[1])) if length else b"")
        self.requests.append(request)
        return request

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.append(writer)
        try:
            await self._handler(self, reader, writer)
        except ConnectionError:
            pass
        finally:
            writer.close()

    def abort_all(self) -> None:
        for writer in self._writers:
            writer.transport.abort()


Handler = Callable[[Upstream, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[Upstream]:
    upstream = Upstream(handler)
    server = await asyncio.start_server(upstream.serve, "127.0.0.1", 0)
    upstream.port = server.sockets[0].getsockname()[1]
    try:
        yield upstream
    finally:
        server.close()
        upstream.abort_all()
        await server.wait_closed()


@asynccontextmanager
async def pooled(keepalive_s: float = 60.0) -> AsyncIterator[HttpClient]:
    client = HttpClient(keepalive_s=keepalive_s)
    try:
        yield client
    finally:
        await client.close()


def writing(*pieces: bytes, pause_s: float = 0.02, then_close: bool = False) -> Handler:
    """Answers each request on a connection with ``pieces``, written one at a time with a
    pause between; then waits for the next request, or closes when ``then_close``."""

    async def handler(up: Upstream, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while await up.receive(reader) is not None:
            for i, piece in enumerate(pieces):
                if i:
                    await asyncio.sleep(pause_s)
                w.write(piece)
                await w.drain()
            if then_close:
                return

    return handler


def answering(response: bytes) -> Handler:
    """Answers every request on a connection with ``response`` in one write."""
    return writing(response)


def reset(writer: asyncio.StreamWriter) -> None:
    """Ends the connection with a TCP reset rather than a FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts) + b"0\r\n\r\n"


async def post(
    client: HttpClient,
    up: Upstream,
    path: str = "/v1",
    body: bytes = b"{}",
    headers: Mapping[str, str] | None = None,
    idle_timeout_s: float | None = None,
    deadline_s: float | None = None,
) -> Response:
    """``client.post`` to ``up``; ``deadline_s`` from now is its ``deadline``."""
    deadline = None if deadline_s is None else asyncio.get_running_loop().time() + deadline_s
    return await client.post(
        up.url + path,
        body,
        headers or {},
        connect_timeout_s=0.2,
        deadline=deadline,
        idle_timeout_s=idle_timeout_s,
    )


async def drain(response: Response) -> list[bytes]:
    return [piece async for piece in response.chunks()]


async def eventually(condition: Callable[[], bool], within_s: float = 0.5) -> bool:
    """Whether ``condition`` holds within ``within_s``, as the loop delivers the other side's
    doings (a close, a reset)."""
    for _ in range(round(within_s / 0.005)):  # polled: the client has no event to await
        if condition():
            return True
        await asyncio.sleep(0.005)
    return condition()


def parse(request: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
    """A request's first line, its header lines (names lower-cased), and its body."""
    head, _, body = request.partition(b"\r\n\r\n")
    first, *lines = head.decode("latin-1").split("\r\n")
    headers = [(n.lower(), v.strip()) for n, _, v in (line.partition(":") for line in lines)]
    return first, headers, body


def free_port() -> int:
    """A port on 127.0.0.1 nobody listens on (bound, then let go)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@asynccontextmanager
async def unanswered_port() -> AsyncIterator[int]:
    """A port on 127.0.0.1 whose listener never accepts and whose queue is full, so the kernel
    drops a new connection's SYN and the handshake hangs. (A non-routable address such as
    10.255.255.1 does not do: some networks, sandboxes and proxies, answer any address.)"""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = [socket.socket() for _ in range(4)]
    try:
        for filler in fillers:
            filler.setblocking(False)
            filler.connect_ex(listener.getsockname())
        await asyncio.sleep(0.02)
        yield listener.getsockname()[1]
    finally:
        for sock in [*fillers, listener]:
            sock.close()


# -- the request ---------------------------------------------------------------------------


def test_the_request_is_a_post_with_our_framing_and_the_callers_headers() -> None:
    body = b'{"model":"m","messages":[]}'
    caller = {
        "Authorization": "Bearer sk-test",
        "X-Custom": "yes",
        "host": "evil.example",
        "Content-Length": "999",
        "Connection": "close",
        "Transfer-Encoding": "chunked",
    }

    async def main() -> tuple[int, bytes]:
        async with serving(answering(OK)) as up, pooled() as http:
            response = await post(http, up, "/path?q=1", body, caller)
            await response.read()
            response.release()
            return up.port, up.requests[0]

    port, request = run(main())
    first, headers, sent = parse(request)
    names = [name for name, _ in headers]
    assert first == "POST /path?q=1 HTTP/1.1"
    assert [v for n, v in headers if n == "host"] == [f"127.0.0.1:{port}"]
    assert [v for n, v in headers if n == "content-length"] == [str(len(body))]
    assert "connection" not in names
    assert "transfer-encoding" not in names
    assert ("authorization", "Bearer sk-test") in headers
    assert ("x-custom", "yes") in headers
    assert len(names) == len(set(names)), f"a header is sent twice: {names}"
    assert sent == body


def test_a_callers_user_agent_replaces_ours() -> None:
    """A provider configured with its own User-Agent (ProviderConfig.headers) must send that
    one alone: two User-Agent lines is a malformed request."""

    async def main() -> bytes:
        async with serving(answering(OK)) as up, pooled() as http:
            response = await post(http, up, headers={"User-Agent": "my-app/1.0"})
            response.close()
            return up.requests[0]

    _, headers, _ = parse(run(main()))
    assert [v for n, v in headers if n == "user-agent"] == ["my-app/1.0"]


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Evil": "a\r\nX-Injected: 1"},
        {"X-Evil": "a\nX-Injected: 1"},
        {"X-Evil": "a\rb"},
        {"X-Evil\r\nX-Injected": "1"},
    ],
)
def test_a_header_with_a_line_break_is_refused_and_nothing_is_sent(
    headers: dict[str, str],
) -> None:
    async def main() -> int:
        async with serving(answering(OK)) as up, pooled() as http:
            with pytest.raises(ValueError, match="line break"):
                await post(http, up, headers=headers)
            await asyncio.sleep(0.02)
            return up.accepted

    assert run(main()) == 0


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1/v1", "127.0.0.1:8080/v1", "http:///v1", "unix:///tmp/s"]
)
def test_a_url_that_is_not_http_is_refused(url: str) -> None:
    async def main() -> None:
        async with pooled() as http:
            await http.post(url, b"{}", {}, connect_timeout_s=0.2)

    with pytest.raises(ValueError, match="not an http"):
        run(main())


# -- the three framings, and inflation -------------------------------------------------------


def test_a_content_length_body_comes_with_its_status_and_headers() -> None:
    answer = (
        b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nX-Request-Id: abc\r\n"
        b'Content-Length: 11\r\n\r\n{"ok":true}'
    )

    async def main() -> tuple[object, ...]:
        async with serving(answering(answer)) as up, pooled() as http:
            response = await post(http, up)
            body = await response.read()
            response.release()
            h = response.headers
            return (response.status, h["content-type"], h["X-REQUEST-ID"], body)

    assert run(main()) == (201, "application/json", "abc", b'{"ok":true}')


def test_a_content_length_response_knows_its_length_and_completes() -> None:
    async def main() -> tuple[int | None, bool, bool]:
        async with serving(answering(OK)) as up, pooled() as http:
            response = await post(http, up)
            assert await eventually(lambda: response.complete)
            buffered_yet_complete = response.complete
            await response.read()
            response.release()
            return response.content_length, buffered_yet_complete, response.complete

    assert run(main()) == (11, True, True)


def test_a_chunked_body_written_in_several_pieces_arrives_in_pieces_and_whole() -> None:
    body = chunked(b"data: one\n\n", b"data: two\n\n", b"data: three\n\n")
    pieces = (CHUNKED_HEAD, body[:5], body[5:20], body[20:33], body[33:])

    async def main() -> list[bytes]:
        async with serving(writing(*pieces)) as up, pooled() as http:
            response = await post(http, up)
            received = await drain(response)
            response.release()
            return received

    received = run(main())
    assert b"".join(received) == b"data: one\n\ndata: two\n\ndata: three\n\n"
    assert len(received) >= 3, "the pieces were not given as they arrived"
    assert all(received), "chunks() gave an empty piece"


def test_read_joins_a_chunked_body_written_in_several_pieces() -> None:
    body = chunked(b"hello, ", b"chunked ", b"world")
    pieces = (CHUNKED_HEAD + body[:4], body[4:17], body[17:])

    async def main() -> tuple[bytes, int | None]:
        async with serving(writing(*pieces)) as up, pooled() as http:
            response = await post(http, up)
            whole = await response.read()
            response.release()
            return whole, response.content_length

    assert run(main()) == (b"hello, chunked world", None)


def test_a_body_ended_by_the_connection_is_read_whole_and_its_connection_not_kept() -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"

    async def main() -> tuple[bytes, bool, tuple[int, int], int]:
        async with (
            serving(writing(answer, b"until ", b"the end", then_close=True)) as up,
            pooled() as http,
        ):
            response = await post(http, up)
            body = await response.read()
            response.release()
            connections = http.connections()
            (await post(http, up)).close()
            return body, response.complete, connections, up.accepted

    assert run(main()) == (b"until the end", True, (0, 0), 2)


def raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)  # deflate without zlib's header
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize(
    ("encoding", "pack"),
    [("gzip", gzip.compress), ("deflate", zlib.compress), ("deflate", raw_deflate)],
)
def test_a_compressed_body_is_inflated(encoding: str, pack: Callable[[bytes], bytes]) -> None:
    plain = b'{"choices":[{"text":"' + b"token " * 2000 + b'"}]}'
    packed = pack(plain)
    answer = b"HTTP/1.1 200 OK\r\nContent-Encoding: %s\r\nContent-Length: %d\r\n\r\n%s" % (
        encoding.encode(),
        len(packed),
        packed,
    )

    async def main() -> tuple[bytes, int | None, tuple[int, int]]:
        async with serving(answering(answer)) as up, pooled() as http:
            response = await post(http, up)
            body = await response.read()
            response.release()
            return body, response.content_length, http.connections()

    body, length, connections = run(main())
    assert body == plain
    assert length is None
    assert connections == (0, 1)


def test_a_chunked_gzip_body_split_across_writes_is_inflated() -> None:
    plain = b"data: " + b"x" * 5000 + b"\n\n"
    packed = gzip.compress(plain)
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
    body = chunked(packed[:10], packed[10:30], packed[30:])

    async def main() -> bytes:
        async with serving(writing(head, body[:25], body[25:])) as up, pooled() as http:
            response = await post(http, up)
            whole = b"".join(await drain(response))
            response.release()
            return whole

    assert run(main()) == plain


def test_a_compressed_body_cut_short_where_its_framing_is_whole_fails() -> None:
    """Content-Length matches what came, but the gzip stream inside it is unfinished."""
    packed = gzip.compress(b"token " * 2000)[:-12]
    answer = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s" % (
        len(packed),
        packed,
    )

    async def main() -> None:
        async with serving(answering(answer)) as up, pooled() as http:
            response = await post(http, up)
            with pytest.raises(TransportError, match="cut short"):
                await response.read()
            response.release()
            assert http.connections() == (0, 0)  # not kept: its body was never whole

    run(main())


def test_a_body_that_does_not_inflate_fails_read() -> None:
    """The body fails to inflate and then its framing completes: read() must still raise,
    not return an empty body as if the upstream had sent one."""
    answer = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 9\r\n\r\nnot gzip!"

    async def main() -> str:
        async with serving(answering(answer)) as up, pooled() as http:
            response = await post(http, up)
            try:
                return f"read() returned {await response.read()!r}"
            except TransportError as exc:
                return f"TransportError: {exc}"
            finally:
                response.release()

    assert run(main()) == "TransportError: the body does not inflate"


# -- the pool ----------------------------------------------------------------------------------


def test_a_kept_alive_connection_carries_the_next_request() -> None:
    async def main() -> tuple[list[tuple[int, int]], int, int]:
        async with serving(answering(OK)) as up, pooled() as http:
            seen = []
            for _ in range(2):
                response = await post(http, up)
                seen.append(http.connections())
                assert await response.read() == b'{"ok":true}'
                response.release()
                seen.append(http.connections())
            return seen, up.accepted, len(up.requests)

    assert run(main()) == ([(1, 0), (0, 1), (1, 0), (0, 1)], 1, 2)


def test_connection_close_in_the_response_is_honoured() -> None:
    answer = OK.replace(b"Content-Length", b"Connection: close\r\nContent-Length")

    async def main() -> tuple[tuple[int, int], int, bool]:
        async with serving(answering(answer)) as up, pooled() as http:
            response = await post(http, up)
            await response.read()
            response.release()
            connections = http.connections()
            hung_up = await eventually(lambda: up.hangups == 1)  # we closed it, not the server
            (await post(http, up)).close()
            return connections, up.accepted, hung_up

    assert run(main()) == ((0, 0), 2, True)


def test_releasing_a_response_whose_body_was_not_taken_closes_its_connection() -> None:
    async def main() -> tuple[bool, bool, int]:
        async with serving(answering(OK)) as up, pooled() as http:
            response = await post(http, up)
            arrived = await eventually(lambda: response.complete)  # arrived, but not read
            response.release()
            hung_up = await eventually(lambda: up.hangups == 1)
            (await post(http, up)).close()
            return arrived, hung_up, up.accepted

    assert run(main()) == (True, True, 2)


def test_releasing_a_response_mid_body_closes_its_connection() -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst part"

    async def main() -> tuple[bytes, tuple[int, int], bool]:
        async with serving(answering(answer)) as up, pooled() as http:
            response = await post(http, up)
            first = b""
            async for piece in response.chunks():
                first = piece
                break
            response.release()
            return first, http.connections(), await eventually(lambda: up.hangups == 1)

    assert run(main()) == (b"first part", (0, 0), True)


def test_close_closes_even_a_connection_read_to_its_end() -> None:
    async def main() -> tuple[tuple[int, int], bool, int]:
        async with serving(answering(OK)) as up, pooled() as http:
            response = await post(http, up)
            await response.read()
            response.close()
            response.release()  # after close: nothing more
            hung_up = await eventually(lambda: up.hangups == 1)
            (await post(http, up)).close()
            return http.connections(), hung_up, up.accepted

    assert run(main()) == ((0, 0), True, 2)


def test_an_idle_connection_the_upstream_closes_leaves_the_pool() -> None:
    async def main() -> tuple[tuple[int, int], bool, int, bytes]:
        hang_up = asyncio.Event()

        async def once_then_hang_up(
            up: Upstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            await up.receive(reader)
            writer.write(OK)
            await hang_up.wait()

        async with serving(once_then_hang_up) as up, pooled() as http:
            response = await post(http, up)
            await response.read()
            response.release()
            pooled_before = http.connections()
            hang_up.set()
            dropped = await eventually(lambda: http.connections() == (0, 0))
            hang_up.clear()
            again = await post(http, up)
            body = await again.read()
            again.release()
            return pooled_before, dropped, up.accepted, body

    assert run(main()) == ((0, 1), True, 2, b'{"ok":true}')


def test_a_pooled_connection_already_closing_is_not_reused() -> None:
    """A connection whose transport is closing, before its loss is even reported (the
    protocol hears of it a loop turn later), is not handed out for the next request."""

    async def main() -> tuple[int, bytes]:
        async with serving(answering(OK)) as up, pooled() as http:
            first = await post(http, up)
            await first.read()
            first.release()
            (idle,) = [conn for pooled_ in http._idle.values() for conn in pooled_]
            assert idle.transport is not None
            idle.transport.close()  # closing now, connection_lost not yet called
            again = await post(http, up)
            body = await again.read()
            again.release()
            return up.accepted, body

    assert run(main()) == (2, b'{"ok":true}')


def test_an_idle_connection_the_upstream_talks_on_is_dropped() -> None:
    async def main() -> tuple[bool, bool]:
        async def with_stray_bytes(
            up: Upstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            await up.receive(reader)
            writer.write(OK)
            await asyncio.sleep(0.05)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")  # asked nothing
            await up.receive(reader)

        async with serving(with_stray_bytes) as up, pooled() as http:
            response = await post(http, up)
            await response.read()
            response.release()
            dropped = await eventually(lambda: http.connections() == (0, 0))
            return dropped, await eventually(lambda: up.hangups == 1)

    assert run(main()) == (True, True)


def test_an_idle_connection_older_than_keepalive_is_not_reused() -> None:
    async def main() -> tuple[int, bool]:
        async with serving(answering(OK)) as up, pooled(keepalive_s=0.05) as http:
            for _ in range(2):
                response = await post(http, up)
                await response.read()
                response.release()
                await asyncio.sleep(0.1)
            return up.accepted, await eventually(lambda: up.hangups >= 1)

    assert run(main()) == (2, True)


def test_closing_the_client_closes_idle_and_busy_connections() -> None:
    async def main() -> tuple[tuple[int, int], tuple[int, int], bool]:
        async def by_path(
            up: Upstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            while (request := await up.receive(reader)) is not None:
                if request.startswith(b"POST /hold "):
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart")
                else:
                    writer.write(OK)

        async with serving(by_path) as up, pooled() as http:
            held = await post(http, up, "/hold")
            done = await post(http, up, "/done")
            await done.read()
            done.release()
            before = http.connections()
            await http.close()
            after = http.connections()
            with pytest.raises(TransportError):
                await held.read()
            held.release()
            with pytest.raises(TransportError, match="closed"):
                await post(http, up)
            return before, after, await eventually(lambda: up.hangups == 2)

    assert run(main()) == ((1, 1), (0, 0), True)


def test_a_call_cancelled_while_waiting_for_headers_closes_its_connection() -> None:
    async def main() -> tuple[tuple[int, int], bool]:
        async with serving(writing()) as up, pooled() as http:  # never answers
            call = asyncio.create_task(post(http, up))
            assert await eventually(lambda: len(up.requests) == 1)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            return http.connections(), await eventually(lambda: up.hangups == 1)

    assert run(main()) == ((0, 0), True)


# -- broken exchanges ----------------------------------------------------------------------------


def mid_body(ending: str) -> Handler:
    """Sends half a Content-Length body, then closes the connection or resets it."""

    async def handler(up: Upstream, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await up.receive(reader)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n0123456789")
        await asyncio.sleep(0.05)
        if ending == "reset":
            reset(w)

    return handler


@pytest.mark.parametrize("ending", ["close", "reset"])
def test_a_body_cut_short_fails_read(ending: str) -> None:
    async def main() -> None:
        async with serving(mid_body(ending)) as up, pooled() as http:
            response = await post(http, up)
            with pytest.raises(TransportError):
                await response.read()
            response.release()
            assert http.connections() == (0, 0)

    run(main())


@pytest.mark.parametrize(
    ("handler", "came"),
    [
        (mid_body("close"), b"0123456789"),  # Content-Length unmet
        (mid_body("reset"), b"0123456789"),
        (writing(CHUNKED_HEAD + b"5\r\nhello\r\n", then_close=True), b"hello"),  # no last chunk
    ],
    ids=["length-close", "length-reset", "chunked-close"],
)
def test_a_body_cut_short_fails_chunks_after_what_came(handler: Handler, came: bytes) -> None:
    async def main() -> list[bytes]:
        received: list[bytes] = []
        async with serving(handler) as up, pooled() as http:
            response = await post(http, up)
            with pytest.raises(TransportError):
                async for piece in response.chunks():
                    received.append(piece)
            response.release()
        return received

    assert b"".join(run(main())) == came


def test_a_body_ended_by_a_reset_is_not_taken_for_a_whole_one() -> None:
    """Without a length or chunks only a clean close (FIN) ends a body; a reset (RST) cuts
    it, so the response is broken, not complete."""

    async def cut(up: Upstream, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await up.receive(reader)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npartial ")
        await asyncio.sleep(0.05)
        reset(w)

    async def main() -> str:
        async with serving(cut) as up, pooled() as http:
            response = await post(http, up)
            try:
                return f"read() returned {await response.read()!r}"
            except TransportError:
                return "TransportError"
            finally:
                response.release()

    assert run(main()) == "TransportError"


def test_an_upstream_that_closes_before_answering_is_a_transport_error() -> None:
    async def main() -> tuple[int, int]:
        async with serving(writing(then_close=True)) as up, pooled() as http:
            with pytest.raises(TransportError, match="closed"):
                await post(http, up)
            return http.connections()

    assert run(main()) == (0, 0)


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTX/1.1 nonsense\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: two\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nBad Header Line\r\n\r\n",
    ],
)
def test_a_malformed_response_is_a_transport_error(answer: bytes) -> None:
    async def main() -> tuple[int, int]:
        async with serving(answering(answer)) as up, pooled() as http:
            with pytest.raises(TransportError, match="malformed"):
                await post(http, up)
            return http.connections()

    assert run(main()) == (0, 0)


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (CHUNKED_HEAD + b"2\r\nok\r\nzz\r\nbroken\r\n", "malformed"),  # a bad chunk size
        (
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 9\r\n\r\nnot gzip!",
            "inflate",
        ),
    ],
    ids=["malformed-chunk", "does-not-inflate"],
)
def test_a_broken_body_fails_chunks(answer: bytes, error: str) -> None:
    async def main() -> None:
        async with serving(answering(answer)) as up, pooled() as http:
            response = await post(http, up)
            with pytest.raises(TransportError, match=error):
                await drain(response)
            response.release()

    run(main())


def test_an_interim_1xx_response_is_skipped_for_the_final_one() -> None:
    """RFC 9110 §15.2: a client must parse 1xx responses it did not ask for, and wait for
    the final one (a 103 Early Hints from a CDN in front of an API, say)."""
    answer = b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + OK

    async def main() -> tuple[int, bytes]:
        async with serving(answering(answer)) as up, pooled() as http:
            response = await post(http, up)
            try:
                body = await response.read()
            except TransportError as exc:
                body = repr(exc).encode()
            response.release()
            return response.status, body

    assert run(main()) == (200, b'{"ok":true}')


def test_a_refused_connection_is_a_transport_error() -> None:
    async def main() -> None:
        async with pooled() as http:
            url = f"http://127.0.0.1:{free_port()}/v1"
            await http.post(url, b"{}", {}, connect_timeout_s=0.2)

    with pytest.raises(TransportError, match="could not connect"):
        run(main())


def test_a_connection_that_is_not_made_in_time_is_a_transport_error() -> None:
    async def main() -> float:
        async with pooled() as http, unanswered_port() as port:
            start = time.monotonic()
            with pytest.raises(TransportError, match="timed out"):
                await http.post(f"http://127.0.0.1:{port}/v1", b"{}", {}, connect_timeout_s=0.2)
            return time.monotonic() - start

    assert 0.15 <= run(main()) < 0.5


# -- silence --------------------------------------------------------------------------------------


def test_a_stream_silent_for_longer_than_idle_timeout_times_out() -> None:
    async def main() -> tuple[list[bytes], float, tuple[int, int], bool]:
        received: list[bytes] = []
        silent = writing(CHUNKED_HEAD + chunked(b"data: first\n\n")[:-5])  # no last chunk
        async with serving(silent) as up, pooled() as http:
            response = await post(http, up, idle_timeout_s=0.2)
            start = time.monotonic()
            with pytest.raises(TimeoutError):
                async for piece in response.chunks():
                    received.append(piece)
            waited = time.monotonic() - start
            response.release()
            return received, waited, http.connections(), await eventually(lambda: up.hangups == 1)

    received, waited, connections, hung_up = run(main())
    assert received == [b"data: first\n\n"]
    assert 0.15 <= waited < 0.5
    assert connections == (0, 0)
    assert hung_up


def test_an_upstream_silent_before_its_headers_times_out() -> None:
    async def main() -> tuple[float, tuple[int, int], bool]:
        async with serving(writing()) as up, pooled() as http:  # never answers
            start = time.monotonic()
            with pytest.raises(TimeoutError):
                await post(http, up, idle_timeout_s=0.2)
            waited = time.monotonic() - start
            return waited, http.connections(), await eventually(lambda: up.hangups == 1)

    waited, connections, hung_up = run(main())
    assert 0.15 <= waited < 0.5
    assert connections == (0, 0)
    assert hung_up


@pytest.mark.parametrize(
    ("deadline_s", "idle_timeout_s"),
    [(0.2, None), (0.2, 5.0), (5.0, 0.2)],
    ids=["deadline", "deadline-first", "idle-first"],
)
def test_headers_are_awaited_until_the_deadline_or_the_idle_timeout_whichever_is_first(
    deadline_s: float, idle_timeout_s: float | None
) -> None:
    async def main() -> tuple[float, tuple[int, int], bool]:
        async with serving(writing()) as up, pooled() as http:  # never answers
            start = time.monotonic()
            with pytest.raises(TimeoutError):
                await post(http, up, deadline_s=deadline_s, idle_timeout_s=idle_timeout_s)
            waited = time.monotonic() - start
            return waited, http.connections(), await eventually(lambda: up.hangups == 1)

    waited, connections, hung_up = run(main())
    assert 0.15 <= waited < 0.5
    assert connections == (0, 0)
    assert hung_up


def test_the_deadline_bounds_connecting_too() -> None:
    """A deadline that ends while connecting is a timeout (the caller's first byte did not
    come), not the connect timeout's ``TransportError``."""

    async def main() -> float:
        async with pooled() as http, unanswered_port() as port:
            loop = asyncio.get_running_loop()
            start = time.monotonic()
            with pytest.raises(TimeoutError):
                await http.post(
                    f"http://127.0.0.1:{port}/v1",
                    b"{}",
                    {},
                    connect_timeout_s=0.5,
                    deadline=loop.time() + 0.2,
                )
            assert http.connections() == (0, 0)
            return time.monotonic() - start

    assert 0.15 <= run(main()) < 0.45


def test_headers_in_time_leave_no_timer_behind() -> None:
    """Once the headers are in, the deadline's timer is cancelled: nothing holds the
    response after it is released (a live timer would, until it fired: minutes, for a
    whole load of requests), and passing the deadline later neither fails the body nor
    keeps its connection from the next request."""

    async def main() -> tuple[bool, bytes, bytes, int, tuple[int, int]]:
        async with serving(writing(OK)) as up, pooled() as http:
            response = await post(http, up, deadline_s=0.2, idle_timeout_s=5.0)
            first = await response.read()
            response.release()
            held = weakref.ref(response)
            del response
            await asyncio.sleep(0.01)  # the loop lets go of what its last turn ran
            gc.collect()
            freed = held() is None
            await asyncio.sleep(0.25)
            again = await post(http, up, deadline_s=0.05)
            await asyncio.sleep(0.1)
            second = await again.read()
            again.release()
            return freed, first, second, up.accepted, http.connections()

    # 0.36 s of it is sleeping: a busy machine must not turn the rest into a failure
    assert run(main(), limit_s=5.0) == (True, b'{"ok":true}', b'{"ok":true}', 1, (0, 1))


# -- back-pressure ----------------------------------------------------------------------------------


def large(size: int) -> bytes:
    return bytes(range(256)) * (size // 256)


def test_a_large_body_is_buffered_only_up_to_the_high_water_mark() -> None:
    """An 8 MiB body sent at once while the reader waits: what is buffered meanwhile (the
    first piece chunks() gives) stays near HIGH_WATER, and the rest arrives as it is read."""
    payload = large(8 * 1024 * 1024)
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(payload), payload)

    async def main() -> tuple[list[int], bytes, tuple[int, int]]:
        async with serving(answering(answer)) as up, pooled() as http:
            response = await post(http, up)
            await asyncio.sleep(0.1)  # the upstream writes all it can meanwhile
            pieces = await drain(response)
            response.release()
            return [len(p) for p in pieces], b"".join(pieces), http.connections()

    sizes, body, connections = run(main())
    assert len(body) == len(payload)
    assert body == payload
    assert max(sizes) <= 2 * HIGH_WATER, f"buffered {max(sizes)} bytes before the first read"
    assert connections == (0, 1), "a paused and resumed connection should be kept"


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_read_returns_a_body_larger_than_the_high_water_mark(framing: str) -> None:
    """read() must drain what it buffers, or a body over HIGH_WATER pauses the socket and
    never completes (providers/http.py reads every non-streamed body with read())."""
    payload = large(3 * HIGH_WATER)
    if framing == "chunked":
        answer = CHUNKED_HEAD + chunked(
            *(payload[i : i + 65536] for i in range(0, len(payload), 65536))
        )
    else:
        answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(payload), payload)

    async def main() -> str:
        async with serving(answering(answer)) as up, pooled() as http:
            response = await post(http, up)
            try:
                body = await asyncio.wait_for(response.read(), 0.5)
            except TimeoutError:
                return "read() stalled before the body was complete"
            finally:
                response.release()
            return f"read {len(body)} bytes" + ("" if body == payload else ", not those sent")

    assert run(main()) == f"read {len(payload)} bytes"


def test_a_second_answer_to_one_request_breaks_the_connection() -> None:
    """An upstream that answers twice: the first answer stands, the connection is dropped
    instead of carrying the stray answer into the next request."""
    one = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    async def main() -> tuple[bytes, tuple[int, int], int]:
        async with serving(answering(one + one)) as up, pooled() as http:
            response = await post(http, up)
            body = await response.read()
            await asyncio.sleep(0.05)  # the second answer arrives
            response.release()
            second = await post(http, up)
            await second.read()
            second.release()
            return body, http.connections(), up.accepted

    body, connections, accepted = run(main())
    assert body == b"ok"
    assert accepted == 2  # the second request needed a fresh connection
    assert connections[0] == 0


def test_a_reused_connection_times_each_head_by_its_own_deadline() -> None:
    """One timer serves a connection's requests: a second request, sent after the first's
    deadline was set, is not cut at that earlier deadline (its answer comes after it), and
    a third with a deadline earlier than the pending timer's is cut at its own."""

    async def handler(up: Upstream, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await up.receive(reader)
        w.write(OK)  # the first at once
        await up.receive(reader)
        await asyncio.sleep(0.3)  # the second after the first's deadline
        w.write(OK)
        await up.receive(reader)
        await asyncio.sleep(1.0)  # the third never

    async def main() -> tuple[bytes, float, int]:
        async with serving(handler) as up, pooled() as http:
            first = await post(http, up, deadline_s=0.2)
            await first.read()
            first.release()
            second = await post(http, up, deadline_s=0.5)
            body = await second.read()
            second.release()
            start = time.monotonic()
            with pytest.raises(TimeoutError):
                await post(http, up, deadline_s=0.1)
            return body, time.monotonic() - start, up.accepted

    body, waited, accepted = asyncio.run(asyncio.wait_for(main(), 2.0))
    assert body == b'{"ok":true}'
    assert 0.07 <= waited < 0.3
    assert accepted == 1


def test_a_closed_client_leaves_no_timer_holding_a_connection() -> None:
    async def main() -> bool:
        async with serving(answering(OK)) as up:
            http = HttpClient()
            response = await post(http, up, deadline_s=5.0)
            await response.read()
            response.release()
            held = weakref.ref(http._idle[("http", "127.0.0.1", up.port)][0])
            await http.close()
            await asyncio.sleep(0.05)
            gc.collect()
            return held() is None

    assert run(main())
