"""``pip install tokenyard`` from a built wheel, on a clean virtualenv outside the source tree:
the wheel must carry every file the package reads at run time (Alembic migrations, the
dashboard's templates and static files), install with its declared dependencies only, and
serve ``tokenyard demo`` — the first thing a newcomer runs.

Slow-ish (a wheel build and an install into a fresh venv; pip's cache keeps it to seconds
when warm), so everything happens in one test that prints its timings."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
import tomllib
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import openai

from tests.e2e.harness import free_port

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "tokenyard"


def _version() -> str:
    version: str = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    return version


def _run(*args: str | Path) -> str:
    result = subprocess.run(
        [str(a) for a in args], check=False, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"{args}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _read_lines(process: subprocess.Popen[str], into: queue.Queue[str]) -> None:
    """Pump the demo's output into a queue, so the test can wait for it with a deadline."""
    assert process.stdout is not None
    for line in process.stdout:
        into.put(line)


def _source_files() -> set[str]:
    """Every file of the package in the source tree, as wheel paths (no bytecode)."""
    return {
        path.relative_to(PACKAGE.parent).as_posix()
        for path in PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


@contextmanager
def _demo(tokenyard: Path, directory: Path) -> Iterator[tuple[str, str]]:
    """Run ``tokenyard demo`` until its banner is out; yield (base URL, key); stop it."""
    env = {**os.environ, "TMPDIR": str(directory)}  # its own SQLite file, not /tmp's
    process = subprocess.Popen(
        [str(tokenyard), "demo", "--port", str(free_port())],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=directory,
        env=env,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_read_lines, args=(process, lines), daemon=True).start()
    banner = ""
    try:
        deadline = time.monotonic() + 60
        while "Ctrl-C stops the demo" not in banner:
            assert time.monotonic() < deadline, f"no banner from the demo:\n{banner}"
            assert process.poll() is None or not lines.empty(), f"the demo exited:\n{banner}"
            try:
                banner += lines.get(timeout=0.5)
            except queue.Empty:
                continue
        base = re.search(r"base URL\s+(http\S+)", banner)
        key = re.search(r"API key\s+(ty-\S+)", banner)
        assert base is not None and key is not None, banner
        yield base.group(1), key.group(1)
    finally:
        process.terminate()
        code = process.wait(timeout=20)
    assert code == 0, banner


def test_the_wheel_installs_on_a_clean_venv_and_runs_the_demo(tmp_path: Path) -> None:
    timings: dict[str, float] = {}
    started = time.monotonic()

    dist = tmp_path / "dist"
    _run(sys.executable, "-m", "build", "--wheel", "--outdir", dist, ROOT)
    (wheel,) = dist.glob("tokenyard-*.whl")
    timings["build wheel"] = time.monotonic() - started

    with zipfile.ZipFile(wheel) as archive:
        carried = set(archive.namelist())
    missing = _source_files() - carried
    assert not missing, f"files of src/tokenyard not in the wheel: {sorted(missing)}"
    assert "tokenyard/store/migrations/env.py" in carried
    assert "tokenyard/store/migrations/script.py.mako" in carried
    assert any(name.startswith("tokenyard/store/migrations/versions/0001") for name in carried)
    assert not [name for name in carried if name.endswith(".pyc")]

    mark = time.monotonic()
    venv = tmp_path / "venv"  # outside the source tree: nothing can be imported from src/
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    _run(
        sys.executable, "-m", "pip", "--python", venv / "bin" / "python",
        "install", "-q", "--disable-pip-version-check", wheel,
    )  # fmt: skip
    timings["venv + pip install"] = time.monotonic() - mark

    tokenyard = venv / "bin" / "tokenyard"
    assert _run(tokenyard, "--version").strip() == f"tokenyard {_version()}"

    mark = time.monotonic()
    with _demo(tokenyard, tmp_path) as (base_url, key):
        timings["demo start"] = time.monotonic() - mark
        client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0)
        stream = client.chat.completions.create(
            model="demo-chat", stream=True, messages=[{"role": "user", "content": "Hello!"}]
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text.startswith("(simulated reply) ")
    timings["total"] = time.monotonic() - started
    print(", ".join(f"{name} {seconds:.1f}s" for name, seconds in timings.items()))
