"""Reading the books straight from the database, to check what the gateway wrote."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy import func, select

from tokenyard.store import Database
from tokenyard.store.tables import accounts, ledger, reservations


@dataclass
class Books:
    balance: int
    reserved: int
    credits: int
    charges: dict[str, int]  # ledger reference → charged nano-units
    reservations: int


def read_books(url: str, account_id: str) -> Books:
    async def read() -> Books:
        db = Database(url)
        try:
            async with db.engine.connect() as conn:
                row = (
                    await conn.execute(select(accounts).where(accounts.c.id == account_id))
                ).one()
                entries = (
                    await conn.execute(
                        select(ledger.c.reference, ledger.c.kind, ledger.c.amount_nano).where(
                            ledger.c.account_id == account_id
                        )
                    )
                ).all()
                held = await conn.scalar(select(func.count()).select_from(reservations))
        finally:
            await db.close()
        return Books(
            balance=row.balance_nano,
            reserved=row.reserved_nano,
            credits=sum(e.amount_nano for e in entries if e.kind != "charge"),
            charges={e.reference: -e.amount_nano for e in entries if e.kind == "charge"},
            reservations=int(held or 0),
        )

    return asyncio.run(read())
