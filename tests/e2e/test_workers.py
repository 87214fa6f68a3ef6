"""``--workers N``: one port, several processes sharing state through the database, and a
revocation that every worker sees at once."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Upstreams, gateway_config
from tests.e2e.harness import RunningGateway, start_gateway

USER = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def workers(
    database_url: str, upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    directory: Path = tmp_path_factory.mktemp("workers")
    redis = os.environ.get("TOKENYARD_TEST_REDIS")
    if not redis:
        pytest.fail("TOKENYARD_TEST_REDIS is not set: run the tests through `make test`")
    config = gateway_config(database_url, upstreams.urls, redis=redis)
    running = start_gateway(directory, config, workers=2)
    yield running
    assert running.stop() == 0, running.log()


def _fresh_connection_chat(gateway: RunningGateway, key: str) -> httpx.Response:
    # A new connection each time, so the kernel spreads requests over the workers.
    with httpx.Client(base_url=gateway.base_url, timeout=10) as client:
        return client.post(
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": "gpt-mini", "messages": USER},
        )


def test_two_workers_serve_one_port(workers: RunningGateway) -> None:
    listening = [json.loads(line) for line in workers.log().splitlines() if '"listening"' in line]
    assert len({entry["pid"] for entry in listening}) == 2
    # Each worker froze the heap it built after the fork (server/run.py, decision 0016).
    assert all(entry["gc_frozen"] > 10_000 for entry in listening)
    key = workers.new_key()
    assert all(_fresh_connection_chat(workers, key).status_code == 200 for _ in range(20))


def test_a_revoked_key_fails_at_once_in_every_worker(workers: RunningGateway) -> None:
    account = workers.new_account()
    created = workers.admin("POST", "/admin/keys", {"account_id": account}).json()
    for _ in range(20):  # warm the key in both workers' caches
        assert _fresh_connection_chat(workers, created["key"]).status_code == 200
    assert workers.admin("DELETE", f"/admin/keys/{created['id']}").status_code == 204
    statuses = [_fresh_connection_chat(workers, created["key"]).status_code for _ in range(20)]
    assert statuses == [401] * 20


def test_rate_limits_are_shared_by_the_workers_through_redis(workers: RunningGateway) -> None:
    key = workers.new_key(rpm=5)
    statuses = [_fresh_connection_chat(workers, key).status_code for _ in range(8)]
    assert statuses == [200] * 5 + [429] * 3
    limited = _fresh_connection_chat(workers, key)
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
