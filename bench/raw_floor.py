"""The floor under any Python gateway: a relay on bare asyncio protocols, no framework.

Run by ``bench/run.py --gateway-cmd "python bench/raw_floor.py" --label raw-floor``, like
``aiohttp_floor.py``: it takes the harness's ``serve --config C --host H --port P`` arguments,
answers the harness's readiness and admin calls with made-up ids, and relays
``POST /v1/chat/completions`` to the stand-in upstream over kept-alive connections. The
upstream's response (head and body, streamed or not) goes back byte for byte as it arrives.

It does the least any relay must do: read a request, send it on, pass the answer back. It
validates nothing and has no timeouts, no header handling and no TLS. So its rows are a
lower bound for any gateway on CPython and uvloop, whatever its HTTP library: how much of
aiohttp's cost a leaner stack could save (docs/benchmarks.md, ADR 0011). It is not a
design for one.
"""

from __future__ import annotations

import asyncio
import re
from typing import cast
from urllib.parse import urlsplit

import uvloop

from procs import floor_args
from upstream import parse_head

READY = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
MADE_UP = b'{"id":"bench","key":"ty-bench"}'
CREATED = b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"


class Upstream(asyncio.Protocol):
    """One kept-alive connection to the upstream, relaying one answer at a time."""

    def __init__(self, pool: list[Upstream]) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.client: Client | None = None
        self.head = b""
        self.left = 0  # body bytes still to come (Content-Length), or -1: chunked

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def send(self, request: bytes, client: Client) -> None:
        assert self.transport is not None
        self.client, self.head, self.left = client, b"", 0
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        client = self.client
        assert client is not None
        assert client.transport is not None
        client.transport.write(data)
        if not self.head:  # the answer's first bytes: how its end is marked
            end = data.find(b"\r\n\r\n")
            self.head = data[:end].lower()
            found = re.search(rb"content-length: *(\d+)", self.head)
            self.left = int(found.group(1)) - (len(data) - end - 4) if found else -1
        elif self.left > 0:
            self.left -= len(data)
        if self.left == 0 or (self.left < 0 and data.endswith(b"0\r\n\r\n")):
            self.client = None
            self.pool.append(self)
            client.answered()


class Client(asyncio.Protocol):
    """One client connection: requests in, relayed one at a time."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self.next()

    def answered(self) -> None:
        self.busy = False
        self.next()

    def next(self) -> None:
        while not self.busy:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            method, target, headers = parse_head(bytes(self.buf[:end]))
            length = int(headers.get(b"content-length", b"0"))
            if len(self.buf) < end + 4 + length:
                return
            body = bytes(self.buf[end + 4 : end + 4 + length])
            del self.buf[: end + 4 + length]
            self.answer(method, target, body)

    def answer(self, method: bytes, target: bytes, body: bytes) -> None:
        assert self.transport is not None
        if target == b"/readyz":
            self.transport.write(READY)
        elif target.startswith(b"/admin/"):
            self.transport.write(CREATED % len(MADE_UP) + MADE_UP)
        else:
            self.busy = True
            asyncio.get_running_loop().create_task(self.relay.forward(body, self))


class Relay:
    def __init__(self, host: str, port: int, path: str) -> None:
        self.host, self.port = host, port
        self.prefix = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Content-Type: application/json\r\nAuthorization: Bearer sk-bench\r\n"
            "Content-Length: "
        ).encode()
        self.pool: list[Upstream] = []

    async def forward(self, body: bytes, client: Client) -> None:
        if self.pool:
            upstream = self.pool.pop()
        else:
            _, upstream = await asyncio.get_running_loop().create_connection(
                lambda: Upstream(self.pool), self.host, self.port
            )
        upstream.send(self.prefix + b"%d\r\n\r\n" % len(body) + body, client)


def main() -> None:
    args, upstream = floor_args()
    url = urlsplit(upstream)
    relay = Relay(url.hostname or "127.0.0.1", url.port or 80, url.path)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: Client(relay), args.host, args.port)
        await server.serve_forever()

    uvloop.run(serve())


if __name__ == "__main__":
    main()
