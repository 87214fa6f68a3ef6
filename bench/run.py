"""tokenyard benchmark: stand-in upstream, gateway (and optionally LiteLLM), closed-loop load.

Usage: ``python bench/run.py [--requests N] [--duration S] [--concurrency 1,16,64]
[--vs-litellm] [--workers 1,2]``. See bench/README.md for the method.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import litellm_target
import procs
import report
import spy

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
ADMIN_KEY = "bench-admin-key"
BUSY_WARN_PCT = 10.0
NOISY_PCT = 25.0  # CPU % used during a row by processes other than ours
MODES = ("non-stream", "stream")
BODY: dict[str, Any] = {
    "model": "bench-model",
    "messages": [{"role": "user", "content": "hello there"}],
    "max_tokens": 64,
}

GATEWAY_CONFIG = """\
database: sqlite:///{tmp}/bench.db
admin_key: {admin_key}
billing: {{currency: USD, markup: 0.10}}
providers:
  standin:
    api: openai
    base_url: http://127.0.0.1:{upstream_port}/v1
    keys: [{{key: sk-bench}}]
models:
  bench-model:
    context_window: 32768
    max_output_tokens: 1024
    deployments:
      - {{provider: standin, model: upstream-model, price: {{input: 0.5, output: 1.5}}}}
"""


class Bench:
    """State of one run: where things live, which cores, what was started and measured."""

    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp
        self.gw_core, self.aux_core = procs.plan_cores()
        self.started: list[procs.Proc] = []
        self.rows: list[report.Row] = []
        self.processes: list[dict[str, Any]] = []
        self.upstream_port = 0
        self.upstream_pid = 0
        self.background: dict[str, float] = {}
        self.round = 1

    # ---- processes -------------------------------------------------------------------

    def launch(
        self,
        target: str,
        cmd: Sequence[str],
        core: int | None,
        health_url: str,
        timeout: float,
        env: dict[str, str] | None = None,
        workers: int | None = None,
    ) -> dict[str, Any]:
        name = target.split(maxsplit=1)[0]
        log = self.tmp / (f"{name}-w{workers}.log" if workers else f"{name}.log")
        print(f"starting {target}: {shlex.join(cmd)}", file=sys.stderr, flush=True)
        proc = procs.start(target, cmd, log, core, env)
        self.started.append(proc)
        ready_s = procs.wait_ready(proc, health_url, timeout)
        time.sleep(1.0)  # let start-up work settle before the idle RSS reading
        info = {
            "target": target,
            "workers": workers,
            "pid": proc.pid,
            "core": core,
            "command": shlex.join(cmd),
            "log": str(log),
            "ready_s": round(ready_s, 3),
            "rss_idle_mb": procs.tree_rss_mb(proc.pid),
            "rss_end_mb": None,
        }
        self.processes.append(info)
        return info

    def finish(self, info: dict[str, Any]) -> None:
        info["rss_end_mb"] = procs.tree_rss_mb(int(info["pid"]))
        for proc in self.started:
            if proc.pid == info["pid"]:
                procs.stop(proc)

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            procs.stop(proc)

    # ---- load ------------------------------------------------------------------------

    def run_load(
        self, url: str, headers: Sequence[str], stream: bool, concurrency: int, pid: int
    ) -> dict[str, Any]:
        """One row: run bench/load.py in its own process (pinned by its --cpu flag)."""
        args = self.args
        options: dict[str, object] = {
            "--url": url,
            "--body": json.dumps(dict(BODY, stream=True) if stream else BODY),
            "--concurrency": concurrency,
            "--requests": args.requests,
            "--duration": args.duration,
            "--min-time": args.min_time,
            "--max-time": max(args.max_time, args.duration + 30),
            "--warmup": args.warmup,
            "--cpu": self.aux_core,
        }
        cmd = [sys.executable, str(BENCH_DIR / "load.py")]
        for flag, value in options.items():
            if value is not None:
                cmd += [flag, str(value)]
        for header in headers:
            cmd += ["--header", header]
        for name, watched in (("target", pid), ("upstream", self.upstream_pid)):
            if watched:
                cmd += ["--watch", f"{name}={watched}"]
        if stream:
            cmd.append("--stream")
        return procs.run_json(cmd, timeout=2 * max(args.max_time, args.duration + 30) + 60)

    def measure(
        self,
        target: str,
        base_url: str,
        headers: Sequence[str],
        pid: int,
        workers: int | None = None,
    ) -> None:
        url = base_url + "/v1/chat/completions"
        for mode in self.args.modes:
            for concurrency in self.args.concurrency:
                sampler = self.start_profile(target, mode, concurrency, pid)
                load = self.run_load(url, headers, mode == "stream", concurrency, pid)
                if sampler is not None:
                    sampler.wait()
                    print(spy.table(Path(sampler.args[-1])), file=sys.stderr)
                self.rows.append(report.make_row(target, mode, load, workers, self.round))
                print(
                    f"  {target:<18} w={workers or '-'} {mode:<10} c={concurrency:<3} "
                    f"rps={load['rps']:>9} "
                    f"p50={load['p50_ms']} ms errors={load['errors']} "
                    f"cpu%={load['cpu_pct']}",
                    file=sys.stderr,
                    flush=True,
                )
                if load["errors"]:
                    print(f"    first error: {load['error_sample']}", file=sys.stderr)
                if load["cpu_pct"]["other"] > NOISY_PCT:
                    print("    noisy: other processes were busy during this row", file=sys.stderr)

    def start_profile(
        self, target: str, mode: str, concurrency: int, pid: int
    ) -> subprocess.Popen[bytes] | None:
        """With --profile: py-spy on a gateway for the row (after its warm-up second)."""
        if self.args.profile is None or target in (report.DIRECT, "litellm"):
            return None
        self.args.profile.mkdir(parents=True, exist_ok=True)
        out = self.args.profile / f"{target}-{mode}-c{concurrency}.txt"
        return spy.start(pid, self.args.duration - 1, out, delay_s=1.0)

    # ---- targets ---------------------------------------------------------------------

    def bench_upstream(self) -> None:
        port = procs.free_port()
        script = str(BENCH_DIR / "upstream.py")
        delay = str(self.args.chunk_delay_ms)
        cmd = [sys.executable, script, "--port", str(port), "--chunk-delay-ms", delay]
        cmd += ["--stream-chunks", str(self.args.stream_chunks)]
        base = f"http://127.0.0.1:{port}"
        core = self.gw_core if self.args.calibrate else self.aux_core
        info = self.launch(report.DIRECT, cmd, core, base + "/health", 30)
        self.upstream_port = port
        self.measure(report.DIRECT, base, [], int(info["pid"]))
        self.upstream_pid = int(info["pid"])  # watched (as "upstream") from now on
        info["rss_end_mb"] = procs.tree_rss_mb(self.upstream_pid)

    def bench_gateway(self, prefix: list[str], workers: int) -> None:
        port = procs.free_port()
        home = self.tmp / f"gateway-w{workers}-r{self.round}"  # a fresh database per run
        home.mkdir(exist_ok=True)
        config = home / "bench.yaml"
        config.write_text(
            GATEWAY_CONFIG.format(tmp=home, admin_key=ADMIN_KEY, upstream_port=self.upstream_port)
        )
        cmd = [
            *prefix,
            "serve",
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ]
        base = f"http://127.0.0.1:{port}"
        info = self.launch(
            self.args.label, cmd, self.gw_core, base + "/readyz", 60, workers=workers
        )
        key = provision_key(base)
        auth = [f"Authorization: Bearer {key}"]
        self.measure(self.args.label, base, auth, int(info["pid"]), workers)
        self.finish(info)

    def bench_litellm(self, workers: int) -> None:
        exe = litellm_target.ensure_venv(BENCH_DIR / ".venv-litellm")
        port = procs.free_port()
        config, master_key = litellm_target.write_config(self.tmp, self.upstream_port)
        cmd = litellm_target.command(exe, config, port, workers)
        base = f"http://127.0.0.1:{port}"
        info = self.launch(
            "litellm",
            cmd,
            self.gw_core,
            base + litellm_target.HEALTH_PATH,
            240,
            env=litellm_target.environment(),
            workers=workers,
        )
        auth = [f"Authorization: Bearer {master_key}"]
        self.measure("litellm", base, auth, int(info["pid"]), workers)
        self.finish(info)


def provision_key(base: str) -> str:
    """Create the bench account (credited if the route exists) and a client key."""
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    status, account = procs.http_json("POST", base + "/admin/accounts", {"name": "bench"}, admin)
    if status not in (200, 201) or not isinstance(account, dict):
        raise RuntimeError(f"POST /admin/accounts -> {status}: {account}")
    credit = {"amount": "1000000", "reference": "bench-seed"}
    status, body = procs.http_json(
        "POST", f"{base}/admin/accounts/{account['id']}/credits", credit, admin
    )
    if status not in (200, 201, 204, 404):
        print(f"warning: crediting the account -> {status}: {body}", file=sys.stderr)
    status, key = procs.http_json(
        "POST", base + "/admin/keys", {"account_id": account["id"], "name": "bench"}, admin
    )
    if status not in (200, 201) or not isinstance(key, dict):
        raise RuntimeError(f"POST /admin/keys -> {status}: {key}")
    return str(key["key"])


def find_tokenyard() -> list[str] | None:
    """The ``tokenyard`` executable next to this interpreter (same venv), else on PATH."""
    beside = Path(sys.executable).parent / "tokenyard"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("tokenyard")
    return [found] if found else None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=2000, help="measured requests per row")
    p.add_argument("--duration", type=float, default=0.0, help="seconds per row (overrides N)")
    p.add_argument("--concurrency", default="1,16,64", help="comma-separated list")
    p.add_argument("--modes", default=",".join(MODES), help="non-stream,stream")
    p.add_argument(
        "--workers",
        default="1",
        help="comma-separated worker counts, e.g. 1,2: the gateway (and LiteLLM) once each",
    )
    p.add_argument(
        "--vs-litellm",
        action="store_true",
        help=f"also measure LiteLLM {litellm_target.LITELLM_VERSION} (venv in bench/.venv-litellm)",
    )
    p.add_argument(
        "--min-time", type=float, default=1.0, help="with --requests: minimum seconds per row"
    )
    p.add_argument("--warmup", type=int, default=None, help="warm-up requests per row")
    p.add_argument("--max-time", type=float, default=120.0, help="hard cap per row, seconds")
    p.add_argument("--chunk-delay-ms", type=float, default=0.0, help="upstream SSE gap")
    p.add_argument(
        "--stream-chunks", type=int, default=10, help="content chunks per streamed answer"
    )
    p.add_argument(
        "--gateway-cmd",
        default=None,
        help="command prefix instead of the tokenyard executable (gets 'serve ...')",
    )
    p.add_argument(
        "--calibrate",
        action="store_true",
        help="only direct rows, upstream on the gateway core: the load generator's ceiling",
    )
    p.add_argument("--label", default="tokenyard", help="gateway name in the table")
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="with --vs-litellm: measure both this many times, alternating which goes first, "
        "and print each round's ratio and their median",
    )
    p.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="py-spy each gateway row into this directory and print where the time went "
        "(needs --duration; slows the gateway: read shares, not rps)",
    )
    p.add_argument("--output", type=Path, default=None, help="default results/latest.json")
    p.add_argument("--keep-tmp", action="store_true", help="keep configs, DB and logs")
    args = p.parse_args(argv)
    if args.output is None:
        name = "calibrate.json" if args.calibrate else "latest.json"
        args.output = BENCH_DIR / "results" / name
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    args.workers = [int(w) for w in args.workers.split(",") if w.strip()]
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not set(args.modes) <= set(MODES):
        p.error(f"--modes must be a subset of {','.join(MODES)}")
    if args.rounds < 1 or (args.rounds > 1 and not args.vs_litellm):
        p.error("--rounds takes a count of 1 or more, and more than 1 needs --vs-litellm")
    if args.profile is not None and args.duration < 3:
        p.error("--profile needs --duration of 3 s or more")
    return args


def run(bench: Bench) -> None:
    args = bench.args
    bench.bench_upstream()
    if args.calibrate:
        return
    prefix = shlex.split(args.gateway_cmd) if args.gateway_cmd else find_tokenyard()
    if prefix is None:
        print(
            "warning: no `tokenyard` executable beside sys.executable or on PATH; "
            "gateway skipped (pip install -e . first, or pass --gateway-cmd)",
            file=sys.stderr,
        )
        bench.processes.append({"target": args.label, "skipped": "executable not found"})
    for bench.round in range(1, args.rounds + 1):
        for workers in args.workers:  # tokenyard and LiteLLM with as many workers
            targets = [partial(bench.bench_gateway, prefix, workers)] if prefix else []
            if args.vs_litellm:
                targets.append(partial(bench.bench_litellm, workers))
            if bench.round % 2 == 0:  # even rounds start with LiteLLM: drift falls on both
                targets.reverse()
            for target in targets:
                target()


def print_and_save(bench: Bench) -> None:
    args = bench.args
    report.add_derived(bench.rows, args.label, "litellm" if args.vs_litellm else None)
    loops = sorted({str(r["load"].get("loop")) for r in bench.rows})
    settings = {
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "gateway_core": bench.gw_core,
        "upstream_loadgen_core": bench.aux_core,
        "loadgen_loop": loops,
        "background_busy_pct": bench.background,
    }
    env = report.environment(REPO_DIR, settings)
    report.write_json(args.output, env, bench.processes, bench.rows)
    print(f"\n## tokenyard bench {env['date']} (commit {env['git_commit']})\n")
    if args.calibrate:
        cores = f"calibration: upstream -> {bench.gw_core}; load generator -> {bench.aux_core}"
    else:
        cores = (
            f"cores: gateway/litellm -> {bench.gw_core}; "
            f"upstream + load generator + harness -> {bench.aux_core}"
        )
    print(
        f"{cores}; load generator loop: {', '.join(loops)}; "
        f"busy before start (%): {bench.background}\n"
    )
    print(report.markdown_table(bench.rows, with_ratio=args.vs_litellm))
    print()
    if args.rounds > 1:
        print(report.rounds_table(bench.rows, args.label, "litellm"))
        print()
    print(report.process_table([p for p in bench.processes if "skipped" not in p]))
    noisy = [r for r in bench.rows if r["load"]["cpu_pct"]["other"] > NOISY_PCT]
    if noisy:
        print(f"\nnoisy rows (other processes used > {NOISY_PCT:.0f}% CPU meanwhile):")
        for r in noisy:
            other = r["load"]["cpu_pct"]["other"]
            print(f"- {r['target']} w={r['workers']} {r['mode']} c={r['concurrency']}: {other}%")
    print(f"\nJSON: {args.output}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="tokenyard-bench-"))
    bench = Bench(args, tmp)
    procs.pin_self(bench.aux_core)
    bench.background = procs.background_busy_pct()
    if max(bench.background.values(), default=0.0) > BUSY_WARN_PCT:
        print(
            f"warning: the machine is already busy before the run {bench.background} (%): "
            "results will be noisy",
            file=sys.stderr,
        )
    status = 0
    try:
        run(bench)
    except (
        RuntimeError,
        OSError,
        ValueError,
        subprocess.SubprocessError,
        KeyboardInterrupt,
    ) as exc:
        print(f"benchmark aborted: {exc}", file=sys.stderr)
        status = 1
    finally:
        bench.stop_all()
        if args.keep_tmp or status:
            print(f"logs and configs kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if bench.rows:
        print_and_save(bench)
    return status


if __name__ == "__main__":
    sys.exit(main())
