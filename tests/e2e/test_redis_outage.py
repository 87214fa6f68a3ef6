"""Redis going away under two gateway processes: they keep answering with per-process rate
limits, say so once in the log and in ``tokenyard_redis_up``, and share their limits again
when Redis returns; a hung Redis costs one timeout per interval, not one per request."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Upstreams, gateway_config
from tests.e2e.harness import RunningGateway, start_gateway
from tests.e2e.private_services import PrivateRedis

pytestmark = pytest.mark.services

BODY = {"model": "gpt-mini", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
LIVENESS_S = 5.0


@pytest.fixture
def redis_server() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    yield server
    server.stop()


def _ask(gateway: RunningGateway, key: str) -> int:
    started = time.monotonic()
    response = gateway.post("/v1/chat/completions", key, json=BODY)
    assert time.monotonic() - started < LIVENESS_S  # never held up by Redis
    if response.status_code != 200:
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert response.status_code == 429, response.text
        assert error["code"] == "rate_limit_exceeded"
        assert int(response.headers["Retry-After"]) >= 1
    return response.status_code


def _redis_up(gateway: RunningGateway) -> float:
    text = gateway.admin("GET", "/metrics").text
    found = re.search(r"^tokenyard_redis_up (\S+)$", text, re.MULTILINE)
    assert found, "no tokenyard_redis_up in /metrics"
    return float(found.group(1))


def _until(condition: object, timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.1)
    return False


def _shared_limit_holds(a: RunningGateway, b: RunningGateway, key: str) -> None:
    """rpm 4: two answers from each process, then the fifth is refused by either."""
    assert [_ask(a, key), _ask(b, key), _ask(a, key), _ask(b, key)] == [200] * 4
    assert _ask(a, key) == 429
    assert _ask(b, key) == 429


def test_redis_stopped_degrades_to_process_limits_and_recovers(
    redis_server: PrivateRedis, upstreams: Upstreams, tmp_path: Path
) -> None:
    config = gateway_config(f"sqlite:///{tmp_path / 'db.sqlite'}", upstreams.urls, redis_server.url)
    a = start_gateway(tmp_path / "a", config)
    b = start_gateway(tmp_path / "b", config)
    try:
        account = a.new_account(credit="100")
        keys = [a.new_key(account, rpm=4) for _ in range(3)]
        assert _redis_up(a) == 1 and _redis_up(b) == 1
        _shared_limit_holds(a, b, keys[0])

        redis_server.stop()
        # Both notice without a request (their listeners lose the connection).
        assert _until(lambda: _redis_up(a) == 0 and _redis_up(b) == 0)
        # Limits still hold, counted by each process on its own: four answers from each.
        assert [_ask(a, keys[1]) for _ in range(5)] == [200] * 4 + [429]
        assert [_ask(b, keys[1]) for _ in range(5)] == [200] * 4 + [429]
        for gateway in (a, b):
            assert gateway.log().count("redis unreachable") == 1  # said once, not per request
            assert _redis_up(gateway) == 0

        redis_server.start()
        assert _until(lambda: _redis_up(a) == 1 and _redis_up(b) == 1)
        _shared_limit_holds(a, b, keys[2])  # shared again, with no gateway restarted
        for gateway in (a, b):
            assert gateway.log().count("redis reachable again") == 1
            assert gateway.process.poll() is None
    finally:
        codes = (a.stop(), b.stop())
    assert codes == (0, 0), a.log() + b.log()
    assert "Traceback" not in a.log() + b.log()


def test_a_hung_redis_costs_one_timeout_per_interval(
    redis_server: PrivateRedis, upstreams: Upstreams, tmp_path: Path
) -> None:
    """Redis accepts connections but never answers (SIGSTOP): each call to it waits for its
    one-second timeout. Ten requests in a row wait for it once, not ten times (recovery is
    the test above's)."""
    config = gateway_config(f"sqlite:///{tmp_path / 'db.sqlite'}", upstreams.urls, redis_server.url)
    gateway = start_gateway(tmp_path, config)
    pid = redis_server.pid
    try:
        key = gateway.new_key(gateway.new_account(credit="100"), rpm=1000)
        assert _ask(gateway, key) == 200  # Redis is in use
        os.kill(pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            statuses = [_ask(gateway, key) for _ in range(10)]
            elapsed = time.monotonic() - started
            assert _redis_up(gateway) == 0
        finally:
            os.kill(pid, signal.SIGCONT)
        assert statuses == [200] * 10
        assert elapsed < 5, f"ten requests took {elapsed:.1f} s behind a hung Redis"
    finally:
        code = gateway.stop()
    assert code == 0, gateway.log()
    assert gateway.log().count("redis unreachable") == 1
