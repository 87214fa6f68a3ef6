"""Every shell example in README.md that calls ``curl`` — and the one ``tokenyard demo``
prints — run with ``bash`` against a live gateway, so the documentation cannot rot.

The README writes its examples for a reader, with placeholders this test replaces (the
convention is stated in the README's "Clients" section):

* ``http://127.0.0.1:4000`` and ``localhost:4000``: the gateway's address;
* ``ty-…``: a client key; ``acct_…``: an account id; ``$ADMIN``: the admin key (a variable).

Every model a block names is served by the built-in simulator, so examples written for a
real configuration (``deepseek-chat`` …) run too. ``curl`` is wrapped to fail on an HTTP error
status, and each block must print JSON documents or a server-sent-event stream of them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import ADMIN_KEY, RunningGateway, free_port, start_gateway

README = Path(__file__).resolve().parents[2] / "README.md"
FENCE = re.compile(r"^```(?:sh|bash|shell)\n(.*?)^```", re.MULTILINE | re.DOTALL)
# Fail on HTTP errors (exit 22) but still show the body; keep the example's own flags.
PRELUDE = 'set -euo pipefail\ncurl() { command curl --fail-with-body --show-error "$@"; }\n'


def curl_blocks() -> list[str]:
    return [block for block in FENCE.findall(README.read_text()) if "curl " in block]


def _models(blocks: list[str]) -> set[str]:
    names = set(re.findall(r'"model":\s*"([^"]+)"', "\n".join(blocks)))
    for listed in re.findall(r'"models":\s*\[([^\]]*)\]', "\n".join(blocks)):
        names.update(re.findall(r'"([^"]+)"', listed))
    return names - {"auto"}


def _config(database: str, models: set[str]) -> str:
    catalogue = "\n".join(
        f"  {name}:\n    capabilities: [json_mode]\n    deployments:\n"
        f"      - {{provider: simulator, model: sim, price: {{input: 0.27, output: 1.10}}}}"
        for name in sorted(models)
    )
    return f"""
database: {database}
admin_key: {ADMIN_KEY}
billing: {{currency: USD, markup: 0.10}}
providers:
  simulator:
    api: simulator
    simulator: {{ttft_ms: 5, tokens_per_s: 2000, max_output_tokens: 40}}
models:
{catalogue}
"""


@pytest.fixture(scope="module")
def readme_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    directory = tmp_path_factory.mktemp("readme-gateway")
    config = _config(f"sqlite:///{directory / 'tokenyard.db'}", _models(curl_blocks()))
    running = start_gateway(directory, config)
    yield running
    assert running.stop() == 0, running.log()


def documents(output: str) -> list[Any]:
    """The JSON documents of ``output``: SSE ``data:`` lines, or JSON bodies back to back."""
    if re.search(r"^data: ", output, re.MULTILINE):
        lines = [line[6:] for line in output.splitlines() if line.startswith("data: ")]
        assert lines[-1] == "[DONE]", output
        return [json.loads(line) for line in lines[:-1]]
    decoder, found, rest = json.JSONDecoder(), [], output.strip()
    while rest:
        value, end = decoder.raw_decode(rest)
        found.append(value)
        rest = rest[end:].strip()
    return found


def run_bash(script: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        ["bash", "-c", PRELUDE + script],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, (
        f"{script}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )
    return result.stdout


def test_the_readme_has_curl_examples() -> None:
    assert len(curl_blocks()) >= 3


@pytest.mark.parametrize("index", range(len(curl_blocks())))
def test_readme_curl_example_runs(readme_gateway: RunningGateway, index: int) -> None:
    block = curl_blocks()[index]
    address = readme_gateway.base_url.removeprefix("http://")
    script = (
        block.replace("http://127.0.0.1:4000", readme_gateway.base_url)
        .replace("localhost:4000", address)
        .replace("ty-…", readme_gateway.new_key())
        .replace("acct_…", readme_gateway.new_account("readme"))
    )
    found = documents(run_bash(script, {"ADMIN": ADMIN_KEY}))
    assert found, block
    assert not [doc for doc in found if isinstance(doc, dict) and "error" in doc], found


def test_the_curl_example_printed_by_tokenyard_demo(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tokenyard.cli.main", "demo", "--port", str(free_port())],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},  # its own SQLite file
    )
    assert process.stdout is not None
    banner, deadline = "", time.monotonic() + 30
    try:
        while "Ctrl-C stops the demo" not in banner and time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line, f"the demo exited:\n{banner}"
            banner += line
        block = re.search(r"^(  curl .*?)\n\n", banner, re.MULTILINE | re.DOTALL)
        assert block is not None, banner
        chunks = documents(run_bash(textwrap.dedent(block.group(1))))
        text = "".join(
            c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]
        )
        assert text.startswith("(simulated reply) ")
    finally:
        process.terminate()
        assert process.wait(timeout=20) == 0
