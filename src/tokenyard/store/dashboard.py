"""What the web dashboard reads: time series of spend (the ledger) and of requests, errors and
latency (the request log), pages of the request log, and lists of accounts and keys.

Spend comes from the ledger, never from the request log, so the dashboard shows what was
charged. Buckets are UTC hours or days named by strings (``2026-05-01 13`` / ``2026-05-01``)
built in SQL, one expression per dialect, so only the grouped rows leave the database.

The p95 latency is estimated from a histogram counted in SQL (fixed latency bands, linear
inside the band, as Prometheus' ``histogram_quantile`` does): portable to SQLite, which has
no percentile function, and bounded in memory however many requests a bucket holds.

The request log (``requests``) is written by another part of the gateway; when it is
missing (an older database) or unreadable, its readers answer None and the dashboard says
"no data" instead of failing.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from tokenyard.errors import ServiceUnavailable
from tokenyard.immutable import immutable
from tokenyard.store.accounts import AccountRow, KeyRow, SqlAccounts
from tokenyard.store.tables import ledger, requests

Unit = Literal["hour", "day"]
BANDS_MS = (
    0.0,
    10,
    25,
    50,
    100,
    250,
    500,
    1000,
    2000,
    4000,
    8000,
    15000,
    30000,
    60000,
    120000,
    600000,
)
"""Upper edges of the latency bands; a last, open band holds everything slower."""


@immutable
class SpendBucket:
    charges: int
    cost_nano: int
    tokens: int


@immutable
class TrafficBucket:
    requests: int
    errors: int  # answered 5xx: the gateway or every upstream failed
    rejected: int  # answered 4xx: refused before or by the upstream (auth, quota, limits …)
    p95_ms: float | None
    bands: tuple[tuple[int, int], ...] = ()  # (latency band, requests): to merge buckets


@immutable
class RequestFilter:
    account_id: str | None = None
    model: str | None = None
    status_class: int | None = None  # 2, 4 or 5: 2xx, 4xx, 5xx
    since: datetime | None = None
    before: tuple[datetime, str] | None = None  # keyset cursor: (started, id) of the last row
    limit: int = 50


@immutable
class LoggedRequest:
    id: str
    started: datetime
    account_id: str | None
    key_prefix: str | None
    model: str | None
    provider: str | None
    status: int
    input_tokens: int
    output_tokens: int
    cost_nano: int
    latency_ms: float
    ttft_ms: float | None
    attempts: int
    error_code: str | None


def p95_from_bands(counts: dict[int, int]) -> float | None:
    """The 95th percentile of a histogram {band index: count}, linear inside the band."""
    total = sum(counts.values())
    if total == 0:
        return None
    rank = 0.95 * total
    seen = 0
    for band in sorted(counts):
        count = counts[band]
        if seen + count >= rank and count:
            low = BANDS_MS[band - 1] if band > 0 else 0.0
            high = BANDS_MS[band] if band < len(BANDS_MS) else BANDS_MS[-1]
            return float(low + (high - low) * (rank - seen) / count)
        seen += count
    return float(BANDS_MS[-1])


class SqlDashboard:
    def __init__(self, engine: AsyncEngine):
        self._engine = engine
        self._accounts = SqlAccounts(engine)
        self._postgres = engine.dialect.name == "postgresql"

    async def accounts(self) -> list[AccountRow]:
        return await self._accounts.list_accounts()

    async def keys(self, account_id: str) -> list[KeyRow]:
        return await self._accounts.list_keys(account_id)

    def _bucket(self, column: Any, unit: Unit) -> ColumnElement[str]:
        if self._postgres:
            pattern = "YYYY-MM-DD HH24" if unit == "hour" else "YYYY-MM-DD"
            return func.to_char(func.timezone("UTC", column), pattern)
        return func.strftime("%Y-%m-%d %H" if unit == "hour" else "%Y-%m-%d", column)

    async def spend(
        self, since: datetime, unit: Unit, account_id: str | None = None
    ) -> dict[str, SpendBucket]:
        """Charges per bucket from ``since`` on: how many, what they cost, tokens used."""
        bucket = self._bucket(ledger.c.created_at, unit).label("bucket")
        query = (
            select(
                bucket,
                func.count().label("charges"),
                func.coalesce(-func.sum(ledger.c.amount_nano), 0).label("cost"),
                func.coalesce(
                    func.sum(
                        func.coalesce(ledger.c.input_tokens, 0)
                        + func.coalesce(ledger.c.output_tokens, 0)
                    ),
                    0,
                ).label("tokens"),
            )
            .where(ledger.c.kind == "charge", ledger.c.created_at >= since)
            .group_by(bucket)
        )
        if account_id is not None:
            query = query.where(ledger.c.account_id == account_id)
        rows = await self._all(query)
        return {
            str(r.bucket): SpendBucket(int(r.charges), int(r.cost), int(r.tokens)) for r in rows
        }

    async def traffic(
        self, since: datetime, unit: Unit, account_id: str | None = None
    ) -> dict[str, TrafficBucket] | None:
        """Requests, errors and p95 latency per bucket; None without a readable request log."""
        bucket = self._bucket(requests.c.started, unit).label("bucket")
        band = _band(requests.c.latency_ms).label("band")
        query = (
            select(
                bucket,
                band,
                func.count().label("n"),
                func.sum(case((requests.c.status >= 500, 1), else_=0)).label("errors"),
                func.sum(
                    case((and_(requests.c.status >= 400, requests.c.status < 500), 1), else_=0)
                ).label("rejected"),
            )
            .where(requests.c.started >= since)
            .group_by(bucket, band)
        )
        if account_id is not None:
            query = query.where(requests.c.account_id == account_id)
        try:
            rows = await self._all(query)
        except ServiceUnavailable:
            return None
        sums: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        bands: dict[str, dict[int, int]] = defaultdict(dict)
        for r in rows:
            total = sums[str(r.bucket)]
            total[0] += int(r.n)
            total[1] += int(r.errors or 0)
            total[2] += int(r.rejected or 0)
            bands[str(r.bucket)][int(r.band)] = int(r.n)
        return {
            name: TrafficBucket(
                n, errors, rejected, p95_from_bands(bands[name]), tuple(bands[name].items())
            )
            for name, (n, errors, rejected) in sums.items()
        }

    async def request_page(self, where: RequestFilter) -> list[LoggedRequest] | None:
        """The newest requests matching ``where``, newest first; None without a request log."""
        c = requests.c
        query = select(
            c.id, c.started, c.account_id, c.key_prefix, c.model, c.provider, c.status,
            c.input_tokens, c.output_tokens, c.cost_nano, c.latency_ms, c.ttft_ms,
            c.attempts, c.error_code,
        ).order_by(c.started.desc(), c.id.desc())  # fmt: skip
        if where.account_id is not None:
            query = query.where(c.account_id == where.account_id)
        if where.model:
            query = query.where(or_(c.model == where.model, c.requested_model == where.model))
        if where.status_class is not None:
            low = where.status_class * 100
            query = query.where(c.status >= low, c.status < low + 100)
        if where.since is not None:
            query = query.where(c.started >= where.since)
        if where.before is not None:
            started, request_id = where.before
            query = query.where(
                or_(c.started < started, and_(c.started == started, c.id < request_id))
            )
        try:
            rows = await self._all(query.limit(where.limit))
        except ServiceUnavailable:
            return None
        return [LoggedRequest(**r._mapping) for r in rows]

    async def _all(self, query: Any) -> list[Any]:
        try:
            async with self._engine.connect() as conn:
                return list((await conn.execute(query)).all())
        except SQLAlchemyError as exc:
            raise ServiceUnavailable(f"database unavailable: {type(exc).__name__}") from None


def _band(column: Any) -> ColumnElement[int]:
    """The index of the latency band a value falls in (len(BANDS_MS) for the open band)."""
    whens = [(column <= edge, index) for index, edge in enumerate(BANDS_MS)]
    return case(*whens, else_=len(BANDS_MS))
