"""The request log's writer (batches, a bounded queue, flush on close) against a store we
own, and its SQL side (keyset pages, purge in batches) on both databases."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from tokenyard.errors import ServiceUnavailable
from tokenyard.store import Database
from tokenyard.store.request_log import (
    RequestFilter,
    RequestLogWriter,
    RequestRow,
    SqlRequestLog,
)

NOW = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)


def row(
    n: int, *, started: datetime = NOW, text: str | None = None, **fields: object
) -> RequestRow:
    return RequestRow(
        id=f"req_{n:04d}",
        started=started,
        operation="chat",
        status=200,
        prompt=text,
        completion=text,
        **fields,  # type: ignore[arg-type]
    )


class Batches:
    """A store that keeps every batch it was given; it can be made to fail or to stall."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.rows: list[RequestRow] = []
        self.failures = 0
        self.gate: asyncio.Event | None = None

    async def insert(self, rows: Sequence[RequestRow]) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self.failures:
            self.failures -= 1
            raise ServiceUnavailable("database unavailable: OperationalError")
        self.batches.append([r.id for r in rows])
        self.rows += rows


def test_rows_are_written_in_batches_of_at_most_batch_size() -> None:
    async def scenario() -> None:
        store = Batches()
        writer = RequestLogWriter(store, batch_size=10, interval_s=0.05)
        writer.start()
        for n in range(25):
            assert writer.put(row(n))
        await asyncio.sleep(0.2)
        assert [len(b) for b in store.batches] == [10, 10, 5]
        assert [r.id for r in store.rows] == [f"req_{n:04d}" for n in range(25)]
        await writer.close()
        assert writer.written == 25 and writer.dropped == 0

    asyncio.run(scenario())


def test_a_partial_batch_waits_for_the_interval_then_goes_at_once() -> None:
    async def scenario() -> None:
        store = Batches()
        writer = RequestLogWriter(store, batch_size=100, interval_s=0.2)
        writer.start()
        for n in range(3):
            writer.put(row(n))
        await asyncio.sleep(0.05)
        assert store.batches == []  # gathering
        await asyncio.sleep(0.3)
        assert store.batches == [["req_0000", "req_0001", "req_0002"]]
        await writer.close()

    asyncio.run(scenario())


def test_a_full_queue_drops_and_counts_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        store = Batches()
        store.gate = asyncio.Event()  # the database is stuck
        writer = RequestLogWriter(store, batch_size=2, interval_s=0.01, max_queue=5)
        writer.start()
        writer.put(row(0))
        writer.put(row(1))
        await asyncio.sleep(0.05)  # the first batch is taken and stuck in insert
        accepted = [writer.put(row(n)) for n in range(2, 10)]
        assert accepted == [True] * 5 + [False] * 3  # put never waits
        assert writer.dropped == 3
        store.gate.set()
        await writer.close()
        assert len(store.rows) == 7 and writer.written == 7

    with caplog.at_level(logging.WARNING, logger="tokenyard.store.request_log"):
        asyncio.run(scenario())
    assert len([r for r in caplog.records if "full" in r.getMessage()]) == 1


def test_a_failed_batch_is_dropped_and_the_writer_goes_on() -> None:
    async def scenario() -> None:
        store = Batches()
        store.failures = 1
        writer = RequestLogWriter(store, batch_size=10, interval_s=0.01)
        writer.start()
        for n in range(3):
            writer.put(row(n))
        await asyncio.sleep(0.1)
        writer.put(row(3))
        await writer.close()
        assert writer.dropped == 3 and [r.id for r in store.rows] == ["req_0003"]

    asyncio.run(scenario())


def test_close_flushes_what_is_queued_without_waiting_for_the_interval() -> None:
    async def scenario() -> None:
        store = Batches()
        writer = RequestLogWriter(store, batch_size=500, interval_s=60)
        writer.start()
        for n in range(3):
            writer.put(row(n))
        await asyncio.wait_for(writer.close(), 1)
        assert len(store.rows) == 3
        assert writer.put(row(99)) is False  # closed: dropped

        never_started = RequestLogWriter(store, batch_size=500)
        never_started.put(row(7))
        await never_started.close()
        assert store.rows[-1].id == "req_0007"

    asyncio.run(scenario())


def test_too_much_queued_text_keeps_the_row_without_its_text() -> None:
    async def scenario() -> None:
        store = Batches()
        writer = RequestLogWriter(store, max_text=30)
        writer.put(row(0, text="a" * 10))  # 20 characters queued
        writer.put(row(1, text="b" * 10))  # would be 40: kept without text
        await writer.close()
        assert [r.prompt for r in store.rows] == ["a" * 10, None]
        assert writer.text_dropped == 1

    asyncio.run(scenario())


def on_database(url: str, scenario: Callable[[SqlRequestLog], Awaitable[None]]) -> None:
    async def main() -> None:
        database = Database(url)
        await database.upgrade()
        try:
            # On SQLite, through the process's writer, as the gateway writes it.
            await scenario(SqlRequestLog(database.engine, database.sqlite_writer()))
        finally:
            await database.close()

    asyncio.run(main())


def test_pages_are_keyset_ordered_even_with_equal_start_times(database_url: str) -> None:
    async def scenario(log: SqlRequestLog) -> None:
        # Five rows share one start time: the id breaks the tie, so no page repeats a row.
        rows = [row(n, started=NOW - timedelta(seconds=n // 5), model="m") for n in range(12)]
        writer = RequestLogWriter(log, batch_size=5)
        for r in rows:
            writer.put(r)
        await writer.close()
        seen: list[RequestRow] = []
        cursor: str | None = None
        while True:
            page, cursor = await log.page(RequestFilter(model="m"), 5, cursor)
            seen += page
            if cursor is None:
                break
        assert sorted(r.id for r in seen) == sorted(r.id for r in rows)
        assert len(seen) == len({r.id for r in seen})
        keys = [(r.started, r.id) for r in seen]
        assert keys == sorted(keys, reverse=True)
        assert seen[0].started == NOW and seen[0].stream is False

    on_database(database_url, scenario)


def test_purge_deletes_old_rows_in_batches(database_url: str) -> None:
    async def scenario(log: SqlRequestLog) -> None:
        old = [row(100 + n, started=NOW - timedelta(days=40), model="p") for n in range(5)]
        new = [row(200 + n, started=NOW - timedelta(days=1), model="p") for n in range(2)]
        await log.insert(old + new)
        assert await log.purge(NOW - timedelta(days=30), batch=2) == 5
        page, _ = await log.page(RequestFilter(model="p"), 50)
        assert sorted(r.id for r in page) == sorted(r.id for r in new)

    on_database(database_url, scenario)


@contextlib.asynccontextmanager
async def both_ways(tmp_path: Path) -> AsyncIterator[tuple[Database, SqlRequestLog, SqlRequestLog]]:
    """A fresh SQLite database and its request log two ways: through the process's SQLite
    writer (the hot path's) and through SQLAlchemy (PostgreSQL's way, and the reader's)."""
    database = Database(f"sqlite:///{tmp_path / 'log.db'}")
    await database.upgrade()
    try:
        yield (
            database,
            SqlRequestLog(database.engine, database.sqlite_writer()),
            SqlRequestLog(database.engine),
        )
    finally:
        await database.close()


def test_rows_through_the_sqlite_writer_read_back_as_through_sqlalchemy(tmp_path: Path) -> None:
    """The writer's raw insert applies SQLAlchemy's own conversions (times, JSON, booleans):
    a row reads back the same as one SQLAlchemy wrote."""
    full = dict(
        stream=True,
        account_id="acct_1",
        key_id="key_1",
        key_prefix="sk-ty-ab",
        requested_model="auto",
        model="m",
        provider="p",
        input_tokens=12,
        cached_tokens=3,
        output_tokens=7,
        cost_nano=123_456_789,
        latency_ms=12.5,
        ttft_ms=3.25,
        attempts=2,
        attempt_log=[{"provider": "q", "status": 503}, {"provider": "p", "status": 200}],
        error_type=None,
        error_code=None,
    )
    local = NOW.astimezone(timezone(timedelta(hours=8)))  # stored as UTC either way

    async def main() -> None:
        async with both_ways(tmp_path) as (_, raw, orm):
            await raw.insert(
                [
                    row(1, started=local, text="héllo", **full),
                    row(2, error_type="rate_limit_error", error_code="rate_limited"),
                ]
            )
            await orm.insert(
                [
                    row(3, started=local, text="héllo", **full),
                    row(4, error_type="rate_limit_error", error_code="rate_limited"),
                ]
            )
            page, _ = await orm.page(RequestFilter(), 10)
            by_id = {r.id: r for r in page}
            assert by_id["req_0001"] == replace(by_id["req_0003"], id="req_0001")
            assert by_id["req_0002"] == replace(by_id["req_0004"], id="req_0002")
            assert by_id["req_0001"].started == NOW
            assert by_id["req_0001"].attempt_log == full["attempt_log"]
            assert by_id["req_0002"].attempt_log is None and by_id["req_0002"].stream is False

    asyncio.run(main())


def test_rows_through_the_sqlite_writer_are_stored_as_sqlalchemy_stores_them(
    tmp_path: Path,
) -> None:
    """Not only read back the same: the very values in the file are (times as text with
    their microseconds, no attempts as JSON ``null``, the flag as an integer)."""
    full = dict(
        stream=True,
        latency_ms=12.5,
        ttft_ms=3.25,
        attempts=1,
        attempt_log=[{"provider": "p", "status": 200, "duration_ms": 4.5}],
    )
    times = [
        NOW,  # no microseconds
        NOW.replace(microsecond=123_456).astimezone(timezone(timedelta(hours=-5))),
        NOW.replace(tzinfo=None, microsecond=7),  # naive: taken as UTC
    ]
    sql = (
        "SELECT started, stream, latency_ms, ttft_ms, attempt_log, typeof(attempt_log), "
        "typeof(stream), typeof(latency_ms) FROM requests WHERE id = ?"
    )

    async def main() -> None:
        async with both_ways(tmp_path) as (database, raw, orm):
            for n, started in enumerate(times):
                await raw.insert([row(10 * n, started=started, **full), row(10 * n + 1)])
                await orm.insert([row(10 * n + 5, started=started, **full), row(10 * n + 6)])
            async with database.engine.connect() as conn:
                for n in range(len(times)):
                    for mine, theirs in ((10 * n, 10 * n + 5), (10 * n + 1, 10 * n + 6)):
                        ours = (await conn.exec_driver_sql(sql, (f"req_{mine:04d}",))).one()
                        sa = (await conn.exec_driver_sql(sql, (f"req_{theirs:04d}",))).one()
                        assert tuple(ours) == tuple(sa)

    asyncio.run(main())
