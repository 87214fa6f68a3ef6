"""How numbers, money and times read on the dashboard (Jinja2 filters and chart labels)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tokenyard.billing.money import NANO, format_nano


def money(nano: int | None) -> str:
    """Exact decimal string of nano-units (never via a float)."""
    return "—" if nano is None else format_nano(int(nano))


def money_axis(value: float) -> str:
    """An axis tick: the tick is a pixel position already, so a short rounded label is
    honest here; the exact amounts are in the tooltips and tables."""
    text = f"{value / NANO:.9f}".rstrip("0").rstrip(".")
    return text or "0"


def count(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


def millis(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f} ms"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f} %"


def utc(value: datetime | float | None) -> str:
    """A timestamp in UTC, to the second; naive values are UTC (SQLite hands them back so)."""
    if value is None:
        return "—"
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value, UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


FILTERS: dict[str, Callable[..., Any]] = {
    "money": money,
    "count": count,
    "millis": millis,
    "percent": percent,
    "utc": utc,
}
