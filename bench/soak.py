"""Soak: many requests through the built-in simulator with billing and the request log on;
the gateway's memory must level off and the books must balance.

Usage: ``python bench/soak.py [--requests 1000000] [--concurrency 16] [--samples 20]
[--upstream simulator|http]``. See bench/README.md ("Soak"). Exits 1 when a check fails.

One gateway process (``tokenyard serve``, one worker, SQLite in a temporary directory)
serves ``simulator`` deployments (``api: simulator``: in-process, no network hop, answers
at once) for one credited account and one client key. With ``--upstream http`` the
deployment is ``api: openai`` on the stand-in upstream (``upstream.py``, on the client's
core) instead, so that the upstream HTTP client and its connection pool soak too. The
client is the load generator's closed loop (bench/load.py) run in chunks, alternately
non-streamed and streamed; after each chunk the gateway's RSS (VmRSS of its process tree) and
the database's size on disk are sampled. Checks, at the end:

- **memory**: after the warm-up, every RSS sample stays within ``--rss-tolerance`` of the
  first sample after it. The warm-up is the first ``--warmup-share`` of the requests, and
  at least the first ``--warmup-s`` seconds: the health book keeps every result of the
  last 60 s (routing/health.py), so memory rises by design until a minute of traffic is in
  (a run too short for that is judged on its second half);
- **errors**: every request got a complete 200 answer;
- **request log**: after a clean shutdown (which flushes the log) the ``requests`` table
  has exactly one row per request sent;
- **books**: one charge per request; the account's balance equals its credits minus its
  charges, the key's spend equals the charges, and nothing is left reserved.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import load
import procs
import run

CONFIG = """\
database: sqlite:///{tmp}/soak.db
admin_key: {admin_key}
billing: {{currency: USD, markup: 0.10}}
providers:
  sim:
{provider}
models:
  bench-model:
    context_window: 32768
    max_output_tokens: 1024
    deployments:
      - {{provider: sim, model: sim-model, price: {{input: 0.5, output: 1.5}}}}
"""


SIMULATOR = """\
    api: simulator
    simulator: {ttft_ms: 0, tokens_per_s: 1000000000, max_output_tokens: 24}"""
HTTP = """\
    api: openai
    base_url: http://127.0.0.1:{port}/v1
    keys: [{{key: sk-soak}}]"""


@dataclass
class Sample:
    requests: int
    seconds: float
    rps: float
    rss_mb: float
    db_mb: float
    errors: int


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=1_000_000, help="requests in all")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--samples", type=int, default=20, help="RSS samples (one per chunk)")
    p.add_argument("--warmup-share", type=float, default=0.10, help="not judged for memory")
    p.add_argument("--warmup-s", type=float, default=90.0, help="not judged for memory")
    p.add_argument("--rss-tolerance", type=float, default=0.10, help="allowed RSS drift")
    p.add_argument("--max-chunk-time", type=float, default=3600.0, help="seconds per chunk")
    p.add_argument("--gateway-cmd", default=None, help="command prefix instead of tokenyard")
    p.add_argument(
        "--upstream", choices=("simulator", "http"), default="simulator", help="see above"
    )
    p.add_argument("--keep-tmp", action="store_true", help="keep the database and the log")
    p.add_argument("--json", type=Path, default=None, help="also write the samples here")
    return p.parse_args(argv)


def db_size_mb(tmp: Path) -> float:
    files = [tmp / "soak.db", tmp / "soak.db-wal"]
    return round(sum(f.stat().st_size for f in files if f.exists()) / 1024 / 1024, 1)


async def drive(
    args: argparse.Namespace, port: int, key: str, pid: int, tmp: Path
) -> tuple[list[Sample], int]:
    """Send the requests in chunks, sampling after each; returns the samples and how many
    requests were sent."""
    headers = [f"Authorization: Bearer {key}"]
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    targets = []
    for stream in (False, True):
        body = dict(run.BODY, stream=True) if stream else run.BODY
        host, _, request = load.build_request(url, json.dumps(body).encode(), headers)
        targets.append(load.Target(host, port, request, stream))
    conns = [[load.Connection(t) for _ in range(args.concurrency)] for t in targets]
    samples: list[Sample] = []
    sent = errors = 0
    chunk = max(1, args.requests // args.samples)
    started = time.perf_counter()
    for index in range(args.samples):
        budget = chunk if index < args.samples - 1 else args.requests - sent
        stats, elapsed = await load.run_phase(
            conns[index % 2], load.Plan(budget, None), args.max_chunk_time
        )
        done = len(stats.latencies) + sum(stats.errors.values())
        sent += done
        errors += sum(stats.errors.values())
        if stats.error_sample:
            print(f"  errors: {dict(stats.errors)}; first: {stats.error_sample}", file=sys.stderr)
        samples.append(
            Sample(
                requests=sent,
                seconds=round(time.perf_counter() - started, 1),
                rps=round(done / elapsed, 1),
                rss_mb=procs.tree_rss_mb(pid),
                db_mb=db_size_mb(tmp),
                errors=errors,
            )
        )
        print(f"  {samples[-1]}", file=sys.stderr, flush=True)
    for group in conns:
        for conn in group:
            if conn.proto is not None and conn.proto.transport is not None:
                conn.proto.transport.close()
    return samples, sent


def memory_verdict(
    samples: list[Sample], total: int, args: argparse.Namespace
) -> tuple[Sample | None, float, bool]:
    """(the first sample after warm-up, the largest RSS drift from it, within tolerance)."""
    judged = [
        s
        for s in samples
        if s.requests >= args.warmup_share * total
        and (s.seconds >= args.warmup_s or s.requests >= total / 2)  # a short run: its half
    ]
    if len(judged) < 2:
        return None, 0.0, False  # too few samples to say anything
    base = judged[0].rss_mb
    drift = max(abs(s.rss_mb - base) / base for s in judged)
    return judged[0], drift, drift <= args.rss_tolerance


def books(db: Path) -> dict[str, int]:
    """What the database says at the end (read after the gateway stopped)."""
    with sqlite3.connect(db) as conn:

        def one(sql: str) -> int:
            value = conn.execute(sql).fetchone()[0]
            return int(value or 0)

        return {
            "request_rows": one("SELECT COUNT(*) FROM requests"),
            "charges": one("SELECT COUNT(*) FROM ledger WHERE kind = 'charge'"),
            "charged_nano": -one("SELECT SUM(amount_nano) FROM ledger WHERE kind = 'charge'"),
            "credited_nano": one("SELECT SUM(amount_nano) FROM ledger WHERE kind = 'credit'"),
            "other_entries": one(
                "SELECT COUNT(*) FROM ledger WHERE kind NOT IN ('charge', 'credit')"
            ),
            "balance_nano": one("SELECT SUM(balance_nano) FROM accounts"),
            "reserved_nano": one("SELECT SUM(reserved_nano) FROM accounts"),
            "key_spent_nano": one("SELECT SUM(spent_nano) FROM api_keys"),
            "key_reserved_nano": one("SELECT SUM(reserved_nano) FROM api_keys"),
            "open_holds": one("SELECT COUNT(*) FROM reservations"),
        }


def book_checks(found: dict[str, int], sent: int) -> list[tuple[str, bool]]:
    return [
        (
            f"request log rows = requests ({found['request_rows']} = {sent})",
            found["request_rows"] == sent,
        ),
        (f"one charge per request ({found['charges']} = {sent})", found["charges"] == sent),
        (
            "balance = credits - charges "
            f"({found['balance_nano']} = {found['credited_nano']} - {found['charged_nano']})",
            found["other_entries"] == 0
            and found["balance_nano"] == found["credited_nano"] - found["charged_nano"],
        ),
        (
            f"key spend = charges ({found['key_spent_nano']})",
            found["key_spent_nano"] == found["charged_nano"],
        ),
        (
            f"nothing reserved (account {found['reserved_nano']}, key "
            f"{found['key_reserved_nano']}, holds {found['open_holds']})",
            found["reserved_nano"] == found["key_reserved_nano"] == found["open_holds"] == 0,
        ),
    ]


def table(samples: list[Sample], base: Sample | None) -> str:
    lines = [
        "| requests | seconds | rps | RSS MB | vs after warm-up | DB MB | errors |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in samples:
        if base is None or s.requests < base.requests:
            drift = "warm-up"
        else:
            drift = f"{100 * (s.rss_mb - base.rss_mb) / base.rss_mb:+.1f} %"
        lines.append(
            f"| {s.requests:,} | {s.seconds} | {s.rps:,.0f} | {s.rss_mb} | {drift} | "
            f"{s.db_mb} | {s.errors} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    gw_core, client_core = procs.plan_cores()
    procs.pin_self(client_core)
    procs.install_uvloop()
    prefix = args.gateway_cmd.split() if args.gateway_cmd else run.find_tokenyard()
    if prefix is None:
        print("no `tokenyard` executable (pip install -e . first)", file=sys.stderr)
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="tokenyard-soak-"))
    config = tmp / "soak.yaml"
    upstream = None
    provider = SIMULATOR
    if args.upstream == "http":
        up_port = procs.free_port()
        script = str(Path(__file__).with_name("upstream.py"))
        up_cmd = [sys.executable, script, "--port", str(up_port)]
        upstream = procs.start("upstream", up_cmd, tmp / "upstream.log", client_core)
        procs.wait_ready(upstream, f"http://127.0.0.1:{up_port}/health", 30)
        provider = HTTP.format(port=up_port)
    config.write_text(CONFIG.format(tmp=tmp, admin_key=run.ADMIN_KEY, provider=provider))
    port = procs.free_port()
    cmd = [*prefix, "serve", "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    gateway = procs.start("tokenyard", cmd, tmp / "gateway.log", gw_core)
    try:
        procs.wait_ready(gateway, f"http://127.0.0.1:{port}/readyz", 60)
        key = run.provision_key(f"http://127.0.0.1:{port}")
        print(f"soak: {args.requests:,} requests, c={args.concurrency}, tmp {tmp}", file=sys.stderr)
        samples, sent = asyncio.run(drive(args, port, key, gateway.pid, tmp))
    finally:
        procs.stop(gateway, grace=60.0)  # SIGTERM: the request log is flushed before exit
        if upstream is not None:
            procs.stop(upstream)
    found = books(tmp / "soak.db")
    base, drift, steady = memory_verdict(samples, sent, args)
    errors = samples[-1].errors if samples else 0
    checks = [
        (
            f"RSS within {100 * args.rss_tolerance:.0f} % after warm-up "
            f"(largest drift {100 * drift:.1f} %)",
            steady,
        ),
        (f"no errors ({errors})", errors == 0),
        (f"clean exit (code {gateway.popen.returncode})", gateway.popen.returncode == 0),
        *book_checks(found, sent),
    ]
    print(f"\n## tokenyard soak: {sent:,} requests, concurrency {args.concurrency}\n")
    print(table(samples, base))
    print()
    for text, ok in checks:
        print(f"- {'PASS' if ok else 'FAIL'} {text}")
    passed = all(ok for _, ok in checks)
    print(f"\nsoak {'passed' if passed else 'FAILED'}")
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "args": {k: str(v) for k, v in vars(args).items()},
                    "samples": [vars(s) for s in samples],
                    "books": found,
                    "checks": [{"check": t, "ok": ok} for t, ok in checks],
                    "passed": passed,
                },
                indent=2,
            )
        )
    if args.keep_tmp or not passed:
        print(f"database and gateway log kept in {tmp}", file=sys.stderr)
    else:
        for path in sorted(tmp.iterdir()):
            path.unlink()
        tmp.rmdir()
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
