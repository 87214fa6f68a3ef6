"""An imported config runs a real gateway: the worked examples are imported with the CLI,
their providers' base URLs pointed at stand-in upstreams, and one request goes through
with the official openai SDK."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.harness import ADMIN_KEY, start_gateway
from tests.upstreams.openai_wire import Flavor, StandInUpstream, run_in_thread

EXAMPLES = Path(__file__).parent / "examples"


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    url, stop = run_in_thread(StandInUpstream(Flavor.OPENAI, api_key=None))
    yield url
    stop()


def imported(importer: str, example: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "tokenyard.cli.main", "import", importer, str(EXAMPLES / example)],
        capture_output=True,
        text=True,
        check=True,
    )
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def point_at(config: dict[str, Any], url: str, tmp_path: Path) -> str:
    """Every OpenAI-wire provider at the stand-in; the rest stay (they are not called)."""
    for provider in config["providers"].values():
        if provider["api"] == "openai":
            provider["base_url"] = url
    config.pop("redis", None)
    config["database"] = f"sqlite:///{tmp_path / 'tokenyard.db'}"
    config["admin_key"] = ADMIN_KEY
    return yaml.safe_dump(config, sort_keys=False)


def test_imported_litellm_config_serves_a_request(upstream: str, tmp_path: Path) -> None:
    text = point_at(imported("litellm", "litellm.yaml"), upstream, tmp_path)
    env = {
        name: "sk-test"
        for name in (
            "OPENAI_API_KEY_A",
            "OPENAI_API_KEY_B",
            "AZURE_API_KEY",
            "AZURE_API_BASE",
            "ANTHROPIC_API_KEY",
            "DEEPSEEK_API_KEY",
            "GEMINI_API_KEY",
            "TOGETHER_API_KEY",
        )
    }
    gateway = start_gateway(tmp_path, text, env=env)
    try:
        client = gateway.client(gateway.new_key())
        answer = client.chat.completions.create(
            model="deepseek-chat", messages=[{"role": "user", "content": "hello there"}]
        )
        assert answer.choices[0].message.content == "echo: hello there"
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )
        assert raw.headers["x-tokenyard-provider"] in ("openai", "azure")
        assert raw.headers["x-tokenyard-cost"] != "0.000000"  # prices came across
    finally:
        gateway.stop()


def test_imported_oneapi_config_serves_a_request(upstream: str, tmp_path: Path) -> None:
    text = point_at(imported("one-api", "oneapi-channels.json"), upstream, tmp_path)
    gateway = start_gateway(tmp_path, text)
    try:
        client = gateway.client(gateway.new_key())
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}]
        )
        assert raw.parse().choices[0].message.content == "echo: hello"
        assert raw.headers["x-tokenyard-provider"] == "openai-main"  # highest priority
    finally:
        gateway.stop()
