"""The Spark adapter against a stand-in that speaks both Spark wires: the signed WebSocket
(three-part keys) and the OpenAI-compatible HTTP API (APIPassword keys)."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import orjson
import pytest

from tests.upstreams.spark_wire import SparkStandIn, run_in_thread
from tokenyard.config import ProviderConfig
from tokenyard.errors import UpstreamError, UpstreamRejected, UpstreamTimeout
from tokenyard.providers.base import Call, ChatStream
from tokenyard.providers.spark import SparkProvider, build
from tokenyard.providers.spark.models import find_model
from tokenyard.providers.spark.signing import signature, signed_url, ws_credentials
from tokenyard.providers.transport import HttpClient

T = TypeVar("T")
WS_KEY = "app00001:key-1:secret-1"
PASSWORD = "spark-password"
USER = [{"role": "user", "content": "hello there"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture(scope="module")
def standin() -> Iterator[SparkStandIn]:
    upstream = SparkStandIn()
    stop = run_in_thread(upstream)
    yield upstream
    stop()


@pytest.fixture
def spark(standin: SparkStandIn) -> SparkStandIn:
    standin.reset()
    return standin


def with_provider(
    upstream: SparkStandIn,
    body: Callable[[SparkProvider], Awaitable[T]],
    *,
    clock: Callable[[], float] = time.time,
) -> T:
    async def main() -> T:
        async with HttpClient() as client:
            provider = SparkProvider(
                name="spark",
                base_url=upstream.http_base_url,
                ws_base_url=upstream.ws_base_url,
                client=client,
                timeout_s=5,
                connect_timeout_s=1,
                first_byte_timeout_s=1,
                idle_timeout_s=1,
                clock=clock,
            )
            try:
                return await body(provider)
            finally:
                await provider.close()  # the WebSocket session it made

    return asyncio.run(main())


def chat(
    upstream: SparkStandIn, body: dict[str, Any], *, model: str = "generalv3.5", key: str = WS_KEY
) -> dict[str, Any]:
    async def run(provider: SparkProvider) -> dict[str, Any]:
        result = await provider.chat(Call(body=body, upstream_model=model, api_key=key))
        assert result.body["usage"] == result.usage.to_openai()
        return result.body

    return with_provider(upstream, run)


def stream(
    upstream: SparkStandIn, body: dict[str, Any], *, model: str = "generalv3.5", key: str = WS_KEY
) -> tuple[list[dict[str, Any]], Any]:
    async def run(provider: SparkProvider) -> tuple[list[dict[str, Any]], Any]:
        opened: ChatStream = await provider.open_stream(
            Call(body=body, upstream_model=model, api_key=key)
        )
        try:
            chunks = [orjson.loads(chunk) async for chunk in opened]
        finally:
            await opened.aclose()
        return chunks, opened.usage

    return with_provider(upstream, run)


def failure(
    upstream: SparkStandIn,
    body: dict[str, Any],
    *,
    model: str = "generalv3.5",
    key: str = WS_KEY,
    streamed: bool = False,
    clock: Callable[[], float] = time.time,
) -> UpstreamError:
    async def run(provider: SparkProvider) -> UpstreamError:
        call = Call(body=body, upstream_model=model, api_key=key)
        with pytest.raises(UpstreamError) as caught:
            if streamed:
                await provider.open_stream(call)
            else:
                await provider.chat(call)
        return caught.value

    return with_provider(upstream, run, clock=clock)


def deltas(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c["choices"][0]["delta"] for c in chunks]


# ---------------------------------------------------------------- signing, keys, models


def test_signature_matches_iflyteks_documented_example() -> None:
    # xfyun.cn/doc/spark/general_url_authentication.html: APISecret, date and the HMAC digest
    # printed there for "host: spark-api.xf-yun.com / date: … / GET /v1.1/chat HTTP/1.1".
    digest = (
        b"\xcf\x98\x07v\xed\xe9\xc5Ux\x0032\x93\x8e\xbb\xc0\xe5\x83C\xda\xba\x05\x0c\xd1\xdew"
        b"\xccN7?\r\xa4"
    )
    got = signature(
        "MjlmNzkzNmZkMDQ2OTc0ZDdmNGE2ZTZi",
        "spark-api.xf-yun.com",
        "Fri, 05 May 2023 10:43:39 GMT",
        "/v1.1/chat",
    )
    assert got == base64.b64encode(digest).decode()


def test_signed_url_carries_authorization_date_and_host() -> None:
    creds = ws_credentials("app:key:secret")
    assert creds is not None
    url = signed_url("wss://spark-api.xf-yun.com/v3.5/chat", creds, 1_683_283_419)
    assert url.startswith("wss://spark-api.xf-yun.com/v3.5/chat?authorization=")
    assert "&date=Fri%2C+05+May+2023+10%3A43%3A39+GMT&host=spark-api.xf-yun.com" in url
    encoded = url.split("authorization=")[1].split("&")[0]
    from urllib.parse import unquote_plus

    origin = base64.b64decode(unquote_plus(encoded)).decode()
    assert origin.startswith('api_key="key", algorithm="hmac-sha256", headers="host date ')


def test_credential_shape_decides_the_transport() -> None:
    assert ws_credentials("a:b:c") is not None
    assert ws_credentials("a:b") is None  # APIKey:APISecret bearer of the HTTP API
    assert ws_credentials("password") is None
    assert ws_credentials("a::c") is None
    assert ws_credentials(None) is None
    assert "secret" not in repr(ws_credentials("app:key:secret"))


def test_model_table_and_aliases() -> None:
    assert find_model("generalv3.5") == find_model("max") == find_model("Spark-Max")
    ultra = find_model("4.0Ultra")
    assert ultra is not None and ultra.ws_path == "/v4.0/chat" and ultra.domain == "4.0Ultra"
    lite = find_model("lite")
    assert lite is not None and lite.ws_path == "/v1.1/chat" and not lite.functions
    pro = find_model("pro")
    assert pro is not None and (pro.ws_path, pro.domain) == ("/v3.1/chat", "generalv3")
    assert find_model("x2") is None


# ---------------------------------------------------------------- WebSocket: requests


def test_ws_request_translation(spark: SparkStandIn) -> None:
    body = {
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "user", "content": [{"type": "text", "text": "hello there"}]},
        ],
        "temperature": 1.7,
        "max_completion_tokens": 20000,
        "top_k": 9,
        "top_p": 0.5,
        "stop": ["x"],
        "seed": 3,
        "user": "u" * 40,
        "tools": [WEATHER_TOOL],
    }
    snapshot = orjson.dumps(body)
    chat(spark, body, model="4.0Ultra")
    assert orjson.dumps(body) == snapshot  # the caller's body is never changed
    (record,) = spark.ws_requests
    assert record.path == "/v4.0/chat"
    frame = record.frame
    assert frame["header"] == {"app_id": "app00001", "uid": "u" * 32}
    assert frame["parameter"]["chat"] == {
        "domain": "4.0Ultra",
        "temperature": 1.0,
        "max_tokens": 8192,
        "top_k": 6,
    }
    assert frame["payload"]["message"]["text"] == [
        {"role": "system", "content": "Be terse.\n\nAnswer in English."},
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": '{"function_call":{"name":"get_weather","arguments":"{\\"city\\":\\"Paris\\"}"}}',
        },
        {"role": "user", "content": "sunny\n\nhello there"},
    ]
    assert frame["payload"]["functions"] == {"text": [WEATHER_TOOL["function"]]}


def test_ws_paths_domains_and_limits_per_model(spark: SparkStandIn) -> None:
    body = {"messages": [{"role": "system", "content": "S"}, *USER], "max_tokens": 5000}
    chat(spark, {**body, "temperature": 0}, model="lite")
    chat(spark, body, model="pro-128k")
    chat(spark, {**body, "tool_choice": "none", "tools": [WEATHER_TOOL]}, model="max")
    lite, long, maxed = (r.frame for r in spark.ws_requests)
    assert [r.path for r in spark.ws_requests] == ["/v1.1/chat", "/chat/pro-128k", "/v3.5/chat"]
    assert lite["parameter"]["chat"] == {"domain": "lite", "temperature": 0.01, "max_tokens": 4096}
    # Lite has no system role: the system text leads the first user turn.
    assert lite["payload"]["message"]["text"] == [{"role": "user", "content": "S\n\nhello there"}]
    assert long["parameter"]["chat"]["max_tokens"] == 4096
    assert maxed["parameter"]["chat"]["max_tokens"] == 5000
    assert "functions" not in maxed["payload"]  # tool_choice none


def test_ws_x1_takes_sampling_parameters_and_reasons(spark: SparkStandIn) -> None:
    body = {"messages": USER, "top_p": 0.9, "presence_penalty": 1.0, "frequency_penalty": 0.5}
    result = chat(spark, body, model="x1")
    (record,) = spark.ws_requests
    assert record.path == "/v1/x1"
    assert record.frame["parameter"]["chat"] == {
        "domain": "x1",
        "top_p": 0.9,
        "presence_penalty": 1.0,
        "frequency_penalty": 0.5,
    }
    message = result["choices"][0]["message"]
    assert message["reasoning_content"] == "Let me think about it."
    assert message["content"] == "echo: hello there"
    chunks, _ = stream(spark, body, model="x1")
    reasoning = [d["reasoning_content"] for d in deltas(chunks) if "reasoning_content" in d]
    assert "".join(reasoning) == "Let me think about it."


@pytest.mark.parametrize(
    ("body", "model", "fragment"),
    [
        ({"messages": USER, "n": 2}, "max", "n must be 1"),
        (
            {"messages": USER, "response_format": {"type": "json_schema", "json_schema": {}}},
            "max",
            "json_schema",
        ),
        ({"messages": USER, "response_format": {"type": "json_object"}}, "max", "JSON mode"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "data:x"}}],
                    }
                ]
            },
            "max",
            "text only",
        ),
        (
            {"messages": USER, "tools": [WEATHER_TOOL], "tool_choice": "required"},
            "max",
            "cannot force",
        ),
        ({"messages": USER, "tools": [WEATHER_TOOL]}, "lite", "function calling"),
        ({"messages": []}, "max", "non-empty"),
    ],
)
def test_ws_requests_spark_cannot_serve_are_rejected_before_sending(
    spark: SparkStandIn, body: dict[str, Any], model: str, fragment: str
) -> None:
    error = failure(spark, body, model=model)
    assert isinstance(error, UpstreamRejected) and not error.retryable
    assert fragment in error.message
    assert spark.ws_requests == []


def test_ws_unknown_model_is_a_retryable_configuration_failure(spark: SparkStandIn) -> None:
    error = failure(spark, {"messages": USER}, model="spark-x9")
    assert error.retryable and "no WebSocket endpoint" in error.message


# ---------------------------------------------------------------- WebSocket: responses


def test_ws_chat_is_the_aggregated_answer(spark: SparkStandIn) -> None:
    result = chat(spark, {"messages": USER})
    assert result["object"] == "chat.completion"
    assert result["model"] == "generalv3.5"
    assert result["id"].startswith("chatcmpl-cht")
    assert result["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "echo: hello there"},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ]
    # stand-in: prompt = words + 3 per message, completion = frames
    assert result["usage"]["prompt_tokens"] == 5
    assert result["usage"]["completion_tokens"] == 3
    assert result["usage"]["total_tokens"] == 8


def test_the_websocket_session_the_adapter_made_is_closed_with_it(spark: SparkStandIn) -> None:
    """The HTTP client is the composition root's; the WebSocket session is the adapter's
    own, made on its first WebSocket call and closed by ``close()``."""

    async def run(provider: SparkProvider) -> tuple[bool, bool, bool]:
        before = provider._ws._session is None
        await provider.chat(Call(body={"messages": USER}, upstream_model="max", api_key=WS_KEY))
        session = provider._ws._session
        assert session is not None
        await provider.close()
        return before, session.closed, provider._ws._session is None

    assert with_provider(spark, run) == (True, True, True)


def test_ws_stream_event_by_event(spark: SparkStandIn) -> None:
    chunks, usage = stream(spark, {"messages": USER, "stream": True})
    assert deltas(chunks) == [
        {"role": "assistant", "content": ""},
        {"content": "echo:"},
        {"content": " hello"},
        {"content": " there"},
        {},
    ]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * 4 + ["stop"]
    assert len({(c["id"], c["created"], c["model"]) for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" and "usage" not in c for c in chunks)
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (5, 3)


def test_ws_function_call_becomes_a_tool_call(spark: SparkStandIn) -> None:
    body = {"messages": [{"role": "user", "content": "weather in Paris?"}], "tools": [WEATHER_TOOL]}
    result = chat(spark, body)
    choice = result["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    chunks, _ = stream(spark, body)
    tool_deltas = [d["tool_calls"] for d in deltas(chunks) if "tool_calls" in d]
    assert len(tool_deltas) == 1
    (first,) = tool_deltas[0]
    assert first["index"] == 0 and first["type"] == "function" and first["id"].startswith("call_")
    assert first["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_ws_tool_call_id_is_stable_for_one_answer() -> None:
    from tokenyard.providers.spark.response import tool_call_id

    assert tool_call_id("cht1@dx", 0) == tool_call_id("cht1@dx", 0)
    assert tool_call_id("cht1@dx", 0) != tool_call_id("cht2@dx", 0)


def test_ws_length_when_the_output_reached_max_tokens(spark: SparkStandIn) -> None:
    result = chat(spark, {"messages": USER, "max_tokens": 2})
    assert result["choices"][0]["message"]["content"] == "echo: hello"
    assert result["choices"][0]["finish_reason"] == "length"


def test_ws_missing_usage_is_estimated(spark: SparkStandIn) -> None:
    spark.omit_usage_next()
    chunks, usage = stream(spark, {"messages": USER})
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0


# ---------------------------------------------------------------- WebSocket: failures


@pytest.mark.parametrize(
    ("code", "rejected", "error_code"),
    [
        (10013, True, "content_filter"),
        (10019, True, "content_filter"),
        (10907, True, "context_length_exceeded"),
        (10005, True, "upstream_failed"),  # UpstreamRejected keeps the class code
        (11200, False, "upstream_failed"),
        (11201, False, "upstream_rate_limited"),
        (11202, False, "upstream_rate_limited"),
        (11203, False, "upstream_rate_limited"),
        (10012, False, "upstream_failed"),
    ],
)
@pytest.mark.parametrize("streamed", [False, True])
def test_ws_error_frames_are_classified(
    spark: SparkStandIn, code: int, rejected: bool, error_code: str, streamed: bool
) -> None:
    spark.fail_next(code)
    error = failure(spark, {"messages": USER}, streamed=streamed)
    assert isinstance(error, UpstreamRejected) is rejected
    assert error.retryable is not rejected
    assert error.code == error_code
    assert str(code) in error.message


def test_ws_mid_stream_error_raises_after_the_chunks(spark: SparkStandIn) -> None:
    spark.fail_next(11203, after=2)

    async def run(provider: SparkProvider) -> list[bytes]:
        opened = await provider.open_stream(
            Call(body={"messages": USER}, upstream_model="max", api_key=WS_KEY)
        )
        got: list[bytes] = []
        with pytest.raises(UpstreamError) as caught:
            async for chunk in opened:
                got.append(chunk)
        await opened.aclose()
        assert caught.value.retryable and caught.value.code == "upstream_rate_limited"
        return got

    assert len(with_provider(spark, run)) == 3  # role, "echo:", " hello"


def test_ws_output_moderation_ends_with_content_filter(spark: SparkStandIn) -> None:
    spark.fail_next(10014, after=1)
    chunks, usage = stream(spark, {"messages": USER})
    assert deltas(chunks)[1] == {"content": "echo:"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "content_filter"
    assert usage is not None
    spark.fail_next(10014, after=2)
    result = chat(spark, {"messages": USER})
    assert result["choices"][0]["finish_reason"] == "content_filter"
    assert result["choices"][0]["message"]["content"] == "echo: hello"


def test_ws_bad_signature_and_skewed_clock_are_refused_at_the_handshake(
    spark: SparkStandIn,
) -> None:
    error = failure(spark, {"messages": USER}, key="app00001:key-1:wrong-secret")
    assert error.retryable and "HTTP 401" in error.message
    assert "wrong-secret" not in error.message and "key-1" not in error.message
    error = failure(spark, {"messages": USER}, clock=lambda: time.time() - 1000)
    assert error.retryable and "HTTP 403" in error.message
    assert spark.handshake_failures == [401, 403]
    assert spark.ws_requests == []


def test_ws_connection_closed_before_the_last_frame(spark: SparkStandIn) -> None:
    spark.drop_next(after=2)
    error = failure(spark, {"messages": USER})
    assert error.retryable and "before the answer was complete" in error.message


def test_ws_silence_and_refused_connections(spark: SparkStandIn) -> None:
    spark.stall_next(2)
    assert isinstance(failure(spark, {"messages": USER}, streamed=True), UpstreamTimeout)

    async def refused(provider: SparkProvider) -> UpstreamError:
        dead = SparkProvider(
            name="dead",
            ws_base_url="ws://127.0.0.1:9",
            client=HttpClient(),
            timeout_s=1,
            connect_timeout_s=1,
            first_byte_timeout_s=1,
            idle_timeout_s=1,
        )
        try:
            with pytest.raises(UpstreamError) as caught:
                await dead.chat(Call(body={"messages": USER}, upstream_model="max", api_key=WS_KEY))
        finally:
            await dead.close()
        return caught.value

    assert with_provider(spark, refused).retryable


def test_ws_aclose_mid_answer_closes_the_socket(spark: SparkStandIn) -> None:
    spark.slow_next()

    async def run(provider: SparkProvider) -> None:
        opened = await provider.open_stream(
            Call(body={"messages": USER}, upstream_model="max", api_key=WS_KEY)
        )
        iterator = opened.__aiter__()
        assert orjson.loads(await anext(iterator))["choices"][0]["delta"]["role"] == "assistant"
        await anext(iterator)
        await opened.aclose()
        await asyncio.sleep(0.3)

    with_provider(spark, run)
    assert spark.ws_requests[0].closed_early


# ---------------------------------------------------------------- HTTP (APIPassword)


def test_http_request_translation(spark: SparkStandIn) -> None:
    body = {
        "model": "public-name",
        "messages": [
            {"role": "developer", "content": "Be terse."},
            {
                "role": "user",
                "content": [{"type": "text", "text": "hello "}, {"type": "text", "text": "there"}],
            },
        ],
        "max_completion_tokens": 99999,
        "temperature": 0.3,
        "stop": ["x"],
        "seed": 1,
        "stream_options": {"include_usage": True},
        "response_format": {"type": "json_object"},
        "user": "someone",
        "top_k": 3,
    }
    stream(spark, body, model="max", key=PASSWORD)
    (record,) = spark.http_requests
    assert record.path == "/v1/chat/completions"
    assert record.headers["authorization"] == f"Bearer {PASSWORD}"
    assert record.body == {
        "model": "generalv3.5",
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "hello there"},
        ],
        "user": "someone",
        "temperature": 0.3,
        "top_k": 3,
        "max_tokens": 8192,
        "response_format": {"type": "json_object"},
        "stream": True,
    }


def test_http_tools_ask_for_array_tool_calls(spark: SparkStandIn) -> None:
    body = {
        "messages": [{"role": "user", "content": "weather?"}],
        "tools": [WEATHER_TOOL],
        "tool_choice": "auto",
    }
    result = chat(spark, body, model="4.0Ultra", key=PASSWORD)
    sent = spark.http_requests[0].body
    assert sent["tools"] == [WEATHER_TOOL] and sent["tool_calls_switch"] is True
    assert sent["tool_choice"] == "auto"
    choice = result["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"] == [
        {
            "id": "call_spark_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        }
    ]


def test_http_single_object_tool_calls_are_read_too() -> None:
    from tokenyard.providers.spark.response import tool_calls_of

    (call,) = tool_calls_of(
        {"type": "function", "function": {"name": "f", "arguments": {"a": 1}}}, "cha1"
    )
    assert call["id"].startswith("call_") and call["function"] == {
        "name": "f",
        "arguments": '{"a":1}',
    }
    assert tool_calls_of(None, "cha1") == []


def test_http_chat_response_translation(spark: SparkStandIn) -> None:
    result = chat(spark, {"messages": USER}, model="lite", key=PASSWORD)
    assert set(result) == {"id", "object", "created", "model", "choices", "usage"}
    assert result["id"].startswith("chatcmpl-cha") and result["model"] == "lite"
    assert result["choices"][0]["message"] == {"role": "assistant", "content": "echo: hello there"}
    assert result["choices"][0]["finish_reason"] == "stop"  # Spark sends none
    assert result["usage"]["completion_tokens"] == 3


def test_http_stream_event_by_event(spark: SparkStandIn) -> None:
    chunks, usage = stream(spark, {"messages": USER}, model="generalv3", key=PASSWORD)
    assert deltas(chunks) == [
        {"role": "assistant", "content": ""},
        {"content": "echo:"},
        {"content": " hello"},
        {"content": " there"},
        {},
    ]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert len({(c["id"], c["created"], c["model"]) for c in chunks}) == 1
    assert all("usage" not in c and "code" not in c and "sid" not in c for c in chunks)
    assert usage is not None and usage.completion_tokens == 3


def test_http_stream_tool_call_and_reasoning(spark: SparkStandIn) -> None:
    body = {"messages": [{"role": "user", "content": "weather?"}], "tools": [WEATHER_TOOL]}
    chunks, _ = stream(spark, body, model="x1", key=PASSWORD)
    got = deltas(chunks)
    assert "".join(d.get("reasoning_content", "") for d in got) == "Let me think about it."
    (calls,) = [d["tool_calls"] for d in got if "tool_calls" in d]
    assert calls == [
        {
            "index": 0,
            "id": "call_spark_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        }
    ]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_http_missing_usage_is_estimated(spark: SparkStandIn) -> None:
    spark.omit_usage_next()
    result = chat(spark, {"messages": USER}, key=PASSWORD)
    assert result["usage"]["prompt_tokens"] > 0 and result["usage"]["completion_tokens"] > 0
    spark.omit_usage_next()
    _, usage = stream(spark, {"messages": USER}, key=PASSWORD)
    assert usage is not None and usage.completion_tokens > 0


@pytest.mark.parametrize("streamed", [False, True])
def test_http_business_errors_in_200_answers(spark: SparkStandIn, streamed: bool) -> None:
    spark.fail_next(10013)
    error = failure(spark, {"messages": USER}, key=PASSWORD, streamed=streamed)
    assert isinstance(error, UpstreamRejected) and error.code == "content_filter"
    spark.fail_next(11202)
    error = failure(spark, {"messages": USER}, key=PASSWORD, streamed=streamed)
    assert error.retryable and error.code == "upstream_rate_limited"


def test_http_mid_stream_business_error(spark: SparkStandIn) -> None:
    spark.fail_next(10012, after=2)

    async def run(provider: SparkProvider) -> int:
        opened = await provider.open_stream(
            Call(body={"messages": USER}, upstream_model="max", api_key=PASSWORD)
        )
        got = 0
        with pytest.raises(UpstreamError) as caught:
            async for _ in opened:
                got += 1
        await opened.aclose()
        assert caught.value.retryable
        return got

    assert with_provider(spark, run) == 3
    spark.fail_next(10014, after=2)
    chunks, _ = stream(spark, {"messages": USER}, key=PASSWORD)
    assert chunks[-1]["choices"][0]["finish_reason"] == "content_filter"


def test_http_stream_broken_off(spark: SparkStandIn) -> None:
    spark.drop_next(after=2)

    async def run(provider: SparkProvider) -> None:
        opened = await provider.open_stream(
            Call(body={"messages": USER}, upstream_model="max", api_key=PASSWORD)
        )
        with pytest.raises(UpstreamError):
            async for _ in opened:
                pass
        await opened.aclose()

    with_provider(spark, run)


@pytest.mark.parametrize(
    ("status", "body", "retryable"),
    [
        (400, {"error": {"message": "bad request", "type": "invalid_request_error"}}, False),
        (429, {"error": {"message": "slow down"}}, True),
        (500, {"error": {"message": "boom"}}, True),
        (400, {"code": 10907, "message": "token count over limit"}, False),
    ],
)
def test_http_status_failures(
    spark: SparkStandIn, status: int, body: dict[str, Any], retryable: bool
) -> None:
    spark.http_fail_next(status, body)
    error = failure(spark, {"messages": USER}, key=PASSWORD)
    assert error.retryable is retryable
    if body.get("code") == 10907:
        assert error.code == "context_length_exceeded"


def test_http_wrong_password_is_retryable_and_scrubbed(spark: SparkStandIn) -> None:
    error = failure(spark, {"messages": USER}, key="wrong-password-123")
    assert error.retryable and "wrong-password-123" not in error.message


def test_http_rejections_apply_too(spark: SparkStandIn) -> None:
    error = failure(spark, {"messages": USER, "n": 3}, key=PASSWORD)
    assert isinstance(error, UpstreamRejected)
    assert spark.http_requests == []


# ---------------------------------------------------------------- provider surface


def test_embeddings_are_not_offered(spark: SparkStandIn) -> None:
    async def run(provider: SparkProvider) -> UpstreamError:
        with pytest.raises(UpstreamRejected) as caught:
            await provider.embed(Call(body={"input": "x"}, upstream_model="max", api_key=PASSWORD))
        return caught.value

    assert "embeddings" in with_provider(spark, run).message


def test_build_reads_the_base_url_scheme() -> None:
    async def main() -> tuple[str, str, str, str]:
        async with HttpClient() as client:
            ws = build("s", ProviderConfig(api="spark", base_url="wss://example.test"), client)
            http = build("s", ProviderConfig(api="spark", base_url="https://h.test/v2"), client)
            return ws._ws._base, ws._http._url, http._ws._base, http._http._url

    assert asyncio.run(main()) == (
        "wss://example.test",
        "https://spark-api-open.xf-yun.com/v1/chat/completions",
        "wss://spark-api.xf-yun.com",
        "https://h.test/v2/chat/completions",
    )
