"""Closed-loop HTTP/1.1 load generator, cheap enough to share a core with the upstream.

Each of ``--concurrency`` workers owns one persistent connection and sends the same
pre-encoded request again as soon as the previous response is complete (closed loop).
Responses are parsed only as far as needed: status line, ``Content-Length`` or chunked
framing, and for streams the first ``data:`` chunk (time to first byte) and ``[DONE]``.
Runs on uvloop when it is installed. Prints one JSON object with the results on stdout.

Usage: ``python bench/load.py --url http://127.0.0.1:8000/v1/chat/completions
--body '{...}' [--header 'Authorization: Bearer k'] [--stream] [--concurrency 16]
[--requests 2000 | --duration 10] [--warmup N] [--max-time 120]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlsplit

import procs

HEAD, LENGTH, CHUNK_SIZE, CHUNK_DATA, TRAILER, UNTIL_EOF = range(6)
SNIPPET = 300
now = time.perf_counter


@dataclass
class Response:
    """What the client keeps of one response."""

    status: int
    ttfb: float | None = None
    saw_done: bool = False
    snippet: bytes = b""


class ClientProtocol(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self, stream: bool) -> None:
        self.stream = stream
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[Response] | None = None
        self.closed = False
        self._reset()

    def _reset(self) -> None:
        self.state = HEAD
        self.remaining = 0
        self.keep_alive = True
        self.resp = Response(status=0)
        self.tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def send(self, request: bytes) -> asyncio.Future[Response]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self._reset()
        self.buf.clear()
        self.transport.write(request)
        return self.waiter

    def data_received(self, data: bytes) -> None:
        self.buf += data
        try:
            self._parse()
        except (ValueError, IndexError) as exc:
            self._fail(ConnectionError(f"bad response framing: {exc}"))

    def _parse(self) -> None:
        buf = self.buf
        while buf and self.waiter is not None:
            if self.state == HEAD:
                if not self._parse_head():
                    return
            elif self.state in (LENGTH, CHUNK_DATA, UNTIL_EOF):
                n = len(buf) if self.state == UNTIL_EOF else min(len(buf), self.remaining)
                self._body(bytes(buf[:n]))
                del buf[:n]
                self.remaining -= n
                if self.remaining == 0 and self.state == LENGTH:
                    self._finish()
                elif self.remaining == 0 and self.state == CHUNK_DATA:
                    self.state = CHUNK_SIZE
            elif self.state == CHUNK_SIZE:
                eol = buf.find(b"\r\n")
                if eol < 0:
                    return
                size = int(bytes(buf[:eol]).split(b";")[0], 16)
                del buf[: eol + 2]
                self.state, self.remaining = (TRAILER, 0) if size == 0 else (CHUNK_DATA, size + 2)
            else:  # TRAILER: header lines until an empty one
                eol = buf.find(b"\r\n")
                if eol < 0:
                    return
                del buf[: eol + 2]
                if eol == 0:
                    self._finish()

    def _parse_head(self) -> bool:
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(buf[:end]).lower()
        del buf[: end + 4]
        status = int(head[9:12])
        if 100 <= status < 200:
            return True
        self.resp.status = status
        length = -1
        chunked = False
        for line in head.split(b"\r\n")[1:]:
            if line.startswith(b"content-length:"):
                length = int(line[15:])
            elif line.startswith(b"transfer-encoding:") and b"chunked" in line:
                chunked = True
            elif line.startswith(b"connection:") and b"close" in line:
                self.keep_alive = False
        if chunked:
            self.state = CHUNK_SIZE
        elif length >= 0:
            self.state, self.remaining = LENGTH, length
            if length == 0:
                self._finish()
        else:
            self.state, self.keep_alive = UNTIL_EOF, False
        return True

    def _body(self, piece: bytes) -> None:
        resp = self.resp
        if resp.status != 200 and len(resp.snippet) < SNIPPET:
            resp.snippet += piece[:SNIPPET]
        if not self.stream:
            return
        window = self.tail + piece
        if resp.ttfb is None and b"data:" in window:
            resp.ttfb = now()
        if b"[DONE]" in window:
            resp.saw_done = True
        self.tail = window[-8:]

    def _finish(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(self.resp)
        if not self.keep_alive and self.transport is not None:
            self.closed = True
            self.transport.close()

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and self.state == UNTIL_EOF:
            self._finish()
        else:
            self._fail(ConnectionError(f"connection lost: {exc}"))


@dataclass
class Stats:
    """Per-phase results shared by all workers."""

    latencies: list[float] = field(default_factory=list)
    ttfbs: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    error_sample: str = ""
    last_done: float = 0.0


@dataclass
class Plan:
    """How much work a phase does: a request budget or a deadline, and a minimum duration.

    With a budget, workers stop once it is spent, unless ``min_until`` has not yet passed:
    then they go on, so a very fast target still yields a measurable run.
    """

    budget: int | None
    deadline: float | None
    min_until: float = 0.0

    def take(self) -> bool:
        if self.deadline is not None and now() >= self.deadline:
            return False
        if self.budget is None:
            return True
        self.budget -= 1
        return self.budget >= 0 or now() < self.min_until


@dataclass
class Target:
    host: str
    port: int
    request: bytes
    stream: bool


class Connection:
    """A worker's connection; reopened after errors or ``Connection: close``."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.proto: ClientProtocol | None = None

    async def get(self) -> ClientProtocol:
        if self.proto is None or self.proto.closed:
            loop = asyncio.get_running_loop()
            t = self.target
            _, proto = await loop.create_connection(
                lambda: ClientProtocol(t.stream), t.host, t.port
            )
            self.proto = proto
        return self.proto


def record(stats: Stats, target: Target, resp: Response, t0: float) -> None:
    t1 = now()
    stats.last_done = t1
    if resp.status != 200:
        kind = f"http_{resp.status}"
    elif target.stream and not resp.saw_done:
        kind = "no_done"
    else:
        stats.latencies.append(t1 - t0)
        if resp.ttfb is not None:
            stats.ttfbs.append(resp.ttfb - t0)
        return
    stats.errors[kind] += 1
    if not stats.error_sample:
        stats.error_sample = f"{kind}: {resp.snippet[:SNIPPET].decode(errors='replace')}"


async def worker(conn: Connection, plan: Plan, stats: Stats) -> None:
    target = conn.target
    while plan.take():
        t0 = now()
        try:
            proto = await conn.get()
            resp = await proto.send(target.request)
        except OSError as exc:  # ConnectionError is an OSError
            stats.errors["conn"] += 1
            stats.last_done = now()
            stats.error_sample = stats.error_sample or f"conn: {exc}"
            await asyncio.sleep(0.01)
            continue
        record(stats, target, resp, t0)


async def run_phase(conns: list[Connection], plan: Plan, max_time: float) -> tuple[Stats, float]:
    """Run all workers until the plan is exhausted; returns stats and elapsed seconds."""
    stats = Stats()
    start = now()
    tasks = [asyncio.ensure_future(worker(c, plan, stats)) for c in conns]
    _, pending = await asyncio.wait(tasks, timeout=max_time)
    for task in pending:
        task.cancel()
        stats.errors["timeout"] += 1
    if pending:
        await asyncio.wait(pending)
        for c in conns:
            if c.proto is not None and c.proto.transport is not None:
                c.proto.transport.close()
            c.proto = None
        stats.last_done = now()
    return stats, max(stats.last_done - start, 1e-9)


def percentile_ms(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return round(ordered[rank - 1] * 1000.0, 3)


def summarize(stats: Stats, elapsed: float, target: Target) -> dict[str, object]:
    ok = len(stats.latencies)
    errors = sum(stats.errors.values())
    return {
        "requests": ok + errors,
        "ok": ok,
        "errors": errors,
        "error_kinds": dict(stats.errors),
        "error_sample": stats.error_sample,
        "elapsed_s": round(elapsed, 4),
        "rps": round(ok / elapsed, 1),
        "p50_ms": percentile_ms(stats.latencies, 50),
        "p90_ms": percentile_ms(stats.latencies, 90),
        "p99_ms": percentile_ms(stats.latencies, 99),
        "max_ms": percentile_ms(stats.latencies, 100),
        "ttfb_p50_ms": percentile_ms(stats.ttfbs, 50) if target.stream else None,
        "ttfb_p99_ms": percentile_ms(stats.ttfbs, 99) if target.stream else None,
    }


def build_request(url: str, body: bytes, headers: list[str]) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise SystemExit(f"only http:// URLs are supported: {url}")
    port = parts.port or 80
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {parts.hostname}:{port}",
        "Content-Type: application/json",
        "Accept: */*",
        f"Content-Length: {len(body)}",
        *headers,
    ]
    return parts.hostname, port, ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def watched_cpu(watch: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each watched process tree (e.g. the server under test)."""
    return {name: procs.tree_cpu_s(pid) for name, pid in watch.items()}


def parse_watch(items: list[str]) -> dict[str, int]:
    watch = {}
    for item in items:
        name, _, pid = item.partition("=")
        watch[name] = int(pid)
    return watch


async def run(args: argparse.Namespace) -> dict[str, object]:
    host, port, request = build_request(args.url, args.body.encode(), args.header)
    target = Target(host, port, request, args.stream)
    conns = [Connection(target) for _ in range(args.concurrency)]
    warmup = args.warmup if args.warmup is not None else max(20, 2 * args.concurrency)
    await run_phase(conns, Plan(warmup, None), args.max_time)
    watch = parse_watch(args.watch)
    cpu0, watched0, busy0 = time.process_time(), watched_cpu(watch), procs.machine_busy_s()
    start = now()
    deadline = start + args.duration if args.duration else None
    budget = None if args.duration else args.requests
    plan = Plan(budget, deadline, start + args.min_time)
    stats, elapsed = await run_phase(conns, plan, args.max_time)
    result = summarize(stats, elapsed, target)
    result["concurrency"] = args.concurrency
    used = {"loadgen": time.process_time() - cpu0}
    used |= {name: cpu - watched0[name] for name, cpu in watched_cpu(watch).items()}
    # busy CPU that none of the above used: other processes, kernel work; high = noisy row
    used["other"] = max(0.0, procs.machine_busy_s() - busy0 - sum(used.values()))
    result["cpu_pct"] = {name: round(100.0 * cpu / elapsed, 1) for name, cpu in used.items()}
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--body", required=True, help="JSON request body (sent verbatim)")
    parser.add_argument("--header", action="append", default=[], help="'Name: value'")
    parser.add_argument("--stream", action="store_true", help="expect an SSE response")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--duration", type=float, default=0.0, help="seconds; overrides N")
    parser.add_argument(
        "--min-time", type=float, default=0.0, help="with --requests: run at least this long"
    )
    parser.add_argument("--warmup", type=int, default=None, help="default max(20, 2*C)")
    parser.add_argument("--max-time", type=float, default=120.0, help="hard cap per phase")
    parser.add_argument(
        "--watch", action="append", default=[], help="NAME=PID: report that tree's CPU use"
    )
    parser.add_argument("--cpu", type=int, default=None, help="pin to this core")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    loop_name = procs.install_uvloop()
    result = asyncio.run(run(args))
    result["loop"] = loop_name
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
