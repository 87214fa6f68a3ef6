"""The Zhipu adapter against a stand-in that speaks the GLM v4 wire: what it sends, how it
signs, how it reads answers and streams, how it classifies failures."""

from __future__ import annotations

import asyncio
import base64
import copy
import struct
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import orjson
import pytest

from tests.upstreams.zhipu_wire import CREATED, ZhipuStandIn, run_in_thread
from tokenyard.config import ProviderConfig
from tokenyard.errors import UpstreamError, UpstreamRejected, UpstreamTimeout
from tokenyard.providers.base import Call
from tokenyard.providers.transport import HttpClient
from tokenyard.providers.zhipu import ZhipuProvider, build
from tokenyard.providers.zhipu.auth import sign

T = TypeVar("T")
KEY = "kid123.s3cr3t-value"
USER = [{"role": "user", "content": "hello there"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def standin() -> Iterator[tuple[ZhipuStandIn, str]]:
    upstream = ZhipuStandIn(KEY)
    url, stop = run_in_thread(upstream)  # type: ignore[arg-type]
    yield upstream, url
    stop()


def run(url: str, body: Callable[[ZhipuProvider], Awaitable[T]], **options: Any) -> T:
    async def main() -> T:
        async with HttpClient() as client:
            provider = ZhipuProvider(
                name="zhipu",
                base_url=url,
                client=client,
                timeout_s=5,
                connect_timeout_s=1,
                first_byte_timeout_s=2,
                idle_timeout_s=2,
                **options,
            )
            return await body(provider)

    return asyncio.run(main())


def chat(url: str, body: dict[str, Any], key: str = KEY, **options: Any) -> Any:
    async def go(provider: ZhipuProvider) -> Any:
        return await provider.chat(Call(body=body, upstream_model="glm-4.6", api_key=key))

    return run(url, go, **options)


def failure(url: str, body: dict[str, Any], key: str = KEY, **options: Any) -> UpstreamError:
    async def go(provider: ZhipuProvider) -> UpstreamError:
        with pytest.raises(UpstreamError) as caught:
            await provider.chat(Call(body=body, upstream_model="glm-4.6", api_key=key))
        return caught.value

    return run(url, go, **options)


def streamed(url: str, body: dict[str, Any]) -> tuple[list[dict[str, Any]], Any]:
    async def go(provider: ZhipuProvider) -> tuple[list[dict[str, Any]], Any]:
        stream = await provider.open_stream(Call(body=body, upstream_model="glm-4.6", api_key=KEY))
        try:
            chunks = [orjson.loads(chunk) async for chunk in stream]
        finally:
            await stream.aclose()
        return chunks, stream.usage

    return run(url, go)


def stream_failure(url: str, body: dict[str, Any]) -> tuple[list[dict[str, Any]], UpstreamError]:
    async def go(provider: ZhipuProvider) -> tuple[list[dict[str, Any]], UpstreamError]:
        stream = await provider.open_stream(Call(body=body, upstream_model="glm-4.6", api_key=KEY))
        got: list[dict[str, Any]] = []
        with pytest.raises(UpstreamError) as caught:
            async for chunk in stream:
                got.append(orjson.loads(chunk))
        await stream.aclose()
        return got, caught.value

    return run(url, go)


def deltas(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c["choices"][0]["delta"] for c in chunks]


# ---------------------------------------------------------------------------- requests


def test_request_is_translated_to_what_glm_accepts(standin: tuple[ZhipuStandIn, str]) -> None:
    upstream, url = standin
    body = {
        "model": "public-name",
        "messages": [
            {"role": "developer", "content": [{"type": "text", "text": "be terse"}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://x.test/a.png", "detail": "low"},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            },
            {
                "role": "tool",
                "tool_call_id": "call_1",
                "content": [{"type": "text", "text": "sunny"}],
            },
            {"role": "user", "content": "go on", "name": "bob"},
        ],
        "temperature": 0,
        "top_p": 1,
        "max_completion_tokens": 50,
        "stop": "END",
        "seed": 7,
        "n": 1,
        "user": "user-12345",
        "tools": [WEATHER_TOOL],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "reasoning_effort": "none",
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
        "logprobs": False,
        "stream_options": {"include_usage": True},
    }
    original = copy.deepcopy(body)
    result = chat(url, body)
    assert body == original  # the caller's body is never changed
    sent = upstream.requests[-1].body
    assert sent["model"] == "glm-4.6"
    assert sent["temperature"] == 0.01 and sent["do_sample"] is False
    assert sent["top_p"] == 0.99
    assert sent["max_tokens"] == 50 and sent["stop"] == ["END"] and sent["seed"] == 7
    assert sent["user_id"] == "user-12345"
    assert sent["thinking"] == {"type": "disabled"}
    assert sent["response_format"] == {"type": "json_object"}
    assert sent["tools"] == [WEATHER_TOOL] and "tool_choice" not in sent
    for dropped in ("n", "parallel_tool_calls", "logprobs", "stream_options", "stream"):
        assert dropped not in sent
    messages = sent["messages"]
    assert messages[0] == {"role": "system", "content": "be terse"}
    assert messages[1]["content"][1]["image_url"] == {"url": "iVBORw0K"}
    assert messages[1]["content"][2]["image_url"] == {"url": "https://x.test/a.png"}
    assert messages[2] == {"role": "assistant", "content": "a\nb"}
    assert messages[3] == {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
    assert messages[4] == {"role": "user", "content": "go on"}
    assert result.body["choices"][0]["message"]["content"] == "echo: go on [2 images]"


def test_sampling_is_clamped_into_the_open_interval(standin: tuple[ZhipuStandIn, str]) -> None:
    upstream, url = standin
    chat(url, {"messages": USER, "temperature": 1.5, "top_p": 0, "reasoning_effort": "high"})
    sent = upstream.requests[-1].body
    assert sent["temperature"] == 0.99 and sent["top_p"] == 0.01 and "do_sample" not in sent
    assert sent["thinking"] == {"type": "enabled"}
    chat(url, {"messages": USER, "temperature": 0.3, "thinking": {"type": "disabled"}})
    sent = upstream.requests[-1].body
    assert sent["temperature"] == 0.3 and sent["thinking"] == {"type": "disabled"}


def test_tool_choice_none_sends_no_tools(standin: tuple[ZhipuStandIn, str]) -> None:
    upstream, url = standin
    body = {"messages": [{"role": "user", "content": "weather?"}], "tools": [WEATHER_TOOL]}
    result = chat(url, {**body, "tool_choice": "none"})
    assert "tools" not in upstream.requests[-1].body
    assert result.body["choices"][0]["finish_reason"] == "stop"
    chat(url, {**body, "tool_choice": "auto"})
    assert upstream.requests[-1].body["tool_choice"] == "auto"


def test_n_above_one_is_rejected_without_a_call(standin: tuple[ZhipuStandIn, str]) -> None:
    upstream, url = standin
    before = len(upstream.requests)
    error = failure(url, {"messages": USER, "n": 2})
    assert isinstance(error, UpstreamRejected) and "n > 1" in error.message
    assert len(upstream.requests) == before


# ---------------------------------------------------------------------------- answers


def test_completion_usage_and_reasoning(standin: tuple[ZhipuStandIn, str]) -> None:
    _, url = standin
    messages = [{"role": "system", "content": "cached: rules"}, *USER]
    result = chat(url, {"messages": messages, "reasoning_effort": "medium"})
    body = result.body
    assert body["object"] == "chat.completion" and body["model"] == "glm-4.6"
    assert body["created"] == CREATED and body["id"].startswith("2025")
    choice = body["choices"][0]
    assert choice["message"] == {
        "role": "assistant",
        "content": "echo: hello there",
        "reasoning_content": "Let me think.",
    }
    assert choice["finish_reason"] == "stop" and choice["logprobs"] is None
    usage = result.usage
    assert (usage.prompt_tokens, usage.cached_tokens) == (10, 4)
    assert (usage.completion_tokens, usage.reasoning_tokens) == (6, 3)
    assert body["usage"] == usage.to_openai()


def test_tool_calls_in_a_completion(standin: tuple[ZhipuStandIn, str]) -> None:
    _, url = standin
    body = {
        "messages": [{"role": "user", "content": "weather in two cities"}],
        "tools": [WEATHER_TOOL],
    }
    choice = chat(url, body).body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"] == [
        {
            "id": "call_-900",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        },
        {
            "id": "call_-901",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
        },
    ]


@pytest.mark.parametrize(
    ("text", "extra", "finish"),
    [
        ("blocked output please", {}, "content_filter"),
        ("one two three four", {"max_tokens": 2}, "length"),
    ],
)
def test_finish_reasons_are_mapped(
    standin: tuple[ZhipuStandIn, str], text: str, extra: dict[str, Any], finish: str
) -> None:
    _, url = standin
    body = {"messages": [{"role": "user", "content": text}], **extra}
    assert chat(url, body).body["choices"][0]["finish_reason"] == finish
    chunks, _ = streamed(url, body)
    assert chunks[-1]["choices"][0]["finish_reason"] == finish


def test_network_error_finish_is_a_retryable_failure(standin: tuple[ZhipuStandIn, str]) -> None:
    _, url = standin
    body = {"messages": [{"role": "user", "content": "network failure now"}]}
    error = failure(url, body)
    assert error.retryable and not isinstance(error, UpstreamRejected)
    got, error = stream_failure(url, body)
    assert error.retryable and "network_error" in error.message
    assert deltas(got)[0] == {"role": "assistant", "content": ""}


# ---------------------------------------------------------------------------- streams


def test_stream_event_by_event(standin: tuple[ZhipuStandIn, str]) -> None:
    _, url = standin
    messages = [{"role": "system", "content": "cached: rules"}, *USER]
    chunks, usage = streamed(url, {"messages": messages, "thinking": {"type": "enabled"}})
    assert deltas(chunks) == [
        {"role": "assistant", "content": ""},
        {"reasoning_content": "Let"},
        {"reasoning_content": " me"},
        {"reasoning_content": " think."},
        {"content": "echo:"},
        {"content": " hello"},
        {"content": " there"},
        {},
    ]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * 7 + ["stop"]
    assert {(c["id"], c["created"], c["model"], c["object"]) for c in chunks} == {
        (chunks[0]["id"], CREATED, "glm-4.6", "chat.completion.chunk")
    }
    assert all("usage" not in c for c in chunks)
    assert (usage.prompt_tokens, usage.cached_tokens) == (10, 4)
    assert (usage.completion_tokens, usage.reasoning_tokens) == (6, 3)
    assert upstream_sent_stream(standin)


def upstream_sent_stream(standin: tuple[ZhipuStandIn, str]) -> bool:
    sent = standin[0].requests[-1]
    return sent.body.get("stream") is True and "stream_options" not in sent.body


def test_stream_tool_calls_get_stable_indexes(standin: tuple[ZhipuStandIn, str]) -> None:
    _, url = standin
    body = {
        "messages": [{"role": "user", "content": "weather in two cities"}],
        "tools": [WEATHER_TOOL],
    }
    chunks, usage = streamed(url, body)
    calls = [d["tool_calls"] for d in deltas(chunks) if "tool_calls" in d]
    assert calls == [
        [
            {
                "index": 0,
                "id": "call_-900",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            }
        ],
        [
            {
                "index": 1,
                "id": "call_-901",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
            }
        ],
    ]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert usage.completion_tokens == 8


def frame(doc: dict[str, Any]) -> bytes:
    return b"data:" + orjson.dumps(doc) + b"\n\n"


def test_stream_tool_calls_under_one_vendor_index_and_in_fragments(
    standin: tuple[ZhipuStandIn, str],
) -> None:
    upstream, url = standin
    head = {"id": "s1", "created": 5, "model": "glm-4.6"}

    def calls(*items: dict[str, Any], finish: str | None = None) -> bytes:
        choice: dict[str, Any] = {
            "index": 0,
            "delta": {"role": "assistant", "tool_calls": list(items)},
        }
        if finish:
            choice["finish_reason"] = finish
        return frame({**head, "choices": [choice]})

    fn = {"name": "f", "arguments": "{}"}
    upstream.script_next(
        [
            b": keep-alive\n\n",
            calls({"index": 0, "id": "a", "type": "function", "function": fn}),
            calls(
                {
                    "index": 0,
                    "id": "b",
                    "type": "function",
                    "function": {"name": "g", "arguments": '{"x":'},
                }
            ),
            calls({"index": 0, "function": {"arguments": "1}"}}),
            calls(finish="tool_calls"),
            b"data: [DONE]\n\n",
        ]
    )
    chunks, usage = streamed(url, {"messages": USER})
    assert [d.get("tool_calls") for d in deltas(chunks)] == [
        None,
        [{"index": 0, "id": "a", "type": "function", "function": fn}],
        [
            {
                "index": 1,
                "id": "b",
                "type": "function",
                "function": {"name": "g", "arguments": '{"x":'},
            }
        ],
        [{"index": 1, "function": {"arguments": "1}"}}],
        None,
    ]
    assert chunks[0]["id"] == "s1" and chunks[0]["created"] == 5
    assert usage is None  # this upstream reported none


def test_error_frame_mid_stream_is_classified(standin: tuple[ZhipuStandIn, str]) -> None:
    upstream, url = standin
    upstream.break_stream_next(2, code="1305", message="该模型当前访问量过大，请您稍后再试")
    got, error = stream_failure(url, {"messages": USER})
    assert len(got) == 3  # the role chunk and the two relayed chunks
    assert error.retryable and error.code == "upstream_rate_limited"


def test_error_frame_first_fails_before_any_chunk(standin: tuple[ZhipuStandIn, str]) -> None:
    upstream, url = standin
    upstream.script_next([b'event: error\ndata: {"error":{"code":"1301","message":"unsafe"}}\n\n'])
    got, error = stream_failure(url, {"messages": USER})
    assert got == []
    assert isinstance(error, UpstreamRejected) and error.code == "content_filter"


def test_a_stream_cut_before_its_end_is_an_error(standin: tuple[ZhipuStandIn, str]) -> None:
    upstream, url = standin
    upstream.script_next(
        [frame({"id": "c", "choices": [{"index": 0, "delta": {"content": "Hi"}}]})]
    )
    got, error = stream_failure(url, {"messages": USER})
    assert deltas(got) == [{"role": "assistant", "content": ""}, {"content": "Hi"}]
    assert error.retryable


# ---------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("status", "code", "retryable", "error_code"),
    [
        (429, "1113", True, "upstream_failed"),  # no balance: our account, not a rate limit
        (429, "1302", True, "upstream_rate_limited"),
        (429, "1303", True, "upstream_rate_limited"),
        (429, "1305", True, "upstream_rate_limited"),
        (401, "1000", True, "upstream_failed"),
        (401, "1003", True, "upstream_failed"),
        (400, "1301", False, "content_filter"),
        (400, "1261", False, "context_length_exceeded"),
        (400, "1210", False, None),
        (400, "1214", False, None),
        (500, "500", True, "upstream_failed"),
        (503, "", True, "upstream_failed"),
        (400, "9999", False, None),
    ],
)
def test_business_codes_are_classified(
    standin: tuple[ZhipuStandIn, str],
    status: int,
    code: str,
    retryable: bool,
    error_code: str | None,
) -> None:
    upstream, url = standin
    upstream.fail_next(status, code, "boom", headers={"Retry-After": "7"})
    error = failure(url, {"messages": USER})
    assert error.retryable is retryable
    assert isinstance(error, UpstreamRejected) is (not retryable)
    assert error.code == error_code or (
        error_code is None and error.code in (None, "upstream_failed")
    )
    if error_code == "upstream_rate_limited":
        assert error.retry_after_s == 7.0 and error.status == 429


def test_real_overflow_and_moderation_answers(standin: tuple[ZhipuStandIn, str]) -> None:
    _, url = standin
    overflow = failure(url, {"messages": [{"role": "user", "content": "context overflow"}]})
    assert isinstance(overflow, UpstreamRejected) and overflow.code == "context_length_exceeded"
    unsafe = failure(url, {"messages": [{"role": "user", "content": "unsafe stuff"}]})
    assert isinstance(unsafe, UpstreamRejected) and unsafe.code == "content_filter"


def test_keys_never_reach_messages(standin: tuple[ZhipuStandIn, str]) -> None:
    upstream, url = standin
    upstream.fail_next(400, "1214", f"bad key {KEY} and secret s3cr3t-value")
    error = failure(url, {"messages": USER})
    assert KEY not in error.message and "s3cr3t-value" not in error.message
    wrong = failure(url, {"messages": USER}, key="kid123.wrong-secret")
    assert wrong.retryable and "wrong-secret" not in wrong.message


def test_unreachable_and_stalled_upstreams(standin: tuple[ZhipuStandIn, str]) -> None:
    assert failure("http://127.0.0.1:9/api/paas/v4", {"messages": USER}).retryable

    async def slow(request: Any) -> Any:
        await asyncio.sleep(3)

    async def go(provider: ZhipuProvider) -> None:
        from aiohttp import web

        app = web.Application()
        app.router.add_post("/v4/chat/completions", slow)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        provider._base = f"http://127.0.0.1:{port}/v4"
        try:
            with pytest.raises(UpstreamTimeout):
                await provider.chat(Call(body={"messages": USER}, upstream_model="m", api_key=KEY))
        finally:
            await runner.cleanup()

    run("http://unused", go)


# ---------------------------------------------------------------------------- auth


def claims_of(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    head, payload, _ = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return (
        orjson.loads(base64.urlsafe_b64decode(pad(head))),
        orjson.loads(base64.urlsafe_b64decode(pad(payload))),
    )


def test_jwt_is_signed_cached_and_renewed(standin: tuple[ZhipuStandIn, str]) -> None:
    upstream, url = standin
    clock = FakeClock()

    async def go(provider: ZhipuProvider) -> list[str]:
        tokens = []
        for advance in (0, 100, 79, 2):  # t=0, 100, 179 (cached), 181 (renewed)
            clock.now += advance
            await provider.chat(
                Call(body={"messages": USER}, upstream_model="glm-4.6", api_key=KEY)
            )
            tokens.append(upstream.requests[-1].headers["authorization"].removeprefix("Bearer "))
        return tokens

    start = clock.now
    tokens = run(url, go, clock=clock)
    assert tokens[0] == tokens[1] == tokens[2] != tokens[3]
    head, claims = claims_of(tokens[0])
    assert head == {"alg": "HS256", "sign_type": "SIGN", "typ": "JWT"}
    assert claims["api_key"] == "kid123"
    assert claims["timestamp"] == round(start * 1000)
    assert claims["exp"] == claims["timestamp"] + 210_000
    assert claims_of(tokens[3])[1]["timestamp"] == round((start + 181) * 1000)
    assert "s3cr3t-value" not in tokens[0]


def test_raw_key_mode_and_undotted_keys(standin: tuple[ZhipuStandIn, str]) -> None:
    upstream, url = standin
    chat(url, {"messages": USER}, jwt=False)
    assert upstream.requests[-1].headers["authorization"] == f"Bearer {KEY}"
    failure(url, {"messages": USER}, key="plainkey")  # no dot: cannot be signed
    assert upstream.requests[-1].headers["authorization"] == "Bearer plainkey"


def test_an_expired_token_is_refused_upstream(standin: tuple[ZhipuStandIn, str]) -> None:
    _, url = standin
    stale = sign("kid123", "s3cr3t-value", time.time() - 600)

    async def go(provider: ZhipuProvider) -> UpstreamError:
        provider._tokens._cache[KEY] = (stale, float("inf"))
        with pytest.raises(UpstreamError) as caught:
            await provider.chat(
                Call(body={"messages": USER}, upstream_model="glm-4.6", api_key=KEY)
            )
        return caught.value

    error = run(url, go)
    assert error.retryable and "1003" in error.message


# ---------------------------------------------------------------------------- embeddings


def embed(url: str, body: dict[str, Any]) -> Any:
    async def go(provider: ZhipuProvider) -> Any:
        return await provider.embed(Call(body=body, upstream_model="embedding-3", api_key=KEY))

    return run(url, go)


def test_embeddings_are_batched_and_merged(standin: tuple[ZhipuStandIn, str]) -> None:
    upstream, url = standin
    texts = [f"text number {i}" for i in range(70)]
    before = len(upstream.requests)
    result = embed(url, {"model": "e", "input": texts, "dimensions": 256})
    sent = [r.body for r in upstream.requests[before:]]
    assert [len(b["input"]) for b in sent] == [64, 6]
    assert all(b["dimensions"] == 256 and b["model"] == "embedding-3" for b in sent)
    data = result.body["data"]
    assert [d["index"] for d in data] == list(range(70))
    assert len(data[0]["embedding"]) == 256
    assert result.usage.prompt_tokens == 210 == result.body["usage"]["prompt_tokens"]
    assert result.body["object"] == "list" and result.body["model"] == "embedding-3"


def test_embeddings_in_base64(standin: tuple[ZhipuStandIn, str]) -> None:
    upstream, url = standin
    floats = embed(url, {"input": "hi"}).body["data"][0]["embedding"]
    assert upstream.requests[-1].body["input"] == "hi"
    packed = embed(url, {"input": "hi", "encoding_format": "base64"}).body["data"][0]["embedding"]
    assert "encoding_format" not in upstream.requests[-1].body
    raw = base64.b64decode(packed)
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == floats


def test_token_array_input_is_rejected(standin: tuple[ZhipuStandIn, str]) -> None:
    _, url = standin

    async def go(provider: ZhipuProvider) -> None:
        with pytest.raises(UpstreamRejected):
            await provider.embed(Call(body={"input": [1, 2, 3]}, upstream_model="e", api_key=KEY))

    run(url, go)


# ---------------------------------------------------------------------------- build


def test_build_from_config() -> None:
    cfg = ProviderConfig(api="zhipu", base_url="https://api.z.ai/api/paas/v4/", timeout_s=30)

    async def go() -> None:
        async with HttpClient() as client:
            provider = build("glm", cfg, client)
            assert isinstance(provider, ZhipuProvider)
            assert provider.name == "glm" and provider._base == "https://api.z.ai/api/paas/v4"

    asyncio.run(go())


def test_closing_a_stream_early_releases_it(standin: tuple[ZhipuStandIn, str]) -> None:
    _, url = standin

    async def go(provider: ZhipuProvider) -> bool:
        call = Call(body={"messages": USER}, upstream_model="glm-4.6", api_key=KEY)
        stream = await provider.open_stream(call)
        iterator = aiter(stream)
        await anext(iterator)
        await stream.aclose()
        closed = stream._response.released
        again = await provider.chat(call)  # the client's pool still works
        return closed and again.body["choices"][0]["message"]["content"] == "echo: hello there"

    assert run(url, go)
