"""``tokenyard demo`` as a newcomer runs it: start it, copy the printed Python snippet, get a
streamed answer through the OpenAI SDK — no config, no keys, no network."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import free_port


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    port = free_port()
    log = tmp_path_factory.mktemp("demo") / "demo.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tokenyard.cli.main", "demo", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while "Ctrl-C stops the demo" not in log.read_text() and time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        time.sleep(0.05)
    banner = log.read_text()
    yield f"http://127.0.0.1:{port}", banner
    process.terminate()
    assert process.wait(timeout=20) == 0


def test_the_printed_python_snippet_streams_an_answer(
    demo: tuple[str, str], tmp_path: Path
) -> None:
    _, banner = demo
    snippet = textwrap.dedent(banner.split("python - <<'PY'\n", 1)[1].split("  PY\n", 1)[0])
    result = subprocess.run(
        [sys.executable, "-c", snippet], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("(simulated reply) ")
    assert len(result.stdout.split()) > 5


def test_the_banner_names_a_working_key_and_simulated_models(demo: tuple[str, str]) -> None:
    base, banner = demo
    assert "SIMULATOR" in banner
    key = re.search(r"API key\s+(ty-\S+)", banner)
    assert key is not None
    models = httpx.get(base + "/v1/models", headers={"Authorization": f"Bearer {key.group(1)}"})
    assert {m["id"] for m in models.json()["data"]} == {"demo-chat", "demo-large", "demo-embedding"}
    answer = httpx.post(
        base + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key.group(1)}"},
        json={"model": "demo-chat", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert answer.status_code == 200
    assert float(answer.headers["x-tokenyard-cost"]) > 0
