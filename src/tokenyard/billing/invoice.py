"""Monthly statements: one line per model, as JSON, CSV or a printable HTML page."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import UTC, datetime

from tokenyard.billing.money import format_nano
from tokenyard.errors import InvalidRequest
from tokenyard.immutable import immutable
from tokenyard.store.reports import UsageRow

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """``"2026-11"`` → [2026-11-01, 2026-12-01) in UTC."""
    match = _MONTH.match(month)
    if match is None:
        raise InvalidRequest("month must look like YYYY-MM", param="month")
    year, number = int(match.group(1)), int(match.group(2))
    try:
        start = datetime(year, number, 1, tzinfo=UTC)
        end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=UTC)
    except ValueError:  # year 0000, or the month after 9999-12
        raise InvalidRequest("month is out of range", param="month") from None
    return start, end


@immutable
class Statement:
    account_id: str
    account_name: str
    month: str
    currency: str
    lines: list[UsageRow]
    credits_nano: int

    @property
    def total_nano(self) -> int:
        return sum(line.cost_nano for line in self.lines)

    @property
    def provider_cost_nano(self) -> int:
        return sum(line.provider_cost_nano for line in self.lines)

    def as_json(self) -> dict[str, object]:
        return {
            "account_id": self.account_id,
            "account_name": self.account_name,
            "month": self.month,
            "currency": self.currency,
            "lines": [
                {
                    "model": line.group,
                    "requests": line.requests,
                    "input_tokens": line.input_tokens,
                    "cached_tokens": line.cached_tokens,
                    "output_tokens": line.output_tokens,
                    "provider_cost": format_nano(line.provider_cost_nano),
                    "markup": format_nano(line.cost_nano - line.provider_cost_nano),
                    "total": format_nano(line.cost_nano),
                }
                for line in self.lines
            ],
            "provider_cost": format_nano(self.provider_cost_nano),
            "markup": format_nano(self.total_nano - self.provider_cost_nano),
            "total": format_nano(self.total_nano),
            "credits": format_nano(self.credits_nano),
        }

    def as_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(
            [
                "model",
                "requests",
                "input_tokens",
                "cached_tokens",
                "output_tokens",
                "provider_cost",
                "markup",
                "total",
                "currency",
            ]
        )
        for line in self.as_json()["lines"]:  # type: ignore[attr-defined]
            writer.writerow(
                [
                    line["model"],
                    line["requests"],
                    line["input_tokens"],
                    line["cached_tokens"],
                    line["output_tokens"],
                    line["provider_cost"],
                    line["markup"],
                    line["total"],
                    self.currency,
                ]
            )
        writer.writerow(
            [
                "TOTAL",
                sum(x.requests for x in self.lines),
                sum(x.input_tokens for x in self.lines),
                sum(x.cached_tokens for x in self.lines),
                sum(x.output_tokens for x in self.lines),
                format_nano(self.provider_cost_nano),
                format_nano(self.total_nano - self.provider_cost_nano),
                format_nano(self.total_nano),
                self.currency,
            ]
        )
        return out.getvalue()

    def as_html(self) -> str:
        doc = self.as_json()
        rows = "".join(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(line[k]))}</td>"
                for k in (
                    "model",
                    "requests",
                    "input_tokens",
                    "cached_tokens",
                    "output_tokens",
                    "provider_cost",
                    "markup",
                    "total",
                )
            )
            + "</tr>"
            for line in doc["lines"]  # type: ignore[attr-defined]
        )
        name = html.escape(self.account_name)
        return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Statement {html.escape(self.month)} — {name}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 2rem; color: #111; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border-bottom: 1px solid #ccc; padding: .4rem .6rem; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
tfoot td {{ font-weight: bold; border-top: 2px solid #111; }}
@media print {{ body {{ margin: 0; }} }}
</style></head><body>
<h1>Statement for {name}</h1>
<p>Account {html.escape(self.account_id)} · {html.escape(self.month)} · amounts in
{html.escape(self.currency)}</p>
<table>
<thead><tr><th>Model</th><th>Requests</th><th>Input tokens</th><th>Cached tokens</th>
<th>Output tokens</th><th>Provider cost</th><th>Markup</th><th>Total</th></tr></thead>
<tbody>{rows}</tbody>
<tfoot><tr><td>Total</td><td></td><td></td><td></td><td></td>
<td>{doc["provider_cost"]}</td><td>{doc["markup"]}</td><td>{doc["total"]}</td></tr></tfoot>
</table>
<p>Credits and adjustments this month: {doc["credits"]} {html.escape(self.currency)}</p>
</body></html>
"""
