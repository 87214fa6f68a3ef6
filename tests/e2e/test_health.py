"""Circuit breaking in the real gateway: a failing deployment is skipped while a healthy
alternative exists, then probed again after its cool-off."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Upstreams, gateway_config
from tests.e2e.harness import ADMIN_KEY, RunningGateway, start_gateway

USER = [{"role": "user", "content": "hello there gateway"}]


@pytest.fixture(scope="module")
def gateway(
    database_url: str, upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    config = gateway_config(
        database_url, upstreams.urls, health="{consecutive_failures: 2, open_s: 1, max_open_s: 4}"
    )
    running = start_gateway(tmp_path_factory.mktemp("health"), config)
    yield running
    running.stop()


def served(gateway: RunningGateway, key: str) -> tuple[str, str]:
    response = gateway.post(
        "/v1/chat/completions", key, json={"model": "with-fallback", "messages": USER}
    )
    assert response.status_code == 200, response.text
    return response.headers["x-tokenyard-provider"], response.headers["x-tokenyard-attempts"]


def test_an_open_circuit_is_skipped_then_probed(
    gateway: RunningGateway, upstreams: Upstreams
) -> None:
    key = gateway.new_key()
    upstreams.reset()
    upstreams["flaky"].fail_next(503, times=2)
    assert served(gateway, key) == ("openai-a", "2")
    assert served(gateway, key) == ("openai-a", "2")  # second failure in a row: open
    assert served(gateway, key) == ("openai-a", "1")  # flaky is skipped, not hammered
    assert len(upstreams["flaky"].requests) == 2
    time.sleep(1.2)  # the cool-off passes: one probe goes to flaky, succeeds, closes
    assert served(gateway, key) == ("flaky", "1")
    assert served(gateway, key) == ("flaky", "1")


def test_admin_providers_shows_health_and_no_secrets(gateway: RunningGateway) -> None:
    gateway.post(
        "/v1/chat/completions", gateway.new_key(), json={"model": "gpt-mini", "messages": USER}
    )
    response = gateway.admin("GET", "/admin/providers")
    assert response.status_code == 200
    body = response.json()
    assert "sk-" not in response.text  # upstream keys are labels only
    keys = {p["name"]: p["keys"] for p in body["providers"]}
    assert keys["openai-a"] == [
        {
            "label": "openai-a#0",
            "weight": 1,
            "rpm": None,
            "tpm": None,
            "state": "ready",
            "available_in_s": 0.0,
        }
    ]
    row = next(d for d in body["deployments"] if d["model"] == "gpt-mini")
    assert row["circuit"] == "closed"
    assert row["requests"] >= 1 and row["latency_ms"] > 0
    assert gateway.http.get("/admin/providers").status_code == 401


def pooled_gateway(upstreams: Upstreams, directory: Path, keys: list[str]) -> RunningGateway:
    """A provider with several keys in front of the flaky stand-in (which accepts only
    sk-flaky-secret)."""
    listed = ", ".join("{key: " + k + "}" for k in keys)
    config = f"""
database: sqlite:///{directory / "p.db"}
admin_key: {ADMIN_KEY}
providers:
  pooled:
    api: openai
    vendor: openai
    base_url: {upstreams.urls["flaky"]}
    keys: [{listed}]
models:
  pooled-model:
    deployments: [{{provider: pooled, model: gpt-4o-mini, price: {{input: 1}}}}]
"""
    return start_gateway(directory, config)


@pytest.fixture
def pooled(upstreams: Upstreams, tmp_path: Path) -> Iterator[RunningGateway]:
    # The bad key weighs a million times more: it is (all but) certainly drawn first.
    running = pooled_gateway(
        upstreams, tmp_path, ["sk-revoked-upstream, weight: 1000000", "sk-flaky-secret"]
    )
    yield running
    running.stop()


@pytest.fixture
def twin_keys(upstreams: Upstreams, tmp_path: Path) -> Iterator[RunningGateway]:
    running = pooled_gateway(upstreams, tmp_path, ["sk-flaky-secret", "sk-flaky-secret"])
    yield running
    running.stop()


def test_a_refused_key_is_retried_with_the_next_and_then_left_out(
    pooled: RunningGateway, upstreams: Upstreams
) -> None:
    key = pooled.new_key()
    attempts = []
    for _ in range(12):
        response = pooled.post(
            "/v1/chat/completions", key, json={"model": "pooled-model", "messages": USER}
        )
        assert response.status_code == 200, response.text
        attempts.append(response.headers["x-tokenyard-attempts"])
    # The first call draws the bad key: 401, then the other key (two attempts); after it
    # the bad key is out of the pool and every call takes one.
    assert attempts == ["2"] + ["1"] * 11
    assert "sk-revoked-upstream" not in pooled.log()
    assert '"key":"pooled#0"' in pooled.log()


def test_a_429_on_one_key_moves_to_the_other_key(
    twin_keys: RunningGateway, upstreams: Upstreams
) -> None:
    pooled = twin_keys
    key = pooled.new_key()
    upstreams.reset()
    upstreams["flaky"].fail_next(429, headers={"Retry-After": "30"})
    response = pooled.post(
        "/v1/chat/completions", key, json={"model": "pooled-model", "messages": USER}
    )
    assert response.status_code == 200
    assert response.headers["x-tokenyard-attempts"] == "2"
    assert response.headers["x-tokenyard-provider"] == "pooled"


def test_a_stream_reports_time_to_first_token_and_generation_speed(
    gateway: RunningGateway,
) -> None:
    client = gateway.client(gateway.new_key(), max_retries=0)
    stream = client.chat.completions.create(
        model="mistral-small",
        messages=[{"role": "user", "content": "tell me a long story about the sea"}],
        stream=True,
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    rows = gateway.admin("GET", "/admin/providers").json()["deployments"]
    row = next(d for d in rows if d["model"] == "mistral-small")
    assert row["ttft_ms"] > 0
    assert row["tokens_per_s"] > 0
