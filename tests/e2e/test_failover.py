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
        # Retry-After: 0 — a 429 cools the key down for that long: not at all here.
        upstreams["flaky"].fail_next(status, headers={"Retry-After": "0"})
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


def test_a_prompt_too_long_for_a_model_skips_to_a_larger_fallback(
    gateway: RunningGateway, key: str
) -> None:
    long = [{"role": "user", "content": "word " * 300}]
    raw = gateway.client(key).chat.completions.with_raw_response.create(
        model="small-window", messages=long
    )  # type: ignore[arg-type]
    assert raw.headers["x-tokenyard-model"] == "large-window"
    assert raw.headers["x-tokenyard-attempts"] == "1"  # the small one was not even tried


def test_an_upstream_context_overflow_moves_to_a_larger_model(
    gateway: RunningGateway, key: str, upstreams: Upstreams
) -> None:
    upstreams["openai-a"].fail_next(
        400,
        {
            "error": {
                "message": "This model's maximum context length is 60 tokens.",
                "type": "invalid_request_error",
                "param": "messages",
                "code": "context_length_exceeded",
            }
        },
    )
    raw = gateway.client(key).chat.completions.with_raw_response.create(
        model="small-window", messages=USER
    )
    assert raw.headers["x-tokenyard-model"] == "large-window"
    assert raw.headers["x-tokenyard-attempts"] == "2"


def test_the_cheapest_policy_tries_the_cheapest_deployment_first(
    gateway: RunningGateway, key: str
) -> None:
    raw = gateway.client(key).chat.completions.with_raw_response.create(
        model="cheapest-first", messages=USER
    )
    assert raw.headers["x-tokenyard-provider"] == "openai-a"


def test_the_requests_own_models_list_is_tried_after_the_model(
    gateway: RunningGateway, key: str, upstreams: Upstreams
) -> None:
    upstreams["flaky"].fail_next(500)
    raw = gateway.client(key).chat.completions.with_raw_response.create(
        model="only-flaky", messages=USER, extra_body={"models": ["deepseek-chat"]}
    )
    assert raw.headers["x-tokenyard-model"] == "deepseek-chat"
    assert raw.headers["x-tokenyard-attempts"] == "2"
    body = {"model": "only-flaky", "messages": USER}
    assert (
        gateway.post("/v1/chat/completions", key, json={**body, "models": ["nope"]}).status_code
        == 404
    )
    assert (
        gateway.post("/v1/chat/completions", key, json={**body, "models": "gpt-mini"}).status_code
        == 400
    )
    scoped = gateway.new_key(models=["only-flaky"])
    assert (
        gateway.post(
            "/v1/chat/completions", scoped, json={**body, "models": ["gpt-mini"]}
        ).status_code
        == 403
    )


def test_regions_narrow_the_plan(gateway: RunningGateway, key: str, upstreams: Upstreams) -> None:
    upstreams.reset()
    raw = gateway.client(key).chat.completions.with_raw_response.create(
        model="with-fallback", messages=USER, extra_body={"routing": {"regions": ["us"]}}
    )
    assert raw.headers["x-tokenyard-model"] == "gpt-mini"  # flaky is in eu: skipped
    assert raw.headers["x-tokenyard-attempts"] == "1"
    assert upstreams["flaky"].requests == []
    response = gateway.post(
        "/v1/chat/completions",
        key,
        json={"model": "with-fallback", "messages": USER, "routing": {"regions": ["cn"]}},
    )  # cn is a region of other models' deployments, not of this model's
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "no_upstream_available"
    typo = gateway.post(
        "/v1/chat/completions",
        key,
        json={"model": "with-fallback", "messages": USER, "routing": {"regions": ["asia"]}},
    )  # no deployment anywhere is in asia: the client's mistake, not a missing upstream
    assert typo.status_code == 400
    assert typo.json()["error"]["param"] == "routing.regions"
    bad = gateway.post(
        "/v1/chat/completions",
        key,
        json={"model": "with-fallback", "messages": USER, "routing": {"regions": "us"}},
    )
    assert bad.status_code == 400
