"""``POST /v1/messages`` with the official Anthropic SDK, in front of OpenAI-wire models:
plain, streamed (``messages.stream``), tools, errors in Anthropic's shape, and billing."""

from __future__ import annotations

from decimal import Decimal

import anthropic
import pytest

from tests.e2e.conftest import Upstreams
from tests.e2e.harness import RunningGateway


def client(gateway: RunningGateway, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.base_url, api_key=key, max_retries=0)


def test_a_plain_message(gateway: RunningGateway, key: str, upstreams: Upstreams) -> None:
    raw = client(gateway, key).messages.with_raw_response.create(
        model="gpt-mini",
        max_tokens=100,
        system="be brief",
        messages=[{"role": "user", "content": "hello there gateway"}],
    )
    message = raw.parse()
    assert message.content[0].type == "text"
    assert message.content[0].text == "echo: hello there gateway"
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 4
    assert raw.headers["x-tokenyard-model"] == "gpt-mini"
    assert Decimal(raw.headers["x-tokenyard-cost"]) > 0
    sent = upstreams["openai-a"].requests[-1].body
    assert sent["messages"][0] == {"role": "system", "content": "be brief"}
    assert sent["max_completion_tokens"] == 100


def test_a_streamed_message(gateway: RunningGateway, key: str) -> None:
    with client(gateway, key).messages.stream(
        model="deepseek-reasoner",
        max_tokens=200,
        messages=[{"role": "user", "content": "think first"}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "echo: think first"
    kinds = [block.type for block in final.content]
    assert kinds == ["thinking", "text"]
    assert final.content[0].thinking == "thinking about it"  # type: ignore[union-attr]
    assert final.usage.output_tokens > 0


def test_tools_round_trip(gateway: RunningGateway, key: str, upstreams: Upstreams) -> None:
    tools = [
        {
            "name": "get_weather",
            "description": "weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    first = client(gateway, key).messages.create(
        model="gpt-mini",
        max_tokens=100,
        tools=tools,  # type: ignore[arg-type]
        messages=[{"role": "user", "content": "weather in Paris?"}],
    )
    assert first.stop_reason == "tool_use"
    call = first.content[-1]
    assert call.type == "tool_use"
    assert (call.name, call.input) == ("get_weather", {"city": "Paris"})
    with client(gateway, key).messages.stream(
        model="gpt-mini",
        max_tokens=100,
        tools=tools,  # type: ignore[arg-type]
        messages=[
            {"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "content": first.content},  # type: ignore[typeddict-item]
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": call.id, "content": "18C, sunny"}
                ],
            },
        ],
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"  # the stand-in calls the tool while "weather" is asked
    assert final.content[-1].type == "tool_use"
    sent = upstreams["openai-a"].requests[-1].body
    assert sent["messages"][-1] == {
        "role": "tool",
        "tool_call_id": call.id,
        "content": "18C, sunny",
    }
    assert sent["messages"][-2]["tool_calls"][0]["function"]["name"] == "get_weather"


def test_errors_are_anthropic_shaped(gateway: RunningGateway, key: str) -> None:
    sdk = client(gateway, key)
    with pytest.raises(anthropic.NotFoundError) as missing:
        sdk.messages.create(
            model="claude-9", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    with pytest.raises(anthropic.AuthenticationError):
        client(gateway, "ty-wrong").messages.create(
            model="gpt-mini", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    response = gateway.post("/v1/messages", key, json={"model": "gpt-mini", "messages": []})
    assert response.status_code == 400
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_bearer_and_x_api_key_both_work_and_money_is_held(gateway: RunningGateway) -> None:
    poor = gateway.new_key(gateway.new_account(credit="0.000001"))
    with pytest.raises(anthropic.APIStatusError) as refused:
        client(gateway, poor).messages.create(
            model="gpt-mini", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert refused.value.status_code == 402
    assert refused.value.body["error"]["type"] == "billing_error"  # type: ignore[index]
    key = gateway.new_key()
    body = {"model": "gpt-mini", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}
    assert gateway.post("/v1/messages", key, json=body).status_code == 200
