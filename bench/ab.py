"""Same-run A/B of two builds of the gateway: rounds alternated, medians per row.

Usage: ``python bench/ab.py OLD [NEW] [--rounds 4] [run.py options]``

OLD and NEW are git revisions; NEW defaults to ``.``, the working tree as it is. Each
revision is checked out into a temporary git worktree and served through ``run.py
--gateway-cmd`` with this interpreter and ``PYTHONPATH=<worktree>/src``, so that both builds
run on the same dependencies. The rounds alternate (old, new, old, new, ...), so that the
machine's drift, often 15-25 % within an hour on the project's machine, falls on both.

Prints one table: for each row (mode, workers, concurrency) and measure (rps, p99, CPU µs
a request, added p50 at concurrency 1), every round's value for each build, both medians,
and the change from the old median to the new. Options not known here go to ``run.py``,
e.g. ``--concurrency 1,16 --modes non-stream --duration 6``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

MEASURES = (
    ("rps", "rps"),
    ("p99 ms", "p99_ms"),
    ("CPU µs/req", "cpu_us_per_req"),
    ("added p50 ms", "added_p50_ms"),
)
"""(name, the key in run.py's JSON rows)."""

Key = tuple[str, int, int]  # mode, workers, concurrency


def _source(revision: str, tree: Path) -> Path:
    """The ``src`` directory of ``revision``, checked out into ``tree``; the working tree's
    own for ``.``."""
    if revision == ".":
        return REPO / "src"
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", "-f", str(tree), revision],
        check=True,
        capture_output=True,
    )
    return tree / "src"


def _forget_worktrees(into: Path) -> None:
    for tree in into.iterdir():
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)],
            check=False,
            capture_output=True,
        )
    subprocess.run(["git", "-C", str(REPO), "worktree", "prune"], check=False)


def _run(label: str, source: Path, out: Path, run_args: list[str]) -> list[dict[str, Any]]:
    """One run.py invocation for one build; its gateway rows."""
    command = f"env PYTHONPATH={source} {sys.executable} -m tokenyard.cli.main"
    subprocess.run(
        [
            sys.executable,
            str(HERE / "run.py"),
            *run_args,
            "--gateway-cmd",
            command,
            "--label",
            label,
            "--output",
            str(out),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    rows: list[dict[str, Any]] = json.loads(out.read_text())["rows"]
    return [row for row in rows if row["target"] == label]


def _key(row: dict[str, Any]) -> Key:
    return row["mode"], row["workers"], row["concurrency"]


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if value < 10 else f"{value:,.0f}"


def _cell(values: list[float]) -> tuple[str, float | None]:
    """Every round's value, and their median."""
    if not values:
        return "-", None
    return " / ".join(_number(v) for v in values), statistics.median(values)


def table(old: str, new: str, seen: dict[str, dict[Key, dict[str, list[float]]]]) -> list[str]:
    """``seen``: the values of each side ("old", "new"); ``old`` and ``new`` name them."""
    lines = [
        f"| row | measure | {old} (each round) | {new} (each round) | median {old} | "
        f"median {new} | change |",
        "|---|---|---|---|---:|---:|---:|",
    ]
    for key in sorted(seen["old"]):
        mode, workers, concurrency = key
        for name, field in MEASURES:
            if field == "added_p50_ms" and concurrency != 1:
                continue
            old_values, old_median = _cell(seen["old"][key].get(field, []))
            new_values, new_median = _cell(seen["new"].get(key, {}).get(field, []))
            change = (
                f"{(new_median - old_median) / old_median * 100:+.1f} %"
                if old_median and new_median is not None
                else "-"
            )
            lines.append(
                f"| {mode} w={workers} c={concurrency} | {name} | {old_values} | {new_values} "
                f"| {_number(old_median)} | {_number(new_median)} | {change} |"
            )
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("old", help="the revision to compare against")
    p.add_argument("new", nargs="?", default=".", help="default: the working tree")
    p.add_argument("--rounds", type=int, default=4, help="runs of each build, alternated")
    args, run_args = p.parse_known_args()
    revisions = (("old", args.old), ("new", args.new))
    labels = {side: "working tree" if rev == "." else rev for side, rev in revisions}
    seen: dict[str, dict[Key, dict[str, list[float]]]] = {
        side: defaultdict(lambda: defaultdict(list)) for side in labels
    }
    with tempfile.TemporaryDirectory(prefix="tokenyard-ab-") as tmp:
        trees = Path(tmp) / "trees"
        trees.mkdir()
        try:
            sources = {side: _source(revision, trees / side) for side, revision in revisions}
            for round_ in range(args.rounds):
                for side in ("old", "new"):
                    print(f"round {round_ + 1}/{args.rounds}: {labels[side]}", file=sys.stderr)
                    out = Path(tmp) / f"{side}-{round_}.json"
                    for row in _run(labels[side], sources[side], out, run_args):
                        for _name, field in MEASURES:
                            if row.get(field) is not None:
                                seen[side][_key(row)][field].append(float(row[field]))
        finally:
            _forget_worktrees(trees)
    print("\n".join(table(labels["old"], labels["new"], seen)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
