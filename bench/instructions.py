"""Machine instructions a request costs the gateway, counted by Valgrind: same-run A/B of
builds that the machine's drift cannot blur.

Usage: ``python bench/instructions.py [REV ...] [--concurrency 16] [--requests 2000]``

Each REV is a git revision (``.``, the default, is the working tree as it is), checked out
into a temporary worktree as ``ab.py`` does and served with this interpreter and
``PYTHONPATH=<worktree>/src``. Its gateway runs under ``valgrind --tool=callgrind`` with
counting off while it starts and takes a warm-up load; counting is switched on
(``callgrind_control --instr=on``) for the measured requests only, and the count is read
from the dump taken right after them. Background work that runs meanwhile (the request
log's batches, checkpoints) is counted too: it is part of what a request costs.

Why: wall and CPU time move by up to 60 % within an hour on the project's machine, so a
change worth 2 % cannot be told from noise by ``ab.py``; the count of instructions moves by
well under 1 % between two runs of one build. It does not see the kernel's work (system
calls) nor cache misses: a change that trades instructions for either needs ``ab.py`` too.
Under Valgrind the gateway runs ~50× slower, so the batches of the group commit are those
of a saturated gateway: the concurrency's, as in a CPU-bound ``run.py`` row.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import ab
import procs
import run

COUNTED = re.compile(rb"^(?:summary|totals): (\d+)", re.MULTILINE)


def _load(base: str, key: str, mode: str, concurrency: int, requests: int) -> dict[str, object]:
    body = dict(run.BODY, stream=True) if mode == "stream" else run.BODY
    cmd = [sys.executable, str(run.BENCH_DIR / "load.py"), "--url", base + "/v1/chat/completions"]
    cmd += ["--body", json.dumps(body), "--header", f"Authorization: Bearer {key}"]
    cmd += ["--concurrency", str(concurrency), "--requests", str(requests), "--warmup", "0"]
    cmd += ["--max-time", "900"] + (["--stream"] if mode == "stream" else [])
    result = procs.run_json(cmd, timeout=1000)
    if result["errors"]:
        raise RuntimeError(f"{result['errors']} errors: {result.get('error_sample')}")
    return result


def count(
    source: Path, upstream_port: int, tmp: Path, mode: str, args: argparse.Namespace
) -> float:
    """Instructions per measured request of the build in ``source``."""
    home = Path(tempfile.mkdtemp(dir=tmp))
    config = home / "bench.yaml"
    config.write_text(
        run.GATEWAY_CONFIG.format(tmp=home, admin_key=run.ADMIN_KEY, upstream_port=upstream_port)
    )
    port = procs.free_port()
    out = home / "callgrind.out"
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    cmd += [sys.executable, "-m", "tokenyard.cli.main", "serve", "--config", str(config)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    env = dict(os.environ, PYTHONPATH=str(source))
    gateway = procs.start("gateway", cmd, home / "gateway.log", None, env)
    try:
        base = f"http://127.0.0.1:{port}"
        procs.wait_ready(gateway, base + "/readyz", 300)
        key = run.provision_key(base)
        _load(base, key, mode, args.concurrency, args.warmup)
        control = ["callgrind_control", str(gateway.pid)]
        subprocess.run([*control, "--instr=on"], check=True, capture_output=True)
        _load(base, key, mode, args.concurrency, args.requests)
        subprocess.run([*control, "--dump"], check=True, capture_output=True)
    finally:
        procs.stop(gateway, grace=60)
    dumps = sorted(home.glob("callgrind.out*"), key=lambda p: p.stat().st_mtime)
    measured = [COUNTED.search(path.read_bytes()) for path in dumps]
    counts = [int(found.group(1)) for found in measured if found]
    if not counts:
        raise RuntimeError(f"no callgrind dump in {home}:\n{procs.log_tail(home / 'gateway.log')}")
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        shutil.copy(dumps[0], args.keep / f"callgrind.{mode}.{source.parent.name}.out")
    return counts[0] / args.requests  # the first dump: the measured requests, nothing after


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revisions", nargs="*", default=["."], help="git revisions; . = tree")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--requests", type=int, default=2000, help="measured requests")
    parser.add_argument("--warmup", type=int, default=300, help="requests before counting")
    parser.add_argument("--modes", default="non-stream", help="non-stream,stream")
    parser.add_argument(
        "--keep", type=Path, default=None, help="copy each dump here (callgrind_annotate)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("needs valgrind (apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="tokenyard-instr-") as name:
        tmp = Path(name)
        trees = tmp / "trees"
        trees.mkdir()
        port = procs.free_port()
        upstream_cmd = [sys.executable, str(run.BENCH_DIR / "upstream.py"), "--port", str(port)]
        upstream = procs.start("upstream", upstream_cmd, tmp / "upstream.log", None)
        try:
            procs.wait_ready(upstream, f"http://127.0.0.1:{port}/health", 30)
            sources = [ab._source(rev, trees / f"b{i}") for i, rev in enumerate(args.revisions)]
            rows = []
            for mode in args.modes.split(","):
                for revision, source in zip(args.revisions, sources, strict=True):
                    per_request = count(source, port, tmp, mode, args)
                    print(f"{revision} {mode}: {per_request:,.0f}", file=sys.stderr, flush=True)
                    rows.append((mode, revision, per_request))
        finally:
            procs.stop(upstream)
            ab._forget_worktrees(trees)
    print(f"\n| mode | build | instructions a request (c={args.concurrency}) | vs first |")
    print("|---|---|---:|---:|")
    first: dict[str, float] = {}
    for mode, revision, per_request in rows:
        base = first.setdefault(mode, per_request)
        print(f"| {mode} | {revision} | {per_request:,.0f} | {per_request / base - 1:+.1%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
