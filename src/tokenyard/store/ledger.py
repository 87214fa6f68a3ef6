"""The cold side of the money tables: credits into the append-only ledger, and the
processes that own reservations (for the reaper). Holds and charges — the hot path — are in
``holds.py``.

Every write transaction starts with a write, so SQLite takes its write lock at once and
waits (busy_timeout) instead of failing on a lock upgrade. Balances in ``accounts`` are
caches of the ledger, updated in the same transaction as the rows they summarise.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tokenyard.errors import ServiceUnavailable
from tokenyard.store.holds import HeldReservation
from tokenyard.store.tables import accounts, ledger, processes, reservations


def _unavailable(exc: Exception) -> ServiceUnavailable:
    return ServiceUnavailable(f"database unavailable: {type(exc).__name__}")


MAX_NANO = 2**63 - 1
"""The largest amount the money columns hold (signed 64 bits): no balance, credit or hold
may exceed it."""


async def credit_in(
    conn: AsyncConnection,
    account_id: str,
    amount_nano: int,
    reference: str,
    *,
    kind: str = "credit",
    note: str | None = None,
) -> bool:
    """Within the caller's transaction: the ledger row (unique ``reference``; a duplicate
    raises IntegrityError) and the balance it moves. False when there is no such account
    (the caller must roll back). BalanceOutOfRange when the amount, or the balance it
    makes, does not fit the ledger's 64-bit columns."""
    if not -MAX_NANO <= amount_nano <= MAX_NANO:
        raise BalanceOutOfRange("this amount is beyond what the ledger can hold")
    now = datetime.now(UTC)
    await conn.execute(
        insert(ledger).values(
            account_id=account_id,
            kind=kind,
            amount_nano=amount_nano,
            reference=reference,
            created_at=now,
            day=now.date().isoformat(),
            note=note,
        )
    )
    balance = accounts.c.balance_nano
    changed = await conn.execute(
        update(accounts)
        .where(accounts.c.id == account_id)
        .where(  # the new balance stays within the column (SQLite would turn it into a float)
            balance <= MAX_NANO - amount_nano
            if amount_nano > 0
            else balance >= -MAX_NANO - amount_nano
        )
        .values(balance_nano=balance + amount_nano)
    )
    if not changed.rowcount and await conn.scalar(
        select(accounts.c.id).where(accounts.c.id == account_id)
    ):
        raise BalanceOutOfRange(
            "this amount would move the balance beyond what the ledger can hold"
        )
    return bool(changed.rowcount)


class SqlLedger:
    def __init__(self, engine: AsyncEngine):
        self._engine = engine

    # -- credits -----------------------------------------------------------------------

    async def credit(
        self,
        account_id: str,
        amount_nano: int,
        reference: str,
        *,
        kind: str = "credit",
        note: str | None = None,
    ) -> tuple[int, bool] | None:
        """Add ``amount_nano`` (negative for an adjustment down) once per ``reference``.
        Returns the balance and whether this call applied it; None if no such account."""
        try:
            async with self._engine.begin() as conn:
                if not await credit_in(
                    conn, account_id, amount_nano, reference, kind=kind, note=note
                ):
                    raise _Abort
                return await self._balance(conn, account_id), True
        except _Abort:
            return None
        except IntegrityError:  # the reference exists, or the account does not
            return await self._after_conflict(account_id, reference)
        except SQLAlchemyError as exc:
            raise _unavailable(exc) from None

    async def _after_conflict(self, account_id: str, reference: str) -> tuple[int, bool] | None:
        try:
            async with self._engine.connect() as conn:
                owner = await conn.scalar(
                    select(ledger.c.account_id).where(ledger.c.reference == reference)
                )
                exists = await conn.scalar(select(accounts.c.id).where(accounts.c.id == account_id))
                balance = await self._balance(conn, account_id)
        except SQLAlchemyError as exc:
            raise _unavailable(exc) from None
        if exists is None:
            return None
        if owner != account_id:
            raise DuplicateReference(reference)
        return balance, False

    @staticmethod
    async def _balance(conn: AsyncConnection, account_id: str) -> int:
        value = await conn.scalar(
            select(accounts.c.balance_nano).where(accounts.c.id == account_id)
        )
        return int(value or 0)

    # -- owners of reservations ------------------------------------------------------------

    async def heartbeat(self, owner: str, host: str, pid: int) -> None:
        now = datetime.now(UTC)
        try:
            async with self._engine.begin() as conn:
                changed = await conn.execute(
                    update(processes).where(processes.c.owner == owner).values(heartbeat_at=now)
                )
                if not changed.rowcount:
                    await conn.execute(
                        insert(processes).values(owner=owner, host=host, pid=pid, heartbeat_at=now)
                    )
        except SQLAlchemyError as exc:
            raise _unavailable(exc) from None

    async def owners(self) -> list[tuple[str, str, int, datetime]]:
        """Every owner that holds reservations: (owner, host, pid, last heartbeat or epoch)."""
        query = (
            select(
                reservations.c.owner, processes.c.host, processes.c.pid, processes.c.heartbeat_at
            )
            .select_from(
                reservations.outerjoin(processes, reservations.c.owner == processes.c.owner)
            )
            .distinct()
        )
        try:
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query)).all()
        except SQLAlchemyError as exc:
            raise _unavailable(exc) from None
        epoch = datetime.fromtimestamp(0, UTC)
        return [
            (
                r.owner,
                r.host or "",
                r.pid or 0,
                (
                    r.heartbeat_at.replace(tzinfo=UTC)
                    if r.heartbeat_at and r.heartbeat_at.tzinfo is None
                    else r.heartbeat_at
                )
                or epoch,
            )
            for r in rows
        ]

    async def reservations_of(self, owner: str) -> list[HeldReservation]:
        query = select(reservations).where(reservations.c.owner == owner)
        try:
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query)).all()
        except SQLAlchemyError as exc:
            raise _unavailable(exc) from None
        return [HeldReservation(r.id, r.account_id, r.key_id, r.amount_nano) for r in rows]

    async def forget(self, owner: str) -> None:
        try:
            async with self._engine.begin() as conn:
                await conn.execute(delete(processes).where(processes.c.owner == owner))
        except SQLAlchemyError as exc:
            raise _unavailable(exc) from None


class _Abort(Exception):
    """Leaves a transaction block, rolling it back."""


class DuplicateReference(Exception):
    """A reference already used by another account's entry."""


class BalanceOutOfRange(Exception):
    """A credit or adjustment would move a balance beyond what the ledger can hold (64-bit
    nano-units). Its message is written for the person who asked for the credit."""
