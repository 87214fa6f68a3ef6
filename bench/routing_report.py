"""The routing simulation's summaries and report: percentiles, shares, the Markdown tables,
the verdict against issue 5's target, and the machine it ran on (bench/routing.py runs it)."""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from routing import Result

REPO_DIR = Path(__file__).resolve().parent.parent
TARGET_SUCCESS = 0.999
TARGET_COST = 0.5
Json = dict[str, Any]


def pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, min(len(ordered) - 1, int(q * len(ordered) + 0.5) - 1))], 1)


def shares(counter: Counter[str], total: int) -> dict[str, float]:
    return {k: round(100.0 * v / total, 1) for k, v in counter.most_common()}


def summarize(run: Json) -> Json:
    results: list[Result] = run.pop("results")
    ok = [r for r in results if r.ok]
    latencies = [r.latency_ms for r in ok]
    client_cost = sum((r.cost for r in results), Decimal(0))
    usage = run["admin_usage"]
    rows = usage.get("rows", []) if isinstance(usage, dict) else []
    admin_cost = sum((Decimal(str(row["cost"])) for row in rows), Decimal(0))
    fleet = run["fleet"] if isinstance(run["fleet"], dict) else {}
    tokens = {
        "admin": [sum(int(row[f"{k}_tokens"]) for row in rows) for k in ("input", "output")],
        "fleet": [
            sum(int(u.get(f"{k}_tokens", 0)) for u in fleet.values())
            for k in ("prompt", "completion")
        ],
    }
    phases: Json = {}
    for phase in dict.fromkeys(r.phase for r in results):
        part = [r for r in results if r.phase == phase]
        good = [r.latency_ms for r in part if r.ok]
        phases[phase] = {
            "requests": len(part),
            "success": round(len(good) / len(part), 5),
            "p95_ms": pct(good, 0.95),
            "max_ms": round(max(good), 1) if good else None,
            "attempts_mean": round(sum(r.attempts for r in part) / len(part), 3),
        }
    return {
        **run,
        "requests": len(results),
        "ok": len(ok),
        "success": round(len(ok) / len(results), 5) if results else 0.0,
        "p50_ms": pct(latencies, 0.50),
        "p95_ms": pct(latencies, 0.95),
        "p99_ms": pct(latencies, 0.99),
        "max_ms": round(max(latencies), 1) if latencies else None,
        "cost_client": str(client_cost),
        "cost_admin": str(admin_cost),
        "cost_match": abs(client_cost - admin_cost) <= Decimal("0.000001") * max(1, len(results)),
        "tokens": tokens,
        "tokens_match": tokens["admin"] == tokens["fleet"],
        "attempts_mean": round(sum(r.attempts for r in ok) / len(ok), 3) if ok else None,
        "providers": shares(Counter(r.provider or "-" for r in ok), len(ok) or 1),
        "models": shares(Counter(r.model or "-" for r in ok), len(ok) or 1),
        "chosen": shares(Counter(_chosen(r.route) for r in ok if r.route), len(ok) or 1),
        "errors": dict(Counter(r.error for r in results if r.error).most_common()),
        "phases": phases,
        "recovery_s": recovery(run, ok),
        "by_kind": {
            k: round(sum(r.ok for r in results if r.kind == k) / n, 5)
            for k, n in Counter(r.kind for r in results).items()
        },
    }


def recovery(run: Json, ok: list[Result]) -> float | None:
    """Seconds from the end of the first outage to the first answer from that provider."""
    if not run["outage"]:
        return None
    upstream = run["outage"][0].split(":", 1)[0]
    back = [t["at_s"] for t in run["triggers"] if t["upstream"] == upstream and t["mode"] == "up"]
    if not back:
        return None
    served = [r.finished_s for r in ok if r.provider == upstream and r.finished_s >= back[0]]
    return round(min(served) - back[0], 2) if served else None


def _chosen(route: str | None) -> str:
    for part in (route or "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == "chosen":
            return value
    return "-"


def markdown(summaries: list[Json], reference: Decimal | None) -> str:
    columns = (
        "policy", "outage", "requests", "success", "p50 ms", "p95 ms", "cost USD",
        "vs premium-all", "attempts", "served by",
    )  # fmt: skip
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for s in summaries:
        cost = Decimal(s["cost_admin"])
        ratio = f"{100 * cost / reference:.1f} %" if reference else "-"
        served = ", ".join(f"{p} {v:.0f} %" for p, v in s["providers"].items())
        outage = "yes" if s["outage"] else "none"
        lines.append(
            f"| {s['policy']} | {outage} | {s['requests']} | {100 * s['success']:.2f} % "
            f"| {s['p50_ms']} | {s['p95_ms']} | {cost:.4f} | {ratio} | {s['attempts_mean']} "
            f"| {served} |"
        )
    lines += [
        "",
        "| policy | success before | success during | success after | p95 ms during "
        "| back on the provider after s |",
        "|---|---|---|---|---|---|",
    ]
    for s in summaries:
        ph = s["phases"]
        if "during" not in ph:
            continue
        cells = [
            f"{100 * ph[p]['success']:.2f} %" if p in ph else "-"
            for p in ("before", "during", "after")
        ]
        back = "-" if s["recovery_s"] is None else s["recovery_s"]
        lines.append(f"| {s['policy']} | {' | '.join(cells)} | {ph['during']['p95_ms']} | {back} |")
    return "\n".join(lines)


def verdict(summaries: list[Json], reference: Decimal | None) -> str:
    auto = next((s for s in summaries if s["policy"] == "auto"), None)
    if auto is None or not reference:
        return "target: not evaluated (needs the auto and premium-all rows)"
    ratio = Decimal(auto["cost_admin"]) / reference
    good = auto["success"] >= TARGET_SUCCESS and ratio <= TARGET_COST
    return (
        f"target {'PASS' if good else 'FAIL'}: auto success {100 * auto['success']:.2f} % "
        f"(need >= {100 * TARGET_SUCCESS:.1f} %), auto cost {100 * ratio:.1f} % of premium-all "
        f"(need <= {100 * TARGET_COST:.0f} %)"
    )


def machine() -> Json:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    try:
        status = subprocess.run(
            ["git", "-C", str(REPO_DIR), "status", "--porcelain", "--untracked-files=no", "src"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout
    except OSError:
        status = ""
    return {"cpu": model, "nproc": os.cpu_count(), "src_modified": bool(status.strip())}


# ---- command line ----------------------------------------------------------------------------
