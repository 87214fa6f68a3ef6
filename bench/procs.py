"""Process helpers for the benchmark: start pinned, wait for health, measure RSS, stop."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Proc:
    """A process started by the harness, in its own session (process group)."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    started: float
    core: int | None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid


def install_uvloop() -> str:
    """Use uvloop's event loop when it is installed; returns the loop's name."""
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


def plan_cores() -> tuple[int | None, int | None]:
    """(gateway core, upstream+loadgen core), or (None, None) on a single core."""
    if not hasattr(os, "sched_getaffinity"):
        return None, None
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None, None
    return cores[0], cores[1]


def pin_self(core: int | None) -> None:
    if core is not None:
        os.sched_setaffinity(0, {core})


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(
    name: str,
    cmd: Sequence[str],
    log_path: Path,
    core: int | None,
    env: Mapping[str, str] | None = None,
) -> Proc:
    """Start ``cmd`` pinned to ``core`` (children inherit the affinity), output to a log."""
    log = log_path.open("wb")
    started = time.perf_counter()
    popen = subprocess.Popen(
        list(cmd),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env=dict(env) if env is not None else None,
    )
    log.close()
    if core is not None:  # Popen returns after exec; later children inherit the mask
        os.sched_setaffinity(popen.pid, {core})
    return Proc(name, popen, log_path, started, core)


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def wait_ready(proc: Proc, url: str, timeout: float) -> float:
    """Poll ``url`` until it answers 200; returns seconds since the process started."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(
                f"{proc.name} exited with {proc.popen.returncode} before ready:\n"
                + log_tail(proc.log_path)
            )
        try:
            with urllib.request.urlopen(url, timeout=1.0) as resp:
                if resp.status == 200:
                    return time.perf_counter() - proc.started
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.02)
    raise RuntimeError(f"{proc.name} not ready after {timeout}s:\n{log_tail(proc.log_path)}")


def stop(proc: Proc, grace: float = 10.0) -> None:
    """SIGTERM the process group we created, then SIGKILL it after ``grace`` seconds."""
    if proc.popen.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.popen.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            kids.append(int(entry))
    return kids


def tree_pids(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        todo.extend(_children(current))
    return pids


def vm_rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_mb(pid: int) -> float:
    """VmRSS summed over ``pid`` and all its descendants, in MiB."""
    return round(sum(vm_rss_kb(p) for p in tree_pids(pid)) / 1024.0, 1)


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds used so far by ``pid`` and its live descendants."""
    ticks = 0
    for p in tree_pids(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return ticks / os.sysconf("SC_CLK_TCK")


def _cpu_ticks() -> dict[str, tuple[int, int]]:
    """Per-core (busy, total) jiffies from /proc/stat."""
    ticks = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            numbers = [int(v) for v in values[:8]]
            idle = numbers[3] + numbers[4]  # idle + iowait
            ticks[name] = (sum(numbers) - idle, sum(numbers))
    return ticks


def machine_busy_s() -> float:
    """Busy CPU seconds so far, summed over all cores."""
    return sum(busy for busy, _ in _cpu_ticks().values()) / os.sysconf("SC_CLK_TCK")


def background_busy_pct(interval: float = 1.0) -> dict[str, float]:
    """How busy each core is before the benchmark starts anything (other tenants)."""
    before = _cpu_ticks()
    time.sleep(interval)
    after = _cpu_ticks()
    busy = {}
    for core, (busy1, total1) in after.items():
        busy0, total0 = before.get(core, (busy1, total1))
        busy[core] = round(100.0 * (busy1 - busy0) / max(total1 - total0, 1), 1)
    return busy


def http_json(
    method: str, url: str, body: object | None = None, headers: Mapping[str, str] | None = None
) -> tuple[int, object]:
    """Tiny JSON client on urllib; returns (status, parsed body or text)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def run_json(cmd: Sequence[str], timeout: float) -> dict[str, object]:
    """Run a helper process that prints one JSON object; raise with its stderr on failure."""
    done = subprocess.run(list(cmd), capture_output=True, timeout=timeout, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr.decode(errors="replace"))
        raise RuntimeError(f"{cmd[0]} exited with {done.returncode}")
    result = json.loads(done.stdout)
    assert isinstance(result, dict)
    return result


def floor_args() -> tuple[argparse.Namespace, str]:
    """For the floor relays (aiohttp_floor.py, raw_floor.py): the harness's ``serve --config
    C --host H --port P --workers N`` arguments, and the stand-in upstream's chat URL read
    from the config."""
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("--config", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    found = re.search(r"base_url: (\S+)", Path(args.config).read_text())
    if found is None:
        raise SystemExit(f"no base_url in {args.config}")
    return args, found.group(1) + "/chat/completions"
