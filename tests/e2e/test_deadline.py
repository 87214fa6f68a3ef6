"""Every request is bounded: by a deadline over all its attempts (then 504, OpenAI shape) and
by a retry budget of upstream calls (key retries and hedges included)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import openai
import pytest

from tests.e2e.conftest import Upstreams
from tests.e2e.harness import ADMIN_KEY, RunningGateway, start_gateway

USER = [{"role": "user", "content": "hello there gateway"}]
PRICE = "price: {input: 1, output: 2}"


def config(directory: str, urls: dict[str, str]) -> str:
    providers = "\n".join(
        f"""  {name}:
    api: openai
    vendor: openai
    base_url: {urls[upstream]}
    timeout_s: 10
    first_byte_timeout_s: 10
    idle_timeout_s: 10
    keys: [{keys}]"""
        for name, upstream, keys in (
            ("flaky", "flaky", "{key: sk-flaky-secret}"),
            ("openai-a", "openai-a", "{key: sk-openai-a-secret}"),
            ("deepseek", "deepseek", "{key: sk-deepseek-secret}"),
            ("twin", "flaky", "{key: sk-flaky-secret}, {key: sk-flaky-secret}"),
        )
    )
    return f"""
database: sqlite:///{directory}/deadline.db
admin_key: {ADMIN_KEY}
health: {{consecutive_failures: 1000, min_requests: 1000}}
routing: {{deadline_s: 1, max_attempts: 2}}
providers:
{providers}
models:
  three:
    deployments:
      - {{provider: flaky, model: gpt-4o-mini, {PRICE}}}
      - {{provider: openai-a, model: gpt-4o-mini, {PRICE}}}
      - {{provider: deepseek, model: deepseek-chat, {PRICE}}}
  twin-keys:
    deployments:
      - {{provider: twin, model: gpt-4o-mini, {PRICE}}}
      - {{provider: openai-a, model: gpt-4o-mini, {PRICE}}}
  hedged-three:
    hedge_after_ms: 100
    deployments:
      - {{provider: flaky, model: gpt-4o-mini, {PRICE}}}
      - {{provider: openai-a, model: gpt-4o-mini, {PRICE}}}
      - {{provider: deepseek, model: deepseek-chat, {PRICE}}}
"""


@pytest.fixture(scope="module")
def gateway(
    upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    directory = tmp_path_factory.mktemp("deadline")
    running = start_gateway(directory, config(str(directory), upstreams.urls))
    yield running
    assert running.stop() == 0, running.log()
    assert "Traceback" not in running.log()


@pytest.fixture
def key(gateway: RunningGateway, upstreams: Upstreams) -> str:
    upstreams.reset()
    return gateway.new_key()


def calls(upstreams: Upstreams) -> dict[str, int]:
    return {name: len(upstreams[name].requests) for name in ("flaky", "openai-a", "deepseek")}


@pytest.mark.parametrize("stream", [False, True])
def test_the_deadline_ends_a_request_whose_upstreams_are_all_slow(
    gateway: RunningGateway, key: str, upstreams: Upstreams, stream: bool
) -> None:
    upstreams["flaky"].stall_next(0.6)
    upstreams["flaky"].fail_next(500)  # fails over at 0.6 s ...
    upstreams["openai-a"].stall_next(5.0)  # ... to one that would answer after the deadline
    client = gateway.client(key, max_retries=0)
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="three", messages=USER, stream=stream)  # type: ignore[call-overload]
    assert time.monotonic() - started < 2.5
    error = caught.value
    assert error.status_code == 504
    assert (error.type, error.code) == ("upstream_error", "upstream_timeout")
    assert "deadline of 1 s" in error.message
    assert error.response.json()["error"]["param"] is None  # the whole OpenAI shape
    assert calls(upstreams) == {"flaky": 1, "openai-a": 1, "deepseek": 0}
    deadline = time.monotonic() + 5
    while upstreams["openai-a"].cancelled < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert upstreams["openai-a"].cancelled == 1  # the upstream call was given up, not left


def test_the_deadline_releases_the_hold(gateway: RunningGateway, upstreams: Upstreams) -> None:
    upstreams.reset()
    account = gateway.new_account()
    key = gateway.new_key(account)
    upstreams["flaky"].stall_next(5.0)
    response = gateway.post("/v1/chat/completions", key, json={"model": "three", "messages": USER})
    assert response.status_code == 504
    assert gateway.admin("GET", f"/admin/accounts/{account}").json()["reserved"] == "0.000000"


def test_the_retry_budget_stops_failover(
    gateway: RunningGateway, key: str, upstreams: Upstreams
) -> None:
    for name in ("flaky", "openai-a", "deepseek"):
        upstreams[name].fail_next(500)
    response = gateway.post("/v1/chat/completions", key, json={"model": "three", "messages": USER})
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["type"] == "upstream_error"
    assert "retry budget of 2 upstream calls is used up" in error["message"]
    assert calls(upstreams) == {"flaky": 1, "openai-a": 1, "deepseek": 0}


def test_key_retries_count_against_the_budget(
    gateway: RunningGateway, key: str, upstreams: Upstreams
) -> None:
    upstreams["flaky"].fail_next(429, headers={"Retry-After": "0"}, times=2)
    response = gateway.post(
        "/v1/chat/completions", key, json={"model": "twin-keys", "messages": USER}
    )
    assert response.status_code == 502, response.text
    assert "retry budget" in response.json()["error"]["message"]
    assert calls(upstreams) == {"flaky": 2, "openai-a": 0, "deepseek": 0}


def test_a_hedge_counts_against_the_budget(
    gateway: RunningGateway, key: str, upstreams: Upstreams
) -> None:
    upstreams["flaky"].stall_next(0.3)
    upstreams["flaky"].fail_next(500)
    upstreams["openai-a"].stall_next(0.3)  # started at 0.1 s as the hedge, fails at 0.4 s
    upstreams["openai-a"].fail_next(503)
    response = gateway.post(
        "/v1/chat/completions", key, json={"model": "hedged-three", "messages": USER}
    )
    assert response.status_code == 502, response.text
    assert "retry budget" in response.json()["error"]["message"]
    assert calls(upstreams) == {"flaky": 1, "openai-a": 1, "deepseek": 0}


def test_within_budget_the_request_succeeds(
    gateway: RunningGateway, key: str, upstreams: Upstreams
) -> None:
    upstreams["flaky"].fail_next(500)
    raw = gateway.client(key).chat.completions.with_raw_response.create(
        model="three", messages=USER
    )
    assert raw.headers["x-tokenyard-provider"] == "openai-a"
    assert raw.headers["x-tokenyard-attempts"] == "2"
