"""Every error of SPEC §4: its status, its OpenAI shape, and that it carries no trace and
no upstream secret."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Upstreams
from tests.e2e.harness import RunningGateway

USER = [{"role": "user", "content": "hello there gateway"}]


def error_of(response: httpx.Response, status: int, type_: str, code: str | None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["code"]) == (type_, code)
    assert "Traceback" not in error["message"]
    assert response.headers["x-tokenyard-request-id"].startswith("req_")
    return error


def chat(gateway: RunningGateway, key: str | None, **body: Any) -> httpx.Response:
    return gateway.post("/v1/chat/completions", key, json={"messages": USER, **body})


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": USER}, "model"),
        ({"model": "gpt-mini", "messages": []}, "messages"),
        ({"model": "gpt-mini", "messages": [{"content": "no role"}]}, "messages[0]"),
        ({"model": "gpt-mini", "messages": USER, "n": 0}, "n"),
        ({"model": "gpt-mini", "messages": USER, "stream": "yes"}, "stream"),
        ({"model": "gpt-mini", "messages": USER, "max_tokens": -5}, "max_tokens"),
        ({"model": "gpt-mini", "messages": USER, "stream_options": 3}, "stream_options"),
    ],
)
def test_invalid_fields_are_400(
    gateway: RunningGateway, key: str, body: dict[str, Any], param: str
) -> None:
    response = gateway.post("/v1/chat/completions", key, json=body)
    assert error_of(response, 400, "invalid_request_error", None)["param"] == param


def test_malformed_json_and_non_objects_are_400(gateway: RunningGateway, key: str) -> None:
    for raw in (b"{", b"[1, 2]", b"\xff\xfe"):
        response = gateway.post("/v1/chat/completions", key, content=raw)
        error_of(response, 400, "invalid_request_error", None)


def test_capabilities_the_model_lacks_are_400(gateway: RunningGateway, key: str) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    error = error_of(
        chat(gateway, key, model="text-only", tools=tools), 400, "invalid_request_error", None
    )
    assert error["param"] == "tools"
    image = [
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}],
        }
    ]
    response = gateway.post(
        "/v1/chat/completions", key, json={"model": "text-only", "messages": image}
    )
    error_of(response, 400, "invalid_request_error", None)


def test_prompt_over_the_context_window_is_400(gateway: RunningGateway, key: str) -> None:
    long = [{"role": "user", "content": "word " * 200}]
    response = gateway.post(
        "/v1/chat/completions", key, json={"model": "tiny-window", "messages": long}
    )
    error_of(response, 400, "invalid_request_error", "context_length_exceeded")


def test_upstream_context_overflow_goes_back_as_400(
    gateway: RunningGateway, key: str, upstreams: Upstreams
) -> None:
    before = len(upstreams["openai-a"].requests)
    messages = [{"role": "user", "content": "context overflow"}]
    response = gateway.post(
        "/v1/chat/completions", key, json={"model": "gpt-mini", "messages": messages}
    )
    error_of(response, 400, "invalid_request_error", "context_length_exceeded")
    assert response.headers.get("x-tokenyard-attempts") is None
    assert len(upstreams["openai-a"].requests) == before + 1  # not retried


def test_missing_unknown_and_foreign_keys_are_401(gateway: RunningGateway) -> None:
    for key in (None, "ty-unknown", "sk-not-ours"):
        error_of(
            chat(gateway, key, model="gpt-mini"), 401, "authentication_error", "invalid_api_key"
        )
    response = gateway.http.post(
        "/v1/chat/completions", json={"model": "gpt-mini"}, headers={"Authorization": "Basic abc"}
    )
    error_of(response, 401, "authentication_error", "invalid_api_key")


def test_anthropic_style_x_api_key_header_is_accepted(gateway: RunningGateway, key: str) -> None:
    response = gateway.http.post(
        "/v1/chat/completions",
        headers={"x-api-key": key},
        json={"model": "gpt-mini", "messages": USER},
    )
    assert response.status_code == 200


def test_expired_keys_are_401(gateway: RunningGateway) -> None:
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    key = gateway.new_key(expires_at=past)
    error = error_of(
        chat(gateway, key, model="gpt-mini"), 401, "authentication_error", "invalid_api_key"
    )
    assert "expired" in error["message"]


def test_model_outside_the_key_scope_is_403(gateway: RunningGateway) -> None:
    key = gateway.new_key(models=["gpt-mini"])
    assert chat(gateway, key, model="gpt-mini").status_code == 200
    error_of(chat(gateway, key, model="kimi"), 403, "permission_error", "model_not_allowed")


def test_unknown_model_and_wrong_kind_are_404(gateway: RunningGateway, key: str) -> None:
    error_of(chat(gateway, key, model="gpt-9"), 404, "not_found_error", "model_not_found")
    error_of(chat(gateway, key, model="embed-small"), 404, "not_found_error", "model_not_found")
    response = gateway.post("/v1/embeddings", key, json={"model": "gpt-mini", "input": "x"})
    error_of(response, 404, "not_found_error", "model_not_found")


def test_unknown_routes_and_methods(gateway: RunningGateway, key: str) -> None:
    error_of(gateway.http.get("/v2/whatever"), 404, "not_found_error", "not_found")
    response = gateway.http.get("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"})
    error_of(response, 405, "invalid_request_error", "method_not_allowed")


def test_body_over_the_limit_is_413(gateway: RunningGateway, key: str) -> None:
    big = [{"role": "user", "content": "x" * 70_000}]  # the e2e config allows 64 KiB
    response = gateway.post(
        "/v1/chat/completions", key, json={"model": "gpt-mini", "messages": big}
    )
    error_of(response, 413, "invalid_request_error", "request_too_large")


def test_every_upstream_failing_is_502_without_secrets(
    gateway: RunningGateway, key: str, upstreams: Upstreams
) -> None:
    # (A 401 would take flaky's only key out of the shared gateway's pool for ten minutes:
    # tests/e2e/test_health.py covers refused keys on a gateway of its own.)
    upstreams["flaky"].fail_next(
        500, {"error": {"message": "broken; your key was sk-flaky-secret", "type": "server_error"}}
    )
    response = chat(gateway, key, model="only-flaky")
    error = error_of(response, 502, "upstream_error", "upstream_failed")
    assert "sk-flaky-secret" not in response.text
    assert "flaky" in error["message"]
    upstreams["flaky"].fail_next(503)
    error_of(chat(gateway, key, model="only-flaky"), 502, "upstream_error", "upstream_failed")
    # Retry-After: 0 — the key is not cooled down, so later tests find flaky's key free.
    upstreams["flaky"].fail_next(429, headers={"Retry-After": "0"})
    error_of(chat(gateway, key, model="only-flaky"), 502, "upstream_error", "upstream_rate_limited")


def test_unreachable_upstream_is_502(gateway: RunningGateway, key: str) -> None:
    error_of(chat(gateway, key, model="only-dead"), 502, "upstream_error", "upstream_failed")


def test_upstream_silent_past_its_first_byte_timeout_is_504(
    gateway: RunningGateway, key: str, upstreams: Upstreams
) -> None:
    upstreams["flaky"].stall_next(3.0)  # the provider's first_byte_timeout_s is 2
    error_of(chat(gateway, key, model="only-flaky"), 504, "upstream_error", "upstream_timeout")


def test_stream_broken_after_the_first_byte_ends_with_an_error_event(
    gateway: RunningGateway, key: str, upstreams: Upstreams
) -> None:
    upstreams["flaky"].break_stream_next(2)
    with gateway.http.stream(
        "POST",
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "with-fallback", "messages": USER, "stream": True},
    ) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line]
    assert response.headers["x-tokenyard-provider"] == "flaky"  # no failover after bytes
    assert lines[-1] == "data: [DONE]"
    assert lines[-2].startswith('data: {"error":')
    assert "failed mid-stream" in lines[-2]
