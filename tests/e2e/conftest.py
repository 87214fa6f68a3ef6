"""One gateway process per database backend, in front of stand-in upstreams of every
OpenAI-wire flavour, shared by the end-to-end tests of a module."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.harness import ADMIN_KEY, RunningGateway, free_port, start_gateway
from tests.upstreams.openai_wire import Flavor, StandInUpstream, run_in_thread

FLAVORS = {
    "openai-a": Flavor.OPENAI,
    "flaky": Flavor.OPENAI,
    "deepseek": Flavor.DEEPSEEK,
    "moonshot": Flavor.MOONSHOT,
    "dashscope": Flavor.DASHSCOPE,
    "vllm": Flavor.VLLM,
    "mistral": Flavor.MISTRAL,
    "ollama": Flavor.OLLAMA,
}


REGIONS = {"openai-a": "us", "flaky": "eu"}


@dataclass
class Upstreams:
    by_name: dict[str, StandInUpstream]
    urls: dict[str, str]

    def __getitem__(self, name: str) -> StandInUpstream:
        return self.by_name[name]

    def reset(self) -> None:
        for upstream in self.by_name.values():
            upstream.reset()


@pytest.fixture(scope="session")
def upstreams() -> Iterator[Upstreams]:
    by_name: dict[str, StandInUpstream] = {}
    urls: dict[str, str] = {}
    stops = []
    for name, flavor in FLAVORS.items():
        upstream = StandInUpstream(flavor, api_key=f"sk-{name}-secret")
        urls[name], stop = run_in_thread(upstream)
        by_name[name] = upstream
        stops.append(stop)
    yield Upstreams(by_name, urls)
    for stop in stops:
        stop()


SMALL_LIMITS = (
    "max_body_bytes: 65536, body_timeout_s: 1, header_timeout_s: 1,"
    " max_header_bytes: 4096, max_headers: 32, max_messages: 50, max_json_depth: 32"
)
"""``server:`` limits small enough (1 s timeouts) that a test reaches each one quickly."""


def limited_gateway(upstreams: Upstreams, directory: Path) -> RunningGateway:
    """A gateway on SQLite in ``directory`` with :data:`SMALL_LIMITS`."""
    database_url = f"sqlite:///{directory / 'tokenyard.db'}"
    return start_gateway(
        directory, gateway_config(database_url, upstreams.urls, server=SMALL_LIMITS)
    )


def gateway_config(
    database_url: str,
    urls: dict[str, str],
    redis: str | None = None,
    health: str = "{consecutive_failures: 1000, min_requests: 1000}",
    server: str = "max_body_bytes: 65536",
) -> str:
    providers = "\n".join(
        f"""  {name}:
    api: openai
    vendor: {flavor.value if flavor is not Flavor.OPENAI else "openai"}
    base_url: {urls[name]}
    region: {REGIONS.get(name, "cn")}
    timeout_s: 5
    first_byte_timeout_s: 2
    idle_timeout_s: 2
    keys: [{{key: sk-{name}-secret}}]"""
        for name, flavor in FLAVORS.items()
    )
    dead = free_port()  # nothing listens there: connection refused
    redis_line = f"redis: {redis}" if redis else ""
    return f"""
database: {database_url}
{redis_line}
admin_key: {ADMIN_KEY}
billing: {{currency: USD, markup: 0.10, fx: {{CNY: 0.14}}}}
server: {{{server}}}
health: {health}  # by default no circuit opens: tests share this gateway
providers:
{providers}
  dead:
    api: openai
    base_url: http://127.0.0.1:{dead}/v1
    connect_timeout_s: 1
    keys: [{{key: sk-dead-secret}}]
models:
  gpt-mini:
    context_window: 4096
    capabilities: [tools, json_mode, vision]
    tier: economy
    tasks: [chat, extraction]
    deployments:
      - {{provider: openai-a, model: gpt-4o-mini, price: {{input: 0.15, output: 0.60, cached_input: 0.075}}}}
  deepseek-chat:
    tasks: [coding, chat]
    deployments:
      - {{provider: deepseek, model: deepseek-chat, price: {{input: 0.27, output: 1.10, cached_input: 0.07}}}}
  deepseek-reasoner:
    deployments:
      - {{provider: deepseek, model: deepseek-reasoner, price: {{input: 0.55, output: 2.19}}}}
  kimi:
    deployments:
      - {{provider: moonshot, model: moonshot-v1-8k, price: {{input: 12, output: 12, currency: CNY}}}}
  qwen-plus:
    deployments:
      - {{provider: dashscope, model: qwen-plus, price: {{input: 0.8, output: 2.0, currency: CNY}}}}
  qwq:
    deployments:
      - {{provider: dashscope, model: qwq-plus, price: {{input: 1.6, output: 4.0, currency: CNY}}}}
  local-think:
    deployments:
      - {{provider: vllm, model: qwen3-think, price: {{input: 0}}}}
  ollama-think:
    deployments:
      - {{provider: ollama, model: deepseek-r1-think, price: {{input: 0}}}}
  mistral-small:
    deployments:
      - {{provider: mistral, model: mistral-small-latest, price: {{input: 0.1, output: 0.3}}}}
  failover:
    deployments:
      - {{provider: dead, model: x, price: {{input: 1}}}}
      - {{provider: flaky, model: gpt-4o-mini, price: {{input: 1, output: 2}}}}
  with-fallback:
    deployments:
      - {{provider: flaky, model: gpt-4o-mini, price: {{input: 1, output: 2}}}}
    fallbacks: [gpt-mini]
  only-flaky:
    deployments:
      - {{provider: flaky, model: gpt-4o-mini, price: {{input: 1, output: 2}}}}
  only-dead:
    deployments:
      - {{provider: dead, model: x, price: {{input: 1}}}}
  tiny-window:
    context_window: 20
    deployments:
      - {{provider: openai-a, model: gpt-4o-mini, price: {{input: 1}}}}
  text-only:
    capabilities: [json_mode]
    deployments:
      - {{provider: openai-a, model: gpt-4o-mini, price: {{input: 1}}}}
  small-window:
    context_window: 60
    deployments:
      - {{provider: openai-a, model: gpt-4o-mini, price: {{input: 1}}}}
    fallbacks: [large-window]
  large-window:
    context_window: 100000
    deployments:
      - {{provider: flaky, model: gpt-4o-mini, price: {{input: 1}}}}
  cheapest-first:
    policy: cheapest
    deployments:
      - {{provider: flaky, model: gpt-4o-mini, price: {{input: 5, output: 5}}}}
      - {{provider: openai-a, model: gpt-4o-mini, price: {{input: 1, output: 1}}}}
  embed-small:
    kind: embedding
    deployments:
      - {{provider: openai-a, model: text-embedding-3-small, price: {{input: 0.02}}}}
"""


@pytest.fixture(scope="module")
def gateway(
    database_url: str, upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    directory: Path = tmp_path_factory.mktemp("gateway")
    running = start_gateway(directory, gateway_config(database_url, upstreams.urls))
    yield running
    assert running.stop() == 0, running.log()


@pytest.fixture
def key(gateway: RunningGateway) -> str:
    return gateway.new_key()
