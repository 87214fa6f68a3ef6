"""The overview (charts and totals) and the providers page."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from aiohttp import web

from tokenyard.errors import NotFound
from tokenyard.immutable import immutable
from tokenyard.server.generation import generation_of
from tokenyard.server.state import IDENTITY
from tokenyard.server.ui.charts import Point, chart
from tokenyard.server.ui.format import count, millis, money, money_axis, percent
from tokenyard.server.ui.render import UI, page, render
from tokenyard.server.ui.session import Session
from tokenyard.store.dashboard import SpendBucket, TrafficBucket, Unit, p95_from_bands


@immutable
class Range:
    unit: Unit
    buckets: int
    step: timedelta
    title: str


RANGES = {
    "24h": Range("hour", 24, timedelta(hours=1), "last 24 hours, by hour"),
    "30d": Range("day", 30, timedelta(days=1), "last 30 days, by day"),
}


def bucket_names(now: datetime, span: Range) -> list[str]:
    """The bucket names the store groups by, oldest first, the current one last."""
    if span.unit == "hour":
        start = now.replace(minute=0, second=0, microsecond=0)
        fmt = "%Y-%m-%d %H"
    else:
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        fmt = "%Y-%m-%d"
    return [(start - span.step * i).strftime(fmt) for i in reversed(range(span.buckets))]


def _label(name: str, unit: Unit) -> str:
    return f"{name[11:13]}:00" if unit == "hour" else name[5:]


def _charts(
    names: list[str],
    span: Range,
    spend: dict[str, SpendBucket],
    traffic: dict[str, TrafficBucket] | None,
) -> list[tuple[str, str]]:
    """(caption, SVG) per chart: requests, spend, error rate, p95 latency."""
    empty = SpendBucket(0, 0, 0)
    labels = [_label(n, span.unit) for n in names]
    cost = [
        Point(lbl, spend.get(n, empty).cost_nano, money(spend.get(n, empty).cost_nano))
        for n, lbl in zip(names, labels, strict=True)
    ]
    charts = [("Spend", chart(cost, title="Spend", fmt=money_axis))]
    if traffic is None or not traffic:
        nothing = [Point(lbl, None) for lbl in labels]
        return [
            ("Requests", chart(nothing, title="Requests")),
            *charts,
            ("Error rate (5xx)", chart(nothing, title="Error rate", kind="line")),
            ("p95 latency", chart(nothing, title="p95 latency", kind="line")),
        ]
    calls = [
        Point(lbl, traffic[n].requests if n in traffic else 0)
        for n, lbl in zip(names, labels, strict=True)
    ]
    rate = [
        Point(lbl, traffic[n].errors / traffic[n].requests if n in traffic else None)
        for n, lbl in zip(names, labels, strict=True)
    ]
    p95 = [
        Point(lbl, traffic[n].p95_ms if n in traffic else None)
        for n, lbl in zip(names, labels, strict=True)
    ]
    return [
        ("Requests", chart(calls, title="Requests", fmt=count)),
        *charts,
        ("Error rate (5xx)", chart(rate, title="Error rate", kind="line", fmt=percent)),
        ("p95 latency", chart(p95, title="p95 latency", kind="line", fmt=millis)),
    ]


def _totals(
    spend: dict[str, SpendBucket], traffic: dict[str, TrafficBucket] | None
) -> dict[str, str]:
    totals = {
        "Spend": money(sum(b.cost_nano for b in spend.values())),
        "Charged requests": count(sum(b.charges for b in spend.values())),
        "Tokens": count(sum(b.tokens for b in spend.values())),
    }
    if traffic:
        n = sum(b.requests for b in traffic.values())
        bands: Counter[int] = Counter()
        for b in traffic.values():
            bands.update(dict(b.bands))
        totals["Requests"] = count(n)
        totals["Error rate (5xx)"] = percent(sum(b.errors for b in traffic.values()) / n)
        totals["Rejected (4xx)"] = count(sum(b.rejected for b in traffic.values()))
        totals["p95 latency"] = millis(p95_from_bands(dict(bands)))
    return totals


@page()
async def overview(request: web.Request, session: Session) -> web.Response:
    span_name = request.query.get("range", "24h")
    span = RANGES.get(span_name) or RANGES["24h"]
    account_id = session.account_id
    account = None
    if session.is_admin and request.query.get("account"):
        account_id = request.query["account"]
    if account_id is not None:
        account = await request.app[IDENTITY].store.get_account(account_id)
        if account is None:
            raise NotFound("no such account")
    ui = request.app[UI]
    now = datetime.fromtimestamp(ui.clock(), UTC)
    names = bucket_names(now, span)
    since = datetime.strptime(names[0], "%Y-%m-%d %H" if span.unit == "hour" else "%Y-%m-%d")
    since = since.replace(tzinfo=UTC)
    spend = await ui.dashboard.spend(since, span.unit, account_id)
    traffic = await ui.dashboard.traffic(since, span.unit, account_id)
    return render(
        request,
        "overview.html",
        span=span,
        span_name=span_name if span_name in RANGES else "24h",
        account=account,
        charts=_charts(names, span, spend, traffic),
        totals=_totals(spend, traffic),
        request_log=traffic is not None,
    )


@page(admin=True)
async def providers(request: web.Request, _session: Session) -> web.Response:
    """Upstream health for the operator: never a secret (key labels and states only)."""
    config = generation_of(request).config
    gateway = generation_of(request).gateway
    pools = generation_of(request).pools
    rows = [
        {
            "name": name,
            "api": provider.api,
            "region": provider.region,
            "keys": pools[name].status() if name in pools else [],
        }
        for name, provider in config.providers.items()
    ]
    deployments = [
        {
            "model": model.name,
            "provider": deployment.provider,
            "upstream": deployment.upstream_model,
            "health": gateway.health.snapshot(deployment.key),
        }
        for model in gateway.catalog.models.values()
        for deployment in model.deployments
    ]
    return render(request, "providers.html", providers=rows, deployments=deployments)
