"""Holds on PostgreSQL: each operation is one call of a SQL function (installed by
migration 0003), so one round trip and one implicit transaction, through asyncpg."""

from __future__ import annotations

import asyncpg

from tokenyard.errors import ServiceUnavailable
from tokenyard.store.holds import Charge, HeldReservation, Refusal

_UNAVAILABLE = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


class PostgresHolds:
    def __init__(self, dsn: str):
        self._dsn = dsn
        self._pool: asyncpg.Pool | None = None

    async def _connection_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(
                self._dsn, min_size=1, max_size=20, command_timeout=10
            )
        return self._pool

    async def reserve(self, held: HeldReservation, owner: str) -> Refusal | None:
        try:
            pool = await self._connection_pool()
            refused = await pool.fetchval(
                "SELECT tokenyard_hold($1, $2, $3, $4, $5)",
                held.id,
                held.account_id,
                held.key_id,
                held.amount_nano,
                owner,
            )
        except _UNAVAILABLE as exc:
            raise ServiceUnavailable(f"database unavailable: {type(exc).__name__}") from None
        if refused is None:
            return None
        return "account" if refused == "account" else "key"

    async def settle(self, charge: Charge) -> bool:
        try:
            pool = await self._connection_pool()
            charged = await pool.fetchval(
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
        except _UNAVAILABLE as exc:
            raise ServiceUnavailable(f"database unavailable: {type(exc).__name__}") from None
        return bool(charged)

    async def release(self, held: HeldReservation) -> bool:
        try:
            pool = await self._connection_pool()
            released = await pool.fetchval("SELECT tokenyard_release($1)", held.id)
        except _UNAVAILABLE as exc:
            raise ServiceUnavailable(f"database unavailable: {type(exc).__name__}") from None
        return bool(released)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
