"""Node.js 20 clients against a live gateway: the Vercel AI SDK (``ai`` with
``@ai-sdk/openai-compatible``) and the official ``openai`` npm package. The scripts in
``node/`` are the ones the README shows; each prints one JSON object that is checked here.

``npm ci`` runs once per ``package-lock.json``: a stamp in ``node_modules`` holds the lockfile's
hash, so later runs reuse the installed packages and need no network."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.clients.conftest import MODEL
from tests.e2e.harness import RunningGateway

PROJECT = Path(__file__).parent / "node"
STAMP = PROJECT / "node_modules" / ".tokenyard-lock.sha256"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` is not installed: the test command (scripts/test) installs Node.js")
    return path


@pytest.fixture(scope="module")
def node_project() -> Path:
    """The npm project with its locked dependencies installed."""
    lock = hashlib.sha256((PROJECT / "package-lock.json").read_bytes()).hexdigest()
    if not STAMP.exists() or STAMP.read_text().strip() != lock:
        started = time.monotonic()
        subprocess.run(
            [_tool("npm"), "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=PROJECT,
            check=True,
            timeout=300,
        )
        STAMP.write_text(lock + "\n")
        print(f"npm ci: {time.monotonic() - started:.1f}s")
    return PROJECT


def run_script(project: Path, script: str, gateway: RunningGateway, key: str) -> Any:
    env = {
        **os.environ,
        "TOKENYARD_BASE_URL": gateway.base_url + "/v1",
        "TOKENYARD_API_KEY": key,
        "TOKENYARD_MODEL": MODEL,
    }
    result = subprocess.run(
        [_tool("node"), script],
        check=False,
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_vercel_ai_sdk(node_project: Path, gateway: RunningGateway, key: str) -> None:
    out = run_script(node_project, "ai_sdk.mjs", gateway, key)
    assert out["generateText"]["text"] == "echo: Hello from the AI SDK"
    assert out["generateText"]["usage"]["outputTokens"] == 6
    assert out["generateText"]["usage"]["raw"]["cost"] > 0
    assert "".join(out["streamText"]["pieces"]) == "echo: Hello streaming AI SDK"
    assert len(out["streamText"]["pieces"]) > 2
    assert out["streamText"]["usage"]["totalTokens"] > 0
    assert out["toolCall"]["finishReason"] == "tool-calls"
    assert out["toolCall"]["calls"] == [{"name": "get_weather", "input": {"city": "Paris"}}]


def test_openai_npm_package(node_project: Path, gateway: RunningGateway, key: str) -> None:
    out = run_script(node_project, "openai_sdk.mjs", gateway, key)
    assert out["chat"]["text"] == "echo: Hello from Node"
    assert out["chat"]["usage"]["cost"] > 0
    assert "".join(out["stream"]["pieces"]) == "echo: Hello streaming Node"
    assert out["stream"]["usage"]["completion_tokens"] == 4
    assert out["stream"]["usage"]["cost"] > 0
