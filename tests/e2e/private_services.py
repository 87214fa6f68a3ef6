"""PostgreSQL and Redis servers of a test's own, to stop and start under a running gateway.

The servers that ``scripts/services`` starts are shared by every test and must never be
stopped; a test that takes a dependency away starts one of these instead: a fresh data
directory, a free port on loopback, the same binaries. PostgreSQL refuses to run as root,
so as root its commands run as the ``postgres`` user (as scripts/services does).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from tests.e2e.harness import free_port


def _pg_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: p.parts[-3])
    if not found:
        raise RuntimeError("no PostgreSQL binaries: run scripts/services start once")
    return found[-1].parent


def _as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


class PrivatePostgres:
    """A PostgreSQL server in a temporary directory: :meth:`stop` and :meth:`start` it at
    will, :meth:`destroy` when done. Its database ``postgres`` is the gateway's."""

    def __init__(self) -> None:
        self._bin = _pg_bin()
        self.directory = Path(tempfile.mkdtemp(prefix="tokenyard-pg-"))
        self.data = self.directory / "data"
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.start()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            _as_postgres([str(self._bin / tool), *args]),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.directory} -c fsync=off"
        log = str(self.directory / "server.log")
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", log, "-w", "-t", "30", "-o", options, "start"
        )

    def stop(self, mode: str = "fast") -> None:
        """``fast`` ends every session and shuts down cleanly; ``immediate`` is a crash."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Every process of this server stopped (SIGSTOP): connections stay open and new ones
        are accepted by the kernel, but nothing answers and nothing is refused — a stalled
        or unreachable server, not a stopped one. The postmaster (from its pid file: this
        instance's, never another PostgreSQL's on the machine) stops first, so that its list
        of children is final; all resume (SIGCONT) on leaving."""
        postmaster = int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        os.kill(postmaster, signal.SIGSTOP)
        stopped = [postmaster]
        try:
            for task in Path(f"/proc/{postmaster}/task").iterdir():
                for child in map(int, (task / "children").read_text().split()):
                    with contextlib.suppress(ProcessLookupError):  # ended meanwhile
                        os.kill(child, signal.SIGSTOP)
                        stopped.append(child)
            yield
        finally:
            for pid in stopped:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)


class PrivateRedis:
    """A Redis server on a free port, without persistence, that a test may stop and start."""

    def __init__(self) -> None:
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self._process = subprocess.Popen(
            [
                *("redis-server", "--bind", "127.0.0.1", "--port", str(self.port)),
                *("--save", "", "--appendonly", "no"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                if client.ping():
                    client.close()
                    return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None
