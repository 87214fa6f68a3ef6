"""Failing over before the first byte: to the next deployment, then to the fallbacks — only
for failures another upstream could fix."""

from __future__ import annotations

from tests.e2e.conftest import Upstreams
from tests.e2e.harness import RunningGateway

USER = [{"role": "user", "content": "hello there gateway"}]


def test_unreachable_deployment_fails_over_to_the_next(
    gateway: RunningGateway, key: str, upstreams: Upstreams
) -> None:
    raw = gateway.client(key).chat.completions.with_raw_response.create(
        model="failover", messages=USER
    )
    assert raw.parse().choices[0].message.content == "echo: hello there gateway"
    assert raw.headers["x-tokenyard-provider"] == "flaky"
    assert raw.headers["x-tokenyard-attempts"] == "2"


def test_server_errors_and_rate_limits_move_to_the_fallback_model(
    gateway: RunningGateway, key: str, upstreams: Upstreams
) -> None:
    client = gateway.client(key)
    for status in (500, 503, 429, 529):
        upstreams["flaky"].fail_next(status)
        raw = client.chat.completions.with_raw_response.create(model="with-fallback", messages=USER)
        assert raw.headers["x-tokenyard-model"] == "gpt-mini", status
        assert raw.headers["x-tokenyard-provider"] == "openai-a"
        assert raw.headers["x-tokenyard-attempts"] == "2"


def test_the_clients_own_bad_request_is_not_retried(
    gateway: RunningGateway, key: str, upstreams: Upstreams
) -> None:
    upstreams.reset()
    upstreams["flaky"].fail_next(
        400,
        {
            "error": {
                "message": "bad temperature",
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
        },
    )
    response = gateway.post(
        "/v1/chat/completions", key, json={"model": "with-fallback", "messages": USER}
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "bad temperature"
    assert len(upstreams["flaky"].requests) == 1
    assert upstreams["openai-a"].requests == []


def test_streams_fail_over_before_the_first_byte(
    gateway: RunningGateway, key: str, upstreams: Upstreams
) -> None:
    upstreams["flaky"].fail_next(502)
    raw = gateway.client(key).chat.completions.with_raw_response.create(
        model="with-fallback", messages=USER, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text == "echo: hello there gateway"
    assert raw.headers["x-tokenyard-model"] == "gpt-mini"
    assert raw.headers["x-tokenyard-attempts"] == "2"


def test_a_timeout_before_the_first_byte_fails_over(
    gateway: RunningGateway, key: str, upstreams: Upstreams
) -> None:
    upstreams["flaky"].stall_next(3.0)
    raw = gateway.client(key).chat.completions.with_raw_response.create(
        model="with-fallback", messages=USER, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert raw.headers["x-tokenyard-provider"] == "openai-a"
