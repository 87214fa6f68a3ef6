"""Where the gateway's time goes during a bench row: py-spy samples, bucketed by step.

``run.py --profile`` starts ``py-spy record`` on the gateway for each row and prints this
summary after it. Run alone on a saved file: ``python bench/spy.py FILE.txt``.

A sample goes to the step of the deepest frame on its stack that names one (so aiohttp's
stream reader counts as the upstream call when our upstream code called it, and as the
server when the server did). Samples of the event loop's thread and of the other threads
are counted apart: the threads share the gateway's core, so their time is the loop's loss.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

STEPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("hold + charge (SQLite / PostgreSQL)", ("store/sqlite_holds", "store/postgres_holds")),
    ("request log (rows, insert)", ("obs/request_log", "store/request_log")),
    ("metrics sink", ("obs/metrics", "obs/tally", "prometheus_client")),
    ("wallet (prices, hold, settle)", ("billing/",)),
    ("auth (keys, principal)", ("identity/",)),
    ("attempts, plan, health, pool", ("gateway/attempts", "routing/", "pool/", "gateway/budget")),
    ("provider adapter, wire", ("providers/openai", "wire/", "gateway/relay")),
    (
        "upstream call (providers/transport)",
        ("providers/http", "providers/transport", "httptools", "aiohttp/client"),
    ),
    (
        "parse chat, flow",
        ("gateway/request", "gateway/flow", "server/client_api", "server/messages_api"),
    ),
    (
        "middleware, record, drain",
        ("server/middleware", "server/shutdown", "server/generation", "obs/record", "server/http"),
    ),
    ("our HTTP server (server/native)", ("server/native", "server/exchange")),
    ("aiohttp server", ("aiohttp/web", "aiohttp/http_", "aiohttp/base_protocol")),
    ("aiosqlite (driver thread)", ("aiosqlite/",)),
    ("sqlalchemy", ("sqlalchemy/",)),
    ("event loop, asyncio", ("asyncio/", "uvloop")),
)
OTHER = "other"


def step_of(frames: list[str]) -> str:
    for frame in reversed(frames):  # deepest first
        for step, needles in STEPS:
            if any(n in frame for n in needles):
                return step
    return OTHER


def read(path: Path) -> tuple[Counter[str], Counter[str]]:
    """Samples per step on the event loop's thread, and on every other thread."""
    loop: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        on_loop = frames[0].endswith("MainThread")
        (loop if on_loop else threads)[step_of(frames[1:])] += int(count)
    return loop, threads


def table(path: Path) -> str:
    loop, threads = read(path)
    total = sum(loop.values()) + sum(threads.values()) or 1
    lines = [
        f"profile {path.name}: {total} samples, shares of all the process's samples",
        "| step | event loop | other threads |",
        "|---|---:|---:|",
    ]
    steps = sorted(set(loop) | set(threads), key=lambda s: -(loop[s] + threads[s]))
    for step in steps:
        lines.append(
            f"| {step} | {100 * loop[step] / total:.1f} % | {100 * threads[step] / total:.1f} % |"
        )
    return "\n".join(lines)


def start(
    pid: int, seconds: float, out: Path, *, delay_s: float = 0.0
) -> subprocess.Popen[bytes] | None:
    """py-spy on ``pid`` for ``seconds`` after ``delay_s`` (None without py-spy)."""
    exe = Path(sys.executable).parent / "py-spy"
    found = str(exe) if exe.exists() else shutil.which("py-spy")
    if found is None:
        print("warning: py-spy not found (pip install py-spy); no profile", file=sys.stderr)
        return None
    cmd = [
        "sh",
        "-c",
        f'sleep {delay_s} && exec "$0" "$@"',
        found,
        "record",
        "--pid",
        str(pid),
        "--rate",
        "200",
        "--duration",
        str(max(1, int(seconds))),
        "--threads",
        "--nonblocking",
        "--format",
        "raw",
        "-o",
        str(out),
    ]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(table(Path(name)))
