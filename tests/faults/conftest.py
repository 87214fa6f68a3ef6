"""One gateway per test module in front of misbehaving stand-in upstreams.

``primary`` is the stand-in that misbehaves; ``backup`` answers (a second deployment to fail
over to); ``claude`` is an Anthropic-wire stand-in; ``dead`` is a port where nothing listens.
The same ``primary`` stand-in is configured twice: as ``quick`` (one-second timeouts: a stall
is a failure) and as ``patient`` (long timeouts: only the client's leaving ends a stall).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.harness import ADMIN_KEY, RunningGateway, free_port, start_gateway
from tests.faults.probe import Probe
from tests.upstreams import anthropic_wire, faulty
from tests.upstreams.anthropic_wire import AnthropicStandIn
from tests.upstreams.faulty import FaultyUpstream

PRICE = "price: {input: 1, output: 2}"


@dataclass
class StandIns:
    primary: FaultyUpstream
    backup: FaultyUpstream
    claude: AnthropicStandIn
    urls: dict[str, str]

    def reset(self) -> None:
        self.primary.reset()
        self.backup.reset()
        self.claude.reset()


@pytest.fixture(scope="session")
def stand_ins() -> Iterator[StandIns]:
    primary = FaultyUpstream(api_key="sk-primary-secret")
    backup = FaultyUpstream(api_key="sk-backup-secret")
    claude = AnthropicStandIn(api_key="sk-ant-faults-secret")
    urls: dict[str, str] = {}
    urls["primary"], stop_primary = faulty.run_in_thread(primary)
    urls["backup"], stop_backup = faulty.run_in_thread(backup)
    urls["claude"], stop_claude = anthropic_wire.run_in_thread(claude)
    yield StandIns(primary, backup, claude, urls)
    for stop in (stop_primary, stop_backup, stop_claude):
        stop()


def faults_config(database_url: str, urls: dict[str, str]) -> str:
    quick = "timeout_s: 5, connect_timeout_s: 1, first_byte_timeout_s: 1, idle_timeout_s: 1"
    patient = "timeout_s: 30, first_byte_timeout_s: 30, idle_timeout_s: 30"
    return f"""
database: {database_url}
admin_key: {ADMIN_KEY}
billing: {{currency: USD, markup: 0.10}}
health: {{consecutive_failures: 1000, min_requests: 1000}}  # no circuit opens between tests
providers:
  quick: {{api: openai, vendor: openai, base_url: {urls["primary"]}, {quick}, keys: [{{key: sk-primary-secret}}]}}
  patient: {{api: openai, vendor: openai, base_url: {urls["primary"]}, {patient}, keys: [{{key: sk-primary-secret}}]}}
  backup: {{api: openai, vendor: openai, base_url: {urls["backup"]}, {quick}, keys: [{{key: sk-backup-secret}}]}}
  dead: {{api: openai, base_url: "http://127.0.0.1:{free_port()}/v1", {quick}, keys: [{{key: sk-dead-secret}}]}}
  claude: {{api: anthropic, base_url: {urls["claude"]}, {quick}, keys: [{{key: sk-ant-faults-secret}}]}}
models:
  solo: {{deployments: [{{provider: quick, model: gpt-4o-mini, {PRICE}}}]}}
  pair:
    deployments:
      - {{provider: quick, model: gpt-4o-mini, {PRICE}}}
      - {{provider: backup, model: gpt-4o-mini, {PRICE}}}
  refused: {{deployments: [{{provider: dead, model: x, {PRICE}}}]}}
  refused-pair:
    deployments:
      - {{provider: dead, model: x, {PRICE}}}
      - {{provider: backup, model: gpt-4o-mini, {PRICE}}}
  patient: {{deployments: [{{provider: patient, model: gpt-4o-mini, {PRICE}}}]}}
  claude-solo: {{deployments: [{{provider: claude, model: claude-sonnet-4-5, {PRICE}}}]}}
  claude-pair:
    deployments:
      - {{provider: claude, model: claude-sonnet-4-5, {PRICE}}}
      - {{provider: backup, model: gpt-4o-mini, {PRICE}}}
"""


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """SQLite; a module whose books matter on both backends overrides this with
    ``database_url`` (tests/conftest.py)."""
    return f"sqlite:///{tmp_path_factory.mktemp('faults-db') / 'tokenyard.db'}"


@pytest.fixture(scope="module")
def gateway(
    db: str, stand_ins: StandIns, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    directory: Path = tmp_path_factory.mktemp("faults-gateway")
    running = start_gateway(directory, faults_config(db, stand_ins.urls))
    yield running
    assert running.stop() == 0, running.log()
    assert "Traceback" not in running.log()


@pytest.fixture(scope="module")
def probe(gateway: RunningGateway, stand_ins: StandIns) -> Probe:
    """What the gateway and the stand-ins hold when idle, measured after one answer through
    every provider (so that connection pools and lazily started tasks exist)."""
    stand_ins.reset()
    key = gateway.new_key()
    for model in ("solo", "refused-pair", "patient", "claude-solo"):
        for stream in (False, True):
            body = {"model": model, "messages": [{"role": "user", "content": "warm up"}]}
            response = gateway.post("/v1/chat/completions", key, json={**body, "stream": stream})
            assert response.status_code == 200, response.text
    return Probe.measured(gateway, [stand_ins.primary, stand_ins.backup])


@pytest.fixture
def fresh(stand_ins: StandIns) -> StandIns:
    """The stand-ins with no fault queued and nothing recorded."""
    stand_ins.reset()
    return stand_ins
