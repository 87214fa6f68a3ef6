"""Chat completions end to end: the real gateway process, the official OpenAI SDK as the
client, stand-in upstreams of each OpenAI-wire vendor behind it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.e2e.conftest import Upstreams
from tests.e2e.harness import RunningGateway

USER = [{"role": "user", "content": "hello there gateway"}]


def expected_cost(
    prompt: int, completion: int, cached: int, price: tuple[str, str, str]
) -> Decimal:
    p_in, p_out, p_cached = (Decimal(x) for x in price)
    return (
        ((prompt - cached) * p_in + cached * p_cached + completion * p_out)
        / Decimal(1_000_000)
        * Decimal("1.10")
    ).quantize(Decimal("0.000000001"))


def test_non_streamed_completion_with_headers_and_cost(
    gateway: RunningGateway, key: str, upstreams: Upstreams
) -> None:
    client = gateway.client(key)
    raw = client.chat.completions.with_raw_response.create(model="gpt-mini", messages=USER)
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo: hello there gateway"
    assert raw.headers["x-tokenyard-model"] == "gpt-mini"
    assert raw.headers["x-tokenyard-provider"] == "openai-a"
    assert raw.headers["x-tokenyard-attempts"] == "1"
    assert raw.headers["x-tokenyard-request-id"].startswith("req_")
    usage = completion.usage
    assert usage is not None
    cost = expected_cost(usage.prompt_tokens, usage.completion_tokens, 0, ("0.15", "0.60", "0"))
    assert Decimal(raw.headers["x-tokenyard-cost"]) == cost
    assert Decimal(str(usage.model_extra["cost"])) == cost
    assert (
        upstreams["openai-a"].requests[-1].headers["authorization"] == "Bearer sk-openai-a-secret"
    )


def test_everything_the_client_sends_is_passed_through(
    gateway: RunningGateway, key: str, upstreams: Upstreams
) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    sent = {
        "temperature": 0.3,
        "top_p": 0.9,
        "n": 2,
        "seed": 7,
        "stop": ["END"],
        "logprobs": True,
        "top_logprobs": 2,
        "user": "u-1",
        "metadata": {"team": "a"},
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
        "logit_bias": {"42": 1},
        "parallel_tool_calls": False,
        "tool_choice": "auto",
        "tools": tools,
        "response_format": {"type": "json_object"},
        "max_completion_tokens": 50,
    }
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is here"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            ],
        }
    ]
    completion = gateway.client(key).chat.completions.create(
        model="gpt-mini",
        messages=messages,
        extra_body={"routing": {"sort": "price"}},
        **sent,  # type: ignore[arg-type]
    )
    body = upstreams["openai-a"].requests[-1].body
    assert body["model"] == "gpt-4o-mini"
    for name, value in sent.items():
        assert body[name] == value, name
    assert body["messages"] == messages
    assert "routing" not in body
    assert len(completion.choices) == 2


def test_tool_calls_come_back(gateway: RunningGateway, key: str) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    completion = gateway.client(key).chat.completions.create(
        model="gpt-mini",
        messages=[{"role": "user", "content": "weather please"}],
        tools=tools,  # type: ignore[arg-type]
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert call.function.arguments == '{"city":"Paris"}'  # type: ignore[union-attr]


def test_stream_is_relayed_and_usage_only_when_asked(
    gateway: RunningGateway, key: str, upstreams: Upstreams
) -> None:
    client = gateway.client(key)
    chunks = list(client.chat.completions.create(model="gpt-mini", messages=USER, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: hello there gateway"
    assert all(c.usage is None for c in chunks)
    # The gateway always asks the upstream for usage, to bill it.
    assert upstreams["openai-a"].requests[-1].body["stream_options"] == {"include_usage": True}

    chunks = list(
        client.chat.completions.create(
            model="gpt-mini", messages=USER, stream=True, stream_options={"include_usage": True}
        )
    )
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.completion_tokens == 4
    cost = expected_cost(last.usage.prompt_tokens, 4, 0, ("0.15", "0.60", "0"))
    assert Decimal(str(last.usage.model_extra["cost"])) == cost


def test_stream_headers(gateway: RunningGateway, key: str) -> None:
    with gateway.http.stream(
        "POST",
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "gpt-mini", "messages": USER, "stream": True},
    ) as response:
        lines = [line for line in response.iter_lines() if line]
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        assert response.headers["x-tokenyard-provider"] == "openai-a"
        assert response.headers["x-tokenyard-attempts"] == "1"
    assert lines[-1] == "data: [DONE]"
    assert all(line.startswith("data: ") for line in lines)


def test_deepseek_cached_tokens_reasoning_and_keepalives(
    gateway: RunningGateway, key: str, upstreams: Upstreams
) -> None:
    client = gateway.client(key)
    messages = [
        {"role": "system", "content": "cached: long shared prefix"},
        {"role": "developer", "content": "be brief"},
        *USER,
    ]
    raw = client.chat.completions.with_raw_response.create(
        model="deepseek-chat", messages=messages, max_completion_tokens=30
    )  # type: ignore[arg-type]
    completion = raw.parse()
    sent = upstreams["deepseek"].requests[-1].body
    assert sent["max_tokens"] == 30 and "max_completion_tokens" not in sent
    assert [m["role"] for m in sent["messages"]] == ["system", "system", "user"]
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens_details is not None
    cached = usage.prompt_tokens_details.cached_tokens
    assert cached == usage.prompt_tokens // 2 > 0
    cost = expected_cost(
        usage.prompt_tokens, usage.completion_tokens, cached or 0, ("0.27", "1.10", "0.07")
    )
    assert Decimal(raw.headers["x-tokenyard-cost"]) == cost

    chunks = list(
        client.chat.completions.create(
            model="deepseek-reasoner",
            messages=USER,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    reasoning = "".join(
        (c.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
        for c in chunks
        if c.choices
    )
    assert reasoning == "thinking about it"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens_details is not None
    assert chunks[-1].usage.completion_tokens_details.reasoning_tokens == 3


def test_moonshot_usage_inside_choices_is_billed_and_not_leaked(
    gateway: RunningGateway, key: str
) -> None:
    client = gateway.client(key)
    chunks = list(client.chat.completions.create(model="kimi", messages=USER, stream=True))
    assert all("usage" not in (c.choices[0].model_extra or {}) for c in chunks if c.choices)
    with_usage = list(
        client.chat.completions.create(
            model="kimi", messages=USER, stream=True, stream_options={"include_usage": True}
        )
    )
    usage_chunks = [c for c in with_usage if c.usage is not None]
    assert len(usage_chunks) == 1  # de-duplicated
    usage = usage_chunks[0].usage
    assert usage is not None
    cost = expected_cost(
        usage.prompt_tokens, usage.completion_tokens, 0, ("1.68", "1.68", "0")
    )  # 12 CNY × 0.14
    assert Decimal(str(usage.model_extra["cost"])) == cost


def test_kimi_temperature_is_clamped(
    gateway: RunningGateway, key: str, upstreams: Upstreams
) -> None:
    gateway.client(key).chat.completions.create(model="kimi", messages=USER, temperature=1.7)
    assert upstreams["moonshot"].requests[-1].body["temperature"] == 1.0


@pytest.mark.parametrize("model", ["local-think", "ollama-think"])
@pytest.mark.parametrize("stream", [False, True])
def test_vllm_and_ollama_reasoning_field_is_normalised(
    gateway: RunningGateway, key: str, stream: bool, model: str
) -> None:
    client = gateway.client(key)
    if stream:
        chunks = list(client.chat.completions.create(model=model, messages=USER, stream=True))
        extras = [c.choices[0].delta.model_extra or {} for c in chunks if c.choices]
        text = "".join(e.get("reasoning_content") or "" for e in extras)
        assert not any("reasoning" in e for e in extras)
    else:
        message = client.chat.completions.create(model=model, messages=USER).choices[0].message
        text = (message.model_extra or {}).get("reasoning_content") or ""
        assert "reasoning" not in (message.model_extra or {})
    assert text == "thinking about it"


def test_qwen_compatible_mode_reasoning_and_usage(gateway: RunningGateway, key: str) -> None:
    chunks = list(
        gateway.client(key).chat.completions.create(
            model="qwq", messages=USER, stream=True, stream_options={"include_usage": True}
        )
    )
    reasoning = "".join(
        (c.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
        for c in chunks
        if c.choices
    )
    assert reasoning == "thinking about it"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


def test_mistral_seed_is_renamed(gateway: RunningGateway, key: str, upstreams: Upstreams) -> None:
    chunks = list(
        gateway.client(key).chat.completions.create(
            model="mistral-small",
            messages=USER,
            seed=3,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    sent = upstreams["mistral"].requests[-1].body
    assert sent["random_seed"] == 3 and "seed" not in sent
    assert "stream_options" not in sent
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4


def test_async_client_streams_concurrently(gateway: RunningGateway, key: str) -> None:
    import asyncio

    async def one(i: int) -> str:
        client = gateway.async_client(key)
        stream = await client.chat.completions.create(
            model="gpt-mini", messages=[{"role": "user", "content": f"number {i}"}], stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        await client.close()
        return text

    async def many() -> list[str]:
        return await asyncio.gather(*(one(i) for i in range(20)))

    assert asyncio.run(many()) == [f"echo: number {i}" for i in range(20)]
