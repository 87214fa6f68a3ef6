"""A fleet of stand-in OpenAI-wire upstreams with latency profiles and scripted outages.

One process serves every provider of the routing benchmark (bench/routing.py) on its own
port, plus a control port. Each upstream model has a profile — time to first token,
prefill and decode speed, all in real-world units and multiplied by ``time_scale`` — and
answers ``POST /v1/chat/completions`` with realistic ``usage``: the prompt is counted
(a CJK character is one token, other text four characters per token), the answer length
follows from the request (same request, same length, on every model), streamed or not,
with tool calls when tools are offered and a JSON object in JSON mode.

The control port takes ``POST /mode {"upstream", "mode", "fraction"}``:

* ``up`` — normal service;
* ``refuse`` — the listening socket is closed (new connections are refused) and idle
  keep-alive connections are dropped; answers already being sent are finished, a request
  that arrives on a kept-alive connection is answered by closing it;
* ``reset`` — like ``refuse``, but answers in progress are cut too;
* ``hang`` — connections are accepted and requests read, but nothing is answered until
  the mode changes (then those connections are closed): a black hole, found only by
  the gateway's timeouts;
* ``http503`` / ``http500`` / ``http429`` — that status with an OpenAI error body, for
  ``fraction`` of the requests (1.0: all of them, less: a brown-out).

``GET /stats`` returns per-upstream counters. Usage: ``python bench/fleet.py --spec
FILE.json`` (the spec is written by bench/routing.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import sys
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import procs

HOST = "127.0.0.1"
CREATED = 1_700_000_000
TOKENS_PER_PIECE = 4  # tokens per SSE content chunk
JITTER_SIGMA = 0.25  # log-normal spread of the time to first token
DOWN = ("refuse", "reset")
FAILING = {"http503": 503, "http500": 500, "http429": 429}
MODES = ("up", "hang", *DOWN, *FAILING)
WORDS = (
    "the gateway routes each request to a healthy upstream and bills the tokens it used "
    "while the scheduler weighs price latency and the task at hand so that a cheap model "
    "answers simple questions and a strong model takes the hard ones"
).split()

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Profile:
    """Real-world speed of one upstream model (before ``time_scale``)."""

    ttft_ms: float
    tokens_per_s: float
    prefill_tokens_per_s: float = 8000.0


@dataclass(slots=True, eq=False)
class Connection:
    writer: asyncio.StreamWriter
    busy: bool = False


@dataclass(slots=True)
class Upstream:
    """One provider endpoint: its models, keys, state and counters."""

    name: str
    port: int
    keys: frozenset[str]
    models: dict[str, Profile]
    scale: float
    rng: random.Random
    mode: str = "up"
    fraction: float = 1.0
    server: asyncio.Server | None = None
    recovered: asyncio.Event = field(default_factory=asyncio.Event)
    connections: set[Connection] = field(default_factory=set)
    stats: Counter[str] = field(default_factory=Counter)

    # -- lifecycle ------------------------------------------------------------------------

    async def listen(self) -> None:
        if self.server is None:
            self.server = await asyncio.start_server(
                self._serve, HOST, self.port, reuse_address=True, backlog=512
            )

    async def set_mode(self, mode: str, fraction: float) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        if self.mode == "hang" and mode != "hang":
            self.recovered.set()
            self.recovered = asyncio.Event()
        self.mode, self.fraction = mode, fraction
        self.stats[f"mode:{mode}"] += 1
        if mode in DOWN:
            if self.server is not None:
                self.server.close()
                self.server = None
            for conn in list(self.connections):
                if mode == "reset" or not conn.busy:
                    conn.writer.transport.abort()
        else:
            await self.listen()

    # -- serving --------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(writer)
        self.connections.add(conn)
        try:
            while await self._one(conn, reader):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self.connections.discard(conn)
            if self.mode == "reset":
                writer.transport.abort()
            else:
                writer.close()

    async def _one(self, conn: Connection, reader: asyncio.StreamReader) -> bool:
        """Serve one request; False when the connection should close."""
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head[:-4].decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        body = await reader.readexactly(length) if length else b""
        if self.mode in DOWN:
            self.stats["dropped"] += 1
            conn.writer.transport.abort()
            return False
        if self.mode == "hang":
            self.stats["hung"] += 1
            await self.recovered.wait()
            conn.writer.transport.abort()
            return False
        conn.busy = True
        try:
            await self._dispatch(conn.writer, method, target, headers, body)
        finally:
            conn.busy = False
        return headers.get("connection", "").lower() != "close"

    async def _dispatch(
        self,
        writer: asyncio.StreamWriter,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes,
    ) -> None:
        self.stats["requests"] += 1
        if method != "POST" or not target.partition("?")[0].endswith("/chat/completions"):
            await _send(writer, 404, {"error": {"message": "not found", "type": "not_found"}})
            return
        if headers.get("authorization", "").removeprefix("Bearer ") not in self.keys:
            self.stats["401"] += 1
            await _send(writer, 401, _error("invalid api key", "invalid_request_error"))
            return
        request = json.loads(body)
        profile = self.models.get(str(request.get("model")))
        if profile is None:
            self.stats["404"] += 1
            await _send(writer, 404, _error("unknown model", "invalid_request_error"))
            return
        if self.mode in FAILING and self.rng.random() < self.fraction:
            status = FAILING[self.mode]
            self.stats[str(status)] += 1
            await asyncio.sleep(0.05 * profile.ttft_ms * self.scale / 1000.0)
            await _send(writer, status, _error("the service is overloaded", "server_error"))
            return
        answer = Answer.of(request)
        prompt = prompt_tokens(request)
        self.stats["200"] += 1
        self.stats["prompt_tokens"] += prompt
        self.stats["completion_tokens"] += answer.tokens
        jitter = self.rng.lognormvariate(0.0, JITTER_SIGMA)
        ttft_s = (profile.ttft_ms * jitter / 1000.0 + prompt / profile.prefill_tokens_per_s) * (
            self.scale
        )
        per_token_s = self.scale / profile.tokens_per_s
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": answer.tokens,
            "total_tokens": prompt + answer.tokens,
        }
        model = str(request["model"])
        if request.get("stream"):
            options = request.get("stream_options") or {}
            with_usage = bool(options.get("include_usage"))
            await _stream(writer, model, answer, usage if with_usage else None, ttft_s, per_token_s)
        else:
            await asyncio.sleep(ttft_s + answer.tokens * per_token_s)
            await _send(writer, 200, answer.completion(model, usage))


# ---- answers -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """What the stand-in says to a request: text pieces or one tool call."""

    tokens: int
    pieces: tuple[str, ...] = ()
    tool: tuple[str, str] | None = None  # (function name, arguments JSON)

    @classmethod
    def of(cls, request: Json) -> Answer:
        messages = request.get("messages") or [{}]
        seed = zlib.crc32(json.dumps(messages[-1], sort_keys=True).encode())
        limit = int(request.get("max_tokens") or request.get("max_completion_tokens") or 256)
        tools = request.get("tools") or []
        if tools and request.get("tool_choice") != "none" and messages[-1].get("role") == "user":
            function = tools[0].get("function", {})
            params = function.get("parameters", {}).get("required", [])
            arguments = json.dumps({p: f"value-{seed % 97}" for p in params})
            return cls(tokens=12 + len(arguments) // 4, tool=(function.get("name", "f"), arguments))
        count = max(1, limit // 4 + seed % max(1, limit - limit // 4))
        words = [WORDS[(seed + i) % len(WORDS)] for i in range(count)]
        fmt = (request.get("response_format") or {}).get("type")
        if fmt in ("json_object", "json_schema"):
            text = json.dumps({"result": " ".join(words[:-4]), "confidence": 0.9})
            size = max(1, len(text) // 24)
            pieces = tuple(text[i : i + size] for i in range(0, len(text), size))
        else:
            spaced = [w if i == 0 else " " + w for i, w in enumerate(words)]
            pieces = tuple(
                "".join(spaced[i : i + TOKENS_PER_PIECE]) for i in range(0, count, TOKENS_PER_PIECE)
            )
        return cls(tokens=count, pieces=pieces)

    def message(self) -> Json:
        if self.tool is None:
            return {"role": "assistant", "content": "".join(self.pieces)}
        name, arguments = self.tool
        call = {
            "id": "call_1",
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }
        return {"role": "assistant", "content": None, "tool_calls": [call]}

    @property
    def finish(self) -> str:
        return "stop" if self.tool is None else "tool_calls"

    def completion(self, model: str, usage: Json) -> Json:
        choice = {"index": 0, "message": self.message(), "finish_reason": self.finish}
        return {
            "id": "chatcmpl-fleet",
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "choices": [choice],
            "usage": usage,
        }

    def deltas(self) -> list[tuple[Json, int]]:
        """(delta, tokens it carries) for each content chunk of a stream."""
        if self.tool is None:
            out = [({"content": p}, TOKENS_PER_PIECE) for p in self.pieces]
            out[0][0]["role"] = "assistant"
            return out
        name, arguments = self.tool
        head = {"index": 0, "id": "call_1", "type": "function"}
        first = {**head, "function": {"name": name, "arguments": ""}}
        half = len(arguments) // 2
        return [
            ({"role": "assistant", "content": None, "tool_calls": [first]}, 4),
            ({"tool_calls": [{"index": 0, "function": {"arguments": arguments[:half]}}]}, 4),
            ({"tool_calls": [{"index": 0, "function": {"arguments": arguments[half:]}}]}, 4),
        ]


def prompt_tokens(request: Json) -> int:
    """What the stand-in's tokenizer counts: CJK one token each, other text 4 chars/token."""
    total = 0
    for message in request.get("messages") or []:
        content = message.get("content")
        if isinstance(content, list):
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        text = str(content or "")
        wide = sum(1 for ch in text if ord(ch) >= 0x2E80)
        total += 3 + wide + (len(text) - wide) // 4
    if request.get("tools"):
        total += len(json.dumps(request["tools"])) // 4
    return max(1, total)


def _error(message: str, kind: str) -> Json:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


REASONS = {
    200: "OK",
    401: "Unauthorized",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


async def _send(writer: asyncio.StreamWriter, status: int, doc: Json) -> None:
    body = json.dumps(doc).encode()
    reason = REASONS.get(status, "Service Unavailable")
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    writer.write(head + body)
    await writer.drain()


def _event(model: str, choices: list[Json]) -> Json:
    return {
        "id": "chatcmpl-fleet",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": model,
        "choices": choices,
    }


def _chunk(model: str, delta: Json, finish: str | None) -> bytes:
    return _sse(_event(model, [{"index": 0, "delta": delta, "finish_reason": finish}]))


def _sse(event: Json | str) -> bytes:
    data = (event if isinstance(event, str) else json.dumps(event)).encode()
    payload = b"data: " + data + b"\n\n"
    return f"{len(payload):x}\r\n".encode() + payload + b"\r\n"


async def _stream(
    writer: asyncio.StreamWriter,
    model: str,
    answer: Answer,
    usage: Json | None,
    ttft_s: float,
    per_token_s: float,
) -> None:
    await asyncio.sleep(ttft_s)
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    for i, (delta, tokens) in enumerate(answer.deltas()):
        if i:
            await asyncio.sleep(tokens * per_token_s)
        writer.write(_chunk(model, delta, None))
        await writer.drain()
    tail = _chunk(model, {}, answer.finish)
    if usage is not None:
        tail += _sse({**_event(model, []), "usage": usage})
    writer.write(tail + _sse("[DONE]") + b"0\r\n\r\n")
    await writer.drain()


# ---- the fleet and its control port -----------------------------------------------------


class Fleet:
    def __init__(self, spec: Json) -> None:
        seed = int(spec.get("seed", 0))
        scale = float(spec["time_scale"])
        self.upstreams = {
            name: Upstream(
                name=name,
                port=int(u["port"]),
                keys=frozenset(u["keys"]),
                models={m: Profile(**p) for m, p in u["models"].items()},
                scale=scale,
                rng=random.Random(f"{seed}/{name}"),
            )
            for name, u in spec["upstreams"].items()
        }

    async def control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            first, *rest = head.decode("latin-1").split("\r\n")
            method, target, _ = first.split(" ", 2)
            length = next(
                (int(h.split(":", 1)[1]) for h in rest if h.lower().startswith("content-length")),
                0,
            )
            body = json.loads(await reader.readexactly(length)) if length else {}
            if method == "POST" and target == "/mode":
                upstream = self.upstreams[body["upstream"]]
                await upstream.set_mode(str(body["mode"]), float(body.get("fraction", 1.0)))
                await _send(writer, 200, {"upstream": upstream.name, "mode": upstream.mode})
            elif target == "/stats":
                stats = {n: dict(u.stats) for n, u in self.upstreams.items()}
                await _send(writer, 200, stats)
            else:
                await _send(writer, 200, {"status": "ok"})
        except (KeyError, ValueError, ConnectionError, asyncio.IncompleteReadError) as exc:
            await _send(writer, 404, _error(repr(exc), "invalid_request_error"))
        finally:
            writer.close()


async def serve(spec: Json) -> None:
    fleet = Fleet(spec)
    for upstream in fleet.upstreams.values():
        await upstream.listen()
    control = await asyncio.start_server(fleet.control, HOST, int(spec["control_port"]))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"fleet: {len(fleet.upstreams)} upstreams up", file=sys.stderr, flush=True)
    await stop.wait()
    control.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, required=True, help="JSON written by routing.py")
    args = parser.parse_args(argv)
    procs.install_uvloop()
    asyncio.run(serve(json.loads(args.spec.read_text())))


if __name__ == "__main__":
    main()
