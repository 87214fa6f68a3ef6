"""An OpenAI-wire stand-in that misbehaves on command, and keeps count of what it holds.

:class:`FaultyUpstream` answers like :class:`~tests.upstreams.openai_wire.StandInUpstream`
(same routes, same echo answers, ``fail_next`` for plain error statuses) until a
:class:`Fault` is queued with :meth:`FaultyUpstream.inject`; the next chat request then gets
that fault instead: a connection reset (TCP RST) before the headers or in the middle of the
body, a stall before the headers or between two stream events, a body that is not JSON or
not a completion, a stream with a broken event or without ``[DONE]``, or a body (or one
stream event) larger than any sane answer.

For the fault-injection suite it also counts what is left open on its side —
``in_progress`` (chat handlers still running) and :meth:`open_connections` — and records
every :class:`Hangup`: a chat request whose client (the gateway) went away before the
answer was complete, with the stand-in's own clock reading of when it saw that and when its
answer was due. Used through loopback HTTP from tests/faults/.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from aiohttp import web

from tests.upstreams import background
from tests.upstreams.openai_wire import CREATED, Recorded, StandInUpstream

FaultKind = Literal[
    "reset_before_headers",  # read the request, then RST: no status line at all
    "reset_mid_body",  # headers and half the body (or two stream events), then RST
    "stall_headers",  # say nothing for `seconds`, then answer normally
    "stall_mid_stream",  # two stream events, silence for `seconds`, then the rest
    "malformed_json",  # 200 application/json whose body is cut-off JSON
    "not_a_completion",  # 200 with valid JSON that is no chat completion (no choices)
    "malformed_sse",  # a stream whose event number `at` is cut-off JSON
    "no_done",  # a stream that ends cleanly but without `data: [DONE]`
    "oversized",  # a body of `size` bytes (a stream: one event of that size)
]
WORDS = ["one ", "two ", "three ", "four ", "five ", "six"]
"""What every faulty answer says, one stream event per word."""


@dataclass(frozen=True, slots=True)
class Fault:
    kind: FaultKind
    seconds: float = 0.0  # stalls
    at: int = 1  # malformed_sse: the index of the broken event (0 is the role event)
    size: int = 0  # oversized
    sized: bool = True  # oversized: announce the size in Content-Length (else chunked)


@dataclass(frozen=True, slots=True)
class Hangup:
    """A chat request whose client went away first; times on ``time.monotonic()``."""

    seen_at: float
    due_at: float | None  # when the stalled answer would have gone on (None: no stall)

    @property
    def before_due(self) -> bool:
        return self.due_at is not None and self.seen_at < self.due_at


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    body = {
        "id": "chatcmpl-faulty",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": model,
        "choices": [choice],
    }
    return b"data: " + orjson.dumps(body) + b"\n\n"


def _events(model: str) -> list[bytes]:
    """A whole stream's events: role, one per word, finish, usage; no ``[DONE]``."""
    events = [_chunk(model, {"role": "assistant", "content": ""})]
    events += [_chunk(model, {"content": word}) for word in WORDS]
    events.append(_chunk(model, {}, "stop"))
    usage = {"prompt_tokens": 5, "completion_tokens": len(WORDS), "total_tokens": 5 + len(WORDS)}
    tail = {"id": "chatcmpl-faulty", "object": "chat.completion.chunk", "created": CREATED}
    events.append(b"data: " + orjson.dumps({**tail, "model": model, "choices": [], "usage": usage}))
    events[-1] += b"\n\n"
    return events


def _completion(model: str) -> bytes:
    message = {"role": "assistant", "content": "".join(WORDS)}
    usage = {"prompt_tokens": 5, "completion_tokens": len(WORDS), "total_tokens": 5 + len(WORDS)}
    return orjson.dumps(
        {
            "id": "chatcmpl-faulty",
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": usage,
        }
    )


def _reset(request: web.Request) -> None:
    """Abort the connection with a TCP RST (SO_LINGER 0), as a crashed peer does."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


@dataclass
class _Due:
    """When a stalled answer goes on (set by the stall, read when the client hangs up)."""

    at: float | None = None


class _Reset(Exception):
    """The stand-in reset the connection itself: not the client's hang-up."""


class FaultyUpstream(StandInUpstream):
    def __init__(self, api_key: str | None = "sk-test") -> None:
        super().__init__(api_key=api_key)
        self._faults: deque[Fault] = deque()
        self._fault_lock = threading.Lock()
        self.hangups: list[Hangup] = []
        self.in_progress = 0
        self.finished = 0  # chat answers written to their end
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> str:
        self._loop = asyncio.get_running_loop()
        return await super().start()

    # ------------------------------------------------------------------ commands
    def inject(self, fault: Fault, times: int = 1) -> None:
        with self._fault_lock:
            self._faults.extend([fault] * times)

    def reset(self) -> None:
        super().reset()
        with self._fault_lock:
            self._faults.clear()
        self.hangups.clear()
        self.finished = 0

    def open_connections(self) -> int:
        """Connections from clients that are open on the stand-in's side right now."""
        assert self._loop is not None

        async def count() -> int:
            runner = self._runner
            server = runner.server if runner is not None else None
            return len(server.connections) if server is not None else 0

        return asyncio.run_coroutine_threadsafe(count(), self._loop).result(timeout=5)

    # ------------------------------------------------------------------ chat
    async def _chat(self, request: web.Request) -> web.StreamResponse:
        with self._fault_lock:
            fault = self._faults.popleft() if self._faults else None
        due = _Due()
        self.in_progress += 1
        try:
            if fault is None:
                response = await super()._chat(request)
            else:
                response = await self._play(request, fault, due)
            self.finished += 1
            return response
        except asyncio.CancelledError:  # the gateway closed the connection first
            self.hangups.append(Hangup(time.monotonic(), due.at))
            raise
        except _Reset:
            raise asyncio.CancelledError from None  # nothing more to write: drop the handler
        finally:
            self.in_progress -= 1

    async def _play(self, request: web.Request, fault: Fault, due: _Due) -> web.StreamResponse:
        raw = await request.read()
        body = orjson.loads(raw) if raw else {}
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.requests.append(Recorded(request.path, headers, body))
        model = str(body.get("model", "m"))
        stream = body.get("stream") is True
        kind = fault.kind
        if kind == "reset_before_headers":
            _reset(request)
            raise _Reset
        if kind == "stall_headers":
            due.at = time.monotonic() + fault.seconds
            await asyncio.sleep(fault.seconds)
            return await self._after_stall(request, model, stream, due)
        if kind == "malformed_json":
            return web.Response(body=_completion(model)[:40], content_type="application/json")
        if kind == "not_a_completion":
            return web.Response(
                body=orjson.dumps({"object": "chat.completion", "model": model}),
                content_type="application/json",
            )
        if kind == "oversized":
            return await self._oversized(request, model, stream, fault)
        if not stream:  # reset_mid_body
            whole = _completion(model)
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            response.content_length = len(whole)
            await response.prepare(request)
            await response.write(whole[: len(whole) // 2])
            _reset(request)
            raise _Reset
        return await self._events_out(request, model, fault, due)

    async def _after_stall(
        self, request: web.Request, model: str, stream: bool, due: _Due
    ) -> web.StreamResponse:
        if not stream:
            return web.Response(body=_completion(model), content_type="application/json")
        return await self._events_out(request, model, None, due)

    async def _events_out(
        self, request: web.Request, model: str, fault: Fault | None, due: _Due
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        events = _events(model)
        kind = fault.kind if fault is not None else None
        if kind == "malformed_sse":
            assert fault is not None
            events[fault.at] = events[fault.at][:30] + b"\n\n"
        for index, event in enumerate(events):
            if index == 2 and kind == "reset_mid_body":
                _reset(request)
                raise _Reset
            if index == 2 and kind == "stall_mid_stream":
                assert fault is not None
                due.at = time.monotonic() + fault.seconds
                await asyncio.sleep(fault.seconds)
            await response.write(event)
        if kind != "no_done":
            await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _oversized(
        self, request: web.Request, model: str, stream: bool, fault: Fault
    ) -> web.StreamResponse:
        """A body of ``fault.size`` bytes: a completion padded with whitespace (valid JSON
        all the same), or a stream whose second event is that large."""
        head = _completion(model)
        pad = b" " * 65536
        if stream:
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            events = _events(model)
            await response.write(events[0])
            await response.write(events[1][:-2])  # the event's line goes on and on
            for _ in range(fault.size // len(pad)):
                await response.write(pad)
            await response.write(b"\n\n" + b"".join(events[2:]) + b"data: [DONE]\n\n")
            await response.write_eof()
            return response
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        count = max(0, fault.size - len(head)) // len(pad)
        if fault.sized:
            response.content_length = count * len(pad) + len(head)
        await response.prepare(request)
        for _ in range(count):
            await response.write(pad)
        await response.write(head)
        await response.write_eof()
        return response


def run_in_thread(upstream: FaultyUpstream) -> tuple[str, Callable[[], None]]:
    """Start the server on its own event loop in a daemon thread; returns (base_url, stop)."""
    url, stop = background.run_in_thread(upstream, "faulty-upstream")
    return str(url), stop
