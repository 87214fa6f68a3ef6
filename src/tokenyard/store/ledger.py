"""The money tables: an append-only ledger, reservations, and the processes that own them.

Every write transaction starts with a write, so SQLite takes its write lock at once and
waits (busy_timeout) instead of failing on a lock upgrade; PostgreSQL re-checks a
conditional UPDATE's WHERE on the locked row, so the checks below are atomic on both.
Balances and reserved sums in ``accounts``/``api_keys`` are caches of the ledger and the
reservations, updated in the same transaction as the rows they summarise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tokenyard.errors import ServiceUnavailable
from tokenyard.store.tables import accounts, api_keys, ledger, processes, reservations

Refusal = Literal["account", "key"]


@dataclass(frozen=True, slots=True)
class Charge:
    """The real cost of one request, and what it used."""

    request_id: str
    account_id: str
    key_id: str | None
    reserved_nano: int
    cost_nano: int
    provider_cost_nano: int
    model: str
    provider: str
    input_tokens: int
    cached_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True)
class HeldReservation:
    id: str
    account_id: str
    key_id: str | None
    amount_nano: int


def _unavailable(exc: Exception) -> ServiceUnavailable:
    return ServiceUnavailable(f"database unavailable: {type(exc).__name__}")


def charge_reference(request_id: str) -> str:
    return f"req:{request_id}"


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
        now = datetime.now(UTC)
        try:
            async with self._engine.begin() as conn:
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
                changed = await conn.execute(
                    update(accounts)
                    .where(accounts.c.id == account_id)
                    .values(balance_nano=accounts.c.balance_nano + amount_nano)
                )
                if not changed.rowcount:
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

    # -- reservations --------------------------------------------------------------------

    async def reserve(self, held: HeldReservation, owner: str) -> Refusal | None:
        """Hold ``amount`` against the account balance and the key budget, atomically.
        Returns None when held, or which of the two could not cover it."""
        amount = held.amount_nano
        try:
            async with self._engine.begin() as conn:
                ok = await conn.execute(
                    update(accounts)
                    .where(
                        accounts.c.id == held.account_id,
                        accounts.c.balance_nano - accounts.c.reserved_nano >= amount,
                    )
                    .values(reserved_nano=accounts.c.reserved_nano + amount)
                )
                if not ok.rowcount:
                    return "account"
                if held.key_id is not None:
                    ok = await conn.execute(
                        update(api_keys)
                        .where(
                            api_keys.c.id == held.key_id,
                            (api_keys.c.budget_nano.is_(None))
                            | (
                                api_keys.c.spent_nano + api_keys.c.reserved_nano + amount
                                <= api_keys.c.budget_nano
                            ),
                        )
                        .values(reserved_nano=api_keys.c.reserved_nano + amount)
                    )
                    if not ok.rowcount:
                        raise _Abort  # undoes the account's part
                await conn.execute(
                    insert(reservations).values(
                        id=held.id,
                        account_id=held.account_id,
                        key_id=held.key_id,
                        amount_nano=amount,
                        owner=owner,
                        created_at=datetime.now(UTC),
                    )
                )
        except _Abort:
            return "key"
        except SQLAlchemyError as exc:
            raise _unavailable(exc) from None
        return None

    async def _unhold(self, conn: AsyncConnection, held: HeldReservation) -> bool:
        gone = await conn.execute(delete(reservations).where(reservations.c.id == held.id))
        if not gone.rowcount:
            return False  # already released (by the reaper) or settled
        await conn.execute(
            update(accounts)
            .where(accounts.c.id == held.account_id)
            .values(reserved_nano=accounts.c.reserved_nano - held.amount_nano)
        )
        if held.key_id is not None:
            await conn.execute(
                update(api_keys)
                .where(api_keys.c.id == held.key_id)
                .values(reserved_nano=api_keys.c.reserved_nano - held.amount_nano)
            )
        return True

    async def release(self, held: HeldReservation) -> bool:
        try:
            async with self._engine.begin() as conn:
                return await self._unhold(conn, held)
        except SQLAlchemyError as exc:
            raise _unavailable(exc) from None

    async def settle(self, charge: Charge) -> bool:
        """Release the reservation and append the charge, in one transaction. False when the
        request was already charged (the reference is unique)."""
        held = HeldReservation(
            charge.request_id, charge.account_id, charge.key_id, charge.reserved_nano
        )
        now = datetime.now(UTC)
        try:
            async with self._engine.begin() as conn:
                await self._unhold(conn, held)
                await conn.execute(
                    insert(ledger).values(
                        account_id=charge.account_id,
                        kind="charge",
                        amount_nano=-charge.cost_nano,
                        reference=charge_reference(charge.request_id),
                        created_at=now,
                        day=now.date().isoformat(),
                        key_id=charge.key_id,
                        model=charge.model,
                        provider=charge.provider,
                        input_tokens=charge.input_tokens,
                        cached_tokens=charge.cached_tokens,
                        output_tokens=charge.output_tokens,
                        provider_cost_nano=charge.provider_cost_nano,
                    )
                )
                await conn.execute(
                    update(accounts)
                    .where(accounts.c.id == charge.account_id)
                    .values(balance_nano=accounts.c.balance_nano - charge.cost_nano)
                )
                if charge.key_id is not None:
                    await conn.execute(
                        update(api_keys)
                        .where(api_keys.c.id == charge.key_id)
                        .values(spent_nano=api_keys.c.spent_nano + charge.cost_nano)
                    )
        except IntegrityError:
            return False  # charged before: the whole transaction is undone
        except SQLAlchemyError as exc:
            raise _unavailable(exc) from None
        return True

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

    async def release_owner(self, owner: str) -> int:
        """Release every reservation of a dead process; returns how many."""
        try:
            async with self._engine.connect() as conn:
                rows = (
                    await conn.execute(select(reservations).where(reservations.c.owner == owner))
                ).all()
            released = 0
            for row in rows:
                held = HeldReservation(row.id, row.account_id, row.key_id, row.amount_nano)
                async with self._engine.begin() as conn:
                    released += await self._unhold(conn, held)
            async with self._engine.begin() as conn:
                await conn.execute(delete(processes).where(processes.c.owner == owner))
        except SQLAlchemyError as exc:
            raise _unavailable(exc) from None
        return released

    async def forget(self, owner: str) -> None:
        try:
            async with self._engine.begin() as conn:
                await conn.execute(delete(processes).where(processes.c.owner == owner))
        except SQLAlchemyError as exc:
            raise _unavailable(exc) from None

    # -- reading ---------------------------------------------------------------------------

    async def outstanding(self) -> int:
        """How many reservations exist (for tests and metrics)."""
        try:
            async with self._engine.connect() as conn:
                return int(await conn.scalar(select(func.count()).select_from(reservations)) or 0)
        except SQLAlchemyError as exc:
            raise _unavailable(exc) from None


class _Abort(Exception):
    """Leaves a transaction block, rolling it back."""


class DuplicateReference(Exception):
    """A reference already used by another account's entry."""
