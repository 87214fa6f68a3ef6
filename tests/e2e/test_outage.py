"""The database going away: requests that need it fail fast with 503 (OpenAI shape), and
/readyz says so, while /healthz still answers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.e2e.conftest import Upstreams, gateway_config
from tests.e2e.harness import postgres_database, start_gateway

pytestmark = pytest.mark.services


def test_a_lost_database_gives_503_not_a_trace(upstreams: Upstreams, tmp_path: Path) -> None:
    admin_url = os.environ.get("TOKENYARD_TEST_PG")
    if not admin_url:
        pytest.fail("TOKENYARD_TEST_PG is not set: run the tests through `make test`")
    url, drop = postgres_database(admin_url)
    gateway = start_gateway(tmp_path, gateway_config(url, upstreams.urls))
    try:
        key = gateway.new_key()
        warm_up = gateway.post(
            "/v1/chat/completions",
            key,
            json={"model": "gpt-mini", "messages": [{"role": "user", "content": "x"}]},
        )
        assert warm_up.status_code == 200
        drop()  # the database disappears under the running gateway
        fresh = gateway.post(
            "/v1/chat/completions",
            "ty-" + "a" * 43,
            json={"model": "gpt-mini", "messages": [{"role": "user", "content": "x"}]},
        )
        assert fresh.status_code == 503, fresh.text
        assert fresh.json()["error"]["type"] == "server_error"
        assert fresh.json()["error"]["code"] == "service_unavailable"
        assert gateway.admin("POST", "/admin/accounts", {"name": "x"}).status_code == 503
        assert gateway.http.get("/readyz").status_code == 503
        assert gateway.http.get("/healthz").status_code == 200
        # A key already in the cache is known, but nothing can be billed: no answer is given.
        warm = gateway.post(
            "/v1/chat/completions",
            key,
            json={"model": "gpt-mini", "messages": [{"role": "user", "content": "x"}]},
        )
        assert warm.status_code == 503
        assert warm.json()["error"]["code"] == "service_unavailable"
    finally:
        gateway.stop()
    assert "Traceback" not in gateway.log()
