"""Circuit breaking in the real gateway: a failing deployment is skipped while a healthy
alternative exists, then probed again after its cool-off."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Upstreams, gateway_config
from tests.e2e.harness import RunningGateway, start_gateway

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
    assert keys["openai-a"] == [{"label": "openai-a#0", "weight": 1, "rpm": None, "tpm": None}]
    row = next(d for d in body["deployments"] if d["model"] == "gpt-mini")
    assert row["circuit"] == "closed"
    assert row["requests"] >= 1 and row["latency_ms"] > 0
    assert gateway.http.get("/admin/providers").status_code == 401
