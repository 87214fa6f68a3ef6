"""Routing simulation: routing policies through scripted provider outages (issue 5).

A fleet of stand-in upstreams (bench/fleet.py) with different prices, latencies and
scripted outages; a fixed, seeded workload (bench/scenario.py); each policy runs the whole
workload through a fresh gateway and a fresh fleet with the same outage script. Prints a
Markdown table (success, p50/p95 latency, cost as charged, attempts, providers) and a
pass/fail line for the target, and writes JSON to bench/results/routing.json.

Usage: ``python bench/routing.py [--requests 3000] [--concurrency 16] [--seed 7]
[--policies premium-all,single,ordered,auto,auto:economy] [--json PATH]``.
See bench/README.md ("Routing simulation") for the method.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import yaml

import procs
import report
from routing_report import machine, markdown, summarize, verdict
from run import find_tokenyard
from scenario import (
    EVENTS,
    MODELS,
    MODES,
    PROVIDERS,
    Event,
    Item,
    fleet_spec,
    gateway_config,
    generate,
)

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
ADMIN_KEY = "bench-admin-key"
PREMIUM = "atlas-pro"
POLICIES: dict[str, tuple[dict[str, Any], bool]] = {
    # name: (what the policy adds to every request body, whether the outage script runs)
    "premium-all": ({"model": PREMIUM}, False),
    "single": ({"model": PREMIUM}, True),
    "ordered": ({"model": PREMIUM, "models": ["orca-70b", "minnow-8b"]}, True),
    "auto": ({"model": "auto"}, True),
    "auto:economy": ({"model": "auto:economy"}, True),
}
Json = dict[str, Any]


@dataclass(slots=True)
class Result:
    """One request as the client saw it."""

    index: int
    kind: str
    stream: bool
    phase: str
    ok: bool
    status: int
    latency_ms: float
    error: str | None = None
    cost: Decimal = Decimal(0)
    attempts: int = 0
    provider: str | None = None
    model: str | None = None
    route: str | None = None
    finished_s: float = 0.0  # since the start of the run


# ---- one request ----------------------------------------------------------------------------


def _check(item: Item, content: str, tool_calls: bool, finish: str | None) -> str | None:
    """Why an answer is incomplete, or None when it is a complete answer."""
    if finish not in ("stop", "tool_calls", "length"):
        return f"finish_reason {finish}"
    if item.kind == "tools":
        return None if tool_calls else "no tool call"
    if not content:
        return "empty answer"
    if item.json_mode:
        try:
            json.loads(content)
        except ValueError:
            return "JSON mode answer is not JSON"
    return None


async def _read_stream(resp: aiohttp.ClientResponse, item: Item) -> tuple[str | None, Decimal]:
    content, tools, finish, cost, done, error = [], False, None, None, False, None
    async for raw in resp.content:
        line = raw.strip()
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            done = True
            break
        event = json.loads(data)
        if "error" in event:
            error = f"stream error: {event['error'].get('code') or event['error'].get('type')}"
        if event.get("usage"):
            cost = event["usage"].get("cost")
        for choice in event.get("choices") or []:
            delta = choice.get("delta") or {}
            content.append(delta.get("content") or "")
            tools = tools or bool(delta.get("tool_calls"))
            finish = choice.get("finish_reason") or finish
    why = error or (None if done else "stream ended without [DONE]")
    why = why or ("no usage.cost" if cost is None else None)
    why = why or _check(item, "".join(content), tools, finish)
    return why, Decimal(str(cost or 0))


def _read_body(doc: Json, item: Item, header_cost: str | None) -> tuple[str | None, Decimal]:
    choice = (doc.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    if header_cost is None:
        return "no x-tokenyard-cost", Decimal(0)
    content, calls = message.get("content") or "", bool(message.get("tool_calls"))
    if "cost" not in (doc.get("usage") or {}):
        return "no usage.cost", Decimal(header_cost)
    return _check(item, content, calls, choice.get("finish_reason")), Decimal(header_cost)


async def send(
    session: aiohttp.ClientSession, base: str, key: str, item: Item, extra: Json, phase: str
) -> Result:
    body = {**item.body, **extra}
    headers = {"Authorization": f"Bearer {key}"}
    started = time.perf_counter()
    result = Result(item.index, item.kind, item.stream, phase, False, 0, 0.0)
    try:
        async with session.post(base + "/v1/chat/completions", json=body, headers=headers) as resp:
            result.status = resp.status
            h = resp.headers
            result.attempts = int(h.get("x-tokenyard-attempts", "0"))
            result.provider = h.get("x-tokenyard-provider")
            result.model = h.get("x-tokenyard-model")
            result.route = h.get("x-tokenyard-route")
            if resp.status != 200:
                doc = await resp.json(content_type=None)
                err = doc.get("error", {}) if isinstance(doc, dict) else {}
                result.error = f"HTTP {resp.status} {err.get('code') or err.get('type')}"
            elif item.stream:
                result.error, result.cost = await _read_stream(resp, item)
            else:
                doc = await resp.json()
                result.error, result.cost = _read_body(doc, item, h.get("x-tokenyard-cost"))
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        result.error = f"client: {type(exc).__name__}"
    result.latency_ms = (time.perf_counter() - started) * 1000.0
    result.ok = result.error is None
    return result


# ---- one policy run --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Trigger:
    index: int  # applied before the request with this index is sent
    upstream: str
    mode: str
    fraction: float


def triggers(events: list[Event], count: int) -> list[Trigger]:
    out = []
    for e in events:
        out.append(Trigger(int(e.start * count), e.upstream, e.mode, e.fraction))
        out.append(Trigger(int(e.end * count), e.upstream, "up", 1.0))
    return sorted(out, key=lambda t: t.index)


def phase_of(index: int, events: list[Event], count: int) -> str:
    """Where a request stands relative to the first event of the script (the outage)."""
    if not events:
        return "no outage"
    first = events[0]
    if index < int(first.start * count):
        return "before"
    return "during" if index < int(first.end * count) else "after"


async def drive(
    items: list[Item],
    extra: Json,
    events: list[Event],
    base: str,
    key: str,
    control: str,
    concurrency: int,
) -> tuple[list[Result], list[Json], float]:
    """Send every item with ``concurrency`` workers; apply the outage script as the
    request index reaches each trigger. Returns results, applied triggers and seconds."""
    pending = triggers(events, len(items))
    applied: list[Json] = []
    results: list[Result] = []
    lock = asyncio.Lock()
    cursor = iter(items)
    timeout = aiohttp.ClientTimeout(total=120)
    connector = aiohttp.TCPConnector(limit=concurrency * 2)
    started = time.perf_counter()
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:

        async def worker() -> None:
            while True:
                async with lock:
                    item = next(cursor, None)
                    if item is None:
                        return
                    while pending and pending[0].index <= item.index:
                        t = pending.pop(0)
                        mode = {"upstream": t.upstream, "mode": t.mode, "fraction": t.fraction}
                        async with session.post(control + "/mode", json=mode) as resp:
                            resp.raise_for_status()
                        at = round(time.perf_counter() - started, 3)
                        applied.append({**mode, "request": t.index, "at_s": at})
                phase = phase_of(item.index, events, len(items))
                result = await send(session, base, key, item, extra, phase)
                result.finished_s = time.perf_counter() - started
                results.append(result)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sorted(results, key=lambda r: r.index), applied, time.perf_counter() - started


class PolicyRun:
    """A fresh fleet and gateway for one policy; started, driven, measured, stopped."""

    def __init__(
        self, args: argparse.Namespace, name: str, tmp: Path, cores: tuple[int | None, int | None]
    ) -> None:
        self.args, self.name, self.tmp = args, name, tmp
        self.gw_core, self.aux_core = cores
        self.started: list[procs.Proc] = []
        tmp.mkdir(parents=True, exist_ok=True)

    def _launch(self, name: str, cmd: list[str], core: int | None, url: str) -> None:
        proc = procs.start(name, cmd, self.tmp / f"{name}.log", core)
        self.started.append(proc)
        procs.wait_ready(proc, url, 60)

    def run(self, items: list[Item]) -> Json:
        args = self.args
        extra, with_outage = POLICIES[self.name]
        events = args.events if with_outage else []
        ports = {name: procs.free_port() for name in PROVIDERS}
        control_port, gw_port = procs.free_port(), procs.free_port()
        spec_path = self.tmp / "fleet.json"
        spec = fleet_spec(ports, control_port, args.time_scale, args.seed)
        spec_path.write_text(json.dumps(spec))
        control = f"http://127.0.0.1:{control_port}"
        fleet_cmd = [sys.executable, str(BENCH_DIR / "fleet.py"), "--spec", str(spec_path)]
        self._launch("fleet", fleet_cmd, self.aux_core, control + "/health")
        config = self.tmp / "tokenyard.yaml"
        config.write_text(
            yaml.safe_dump(
                gateway_config(self.tmp, ports, ADMIN_KEY, args.time_scale), sort_keys=False
            )
        )
        base = f"http://127.0.0.1:{gw_port}"
        serve = ["serve", "--config", str(config), "--host", "127.0.0.1", "--port", str(gw_port)]
        self._launch("gateway", [*args.gateway, *serve], self.gw_core, base + "/readyz")
        account, key = provision(base)
        print(
            f"  {self.name}: {len(items)} requests, outage script: {bool(events)}", file=sys.stderr
        )
        results, applied, seconds = asyncio.run(
            drive(items, extra, events, base, key, control, args.concurrency)
        )
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        _, usage = procs.http_json(
            "GET", f"{base}/admin/usage?account_id={account}&group_by=provider", None, admin
        )
        _, providers = procs.http_json("GET", base + "/admin/providers", None, admin)
        _, fleet_stats = procs.http_json("GET", control + "/stats")
        return {
            "policy": self.name,
            "body": extra,
            "outage": [e.describe() for e in events],
            "triggers": applied,
            "seconds": round(seconds, 2),
            "results": results,
            "admin_usage": usage,
            "admin_providers": providers,
            "fleet": fleet_stats,
        }

    def stop(self) -> None:
        for proc in reversed(self.started):
            procs.stop(proc)


def provision(base: str) -> tuple[str, str]:
    """An account with credit and a client key, through the admin API."""
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    status, account = procs.http_json("POST", base + "/admin/accounts", {"name": "routing"}, admin)
    if status != 201 or not isinstance(account, dict):
        raise RuntimeError(f"POST /admin/accounts -> {status}: {account}")
    credit = {"amount": "100000", "reference": "routing-bench"}
    status, body = procs.http_json(
        "POST", f"{base}/admin/accounts/{account['id']}/credits", credit, admin
    )
    if status not in (200, 201):
        raise RuntimeError(f"crediting the account -> {status}: {body}")
    status, key = procs.http_json(
        "POST", base + "/admin/keys", {"account_id": account["id"], "name": "routing"}, admin
    )
    if status != 201 or not isinstance(key, dict):
        raise RuntimeError(f"POST /admin/keys -> {status}: {key}")
    return str(account["id"]), str(key["key"])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=3000, help="requests per policy")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--seed", type=int, default=7, help="workload and fleet jitter seed")
    p.add_argument("--policies", default=",".join(POLICIES), help=",".join(POLICIES))
    p.add_argument(
        "--event",
        action="append",
        dest="events",
        metavar="UPSTREAM:MODE[@FRACTION]:START-END",
        help="outage script entry (repeatable; replaces the default script), e.g. "
        "premium-cloud:refuse:0.2-0.7 or open-hub:http503@0.25:0.35-0.55; START/END are "
        "fractions of the workload; MODE " + "|".join(MODES),
    )
    p.add_argument(
        "--time-scale",
        type=float,
        default=0.03,
        help="real-world durations (upstream speeds, timeouts, health windows) times this",
    )
    p.add_argument("--json", type=Path, default=BENCH_DIR / "results" / "routing.json")
    p.add_argument("--gateway-cmd", default=None, help="command prefix instead of tokenyard")
    p.add_argument("--keep-tmp", action="store_true", help="keep configs, DBs and logs")
    args = p.parse_args(argv)
    args.policies = [x.strip() for x in args.policies.split(",") if x.strip()]
    unknown = set(args.policies) - set(POLICIES)
    if unknown:
        p.error(f"unknown policies {sorted(unknown)}")
    try:
        args.events = [Event.parse(e) for e in args.events] if args.events else list(EVENTS)
    except ValueError as exc:
        p.error(f"--event: {exc}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    gateway = shlex.split(args.gateway_cmd) if args.gateway_cmd else find_tokenyard()
    if gateway is None:
        print("no tokenyard executable (pip install -e . first)", file=sys.stderr)
        return 1
    args.gateway = gateway
    cores = procs.plan_cores()
    procs.pin_self(cores[1])
    items = generate(args.requests, args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="tokenyard-routing-"))
    summaries: list[Json] = []
    status = 0
    try:
        for name in args.policies:
            run = PolicyRun(args, name, tmp / name.replace(":", "-"), cores)
            try:
                summary = summarize(run.run(items))
                summaries.append(summary)
                print(
                    f"  {name}: {100 * summary['success']:.2f} % ok in {summary['seconds']} s, "
                    f"errors {summary['errors'] or 'none'}",
                    file=sys.stderr,
                )
            finally:
                run.stop()
    except (RuntimeError, OSError, subprocess.SubprocessError, KeyboardInterrupt) as exc:
        print(f"benchmark aborted: {exc}", file=sys.stderr)
        status = 1
    finally:
        if args.keep_tmp or status:
            print(f"logs and configs kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    reference = next(
        (Decimal(s["cost_admin"]) for s in summaries if s["policy"] == "premium-all"), None
    )
    env = report.environment(REPO_DIR, {"args": _plain(vars(args)), **machine()})
    doc = {
        "environment": env,
        "catalog": {"providers": PROVIDERS, "models": {k: m.describe() for k, m in MODELS.items()}},
        "workload": dict(Counter(i.kind for i in items)),
        "policies": summaries,
        "verdict": verdict(summaries, reference),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    dirty = " + uncommitted changes in src/" if env["src_modified"] else ""
    print(f"\n## routing simulation {env['date']} (commit {env['git_commit']}{dirty})\n")
    print(f"{env['nproc']} cores ({env['cpu']}); {args.requests} requests per policy, "
          f"concurrency {args.concurrency}, seed {args.seed}\n")  # fmt: skip
    print(markdown(summaries, reference))
    print(f"\n{doc['verdict']}\n\nJSON: {args.json}")
    return status


def _plain(values: Json) -> Json:
    values = {**values, "events": [e.describe() for e in values["events"]]}
    return {
        k: v if isinstance(v, int | float | str | bool | None | list) else str(v)
        for k, v in values.items()
    }


if __name__ == "__main__":
    sys.exit(main())
