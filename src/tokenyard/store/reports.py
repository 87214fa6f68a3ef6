"""Reading the ledger: usage grouped for the admin API, monthly statements, spend."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from tokenyard.errors import ServiceUnavailable
from tokenyard.immutable import immutable
from tokenyard.store.tables import ledger

GroupBy = Literal["model", "day", "key", "provider"]
_GROUP_COLUMN = {
    "model": ledger.c.model,
    "day": ledger.c.day,
    "key": ledger.c.key_id,
    "provider": ledger.c.provider,
}


@immutable
class UsageRow:
    group: str | None
    requests: int
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    provider_cost_nano: int
    cost_nano: int


@immutable
class UsageFilter:
    account_id: str | None = None
    key_id: str | None = None
    model: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class SqlReports:
    def __init__(self, engine: AsyncEngine):
        self._engine = engine

    async def usage(self, where: UsageFilter, group_by: GroupBy) -> list[UsageRow]:
        """Charges grouped by one column; cost is what was charged (markup included)."""
        column = _GROUP_COLUMN[group_by]
        query = (
            select(
                column.label("group"),
                func.count().label("requests"),
                func.coalesce(func.sum(ledger.c.input_tokens), 0).label("input_tokens"),
                func.coalesce(func.sum(ledger.c.cached_tokens), 0).label("cached_tokens"),
                func.coalesce(func.sum(ledger.c.output_tokens), 0).label("output_tokens"),
                func.coalesce(func.sum(ledger.c.provider_cost_nano), 0).label("provider"),
                func.coalesce(-func.sum(ledger.c.amount_nano), 0).label("cost"),
            )
            .where(ledger.c.kind == "charge")
            .group_by(column)
            .order_by(column)
        )
        for value, col in (
            (where.account_id, ledger.c.account_id),
            (where.key_id, ledger.c.key_id),
            (where.model, ledger.c.model),
        ):
            if value is not None:
                query = query.where(col == value)
        if where.since is not None:
            query = query.where(ledger.c.created_at >= where.since)
        if where.until is not None:
            query = query.where(ledger.c.created_at < where.until)
        try:
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query)).all()
        except SQLAlchemyError as exc:
            raise ServiceUnavailable(f"database unavailable: {type(exc).__name__}") from None
        return [
            UsageRow(
                r.group,
                int(r.requests),
                int(r.input_tokens),
                int(r.cached_tokens),
                int(r.output_tokens),
                int(r.provider),
                int(r.cost),
            )
            for r in rows
        ]

    async def credits(self, account_id: str, since: datetime, until: datetime) -> int:
        """The sum of credits, refunds and adjustments in a period."""
        query = select(func.coalesce(func.sum(ledger.c.amount_nano), 0)).where(
            ledger.c.account_id == account_id,
            ledger.c.kind != "charge",
            ledger.c.created_at >= since,
            ledger.c.created_at < until,
        )
        try:
            async with self._engine.connect() as conn:
                return int(await conn.scalar(query) or 0)
        except SQLAlchemyError as exc:
            raise ServiceUnavailable(f"database unavailable: {type(exc).__name__}") from None
