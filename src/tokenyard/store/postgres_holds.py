"""Holds on PostgreSQL: each operation is one call of a SQL function (installed by
migration 0003), so one round trip and one implicit transaction, through asyncpg.

While the server is away every operation fails at once (a refused connection) or within
the timeouts below (an unreachable or stalled one) as :class:`ServiceUnavailable`, a 503.
A lost connection expires the whole pool: after a restart of the server each pooled
connection is dead, and is replaced on its next use instead of failing one request each.
A connection whose statement timed out is dropped at once: asyncpg would otherwise send the
stalled server a cancel request and wait for it (up to the statement timeout again) before
giving the connection back, doubling the request's wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from tokenyard.errors import ServiceUnavailable
from tokenyard.store.holds import Charge, HeldReservation, Refusal

_T = TypeVar("_T")
_UNAVAILABLE = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,  # e.g. a connection closed under a query
    OSError,  # refused, reset, timed out
)
_LOST = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
)
CONNECT_TIMEOUT_S = 2.0
COMMAND_TIMEOUT_S = 5.0
"""One hold, settle or release is one short statement: far below this even under load. A
stalled server fails the request after it instead of holding it until the client gives up."""


class PostgresHolds:
    def __init__(self, dsn: str):
        self._dsn = dsn
        self._pool: asyncpg.Pool | None = None

    async def _connection_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(
                self._dsn,
                min_size=0,  # nothing to keep re-opening (and warning about) while it is away
                max_size=20,
                timeout=CONNECT_TIMEOUT_S,
                command_timeout=COMMAND_TIMEOUT_S,
            )
        return self._pool

    async def _call(self, query: Callable[[asyncpg.Connection], Awaitable[_T]]) -> _T:
        try:
            pool = await self._connection_pool()
            # The wait for a free connection is bounded too: behind stalled statements.
            async with pool.acquire(timeout=COMMAND_TIMEOUT_S) as connection:
                try:
                    return await query(connection)
                except _LOST:
                    connection.terminate()  # see the module: never wait on a lost server
                    raise
        except _UNAVAILABLE as exc:
            if isinstance(exc, _LOST) and self._pool is not None:
                await self._pool.expire_connections()
            raise ServiceUnavailable(f"database unavailable: {type(exc).__name__}") from None

    async def reserve(self, held: HeldReservation, owner: str) -> Refusal | None:
        refused = await self._call(
            lambda connection: connection.fetchval(
                "SELECT tokenyard_hold($1, $2, $3, $4, $5)",
                held.id,
                held.account_id,
                held.key_id,
                held.amount_nano,
                owner,
            )
        )
        if refused is None:
            return None
        return "account" if refused == "account" else "key"

    async def settle(self, charge: Charge) -> bool:
        charged = await self._call(
            lambda connection: connection.fetchval(
                "SELECT tokenyard_settle($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                charge.request_id,
                charge.account_id,
                charge.key_id,
                charge.reserved_nano,
                charge.cost_nano,
                charge.provider_cost_nano,
                charge.model,
                charge.provider,
                charge.input_tokens,
                charge.cached_tokens,
                charge.output_tokens,
            )
        )
        return bool(charged)

    def settle_at_once(self, charge: Charge) -> bool | None:
        return None  # every statement is a round trip: there is no "at once"

    def settle_soon(self, charge: Charge) -> asyncio.Future[bool]:
        """``settle`` in a task of its own, which a cancelled caller's shield leaves running."""
        return asyncio.ensure_future(self.settle(charge))

    async def release(self, held: HeldReservation) -> bool:
        released = await self._call(
            lambda connection: connection.fetchval("SELECT tokenyard_release($1)", held.id)
        )
        return bool(released)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
