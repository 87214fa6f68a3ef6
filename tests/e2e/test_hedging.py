"""Latency in the real gateway: a slow attempt is hedged with the next one (the first answer
wins, the other is cancelled upstream), and the `fastest` policy learns from what it sees."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import Upstreams
from tests.e2e.harness import ADMIN_KEY, RunningGateway, start_gateway
from tests.upstreams.openai_wire import StandInUpstream

USER = [{"role": "user", "content": "hello there gateway"}]
ECHO = "echo: hello there gateway"
HEDGE_MS = 300


def config(directory: str, urls: dict[str, str]) -> str:
    providers = "\n".join(
        f"""  {name}:
    api: openai
    vendor: openai
    base_url: {urls[name]}
    timeout_s: 10
    first_byte_timeout_s: 10
    idle_timeout_s: 10
    keys: [{{key: sk-{name}-secret}}]"""
        for name in ("flaky", "openai-a", "deepseek")
    )
    return f"""
database: sqlite:///{directory}/hedging.db
admin_key: {ADMIN_KEY}
health: {{consecutive_failures: 1000, min_requests: 1000}}
providers:
{providers}
models:
  hedged:
    hedge_after_ms: {HEDGE_MS}
    deployments:
      - {{provider: flaky, model: gpt-4o-mini, price: {{input: 1, output: 2}}}}
      - {{provider: openai-a, model: gpt-4o-mini, price: {{input: 1, output: 2}}}}
    fallbacks: [backup]
  backup:
    deployments:
      - {{provider: deepseek, model: deepseek-chat, price: {{input: 1, output: 2}}}}
  quickest:
    policy: fastest
    deployments:
      - {{provider: flaky, model: speed-probe, price: {{input: 1}}}}
      - {{provider: openai-a, model: speed-probe, price: {{input: 1}}}}
"""


@pytest.fixture(scope="module")
def gateway(
    upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    directory = tmp_path_factory.mktemp("hedging")
    running = start_gateway(directory, config(str(directory), upstreams.urls))
    yield running
    assert running.stop() == 0, running.log()
    assert "Traceback" not in running.log()


@pytest.fixture
def key(gateway: RunningGateway, upstreams: Upstreams) -> str:
    upstreams.reset()
    return gateway.new_key()


def wait_cancelled(upstream: StandInUpstream, count: int = 1) -> None:
    """The stand-in sees its handler cancelled once the gateway closed the connection."""
    deadline = time.monotonic() + 5
    while upstream.cancelled < count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert upstream.cancelled == count


def deployment(gateway: RunningGateway, provider: str, upstream_model: str) -> dict[str, Any]:
    rows = gateway.admin("GET", "/admin/providers").json()["deployments"]
    row: dict[str, Any] = next(
        r for r in rows if r["provider"] == provider and r["upstream_model"] == upstream_model
    )
    return row


def test_a_slow_first_deployment_is_hedged_and_then_cancelled(
    gateway: RunningGateway, key: str, upstreams: Upstreams
) -> None:
    before = deployment(gateway, "flaky", "gpt-4o-mini")
    upstreams["flaky"].stall_next(3.0)
    started = time.monotonic()
    raw = gateway.client(key).chat.completions.with_raw_response.create(
        model="hedged", messages=USER
    )
    elapsed = time.monotonic() - started
    assert raw.parse().choices[0].message.content == ECHO
    assert raw.headers["x-tokenyard-provider"] == "openai-a"
    assert raw.headers["x-tokenyard-model"] == "hedged"
    assert raw.headers["x-tokenyard-attempts"] == "2"
    assert elapsed < 2.0  # not the 3 s of the slow upstream
    wait_cancelled(upstreams["flaky"])
    assert len(upstreams["flaky"].requests) == 1
    assert upstreams["deepseek"].requests == []
    after = deployment(gateway, "flaky", "gpt-4o-mini")
    # The cancelled loser is neither a success nor a failure of its deployment.
    assert (after["requests"], after["failures"]) == (before["requests"], before["failures"])


def test_no_hedge_when_the_first_answers_in_time(
    gateway: RunningGateway, key: str, upstreams: Upstreams
) -> None:
    raw = gateway.client(key).chat.completions.with_raw_response.create(
        model="hedged", messages=USER
    )
    assert raw.headers["x-tokenyard-provider"] == "flaky"
    assert raw.headers["x-tokenyard-attempts"] == "1"
    time.sleep(HEDGE_MS / 1000 + 0.2)  # long past the hedge delay: still nothing started
    assert upstreams["openai-a"].requests == []
    assert upstreams["flaky"].cancelled == 0


def test_a_stream_is_hedged_until_its_first_chunk(
    gateway: RunningGateway, key: str, upstreams: Upstreams
) -> None:
    upstreams["flaky"].stall_stream_next(3.0)  # headers at once, no chunk for 3 s
    started = time.monotonic()
    raw = gateway.client(key).chat.completions.with_raw_response.create(
        model="hedged", messages=USER, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text == ECHO
    assert time.monotonic() - started < 2.0
    assert raw.headers["x-tokenyard-provider"] == "openai-a"
    assert raw.headers["x-tokenyard-attempts"] == "2"
    wait_cancelled(upstreams["flaky"])
    # The time to an opened stream is the deployment's time to first token.
    assert deployment(gateway, "openai-a", "gpt-4o-mini")["ttft_ms"] is not None


def test_a_failing_first_racer_waits_for_the_hedge(
    gateway: RunningGateway, key: str, upstreams: Upstreams
) -> None:
    upstreams["flaky"].stall_next(0.8)
    upstreams["flaky"].fail_next(500)  # fails at 0.8 s, while the hedge still works
    upstreams["openai-a"].stall_next(1.5)  # answers at about 1.8 s
    raw = gateway.client(key).chat.completions.with_raw_response.create(
        model="hedged", messages=USER
    )
    assert raw.parse().choices[0].message.content == ECHO
    assert raw.headers["x-tokenyard-provider"] == "openai-a"
    assert raw.headers["x-tokenyard-attempts"] == "2"
    assert upstreams["deepseek"].requests == []  # the race did not end with the failure


def test_a_failing_hedge_waits_for_the_first_racer(
    gateway: RunningGateway, key: str, upstreams: Upstreams
) -> None:
    upstreams["flaky"].stall_next(1.0)
    upstreams["openai-a"].fail_next(503)
    raw = gateway.client(key).chat.completions.with_raw_response.create(
        model="hedged", messages=USER, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text == ECHO
    assert raw.headers["x-tokenyard-provider"] == "flaky"
    assert raw.headers["x-tokenyard-attempts"] == "2"
    assert upstreams["deepseek"].requests == []


def test_when_both_racers_fail_the_plan_goes_on(
    gateway: RunningGateway, key: str, upstreams: Upstreams
) -> None:
    upstreams["flaky"].stall_next(0.6)
    upstreams["flaky"].fail_next(500)
    upstreams["openai-a"].fail_next(502)
    raw = gateway.client(key).chat.completions.with_raw_response.create(
        model="hedged", messages=USER
    )
    assert raw.parse().choices[0].message.content == ECHO
    assert raw.headers["x-tokenyard-model"] == "backup"
    assert raw.headers["x-tokenyard-attempts"] == "3"


def test_fastest_measures_each_deployment_then_prefers_the_faster(
    gateway: RunningGateway, key: str, upstreams: Upstreams
) -> None:
    client = gateway.client(key)

    def served() -> str:
        raw = client.chat.completions.with_raw_response.create(model="quickest", messages=USER)
        assert raw.headers["x-tokenyard-attempts"] == "1"
        return raw.headers["x-tokenyard-provider"]

    upstreams["flaky"].stall_next(0.5)
    assert served() == "flaky"  # nothing measured yet: the configured order
    assert served() == "openai-a"  # the one not yet measured goes first
    assert [served() for _ in range(3)] == ["openai-a"] * 3  # then the faster one
