"""Fast stand-in upstream that speaks the OpenAI Chat Completions API.

A raw asyncio ``Protocol`` HTTP/1.1 server (keep-alive, pipelining-safe, no framework),
running on uvloop when it is installed. It answers ``POST /v1/chat/completions`` with a
fixed ~20-token answer, either as one JSON body with ``usage`` or as an SSE stream of
~10 chunks, an optional usage chunk (``stream_options.include_usage``) and ``[DONE]``.

Usage: ``python bench/upstream.py [--host 127.0.0.1] [--port 0] [--chunk-delay-ms 0]
[--stream-chunks 10]``.
Prints ``PORT <n>`` on stdout once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from functools import lru_cache
from typing import cast

import procs

ANSWER_PIECES = [
    "Hello",
    "! This",
    " is a",
    " fixed",
    " answer",
    " from the",
    " stand-in",
    " upstream,",
    " used for",
    " benchmarking.",
]
ANSWER = "".join(ANSWER_PIECES)
PROMPT_TOKENS = 9
COMPLETION_TOKENS = 20
CREATED = 1_700_000_000
MAX_HEAD = 64 * 1024


def _usage() -> dict[str, int]:
    total = PROMPT_TOKENS + COMPLETION_TOKENS
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": COMPLETION_TOKENS,
        "total_tokens": total,
    }


def _response(status: str, ctype: bytes, body: bytes, close: bool = False) -> bytes:
    head = (
        b"HTTP/1.1 "
        + status.encode()
        + b"\r\nContent-Type: "
        + ctype
        + b"\r\nContent-Length: "
        + str(len(body)).encode()
        + (b"\r\nConnection: close" if close else b"")
        + b"\r\n\r\n"
    )
    return head + body


@lru_cache(maxsize=64)
def completion_body(model: str) -> bytes:
    """Full non-streamed response (headers included) for ``model``."""
    body = {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": CREATED,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": ANSWER},
                "finish_reason": "stop",
            }
        ],
        "usage": _usage(),
    }
    return _response("200 OK", b"application/json", json.dumps(body).encode())


def _sse_chunk(model: str, delta: dict[str, str], finish: str | None) -> dict[str, object]:
    return {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _http_chunk(payload: bytes) -> bytes:
    return f"{len(payload):x}\r\n".encode() + payload + b"\r\n"


STREAM_PIECES = len(ANSWER_PIECES)
"""Content chunks per streamed answer (``--stream-chunks``): the answer's pieces, repeated."""


@lru_cache(maxsize=64)
def stream_parts(model: str, include_usage: bool) -> tuple[bytes, ...]:
    """Response head plus one chunked-encoding frame per SSE event, then the last chunk."""
    events: list[dict[str, object]] = []
    pieces = [ANSWER_PIECES[i % len(ANSWER_PIECES)] for i in range(STREAM_PIECES)]
    for i, piece in enumerate(pieces):
        delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
        events.append(_sse_chunk(model, delta, None))
    events.append(_sse_chunk(model, {}, "stop"))
    if include_usage:
        usage_event = _sse_chunk(model, {}, None)
        usage_event["choices"] = []
        usage_event["usage"] = _usage()
        events.append(usage_event)
    payloads = [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events]
    payloads.append(b"data: [DONE]\n\n")
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    return (head, *(_http_chunk(p) for p in payloads), b"0\r\n\r\n")


NOT_FOUND = _response("404 Not Found", b"application/json", b'{"error":"not found"}')
BAD_REQUEST = _response(
    "400 Bad Request", b"application/json", b'{"error":"bad request"}', close=True
)
HEALTH = _response("200 OK", b"application/json", b'{"status":"ok"}')
MODELS = _response(
    "200 OK",
    b"application/json",
    b'{"object":"list","data":[{"id":"upstream-model","object":"model","owned_by":"bench"}]}',
)


def parse_head(head: bytes) -> tuple[bytes, bytes, dict[bytes, bytes]]:
    """Split a request head into method, target and lower-cased headers."""
    lines = head.split(b"\r\n")
    method, target, _ = lines[0].split(b" ", 2)
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    return method, target, headers


def decode_chunked(buf: bytearray, start: int) -> tuple[bytes, int] | None:
    """Decode a chunked body starting at ``start``; None while incomplete."""
    out = bytearray()
    pos = start
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
        pos = eol + 2
        if size == 0:
            end = buf.find(b"\r\n\r\n", pos - 2)
            return (bytes(out), end + 4) if end >= 0 else None
        if len(buf) < pos + size + 2:
            return None
        out += buf[pos : pos + size]
        pos += size + 2


class UpstreamProtocol(asyncio.Protocol):
    """One keep-alive connection; handles any number of (pipelined) requests."""

    chunk_delay: float = 0.0

    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False
        self.close_after = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self._process()

    def _process(self) -> None:
        while self.transport is not None and not self.transport.is_closing():
            request = self._next_request()
            if request is None:
                return
            method, target, headers, body = request
            self.close_after = headers.get(b"connection", b"").lower() == b"close"
            self._dispatch(method, target, body)
            if self.busy:
                return
            if self.close_after:
                self.transport.close()

    def _next_request(self) -> tuple[bytes, bytes, dict[bytes, bytes], bytes] | None:
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEAD:
                self._send(BAD_REQUEST)
            return None
        try:
            method, target, headers = parse_head(bytes(buf[:end]))
        except ValueError:
            self._send(BAD_REQUEST)
            return None
        start = end + 4
        if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
            decoded = decode_chunked(buf, start)
            if decoded is None:
                return None
            body, stop = decoded
        else:
            length = int(headers.get(b"content-length", b"0"))
            if len(buf) < start + length:
                return None
            body, stop = bytes(buf[start : start + length]), start + length
        del buf[:stop]
        return method, target, headers, body

    def _dispatch(self, method: bytes, target: bytes, body: bytes) -> None:
        path = target.split(b"?", 1)[0]
        if method == b"POST" and path.endswith(b"/chat/completions"):
            self._chat(body)
        elif method == b"GET" and path in (b"/health", b"/v1/health", b"/"):
            self._send(HEALTH)
        elif method == b"GET" and path.endswith(b"/models"):
            self._send(MODELS)
        else:
            self._send(NOT_FOUND)

    def _chat(self, body: bytes) -> None:
        try:
            req = json.loads(body)
            model = str(req.get("model") or "upstream-model")
        except (ValueError, AttributeError):
            self._send(BAD_REQUEST)
            return
        if not req.get("stream"):
            self._send(completion_body(model))
            return
        options = req.get("stream_options") or {}
        parts = stream_parts(model, bool(options.get("include_usage")))
        if self.chunk_delay <= 0:
            self._send(b"".join(parts))
            return
        self.busy = True
        asyncio.get_running_loop().create_task(self._slow_stream(parts))

    async def _slow_stream(self, parts: tuple[bytes, ...]) -> None:
        self._send(parts[0])
        for part in parts[1:]:
            await asyncio.sleep(self.chunk_delay)
            self._send(part)
        self.busy = False
        if self.close_after and self.transport is not None:
            self.transport.close()
            return
        self._process()

    def _send(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
            if data is BAD_REQUEST:
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(UpstreamProtocol, host, port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    print(f"PORT {bound}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--chunk-delay-ms",
        type=float,
        default=0.0,
        help="sleep between SSE chunks (default 0: one write)",
    )
    parser.add_argument(
        "--stream-chunks",
        type=int,
        default=len(ANSWER_PIECES),
        help="content chunks per streamed answer (default 10)",
    )
    args = parser.parse_args(argv)
    UpstreamProtocol.chunk_delay = args.chunk_delay_ms / 1000.0
    global STREAM_PIECES  # noqa: PLW0603 — set once, before serving
    STREAM_PIECES = args.stream_chunks
    loop_name = procs.install_uvloop()
    print(f"upstream: {loop_name} loop", file=sys.stderr, flush=True)
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
