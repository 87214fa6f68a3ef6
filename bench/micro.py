"""Micro-benchmarks of per-request pieces, one table: what each costs, in microseconds.

Usage: ``python bench/micro.py [--repeat 5]``. See bench/README.md ("Micro-benchmarks").

Each row runs one piece in-process, in a loop, ``--repeat`` times, and reports the best
run per operation (the least disturbed by other work on the machine). These were timing
assertions in the test suite; timings belong here, where a slow machine makes a number
worse instead of a test red.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import timeit
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry

from tokenyard.obs.metrics import MetricsSink, Vocabulary
from tokenyard.obs.record import AttemptRecord, RequestRecord
from tokenyard.obs.request_log import to_row
from tokenyard.routing.task import classify
from tokenyard.store import Database
from tokenyard.store.holds import Charge, HeldReservation
from tokenyard.store.request_log import RequestLogWriter, RequestRow, SqlRequestLog
from tokenyard.wire.sse import read_events

LONG_DOC = "The quarterly report lists revenue, costs and outlook per region. " * 14_000
"""About 1 MB of text, as the routing tests' longest input."""


def charged_record(stream: bool) -> RequestRecord:
    """A finished, charged chat request with one successful attempt."""
    record = RequestRecord("req_0123456789abcdef01234567", "chat", stream=stream)
    record.account_id, record.key_id, record.key_prefix = "acc_1", "key_1", "ty-abcd"
    record.requested_model, record.model, record.provider = "gpt-mini", "gpt-mini", "openai-a"
    record.input_tokens, record.cached_tokens, record.output_tokens = 120, 20, 31
    record.cost_nano, record.charged = 123_456_789, True
    attempt = AttemptRecord("openai-a", "gpt-mini", "upstream-gpt-mini", "openai-a#0")
    attempt.end("ok")
    record.attempts.append(attempt)
    record.ttft_ms, record.latency_ms, record.status = 40.0, 340.0, 200
    return record


def best_us(func: Callable[[], object], number: int, repeat: int) -> float:
    return min(timeit.repeat(func, number=number, repeat=repeat)) / number * 1e6


def metrics_emit(repeat: int) -> float:
    words = Vocabulary(["gpt-mini"], ["openai-a"])
    sink = MetricsSink(CollectorRegistry(), words, reserved=lambda: 0)
    record = charged_record(stream=True)
    sink.emit(record)  # the label children exist: the steady state
    return best_us(lambda: sink.emit(record), 2000, repeat)


class _Nowhere:
    async def insert(self, rows: Sequence[RequestRow]) -> None:
        return None


def request_log_emit(repeat: int) -> float:
    """The request log sink's share of the loop: the record to a row, queued."""
    writer = RequestLogWriter(_Nowhere(), max_queue=10**9)  # never started: only queues
    record = charged_record(stream=False)

    def emit() -> None:
        writer.put(to_row(record, prompts=False))

    return best_us(emit, 2000, repeat)


def classify_long(repeat: int) -> float:
    body = {"messages": [{"role": "user", "content": "Please summarize this:\n" + LONG_DOC}]}
    return best_us(lambda: classify(body), 20, repeat)


CONCURRENT = 16


SSE_CHUNK = (
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,'
    b'"model":"m","choices":[{"index":0,"delta":{"content":" fixed"},"finish_reason":null}]}'
    b"\n\n"
)


def sse_events(repeat: int) -> float:
    """Reading one OpenAI stream chunk as it arrives (one network read, one event), on the
    event loop: the SSE reader's share of every chunk of every stream."""
    count = 20_000

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(count):
            yield SSE_CHUNK

    async def read() -> float:
        start = time.perf_counter()
        async for _ in read_events(chunks()):
            pass
        return (time.perf_counter() - start) / count * 1e6

    return min(asyncio.run(read()) for _ in range(repeat))


async def _sqlite_rows(tmp: Path, repeat: int) -> tuple[float, float, float]:
    """(request-log insert per row, hold + charge per request one at a time, the same with
    CONCURRENT requests at once) on a fresh SQLite file, CPU time of this process (the
    writer's thread included), through the writer the gateway uses."""
    database = Database(f"sqlite:///{tmp}/micro.db")
    await database.upgrade()
    store = SqlRequestLog(database.engine, database.sqlite_writer())
    holds = database.hold_store()
    best_insert = best_money = best_group = float("inf")

    async def pay(name: str) -> None:
        held = HeldReservation(name, "acc_1", None, 1_000_000)
        await holds.reserve(held, "micro")
        charge = Charge(
            held.id, "acc_1", None, held.amount_nano, 12_345, 10_000, "gpt-mini", "openai-a",
            120, 0, 31,
        )  # fmt: skip
        await holds.settle(charge)

    try:
        async with database.engine.begin() as conn:
            await conn.exec_driver_sql(
                "INSERT INTO accounts (id, name, balance_nano, reserved_nano, created_at) "
                "VALUES ('acc_1', 'micro', 1000000000000000, 0, '2030-01-01 00:00:00')"
            )
        batch, n = 208, 0  # a multiple of CONCURRENT
        for _ in range(repeat):
            rows = []
            for _ in range(batch):
                n += 1
                record = charged_record(stream=False)
                record.request_id = f"req_{n:024d}"
                record.started = datetime.now(UTC).timestamp()
                rows.append(to_row(record, prompts=False))
            start = time.process_time()
            await store.insert(rows)
            best_insert = min(best_insert, (time.process_time() - start) / batch * 1e6)
            start = time.process_time()
            for i in range(batch):
                await pay(f"hold_{n}_{i}")
            best_money = min(best_money, (time.process_time() - start) / batch * 1e6)
            start = time.process_time()
            for i in range(0, batch, CONCURRENT):
                await asyncio.gather(*(pay(f"group_{n}_{i + j}") for j in range(CONCURRENT)))
            best_group = min(best_group, (time.process_time() - start) / batch * 1e6)
    finally:
        await holds.close()
        await database.close()
    return best_insert, best_money, best_group


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5, help="runs per row; the best is kept")
    args = p.parse_args(argv)
    rows: list[tuple[str, float, str]] = [
        (
            "metrics sink: emit one charged record (steady state)",
            metrics_emit(args.repeat),
            "on the loop, after the response",
        ),
        (
            "request log sink: record to row, queued",
            request_log_emit(args.repeat),
            "on the loop, after the response",
        ),
        (
            "SSE: read one stream chunk (one event) from the upstream",
            sse_events(args.repeat),
            "on the loop, every chunk of every stream",
        ),
        (
            "classify a 1 MB chat prompt (auto routing)",
            classify_long(args.repeat),
            "before routing, auto only",
        ),
    ]
    with tempfile.TemporaryDirectory(prefix="tokenyard-micro-") as tmp:
        insert_us, money_us, group_us = asyncio.run(_sqlite_rows(Path(tmp), args.repeat))
    rows += [
        (
            "request log: insert one row in a batch of 208 (SQLite, CPU)",
            insert_us,
            "SQLite writer, background batch",
        ),
        ("billing: hold + charge one request (SQLite, CPU)", money_us, "on the request path"),
        (
            f"billing: hold + charge, {CONCURRENT} requests at once (SQLite group commit, CPU)",
            group_us,
            "on the request path",
        ),
    ]
    print("| piece | µs per operation | where it runs |")
    print("|---|---:|---|")
    for name, micros, where in rows:
        print(f"| {name} | {micros:,.1f} | {where} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
