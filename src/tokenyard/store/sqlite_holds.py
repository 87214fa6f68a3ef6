"""Holds on SQLite: each a few indexed statements, run as an operation of the process's
group-committing writer (sqlite_writer.py), so that a call returns once its transaction —
shared with whatever else was queued in the same turn of the event loop — has committed.

None of them raises to refuse: a refused hold or a repeated charge leaves the books as it
found them and says so, so the writer's batch needs no savepoints (sqlite_writer.py).
"""

from __future__ import annotations

import asyncio
import sqlite3

from tokenyard.store.holds import Charge, HeldReservation, Refusal, charge_reference
from tokenyard.store.sqlite_writer import SqliteWriter, value
from tokenyard.store.timestamps import sqlite_now


def _reserve(cursor: sqlite3.Cursor, held: HeldReservation, owner: str) -> Refusal | None:
    amount = held.amount_nano
    if not cursor.execute(
        "UPDATE accounts SET reserved_nano = reserved_nano + ? "
        "WHERE id = ? AND balance_nano - reserved_nano >= ?",
        (amount, held.account_id, amount),
    ).rowcount:
        return "account"  # nothing changed
    if (
        held.key_id is not None
        and not cursor.execute(
            "UPDATE api_keys SET reserved_nano = reserved_nano + ? WHERE id = ? AND "
            "(budget_nano IS NULL OR spent_nano + reserved_nano + ? <= budget_nano)",
            (amount, held.key_id, amount),
        ).rowcount
    ):
        cursor.execute(  # the account's part back
            "UPDATE accounts SET reserved_nano = reserved_nano - ? WHERE id = ?",
            (amount, held.account_id),
        )
        return "key"
    cursor.execute(
        "INSERT INTO reservations (id, account_id, key_id, amount_nano, owner, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (held.id, held.account_id, held.key_id, amount, owner, sqlite_now()),
    )
    return None


def _take_off(cursor: sqlite3.Cursor, held: HeldReservation, cost_nano: int) -> bool:
    """Delete the reservation, take it off the sums and put ``cost_nano`` on them, one
    UPDATE per row (account, key); False when there was no reservation (released meanwhile:
    only the cost, if any, goes on)."""
    found = cursor.execute("DELETE FROM reservations WHERE id = ?", (held.id,)).rowcount > 0
    if not found and not cost_nano:
        return False
    reserved = held.amount_nano if found else 0
    cursor.execute(
        "UPDATE accounts SET balance_nano = balance_nano - ?, reserved_nano = reserved_nano - ? "
        "WHERE id = ?",
        (cost_nano, reserved, held.account_id),
    )
    if held.key_id is not None:
        cursor.execute(
            "UPDATE api_keys SET spent_nano = spent_nano + ?, reserved_nano = reserved_nano - ? "
            "WHERE id = ?",
            (cost_nano, reserved, held.key_id),
        )
    return found


def _unhold(cursor: sqlite3.Cursor, held: HeldReservation) -> bool:
    """Release: the reservation off the sums, nothing charged; False when there was none."""
    return _take_off(cursor, held, 0)


def _settle(cursor: sqlite3.Cursor, charge: Charge) -> bool:
    """Charge once: the ledger row first, whose unique reference refuses a second charge
    before anything else is written; then the hold off and the cost on."""
    created = sqlite_now()
    day = created[:10]  # the UTC day
    try:
        cursor.execute(
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
    except sqlite3.IntegrityError:
        return False  # charged before; the refused statement wrote nothing
    held = HeldReservation(
        charge.request_id, charge.account_id, charge.key_id, charge.reserved_nano
    )
    _take_off(cursor, held, charge.cost_nano)
    return True


class SqliteHolds:
    """Holds, charges and releases through the process's SQLite writer."""

    def __init__(self, writer: SqliteWriter):
        self._writer = writer

    async def reserve(self, held: HeldReservation, owner: str) -> Refusal | None:
        return await self._writer.run(lambda cursor: _reserve(cursor, held, owner))

    async def settle(self, charge: Charge) -> bool:
        return await self._writer.run(lambda cursor: _settle(cursor, charge))

    def settle_at_once(self, charge: Charge) -> bool | None:
        committed = self._writer.at_once(lambda cursor: _settle(cursor, charge))
        return None if committed is None else bool(value(committed[0]))

    def settle_soon(self, charge: Charge) -> asyncio.Future[bool]:
        """The charge queued for the writer's next group commit, which commits it whether or
        not anyone still awaits it: no task of its own is needed to outlive a cancellation.
        Its result is ``_settle``'s, true or false, as ``settle``'s."""
        return self._writer.queue(lambda cursor: _settle(cursor, charge))

    async def release(self, held: HeldReservation) -> bool:
        return await self._writer.run(lambda cursor: _unhold(cursor, held))

    async def close(self) -> None:
        """Nothing of its own to close: the writer is the database's, closed with it
        (``Database.close``), as the request log writes through it too."""
