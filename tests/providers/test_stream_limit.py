"""A stream event longer than MAX_RESPONSE_BYTES fails the stream (providers/http.py,
``stream_body``), wherever the chunks the connection delivers happen to split it.

A real socket sends one event line of a chosen length; the test reads it through the
gateway's HTTP client and ``stream_body``. The line's end arrives in the same write as the
last of its bytes, the way a slow reader sees it: a fault test once passed an over-long
event because the count started again at the newline of the chunk that ended it.
"""

from __future__ import annotations

import asyncio

import pytest

from tokenyard.errors import UpstreamError
from tokenyard.providers.http import MAX_RESPONSE_BYTES, stream_body
from tokenyard.providers.transport import HttpClient

pytestmark = pytest.mark.usefixtures("any_loop")  # on uvloop and on asyncio

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
PIECE = 1 << 20
TAIL = b"data: [DONE]\n\n"


async def read_event_of(length: int, ending_write: int) -> int:
    """Streams one event line of ``length`` bytes (then its blank line and ``[DONE]``); the
    line's last ``ending_write`` bytes go out in one write with its end. Returns how many
    bytes ``stream_body`` passed on."""
    line = b"data: " + b"x" * (length - len(b"data: "))

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(HEAD)
        body = line[: len(line) - ending_write]
        for start in range(0, len(body), PIECE):
            writer.write(body[start : start + PIECE])
            await writer.drain()
        writer.write(line[len(line) - ending_write :] + b"\n\n" + TAIL)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = HttpClient(keepalive_s=60.0)
    try:
        response = await client.post(f"http://127.0.0.1:{port}/v1", b"{}", {}, connect_timeout_s=1)
        passed = 0
        try:
            async for chunk in stream_body(response, "quick"):
                passed += len(chunk)
        finally:
            response.close()
        return passed
    finally:
        await client.close()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("ending_write", [PIECE, 100, 1], ids=["1MB", "100B", "1B"])
def test_an_event_one_byte_over_the_limit_fails_the_stream(ending_write: int) -> None:
    with pytest.raises(UpstreamError, match="stream event over") as raised:
        asyncio.run(asyncio.wait_for(read_event_of(MAX_RESPONSE_BYTES + 1, ending_write), 20))
    assert raised.value.retryable  # another deployment may answer before the first byte


def test_an_event_of_exactly_the_limit_is_passed_on_whole() -> None:
    length = MAX_RESPONSE_BYTES
    passed = asyncio.run(asyncio.wait_for(read_event_of(length, PIECE), 20))
    assert passed == length + len(b"\n\n" + TAIL)
