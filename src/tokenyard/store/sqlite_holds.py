"""Holds on SQLite through the standard library driver, one transaction per call.

A transaction is a handful of indexed statements and no fsync (WAL, synchronous=NORMAL):
tens of microseconds, cheaper than any hop to a thread. So it runs on the event loop with
``busy_timeout=0``; when another process holds the write lock, it is retried in a
dedicated thread on a second connection that waits for the lock, so the loop never blocks
on another process.

The one thing in a commit that does touch the disk is SQLite's automatic checkpoint (copying
the WAL into the database, with an fsync), which the committing connection runs itself. So
the loop's connection never checkpoints: every ``CHECKPOINT_EVERY`` commits a passive
checkpoint runs on the thread instead (profiled: it was about half of the loop's time in
holds and charges at 16 concurrent requests, docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TypeVar

from tokenyard.errors import ServiceUnavailable
from tokenyard.store.holds import Charge, HeldReservation, Refusal, charge_reference

T = TypeVar("T")


def _connect(path: str, busy_ms: int) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA busy_timeout={busy_ms}")
    conn.execute("PRAGMA foreign_keys=ON")
    if busy_ms == 0:  # the event loop's connection: checkpoints happen on the thread
        conn.execute("PRAGMA wal_autocheckpoint=0")
    return conn


CHECKPOINT_EVERY = 256
"""Commits on the event loop's connection between two checkpoints on the thread."""


def _now() -> tuple[str, str]:
    """The timestamp as SQLAlchemy stores it on SQLite (naive UTC), and the UTC day."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%d %H:%M:%S.%f"), now.date().isoformat()


class _Abort(Exception):
    pass


def _reserve(conn: sqlite3.Connection, held: HeldReservation, owner: str) -> Refusal | None:
    amount = held.amount_nano
    conn.execute("BEGIN IMMEDIATE")
    try:
        if not conn.execute(
            "UPDATE accounts SET reserved_nano = reserved_nano + ? "
            "WHERE id = ? AND balance_nano - reserved_nano >= ?",
            (amount, held.account_id, amount),
        ).rowcount:
            raise _Abort("account")
        if (
            held.key_id is not None
            and not conn.execute(
                "UPDATE api_keys SET reserved_nano = reserved_nano + ? WHERE id = ? AND "
                "(budget_nano IS NULL OR spent_nano + reserved_nano + ? <= budget_nano)",
                (amount, held.key_id, amount),
            ).rowcount
        ):
            raise _Abort("key")
        conn.execute(
            "INSERT INTO reservations (id, account_id, key_id, amount_nano, owner, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (held.id, held.account_id, held.key_id, amount, owner, _now()[0]),
        )
    except _Abort as refused:
        conn.execute("ROLLBACK")
        return "account" if refused.args[0] == "account" else "key"
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return None


def _unhold(conn: sqlite3.Connection, held: HeldReservation) -> bool:
    """Delete the reservation and take it off the sums; False when there was none."""
    if not conn.execute("DELETE FROM reservations WHERE id = ?", (held.id,)).rowcount:
        return False
    conn.execute(
        "UPDATE accounts SET reserved_nano = reserved_nano - ? WHERE id = ?",
        (held.amount_nano, held.account_id),
    )
    if held.key_id is not None:
        conn.execute(
            "UPDATE api_keys SET reserved_nano = reserved_nano - ? WHERE id = ?",
            (held.amount_nano, held.key_id),
        )
    return True


def _release(conn: sqlite3.Connection, held: HeldReservation) -> bool:
    conn.execute("BEGIN IMMEDIATE")
    try:
        released = _unhold(conn, held)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return released


def _settle(conn: sqlite3.Connection, charge: Charge) -> bool:
    held = HeldReservation(
        charge.request_id, charge.account_id, charge.key_id, charge.reserved_nano
    )
    created, day = _now()
    conn.execute("BEGIN IMMEDIATE")
    try:
        _unhold(conn, held)
        conn.execute(
            "INSERT INTO ledger (account_id, kind, amount_nano, reference, created_at, day, "
            "key_id, model, provider, input_tokens, cached_tokens, output_tokens, "
            "provider_cost_nano) VALUES (?, 'charge', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                charge.account_id,
                -charge.cost_nano,
                charge_reference(charge.request_id),
                created,
                day,
                charge.key_id,
                charge.model,
                charge.provider,
                charge.input_tokens,
                charge.cached_tokens,
                charge.output_tokens,
                charge.provider_cost_nano,
            ),
        )
        conn.execute(
            "UPDATE accounts SET balance_nano = balance_nano - ? WHERE id = ?",
            (charge.cost_nano, charge.account_id),
        )
        if charge.key_id is not None:
            conn.execute(
                "UPDATE api_keys SET spent_nano = spent_nano + ? WHERE id = ?",
                (charge.cost_nano, charge.key_id),
            )
    except sqlite3.IntegrityError:
        conn.execute("ROLLBACK")
        return False  # charged before
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return True


class SqliteHolds:
    def __init__(self, path: str):
        self._path = path
        self._inline: sqlite3.Connection | None = None
        self._waiting: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="tokenyard-sqlite")
        self._commits = 0

    async def _run(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        try:
            if self._inline is None:
                self._inline = _connect(self._path, 0)
            try:
                result = operation(self._inline)
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
            else:
                self._commits += 1
                if self._commits % CHECKPOINT_EVERY == 0:
                    asyncio.get_running_loop().run_in_executor(self._thread, self._checkpoint)
                return result
            # Another process holds the write lock: wait for it off the event loop.
            return await asyncio.get_running_loop().run_in_executor(
                self._thread, self._on_thread, operation
            )
        except sqlite3.Error as exc:
            raise ServiceUnavailable(f"database unavailable: {type(exc).__name__}") from None

    def _checkpoint(self) -> None:
        # A failed checkpoint is left to the next one (the engine's connections checkpoint too).
        with contextlib.suppress(sqlite3.Error):
            self._on_thread(lambda conn: conn.execute("PRAGMA wal_checkpoint(PASSIVE)"))

    def _on_thread(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        if self._waiting is None:
            self._waiting = _connect(self._path, 10_000)
        return operation(self._waiting)

    async def reserve(self, held: HeldReservation, owner: str) -> Refusal | None:
        return await self._run(lambda conn: _reserve(conn, held, owner))

    async def settle(self, charge: Charge) -> bool:
        return await self._run(lambda conn: _settle(conn, charge))

    async def release(self, held: HeldReservation) -> bool:
        return await self._run(lambda conn: _release(conn, held))

    async def close(self) -> None:
        self._thread.shutdown(wait=True)
        for conn in (self._inline, self._waiting):
            if conn is not None:
                conn.close()
