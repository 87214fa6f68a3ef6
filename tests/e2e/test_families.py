"""Every native wire family behind the real gateway process: the OpenAI SDK in front of
Anthropic, Gemini, Zhipu, DashScope (native) and Spark (WebSocket and HTTP) stand-ins, and
the Anthropic SDK in front of Anthropic and Gemini — plain, streamed, with tools."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal

import anthropic
import httpx
import pytest

from tests.e2e.harness import ADMIN_KEY, RunningGateway, start_gateway
from tests.upstreams import anthropic_wire, gemini_wire, openai_wire, spark_wire
from tests.upstreams.dashscope_wire import DashScopeStandIn
from tests.upstreams.zhipu_wire import ZhipuStandIn

USER = [{"role": "user", "content": "hello there gateway"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
MODELS = ["claude", "gemini", "glm", "qwen-native", "spark-ws", "spark-http"]


CLAUDE = anthropic_wire.AnthropicStandIn(api_key="sk-ant-e2e")


@pytest.fixture(scope="module")
def gateway(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    stops: list[Callable[[], None]] = []
    claude = CLAUDE
    claude_url, stop = anthropic_wire.run_in_thread(claude)
    stops.append(stop)
    gemini = gemini_wire.GeminiStandIn(api_key="gm-e2e")
    gemini_url, stop = gemini_wire.run_in_thread(gemini)
    stops.append(stop)
    zhipu = ZhipuStandIn(api_key="kid123.s3cr3t-value")
    zhipu_url, stop = openai_wire.run_in_thread(zhipu)  # type: ignore[arg-type]
    stops.append(stop)
    dash = DashScopeStandIn(api_key="sk-dash")
    dash_url, stop = openai_wire.run_in_thread(dash)  # type: ignore[arg-type]
    stops.append(stop)
    spark = spark_wire.SparkStandIn()
    stops.append(spark_wire.run_in_thread(spark))
    config = f"""
database: {database_url}
admin_key: {ADMIN_KEY}
billing: {{currency: USD, markup: 0.10}}
providers:
  anthropic: {{api: anthropic, base_url: {claude_url}, keys: [{{key: sk-ant-e2e}}]}}
  gemini: {{api: gemini, base_url: {gemini_url}, keys: [{{key: gm-e2e}}]}}
  zhipu: {{api: zhipu, base_url: {zhipu_url}, keys: [{{key: kid123.s3cr3t-value}}]}}
  dashscope: {{api: dashscope, base_url: {dash_url}, keys: [{{key: sk-dash}}]}}
  spark-ws: {{api: spark, base_url: {spark.ws_base_url}, keys: [{{key: "app00001:key-1:secret-1"}}]}}
  spark-http: {{api: spark, base_url: {spark.http_base_url}, keys: [{{key: spark-password}}]}}
models:
  claude: {{deployments: [{{provider: anthropic, model: claude-sonnet-4-5, price: {{input: 3, output: 15}}}}]}}
  gemini: {{deployments: [{{provider: gemini, model: gemini-2.5-flash, price: {{input: 0.3, output: 2.5}}}}]}}
  glm: {{deployments: [{{provider: zhipu, model: glm-4.6, price: {{input: 0.6, output: 2.2}}}}]}}
  qwen-native: {{deployments: [{{provider: dashscope, model: qwen-plus, price: {{input: 0.4, output: 1.2}}}}]}}
  spark-ws: {{deployments: [{{provider: spark-ws, model: generalv3.5, price: {{input: 1, output: 1}}}}]}}
  spark-http: {{deployments: [{{provider: spark-http, model: generalv3.5, price: {{input: 1, output: 1}}}}]}}
"""
    running = start_gateway(tmp_path_factory.mktemp("families"), config)
    yield running
    running.stop()
    for stop in stops:
        stop()


@pytest.fixture(scope="module")
def key(gateway: RunningGateway) -> str:
    return gateway.new_key()


@pytest.mark.parametrize("model", MODELS)
def test_plain_and_streamed_answers(gateway: RunningGateway, key: str, model: str) -> None:
    client = gateway.client(key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model=model, messages=USER)
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo: hello there gateway"
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    assert Decimal(raw.headers["x-tokenyard-cost"]) > 0
    chunks = list(
        client.chat.completions.create(
            model=model, messages=USER, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: hello there gateway"
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["stop"]
    assert chunks[-1].usage is not None
    assert Decimal(str(chunks[-1].usage.model_extra["cost"])) > 0


@pytest.mark.parametrize("model", ["claude", "gemini", "glm", "qwen-native", "spark-http"])
def test_tool_calls(gateway: RunningGateway, key: str, model: str) -> None:
    client = gateway.client(key, max_retries=0)
    messages = [{"role": "user", "content": "what is the weather in Paris"}]
    completion = client.chat.completions.create(
        model=model,
        messages=messages,  # type: ignore[arg-type]
        tools=TOOLS,
    )  # type: ignore[arg-type]
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert "Paris" in call.function.arguments  # type: ignore[union-attr]
    chunks = list(
        client.chat.completions.create(
            model=model,
            messages=messages,  # type: ignore[arg-type]
            tools=TOOLS,
            stream=True,
        )
    )  # type: ignore[arg-type]
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].id and deltas[0].function and deltas[0].function.name == "get_weather"
    arguments = "".join((d.function.arguments or "") for d in deltas if d.function)
    assert "Paris" in arguments


@pytest.mark.parametrize("model", ["claude", "gemini"])
def test_anthropic_sdk_in_front(gateway: RunningGateway, key: str, model: str) -> None:
    client = anthropic.Anthropic(base_url=gateway.base_url, api_key=key, max_retries=0)
    message = client.messages.create(
        model=model, max_tokens=100, messages=[{"role": "user", "content": "hello there gateway"}]
    )
    assert message.content[0].type == "text"
    assert message.content[0].text == "echo: hello there gateway"
    with client.messages.stream(
        model=model, max_tokens=100, messages=[{"role": "user", "content": "hello there gateway"}]
    ) as s:
        assert "".join(s.text_stream) == "echo: hello there gateway"
        assert s.get_final_message().stop_reason == "end_turn"


def test_anthropic_upstreams_get_the_body_untouched(gateway: RunningGateway, key: str) -> None:
    account = gateway.new_account()
    created = gateway.admin("POST", "/admin/keys", {"account_id": account}).json()
    body = {
        "model": "claude",
        "max_tokens": 64,
        "metadata": {"user_id": "u-1"},
        "top_k": 5,
        "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "hello"}],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": "hello there gateway",
                        "cache_control": {"type": "ephemeral"},
                    }
                ],
            },
        ],
    }
    response = gateway.post(
        "/v1/messages", created["key"], json=body, headers={"anthropic-version": "2023-06-01"}
    )
    assert response.status_code == 200, response.text
    sent = CLAUDE.requests[-1].body
    assert sent == {**body, "model": "claude-sonnet-4-5"}
    assert CLAUDE.requests[-1].headers["x-api-key"] == "sk-ant-e2e"
    message = response.json()
    assert message["type"] == "message"
    assert message["content"][-1]["text"] == "echo: hello there gateway"
    cost = Decimal(response.headers["x-tokenyard-cost"])
    usage = message["usage"]
    prompt = (
        usage["input_tokens"]
        + usage.get("cache_creation_input_tokens", 0)
        + usage.get("cache_read_input_tokens", 0)
    )
    expected = (Decimal(prompt) * 3 + Decimal(usage["output_tokens"]) * 15) / Decimal(10**6)
    assert cost == (expected * Decimal("1.1")).quantize(Decimal("0.000000001"))
    rows = gateway.admin("GET", f"/admin/usage?key_id={created['id']}").json()["rows"]
    assert [(r["group"], r["requests"], Decimal(r["cost"])) for r in rows] == [("claude", 1, cost)]

    client = anthropic.Anthropic(base_url=gateway.base_url, api_key=created["key"], max_retries=0)
    with client.messages.stream(
        model="claude", max_tokens=64, messages=[{"role": "user", "content": "stream it"}]
    ) as stream:
        final = stream.get_final_message()
    assert final.content[-1].type == "text"
    rows = gateway.admin("GET", f"/admin/usage?key_id={created['id']}").json()["rows"]
    assert rows[0]["requests"] == 2
    assert rows[0]["output_tokens"] == usage["output_tokens"] + final.usage.output_tokens


def test_the_passthrough_is_served_alike_on_a_connection_aiohttp_serves(
    gateway: RunningGateway, key: str
) -> None:
    """A connection whose first request went to another route is aiohttp's (decision 0015):
    the pass-through answers there, whole and streamed, as on the gateway's own server."""
    body = {"model": "claude", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
    auth = {"Authorization": f"Bearer {key}", "anthropic-version": "2023-06-01"}
    with httpx.Client(base_url=gateway.base_url, timeout=10) as client:
        assert client.get("/healthz").status_code == 200  # the connection goes to aiohttp
        whole = client.post("/v1/messages", json=body, headers=auth)
        streamed = client.post("/v1/messages", json={**body, "stream": True}, headers=auth)
    for answer in (whole, streamed):
        assert answer.status_code == 200, answer.text
        assert answer.headers["server"] != "tokenyard"  # aiohttp's, on the same connection
        assert answer.headers["x-tokenyard-provider"] == "anthropic"
    assert whole.json()["content"][-1]["text"] == "echo: hi"
    assert streamed.headers["content-type"].startswith("text/event-stream")
    assert "event: message_stop" in streamed.text


@pytest.mark.parametrize("model", ["claude", "gemini"])
def test_anthropic_sdk_tools_in_front(gateway: RunningGateway, key: str, model: str) -> None:
    client = anthropic.Anthropic(base_url=gateway.base_url, api_key=key, max_retries=0)
    tools = [
        {
            "name": "get_weather",
            "description": "weather",
            "input_schema": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        }
    ]
    ask = [{"role": "user", "content": "what is the weather in Paris"}]
    message = client.messages.create(
        model=model,
        max_tokens=100,
        tools=tools,  # type: ignore[arg-type]
        messages=ask,
    )  # type: ignore[arg-type]
    assert message.stop_reason == "tool_use"
    call = message.content[-1]
    assert call.type == "tool_use" and call.name == "get_weather"
    assert call.input == {"city": "Paris"}
    with client.messages.stream(
        model=model,
        max_tokens=100,
        tools=tools,  # type: ignore[arg-type]
        messages=ask,
    ) as stream:  # type: ignore[arg-type]
        final = stream.get_final_message()
    assert final.content[-1].type == "tool_use"
    assert final.content[-1].input == {"city": "Paris"}  # type: ignore[union-attr]


def test_a_mixed_plan_is_translated_not_passed_through(gateway: RunningGateway, key: str) -> None:
    """A request whose own fallbacks include a non-Anthropic model cannot be passed through
    untouched: it is translated like any other, and fails over to the other family."""
    CLAUDE.fail_next(529)
    response = gateway.post(
        "/v1/messages",
        key,
        json={
            "model": "claude",
            "max_tokens": 50,
            "models": ["gemini"],
            "messages": [{"role": "user", "content": "hello there gateway"}],
        },
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-tokenyard-model"] == "gemini"
    assert response.json()["content"][-1]["text"] == "echo: hello there gateway"
