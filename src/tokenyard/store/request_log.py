"""The request log in SQL: a batched writer that never makes a response wait, keyset pages
for the admin API, and the retention purge.

Rows are queued by :meth:`RequestLogWriter.put` — a list append, nothing else — and written
by one background task in batches with a single ``executemany``: every ``interval_s`` after
the first queued row, or at once when ``batch_size`` rows are waiting. The queue is
bounded: when the database is slower than the traffic (or gone), new rows are dropped and
counted rather than held in memory without end or pushed back onto the requests. A batch
that cannot be written is dropped and counted too; the log is for operators, the ledger is
the books.

On SQLite a batch is an operation of the process's group-committing writer
(sqlite_writer.py), committed with the holds and charges of the same turn of the event loop:
one writer, so the money never waits for the log's lock (each is a few microseconds a row).
On PostgreSQL it goes through SQLAlchemy, in its own transaction.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import asdict, field
from datetime import datetime
from itertools import compress
from operator import attrgetter, is_not
from typing import Any, Protocol

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from tokenyard.errors import ServiceUnavailable
from tokenyard.immutable import immutable
from tokenyard.store.sqlite_writer import SqliteWriter
from tokenyard.store.tables import requests
from tokenyard.store.timestamps import sqlite_datetime, utc

log = logging.getLogger(__name__)

MAX_QUEUE = 10_000
"""Rows waiting to be written, at most (at ~1 kB each without text: ~10 MB)."""
MAX_QUEUED_TEXT = 64 * 1024 * 1024
"""Prompt and completion characters waiting to be written, at most; beyond it a row is
still logged, without its text."""
PURGE_BATCH = 2_000


@immutable
class RequestRow:
    """One logged request, as stored (money in nano-units, times in milliseconds)."""

    id: str
    started: datetime  # UTC
    operation: str
    status: int
    stream: bool = False
    account_id: str | None = None
    key_id: str | None = None
    key_prefix: str | None = None
    requested_model: str | None = None
    model: str | None = None
    provider: str | None = None
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    cost_nano: int = 0
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    attempts: int = 0
    attempt_log: list[dict[str, Any]] | None = field(default=None, hash=False)
    error_type: str | None = None
    error_code: str | None = None
    prompt: str | None = None
    completion: str | None = None

    @property
    def text_size(self) -> int:
        return len(self.prompt or "") + len(self.completion or "")


@immutable
class RequestFilter:
    account_id: str | None = None
    key_id: str | None = None
    model: str | None = None
    provider: str | None = None
    status: int | None = None
    error: str | None = None  # "any", "none", or an error code (or type)
    since: datetime | None = None
    until: datetime | None = None


_COLUMNS = tuple(RequestRow.__dataclass_fields__)


def encode_cursor(row: RequestRow) -> str:
    """Where the next page starts: after this row in (started, id) descending order."""
    raw = f"{utc(row.started).isoformat()}|{row.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """ValueError when the cursor is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        started, request_id = raw.split("|", 1)
        return utc(datetime.fromisoformat(started)), request_id
    except (ValueError, UnicodeDecodeError):
        raise ValueError("not a cursor of this endpoint") from None


class _SqliteRows:
    """Inserts through the process's SQLite writer. A column's value is stored as SQLAlchemy
    would store it, so that a row reads back the same either way (and its text is the same:
    tests/store/test_request_log.py). Only five columns are converted at all; the rest are
    read in one ``attrgetter`` call per row. The floats and the JSON go through SQLAlchemy's
    own bind processors; the start time and the flag are converted here, as those do, in
    C: SQLAlchemy's date processor formats seven fields through a dict (~1.4 µs a row) and
    its boolean one checks the value in Python first."""

    def __init__(self, dialect: Dialect, writer: SqliteWriter):
        columns = list(requests.columns)
        self._names = [c.name for c in columns]
        self._nones = (None,) * len(columns)
        self._inserts: dict[tuple[bool, ...], str] = {}  # by the columns given
        self._read = attrgetter(*self._names)
        index = {c.name: i for i, c in enumerate(columns)}
        self._started, self._stream = index["started"], index["stream"]
        self._latency, self._ttft = index["latency_ms"], index["ttft_ms"]
        self._attempt_log = index["attempt_log"]
        self._float = _processor(requests.c.latency_ms, dialect)
        self._json = _processor(requests.c.attempt_log, dialect)
        self._writer = writer

    def values(self, row: RequestRow) -> list[Any]:
        value = list(self._read(row))
        value[self._started] = sqlite_datetime(value[self._started])
        value[self._stream] = int(value[self._stream])
        value[self._latency] = self._float(value[self._latency])
        value[self._ttft] = self._float(value[self._ttft])
        value[self._attempt_log] = self._json(value[self._attempt_log])
        return value

    async def insert(self, rows: Sequence[RequestRow]) -> None:
        """One ``executemany`` for each set of columns that are not None (most rows of a
        batch have the same), which names only those: a column left out is NULL all the
        same, and a None costs the driver more to bind than the statement to leave out
        (~0.4 µs each; a row has five or more)."""
        batches: dict[tuple[bool, ...], list[list[Any]]] = {}
        for row in rows:
            value = self.values(row)
            given = tuple(map(is_not, value, self._nones))
            batches.setdefault(given, []).append(list(compress(value, given)))
        statements = [(self._statement(given), values) for given, values in batches.items()]

        def insert_all(cursor: sqlite3.Cursor) -> None:
            for sql, values in statements:
                cursor.executemany(sql, values)

        await self._writer.run(insert_all)

    def _statement(self, given: tuple[bool, ...]) -> str:
        sql = self._inserts.get(given)
        if sql is None:
            names = ", ".join(compress(self._names, given))
            marks = ", ".join("?" * sum(given))
            sql = self._inserts[given] = f"INSERT INTO requests ({names}) VALUES ({marks})"  # noqa: S608
        return sql


def _processor(column: Any, dialect: Dialect) -> Callable[[Any], Any]:
    process: Callable[[Any], Any] | None = column.type.dialect_impl(dialect).bind_processor(dialect)
    return process if process is not None else _same


def _same(value: Any) -> Any:
    return value


class SqlRequestLog:
    """The ``requests`` table on either database; on SQLite, inserts go through the
    process's writer when it is given."""

    def __init__(self, engine: AsyncEngine, writer: SqliteWriter | None = None):
        self._engine = engine
        self._sqlite = _SqliteRows(engine.dialect, writer) if writer is not None else None

    async def insert(self, rows: Sequence[RequestRow]) -> None:
        """One transaction, one executemany. Rows become dicts field by field: ``asdict``
        deep-copies every value (the datetime, the attempt list) and cost 40 µs a row."""
        if self._sqlite is not None:
            await self._sqlite.insert(rows)
            return
        values = [{name: getattr(row, name) for name in _COLUMNS} for row in rows]
        for value in values:
            value["started"] = utc(value["started"])
        try:
            async with self._engine.begin() as conn:
                await conn.execute(requests.insert(), values)
        except SQLAlchemyError as exc:
            raise ServiceUnavailable(f"database unavailable: {type(exc).__name__}") from None

    async def page(
        self, where: RequestFilter, limit: int, cursor: str | None = None
    ) -> tuple[list[RequestRow], str | None]:
        """Newest first; the cursor of the next page, or None on the last. Keyset paging on
        (started, id), so rows written meanwhile never shift a page: no row is shown twice."""
        query = select(requests).order_by(requests.c.started.desc(), requests.c.id.desc())
        for value, column in (
            (where.account_id, requests.c.account_id),
            (where.key_id, requests.c.key_id),
            (where.model, requests.c.model),
            (where.provider, requests.c.provider),
            (where.status, requests.c.status),
        ):
            if value is not None:
                query = query.where(column == value)
        if where.error == "any":
            query = query.where(requests.c.error_type.is_not(None))
        elif where.error == "none":
            query = query.where(requests.c.error_type.is_(None))
        elif where.error is not None:
            query = query.where(
                or_(requests.c.error_code == where.error, requests.c.error_type == where.error)
            )
        if where.since is not None:
            query = query.where(requests.c.started >= utc(where.since))
        if where.until is not None:
            query = query.where(requests.c.started < utc(where.until))
        if cursor is not None:
            started, request_id = decode_cursor(cursor)
            query = query.where(
                or_(
                    requests.c.started < started,
                    and_(requests.c.started == started, requests.c.id < request_id),
                )
            )
        try:
            async with self._engine.connect() as conn:
                found = (await conn.execute(query.limit(limit + 1))).all()
        except SQLAlchemyError as exc:
            raise ServiceUnavailable(f"database unavailable: {type(exc).__name__}") from None
        rows = [_row(r._mapping) for r in found[:limit]]
        return rows, encode_cursor(rows[-1]) if len(found) > limit else None

    async def purge(self, before: datetime, batch: int = PURGE_BATCH) -> int:
        """Delete rows started before ``before``, ``batch`` rows per transaction so that no
        lock is held long; returns how many went."""
        oldest = (
            select(requests.c.id)
            .where(requests.c.started < utc(before))
            .limit(batch)
            .scalar_subquery()
        )
        total = 0
        while True:
            try:
                async with self._engine.begin() as conn:
                    result = await conn.execute(delete(requests).where(requests.c.id.in_(oldest)))
            except SQLAlchemyError as exc:
                raise ServiceUnavailable(f"database unavailable: {type(exc).__name__}") from None
            total += result.rowcount
            if result.rowcount < batch:
                return total
            await asyncio.sleep(0.05)  # let the other writers in between batches


def _row(m: Any) -> RequestRow:
    values = {name: m[name] for name in RequestRow.__dataclass_fields__}
    values["started"] = utc(values["started"])
    values["stream"] = bool(values["stream"])
    return RequestRow(**values)


class RowStore(Protocol):
    """Where the writer's batches go (:class:`SqlRequestLog`)."""

    async def insert(self, rows: Sequence[RequestRow]) -> None: ...


class RequestLogWriter:
    """Queues rows and writes them in batches from one background task (see the module)."""

    def __init__(
        self,
        store: RowStore,
        *,
        batch_size: int = 500,
        interval_s: float = 0.1,
        max_queue: int = MAX_QUEUE,
        max_text: int = MAX_QUEUED_TEXT,
    ):
        self._store = store
        self._batch_size = batch_size
        self._interval_s = interval_s
        self._max_queue = max_queue
        self._max_text = max_text
        self._queue: list[RequestRow] = []
        self._text = 0
        self._pending = asyncio.Event()  # something is queued
        self._full = asyncio.Event()  # a whole batch is queued
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._warned = False
        self.dropped = 0
        """Rows not written: the queue was full, or their batch failed."""
        self.text_dropped = 0
        """Rows written without their text: too much text was queued."""
        self.written = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="request-log-writer")

    def put(self, row: RequestRow) -> bool:
        """Queue a row; False when it was dropped. Never waits."""
        if self._closing or len(self._queue) >= self._max_queue:
            self._drop(1, "the request log queue is full; dropping rows")
            return False
        if row.prompt is not None or row.completion is not None:  # most rows have no text
            row = self._count_text(row)
        self._queue.append(row)
        self._pending.set()
        if len(self._queue) >= self._batch_size:
            self._full.set()
        return True

    def _count_text(self, row: RequestRow) -> RequestRow:
        """The row, its text counted as queued; without its text if there is too much."""
        size = row.text_size
        if self._text + size > self._max_text:
            self.text_dropped += 1
            return _without_text(row)
        self._text += size
        return row

    async def close(self, timeout_s: float = 10.0) -> None:
        """Write what is queued, then stop; rows put after this are dropped."""
        self._closing = True
        self._pending.set()
        self._full.set()
        if self._task is None:  # never started: write what there is here
            while self._queue:
                await self._write(self._take())
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
        except TimeoutError:
            self._task.cancel()
            log.warning("the request log was not flushed in time")

    async def _run(self) -> None:
        while True:
            await self._pending.wait()
            if not self._closing:
                # Gather a batch: until it is full or the interval is over.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self._interval_s)
            while self._queue:
                await self._write(self._take())
            if self._closing:
                return
            self._pending.clear()
            self._full.clear()

    def _take(self) -> list[RequestRow]:
        batch, self._queue = self._queue[: self._batch_size], self._queue[self._batch_size :]
        if self._text:  # no row with text queued: nothing to count back
            self._text -= sum(row.text_size for row in batch)
        return batch

    async def _write(self, batch: list[RequestRow]) -> None:
        try:
            await self._store.insert(batch)
        except ServiceUnavailable:
            self._drop(len(batch), "the request log could not be written; dropping rows")
            return
        except Exception:
            log.exception("request log batch failed")
            self._drop(len(batch), "the request log could not be written; dropping rows")
            return
        self.written += len(batch)
        self._warned = False

    def _drop(self, count: int, message: str) -> None:
        """Count dropped rows; warn once per episode (until a batch is written again), not
        on every request while the database is away."""
        if not self._warned:
            self._warned = True
            log.warning(message, extra={"fields": {"rows": count, "dropped": self.dropped}})
        self.dropped += count


def _without_text(row: RequestRow) -> RequestRow:
    values = asdict(row)
    values.update(prompt=None, completion=None)
    return RequestRow(**values)
