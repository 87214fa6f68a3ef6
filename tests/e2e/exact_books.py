"""The books after a fault: once the reaper had its turn, nothing is held, every charge is
booked once on the account and on its keys, and the balance is credits minus charges."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import func, select

from tests.e2e.ledger_view import Books, read_books
from tokenyard.store import Database
from tokenyard.store.tables import api_keys, ledger


def _keys_and_references(url: str, account_id: str) -> tuple[int, int, int, int]:
    """(reserved on the account's keys, spent by them, ledger rows, distinct references)."""

    async def read() -> tuple[int, int, int, int]:
        db = Database(url)
        try:
            async with db.engine.connect() as conn:
                keys = (
                    await conn.execute(
                        select(
                            func.coalesce(func.sum(api_keys.c.reserved_nano), 0),
                            func.coalesce(func.sum(api_keys.c.spent_nano), 0),
                        ).where(api_keys.c.account_id == account_id)
                    )
                ).one()
                refs = (
                    await conn.execute(
                        select(func.count(), func.count(func.distinct(ledger.c.reference))).where(
                            ledger.c.account_id == account_id
                        )
                    )
                ).one()
        finally:
            await db.close()
        return int(keys[0]), int(keys[1]), int(refs[0]), int(refs[1])

    return asyncio.run(read())


def assert_exact(url: str, account_id: str, *, settle_s: float = 30.0) -> Books:
    """Wait (polling) until no reservation is left, then check the books are exact."""
    deadline = time.monotonic() + settle_s
    books = read_books(url, account_id)
    while (books.reservations or books.reserved) and time.monotonic() < deadline:
        time.sleep(0.1)
        books = read_books(url, account_id)
    assert books.reservations == 0, "a reservation was never released"
    assert books.reserved == 0
    assert books.balance == books.credits - sum(books.charges.values())
    key_reserved, key_spent, rows, references = _keys_and_references(url, account_id)
    assert key_reserved == 0, "a key budget still holds a reservation"
    assert key_spent == sum(books.charges.values())
    assert rows == references, "a ledger reference was booked twice"
    return books
