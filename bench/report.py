"""Turn load results into rows, a Markdown table and a JSON file."""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DIRECT = "upstream (direct)"
Row = dict[str, Any]

COLUMNS = [
    ("target", "target"),
    ("mode", "mode"),
    ("workers", "workers"),
    ("concurrency", "conc"),
    ("round", "round"),
    ("requests", "requests"),
    ("errors", "errors"),
    ("rps", "rps"),
    ("p50_ms", "p50 ms"),
    ("p99_ms", "p99 ms"),
    ("added_p50_ms", "added p50 ms"),
    ("ttfb_p50_ms", "TTFB p50 ms"),
    ("cpu_us_per_req", "CPU µs/req"),
]
RATIO_COLUMN = ("rps_vs_litellm", "rps vs litellm")


def cpu_us_per_request(load: dict[str, Any]) -> float | None:
    """CPU time the target used per successful request: unlike rps and latency, barely
    moved by other work on the machine (it does not wait for the core, it counts use)."""
    pct = load["cpu_pct"].get("target")
    if pct is None or not load["ok"]:
        return None
    return round(pct / 100 * load["elapsed_s"] / load["ok"] * 1e6, 1)


def make_row(
    target: str, mode: str, load: dict[str, Any], workers: int | None = None, round_: int = 1
) -> Row:
    return {
        "target": target,
        "mode": mode,
        "workers": workers,
        "concurrency": load["concurrency"],
        "round": round_,
        "requests": load["requests"],
        "errors": load["errors"],
        "rps": load["rps"],
        "p50_ms": load["p50_ms"],
        "p99_ms": load["p99_ms"],
        "added_p50_ms": None,
        "ttfb_p50_ms": load["ttfb_p50_ms"],
        "cpu_us_per_req": cpu_us_per_request(load),
        "rps_vs_litellm": None,
        "load": load,
    }


Key = tuple[str, int, int | None]  # mode, concurrency, workers


def _key(row: Row) -> Key:
    return row["mode"], row["concurrency"], row["workers"]


def _index(rows: Sequence[Row], target: str) -> dict[tuple[Key, int], Row]:
    """A target's rows by (row key, round)."""
    return {(_key(r), r["round"]): r for r in rows if r["target"] == target}


def add_derived(rows: Sequence[Row], gateway: str, litellm: str | None) -> None:
    """Fill ``added_p50_ms`` (vs direct, measured once, in round 1) and ``rps_vs_litellm``
    (gateway rows against LiteLLM's with as many workers, in the same round) in place."""
    direct = _index(rows, DIRECT)
    other = _index(rows, litellm) if litellm else {}
    for row in rows:
        base = direct.get(((row["mode"], row["concurrency"], None), 1))
        if row["target"] != DIRECT and base and None not in (row["p50_ms"], base["p50_ms"]):
            row["added_p50_ms"] = round(row["p50_ms"] - base["p50_ms"], 3)
        peer = other.get((_key(row), row["round"]))
        if row["target"] == gateway and peer and peer["rps"]:
            row["rps_vs_litellm"] = round(row["rps"] / peer["rps"], 2)


def rounds_table(rows: Sequence[Row], gateway: str, litellm: str) -> str:
    """For each row key: the gateway's rps over LiteLLM's in each round and their median;
    the same for CPU time per request (LiteLLM's over the gateway's), which moves less with
    the machine's drift than rps does; and the latency the gateway added, in ms."""
    theirs = _index(rows, litellm)
    rounds: dict[Key, list[Row]] = {}  # the gateway's rows of each key, round by round
    for row in sorted(rows, key=lambda r: r["round"]):
        if row["target"] == gateway:
            rounds.setdefault(_key(row), []).append(row)
    lines = [
        "| mode | workers | conc | rps ratio (each round) | median | "
        "CPU µs/req ratio (each round) | median | added p50 ms (each round) | median |",
        "|---|---:|---:|---|---:|---|---:|---|---:|",
    ]
    for key in sorted(rounds, key=lambda k: (k[0], k[2] or 0, k[1])):
        rps, cpu, added = [], [], []
        for row in rounds[key]:
            if row["added_p50_ms"] is not None:
                added.append(row["added_p50_ms"])
            peer = theirs.get((key, row["round"]))
            if peer is None:
                continue
            if row["rps"] and peer["rps"]:
                rps.append(row["rps"] / peer["rps"])
            if row["cpu_us_per_req"] and peer["cpu_us_per_req"]:
                cpu.append(peer["cpu_us_per_req"] / row["cpu_us_per_req"])
        mode, concurrency, workers = key
        lines.append(
            f"| {mode} | {workers} | {concurrency} | {_ratios(rps)} | {_median(rps)}× | "
            f"{_ratios(cpu)} | {_median(cpu)}× | {_ratios(added, 3)} | {_median(added, 3)} |"
        )
    return "\n".join(lines)


def _ratios(values: Sequence[float], digits: int = 1) -> str:
    return " / ".join(f"{v:.{digits}f}" for v in values) or "-"


def _median(values: Sequence[float], digits: int = 1) -> str:
    return f"{statistics.median(values):.{digits}f}" if values else "-"


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.1f}"
        return f"{value:.2f}" if abs(value) >= 10 else f"{value:.3f}"
    return str(value)


def markdown_table(rows: Sequence[Row], with_ratio: bool) -> str:
    columns = COLUMNS + ([RATIO_COLUMN] if with_ratio else [])
    lines = [
        "| " + " | ".join(title for _, title in columns) + " |",
        "|" + "|".join("---" if key in ("target", "mode") else "---:" for key, _ in columns) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row[key]) for key, _ in columns) + " |")
    return "\n".join(lines)


def process_table(procs: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| target | workers | ready s | RSS idle MB | RSS end MB | core | command |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for p in procs:
        cells = [
            p["target"],
            p.get("workers"),
            p.get("ready_s"),
            p.get("rss_idle_mb"),
            p.get("rss_end_mb"),
            p.get("core"),
            f"`{p.get('command', '')}`",
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def _git_commit(repo: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def environment(repo: Path, settings: dict[str, Any]) -> dict[str, Any]:
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "git_commit": _git_commit(repo),
        **settings,
    }


def write_json(
    path: Path, env: dict[str, Any], procs: Sequence[dict[str, Any]], rows: Sequence[Row]
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"environment": env, "processes": list(procs), "rows": list(rows)}
    path.write_text(json.dumps(doc, indent=2) + "\n")
