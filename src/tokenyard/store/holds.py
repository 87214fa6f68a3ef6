"""The per-request money operations — hold, settle, release — on the hot path.

Each is one transaction, and each backend runs it in one step: SQLite in-process (tens of
microseconds, on the event loop unless the database is locked by another process, then in
a thread), PostgreSQL as one call of a SQL function installed by the migrations (one round
trip). The cold operations (credits, reports, the reaper's bookkeeping) stay in
``ledger.py`` on SQLAlchemy. See docs/decisions/0006.
"""

from __future__ import annotations

import asyncio
from typing import Literal, Protocol

from tokenyard.immutable import immutable

Refusal = Literal["account", "key"]


@immutable
class HeldReservation:
    id: str
    account_id: str
    key_id: str | None
    amount_nano: int


@immutable
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


def charge_reference(request_id: str) -> str:
    return f"req:{request_id}"


class HoldStore(Protocol):
    async def reserve(self, held: HeldReservation, owner: str) -> Refusal | None:
        """Hold ``amount`` against the account balance and the key budget, atomically.
        Returns None when held, or which of the two could not cover it."""
        ...

    async def settle(self, charge: Charge) -> bool:
        """Release the reservation and append the charge, in one transaction. False when the
        request was already charged (its reference is unique)."""
        ...

    def settle_at_once(self, charge: Charge) -> bool | None:
        """``settle``, done before this returns when the store can do it without waiting
        (SQLite, one request in flight); None when it cannot, and then nothing was done."""
        ...

    def settle_soon(self, charge: Charge) -> asyncio.Future[bool]:
        """``settle``, begun now; the future has its result once committed. The charge goes
        on whether or not anyone still awaits the future, so a caller that may be cancelled
        shields it (``asyncio.shield``) and must never cancel it: SQLite hands back the
        writer's own queued operation (no task), PostgreSQL a task running ``settle``."""
        ...

    async def release(self, held: HeldReservation) -> bool:
        """Drop the reservation; False when it was already gone."""
        ...

    async def close(self) -> None: ...
