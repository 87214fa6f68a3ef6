"""The process's one SQLite write connection, with group commit.

Every write on the hot path — holds, charges, releases, request-log batches — is an
*operation*: a function of the connection's cursor that runs inside a transaction it does
not open. Operations queued during two turns of the event loop are committed together, in
one transaction (an operation that raises undoes its own part only: see ``_commit``); each
caller's await returns once that transaction has committed, so a result is as durable as
if it had been committed alone. One commit of eight holds costs about what two cost alone
(docs/decisions/0013).

Why two turns: the turn in which the first operation is queued is followed by a poll of the
sockets, whose data (answers from upstreams, new requests) wakes the tasks that queue the
next operations in the turn after it. A commit at the end of that turn takes them too. Most
of a commit's cost is the pages it writes to the WAL, the same few hot pages (the account,
the key, the ends of the ledger's indexes) however many operations share them, so twice
the operations a commit cost about half as much each: +10 % requests a second at
concurrency 16 (docs/benchmarks.md, session 11).

Waiting for others only pays when there are others. While one request is in flight
(the app says so through ``alone``), an operation commits at once, in the caller's own step,
with no loop turn before its commit nor after it. At concurrency 1 those turns, with the
charge's task, cost ~60 µs of a request's ~640 (docs/benchmarks.md, session 9).

The transaction is a handful of indexed statements per operation and no fsync (WAL,
synchronous=NORMAL): tens of microseconds, cheaper than any hop to a thread. So it runs on
the event loop with ``busy_timeout=0``. When another process holds the write lock, the
batch goes to a dedicated thread on a second connection that waits for the lock, so the
loop never blocks on another process.

The one thing in a commit that does touch the disk is SQLite's automatic checkpoint (copying
the WAL into the database, with an fsync), which the committing connection runs itself. So
the loop's connection never checkpoints: every ``CHECKPOINT_EVERY`` commits a checkpoint
runs on the thread instead. It is a RESTART checkpoint, not a passive one: under steady
load a passive checkpoint never catches up with the frames committed meanwhile, so SQLite
never starts the WAL over and it grows by every commit (5 GB after 200,000 requests in
``bench/soak.py``). RESTART holds new writers back until it is done; the loop's connection
does not wait for it and hands its batch to the thread, behind the checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from tokenyard.errors import ServiceUnavailable

T = TypeVar("T")
Operation = Callable[[sqlite3.Cursor], Any]
"""Runs statements through the cursor it is given (one cursor per connection, made once:
``Connection.execute`` makes a new cursor for each statement)."""

CHECKPOINT_EVERY = 256
"""Commits on the event loop's connection between two checkpoints on the thread."""

PAGE_SIZE = 1024
"""Bytes a page, for databases created from now on (an existing file keeps its own). A
commit writes each page it changed to the WAL whole, with a checksum over it, and the hot
path's commits change ~10 pages for a few hundred bytes of rows: 1 KiB pages, SQLite's
default before 3.12, cost a hold and its charge 54 µs instead of 80 at one request a
commit (docs/decisions/0019). Set by ``configure``."""


@dataclass(slots=True)
class Failed:
    """The error an operation raised, in its place among a batch's results. Only failures
    are wrapped: a batch of operations that succeed (the hot path) builds nothing per
    operation but its result."""

    error: BaseException


def value(result: object) -> Any:
    """An operation's result, or the error it raised (SQLite's own as ServiceUnavailable)."""
    if type(result) is Failed:
        raise _converted(result.error)
    return result


def configure(execute: Callable[[str], object], busy_ms: int) -> None:
    """The settings of every connection to the file, ``execute`` being its cursor's: this
    writer's two and the engine's (database.py). The page size comes first: it applies only
    to a file not made yet, and WAL mode, which makes it, fixes it."""
    execute(f"PRAGMA page_size={PAGE_SIZE}")
    execute("PRAGMA journal_mode=WAL")
    execute("PRAGMA synchronous=NORMAL")
    execute(f"PRAGMA busy_timeout={busy_ms}")
    execute("PRAGMA foreign_keys=ON")


def _connect(path: str, busy_ms: int) -> sqlite3.Cursor:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    cursor = conn.cursor()
    configure(cursor.execute, busy_ms)
    if busy_ms == 0:  # the event loop's connection: checkpoints happen on the thread
        cursor.execute("PRAGMA wal_autocheckpoint=0")
    return cursor


def _apply(cursor: sqlite3.Cursor, operation: Operation) -> object:
    """One operation in its own savepoint: its failure undoes its changes only."""
    cursor.execute("SAVEPOINT op")
    try:
        result = operation(cursor)
    except Exception as exc:
        cursor.execute("ROLLBACK TO op")
        cursor.execute("RELEASE op")
        return Failed(exc)
    cursor.execute("RELEASE op")
    return result


def _commit(cursor: sqlite3.Cursor, operations: list[Operation]) -> list[object]:
    """All ``operations`` in one transaction; raises (all undone) when it cannot commit.

    Optimistically, the operations run one after the other, without savepoints. Should one
    raise, the transaction is rolled back and run again with each operation in its own
    savepoint, so that the failure undoes its own part only. The hot path's operations do
    not raise (a refused hold writes nothing and says so), so the slow way is for bugs and
    broken databases: two statements fewer per operation on every request.
    """
    cursor.execute("BEGIN IMMEDIATE")
    try:
        try:
            results = [operation(cursor) for operation in operations]
        except Exception as exc:
            cursor.execute("ROLLBACK")
            if len(operations) == 1:  # its transaction was its savepoint
                return [Failed(exc)]
            cursor.execute("BEGIN IMMEDIATE")
            results = [_apply(cursor, operation) for operation in operations]
        cursor.execute("COMMIT")
    except BaseException:
        if cursor.connection.in_transaction:
            cursor.execute("ROLLBACK")
        raise
    return results


def _locked(exc: sqlite3.Error) -> bool:
    text = str(exc)
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def _unavailable(exc: BaseException) -> ServiceUnavailable:
    return ServiceUnavailable(f"database unavailable: {type(exc).__name__}")


class SqliteWriter:
    def __init__(self, path: str):
        self._path = path
        self._inline: sqlite3.Cursor | None = None
        self._waiting: sqlite3.Cursor | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._queue: list[tuple[Operation, asyncio.Future[Any]]] = []
        self.alone: Callable[[], bool] = lambda: False
        """True while nothing else could join this turn's batch (one request in flight):
        set by the app, so that an operation then commits at once, without a loop turn."""
        self.batches = 0
        """Transactions run on the event loop's connection (what the checkpoints count)."""

    async def run(self, operation: Callable[[sqlite3.Cursor], T]) -> T:
        """Run ``operation`` at once when alone (``at_once``), else in the next group
        commit; its result once committed. Its own exceptions come back as they are, except
        SQLite's, which are ServiceUnavailable. It may run twice (``_commit``), so it must
        do nothing but use the connection."""
        committed = self.at_once(operation)
        if committed is not None:
            return value(committed[0])  # type: ignore[no-any-return]
        return await self.queue(operation)

    def queue(self, operation: Callable[[sqlite3.Cursor], T]) -> asyncio.Future[T]:
        """``operation`` queued for the next group commit; the future has its result once
        committed. It is committed whether or not anyone still awaits the future, unless the
        future is cancelled before the flush (then it never runs): a caller that must not
        undo it on cancellation shields the future instead of awaiting it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if not self._queue:
            loop.call_soon(self._gather)
        self._queue.append((operation, future))
        return future

    def _gather(self) -> None:
        """One turn after the batch's first operation: what the next turn queues joins it."""
        asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        batch = [(op, future) for op, future in self._queue if not future.done()]
        self._queue = []  # a caller cancelled before its turn is never run
        if not batch:
            return
        operations = [op for op, _ in batch]
        try:
            results = self._commit_here(operations)
        except sqlite3.Error as exc:
            _deliver_error(batch, exc)
            return
        if results is None:  # another process holds the write lock: wait off the loop
            waiting = (
                batch[0][1]
                .get_loop()
                .run_in_executor(self._executor(), self._on_thread, operations)
            )
            waiting.add_done_callback(lambda done: _deliver_from(batch, done))
            return
        _deliver(batch, results)

    def at_once(self, operation: Operation) -> list[object] | None:
        """``operation`` committed alone, now, when nothing else would join its commit
        (``alone``) and no other process holds the write lock: its one result (``value``
        reads it); else None, nothing done."""
        if self._queue or not self.alone():
            return None
        try:
            return self._commit_here([operation])
        except sqlite3.Error as exc:
            raise _unavailable(exc) from None

    def _commit_here(self, operations: list[Operation]) -> list[object] | None:
        """``operations`` committed on the event loop's connection; None, nothing written,
        when another process holds the write lock (it never waits for it)."""
        try:
            if self._inline is None:
                self._inline = _connect(self._path, 0)
            results = _commit(self._inline, operations)
        except sqlite3.Error as exc:
            if _locked(exc):
                return None
            raise
        self._committed()
        return results

    def _committed(self) -> None:
        self.batches += 1
        if self.batches % CHECKPOINT_EVERY == 0:
            asyncio.get_running_loop().run_in_executor(self._executor(), self._checkpoint)

    def _executor(self) -> ThreadPoolExecutor:
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="tokenyard-sqlite")
        return self._thread

    def _on_thread(self, operations: list[Operation]) -> list[object]:
        if self._waiting is None:
            self._waiting = _connect(self._path, 10_000)
        return _commit(self._waiting, operations)

    def _checkpoint(self) -> None:
        # A failed checkpoint is left to the next one (the engine's connections checkpoint too).
        if self._waiting is None:
            self._waiting = _connect(self._path, 10_000)
        with contextlib.suppress(sqlite3.Error):
            self._waiting.execute("PRAGMA wal_checkpoint(RESTART)")

    async def close(self) -> None:
        """Stop the thread and close both connections; a later call opens them again."""
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None
        for cursor in (self._inline, self._waiting):
            if cursor is not None:
                cursor.connection.close()
        self._inline = self._waiting = None


def _deliver(batch: list[tuple[Operation, asyncio.Future[Any]]], results: list[object]) -> None:
    for (_, future), result in zip(batch, results, strict=True):
        if future.done():  # its caller was cancelled meanwhile
            continue
        if type(result) is Failed:
            future.set_exception(_converted(result.error))
        else:
            future.set_result(result)


def _deliver_error(
    batch: list[tuple[Operation, asyncio.Future[Any]]], error: BaseException
) -> None:
    """The batch's transaction failed: every operation in it fails with its error."""
    for _, future in batch:
        if not future.done():
            future.set_exception(_converted(error))


def _converted(error: BaseException) -> BaseException:
    return _unavailable(error) if isinstance(error, sqlite3.Error) else error


def _deliver_from(
    batch: list[tuple[Operation, asyncio.Future[Any]]], done: asyncio.Future[list[object]]
) -> None:
    error = done.exception()
    if error is not None:
        _deliver_error(batch, error)
    else:
        _deliver(batch, done.result())
