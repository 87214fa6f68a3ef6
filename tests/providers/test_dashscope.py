"""The DashScope native adapter against a stand-in that speaks the native wire: routes,
request bodies, answers, streams (incremental deltas, no [DONE]), thinking via streams,
error codes, embeddings."""

from __future__ import annotations

import asyncio
import base64
import copy
import struct
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import orjson
import pytest

from tests.upstreams.dashscope_wire import (
    EMBEDDING,
    MULTIMODAL,
    TEXT,
    DashScopeStandIn,
    run_in_thread,
)
from tokenyard.config import ProviderConfig
from tokenyard.errors import UpstreamError, UpstreamRejected, UpstreamTimeout
from tokenyard.providers.base import Call
from tokenyard.providers.dashscope import DashScopeProvider, build
from tokenyard.providers.dashscope.response import chat_body
from tokenyard.providers.transport import HttpClient

T = TypeVar("T")
KEY = "sk-dash"
NOW = 1_770_000_000
USER = [{"role": "user", "content": "hello there"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture(scope="module")
def standin() -> Iterator[tuple[DashScopeStandIn, str]]:
    upstream = DashScopeStandIn(KEY)
    url, stop = run_in_thread(upstream)  # type: ignore[arg-type]
    yield upstream, url
    stop()


def run(url: str, body: Callable[[DashScopeProvider], Awaitable[T]], **options: Any) -> T:
    async def main() -> T:
        async with HttpClient() as client:
            provider = DashScopeProvider(
                name="dashscope",
                base_url=url,
                client=client,
                timeout_s=5,
                connect_timeout_s=1,
                first_byte_timeout_s=2,
                idle_timeout_s=2,
                clock=lambda: NOW,
                **options,
            )
            return await body(provider)

    return asyncio.run(main())


def chat(url: str, body: dict[str, Any], model: str = "qwen-plus", key: str = KEY) -> Any:
    async def go(provider: DashScopeProvider) -> Any:
        return await provider.chat(Call(body=body, upstream_model=model, api_key=key))

    return run(url, go)


def failure(
    url: str, body: dict[str, Any], model: str = "qwen-plus", key: str = KEY
) -> UpstreamError:
    async def go(provider: DashScopeProvider) -> UpstreamError:
        with pytest.raises(UpstreamError) as caught:
            await provider.chat(Call(body=body, upstream_model=model, api_key=key))
        return caught.value

    return run(url, go)


def streamed(
    url: str, body: dict[str, Any], model: str = "qwen-plus"
) -> tuple[list[dict[str, Any]], Any]:
    async def go(provider: DashScopeProvider) -> tuple[list[dict[str, Any]], Any]:
        stream = await provider.open_stream(Call(body=body, upstream_model=model, api_key=KEY))
        try:
            chunks = [orjson.loads(chunk) async for chunk in stream]
        finally:
            await stream.aclose()
        return chunks, stream.usage

    return run(url, go)


def stream_failure(url: str, body: dict[str, Any]) -> tuple[list[dict[str, Any]], UpstreamError]:
    async def go(provider: DashScopeProvider) -> tuple[list[dict[str, Any]], UpstreamError]:
        stream = await provider.open_stream(
            Call(body=body, upstream_model="qwen-plus", api_key=KEY)
        )
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


def test_text_generation_request(standin: tuple[DashScopeStandIn, str]) -> None:
    upstream, url = standin
    body = {
        "model": "public",
        "messages": [
            {
                "role": "developer",
                "content": [{"type": "text", "text": "be"}, {"type": "text", "text": "terse"}],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            *USER,
        ],
        "max_completion_tokens": 40,
        "temperature": 2,
        "top_p": 0.5,
        "seed": 3,
        "stop": ["END"],
        "top_k": 20,
        "enable_search": True,
        "tools": [WEATHER_TOOL],
        "tool_choice": "auto",
        "frequency_penalty": 0.5,
        "user": "someone",
        "stream_options": {"include_usage": True},
    }
    original = copy.deepcopy(body)
    result = chat(url, body)
    assert body == original
    sent = upstream.requests[-1]
    assert sent.path == TEXT
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert "x-dashscope-sse" not in sent.headers
    assert sent.body["model"] == "qwen-plus"
    assert sent.body["input"]["messages"] == [
        {"role": "system", "content": "be\nterse"},
        {"role": "assistant", "content": "", "tool_calls": body["messages"][1]["tool_calls"]},
        {"role": "tool", "content": "sunny", "tool_call_id": "c1"},
        {"role": "user", "content": "hello there"},
    ]
    assert sent.body["parameters"] == {
        "result_format": "message",
        "max_tokens": 40,
        "temperature": 1.99,
        "top_p": 0.5,
        "top_k": 20,
        "seed": 3,
        "stop": ["END"],
        "tools": [WEATHER_TOOL],
        "tool_choice": "auto",
        "enable_search": True,
    }
    assert result.body["choices"][0]["message"]["content"] == "echo: hello there"


def test_images_take_the_multimodal_route(standin: tuple[DashScopeStandIn, str]) -> None:
    upstream, url = standin
    data_url = "data:image/png;base64,iVBORw0K"
    body = {
        "messages": [
            {"role": "system", "content": "look"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this"},
                    {"type": "image_url", "image_url": {"url": data_url}},
                    {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
                    {"type": "input_audio", "input_audio": {"data": "UklGR", "format": "wav"}},
                ],
            },
        ]
    }
    result = chat(url, body, model="qwen3-vl-plus")
    sent = upstream.requests[-1]
    assert sent.path == MULTIMODAL
    assert sent.body["input"]["messages"] == [
        {"role": "system", "content": [{"text": "look"}]},
        {
            "role": "user",
            "content": [
                {"text": "what is this"},
                {"image": data_url},
                {"image": "https://x.test/a.png"},
                {"audio": "data:audio/wav;base64,UklGR"},
            ],
        },
    ]
    assert result.body["choices"][0]["message"]["content"] == "echo: what is this [2 images]"


def test_qwen35_models_and_text_models_are_routed(standin: tuple[DashScopeStandIn, str]) -> None:
    upstream, url = standin
    assert chat(url, {"messages": USER}, model="qwen3.5-plus").body["choices"]
    assert upstream.requests[-1].path == MULTIMODAL
    chat(url, {"messages": USER}, model="qwen-max")
    assert upstream.requests[-1].path == TEXT


def test_unsupported_parts_are_rejected(standin: tuple[DashScopeStandIn, str]) -> None:
    _, url = standin
    body = {"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "f"}}]}]}
    assert isinstance(failure(url, body), UpstreamRejected)


# ---------------------------------------------------------------------------- answers


def test_completion_and_usage(standin: tuple[DashScopeStandIn, str]) -> None:
    _, url = standin
    messages = [{"role": "system", "content": "cached: rules"}, *USER]
    result = chat(url, {"messages": messages})
    body = result.body
    assert body["id"].startswith("chatcmpl-req-")
    assert (body["object"], body["created"], body["model"]) == ("chat.completion", NOW, "qwen-plus")
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "echo: hello there"},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ]
    assert (result.usage.prompt_tokens, result.usage.cached_tokens) == (10, 4)
    assert result.usage.completion_tokens == 3
    assert body["usage"] == result.usage.to_openai()


def test_tool_calls_and_length(standin: tuple[DashScopeStandIn, str]) -> None:
    _, url = standin
    body = {"messages": [{"role": "user", "content": "weather?"}], "tools": [WEATHER_TOOL]}
    choice = chat(url, body).body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"] == [
        {
            "id": "call_ds1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        }
    ]
    short = {"messages": [{"role": "user", "content": "one two three four"}], "max_tokens": 2}
    assert chat(url, short).body["choices"][0]["finish_reason"] == "length"


def test_n_choices(standin: tuple[DashScopeStandIn, str]) -> None:
    upstream, url = standin
    result = chat(url, {"messages": USER, "n": 2})
    assert upstream.requests[-1].body["parameters"]["n"] == 2
    assert [c["index"] for c in result.body["choices"]] == [0, 1]
    assert result.usage.completion_tokens == 6


def test_legacy_text_answers_are_read() -> None:
    doc = {
        "output": {"text": "hi", "finish_reason": "stop"},
        "usage": {"input_tokens": 2, "output_tokens": 1},
        "request_id": "r",
    }
    body, usage = chat_body(doc, "qwen-turbo", NOW)
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "hi"}
    assert (usage.prompt_tokens, usage.completion_tokens) == (2, 1)


# ---------------------------------------------------------------------------- streams


def test_stream_event_by_event(standin: tuple[DashScopeStandIn, str]) -> None:
    upstream, url = standin
    messages = [{"role": "system", "content": "cached: rules"}, *USER]
    chunks, usage = streamed(url, {"messages": messages})
    sent = upstream.requests[-1]
    assert sent.headers["x-dashscope-sse"] == "enable"
    assert sent.headers["accept"] == "text/event-stream"
    assert sent.body["parameters"]["incremental_output"] is True
    assert deltas(chunks) == [
        {"role": "assistant", "content": ""},
        {"content": "echo:"},
        {"content": " hello"},
        {"content": " there"},
        {},
    ]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * 4 + ["stop"]
    assert {(c["id"], c["created"], c["model"], c["object"]) for c in chunks} == {
        (chunks[0]["id"], NOW, "qwen-plus", "chat.completion.chunk")
    }
    assert all("usage" not in c for c in chunks)
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) == (10, 3, 4)


def test_multimodal_stream_content_lists(standin: tuple[DashScopeStandIn, str]) -> None:
    _, url = standin
    chunks, _ = streamed(url, {"messages": USER}, model="qwen-vl-max")
    assert "".join(d.get("content", "") for d in deltas(chunks)) == "echo: hello there"


def test_stream_tool_calls(standin: tuple[DashScopeStandIn, str]) -> None:
    _, url = standin
    body = {"messages": [{"role": "user", "content": "weather?"}], "tools": [WEATHER_TOOL]}
    chunks, usage = streamed(url, body)
    calls = [d["tool_calls"] for d in deltas(chunks) if "tool_calls" in d]
    assert calls == [
        [
            {
                "index": 0,
                "id": "call_ds1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": ""},
            }
        ],
        [{"index": 0, "function": {"arguments": '{"city":'}}],
        [{"index": 0, "function": {"arguments": '"Paris"}'}}],
    ]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert usage.completion_tokens == 4


def test_stream_with_n_choices(standin: tuple[DashScopeStandIn, str]) -> None:
    _, url = standin
    chunks, usage = streamed(url, {"messages": USER, "n": 2})
    by_index: dict[int, str] = {}
    for chunk in chunks:
        choice = chunk["choices"][0]
        by_index[choice["index"]] = by_index.get(choice["index"], "") + choice["delta"].get(
            "content", ""
        )
    assert by_index == {0: "echo: hello there", 1: "echo: hello there"}
    roles = [c["choices"][0]["index"] for c in chunks if c["choices"][0]["delta"].get("role")]
    assert roles == [0, 1]
    assert (usage.prompt_tokens, usage.completion_tokens) == (5, 6)


def test_error_event_mid_stream(standin: tuple[DashScopeStandIn, str]) -> None:
    upstream, url = standin
    upstream.break_stream_next(
        2, status=429, code="Throttling.RateQuota", message="Requests rate limit exceeded"
    )
    got, error = stream_failure(url, {"messages": USER})
    assert deltas(got) == [
        {"role": "assistant", "content": ""},
        {"content": "echo:"},
        {"content": " hello"},
    ]
    assert error.retryable and error.code == "upstream_rate_limited"


def test_error_event_first_fails_before_any_chunk(standin: tuple[DashScopeStandIn, str]) -> None:
    upstream, url = standin
    upstream.break_stream_next(
        0,
        status=400,
        code="DataInspectionFailed",
        message="Output data may contain inappropriate content.",
    )
    got, error = stream_failure(url, {"messages": USER})
    assert got == []
    assert isinstance(error, UpstreamRejected) and error.code == "content_filter"


def test_a_stream_cut_before_its_finish_is_an_error(standin: tuple[DashScopeStandIn, str]) -> None:
    upstream, url = standin
    upstream.cut_stream_next(2)
    got, error = stream_failure(url, {"messages": USER})
    assert len(got) == 3 and error.retryable


# ---------------------------------------------------------------------------- thinking


def test_thinking_chat_is_streamed_upstream_and_folded(
    standin: tuple[DashScopeStandIn, str],
) -> None:
    upstream, url = standin
    before = len(upstream.requests)
    result = chat(url, {"messages": USER, "reasoning_effort": "high"})
    sent = upstream.requests[before:]
    assert len(sent) == 1
    assert sent[0].headers["x-dashscope-sse"] == "enable"
    assert sent[0].body["parameters"]["enable_thinking"] is True
    assert sent[0].body["parameters"]["incremental_output"] is True
    body = result.body
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-req-")
    assert body["choices"] == [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "echo: hello there",
                "reasoning_content": "Let me think.",
            },
            "finish_reason": "stop",
            "logprobs": None,
        }
    ]
    assert (result.usage.completion_tokens, result.usage.reasoning_tokens) == (6, 3)
    assert body["usage"] == result.usage.to_openai()


def test_thinking_tool_calls_are_folded(standin: tuple[DashScopeStandIn, str]) -> None:
    _, url = standin
    body = {
        "messages": [{"role": "user", "content": "weather?"}],
        "tools": [WEATHER_TOOL],
        "enable_thinking": True,
    }
    choice = chat(url, body).body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"] == [
        {
            "id": "call_ds1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        }
    ]


@pytest.mark.parametrize("model", ["qwen3-8b", "qwq-plus"])
def test_stream_only_models_are_retried_streamed(
    standin: tuple[DashScopeStandIn, str], model: str
) -> None:
    upstream, url = standin
    before = len(upstream.requests)
    result = chat(url, {"messages": USER}, model=model)
    sent = upstream.requests[before:]
    assert ["x-dashscope-sse" in r.headers for r in sent] == [False, True]
    assert result.body["choices"][0]["message"]["content"] == "echo: hello there"
    assert result.body["choices"][0]["message"]["reasoning_content"] == "Let me think."


def test_thinking_off_is_sent(standin: tuple[DashScopeStandIn, str]) -> None:
    upstream, url = standin
    result = chat(url, {"messages": USER, "reasoning_effort": "none"}, model="qwen3-8b")
    assert upstream.requests[-1].body["parameters"]["enable_thinking"] is False
    assert "reasoning_content" not in result.body["choices"][0]["message"]


# ---------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("status", "code", "retryable", "error_code"),
    [
        (401, "InvalidApiKey", True, "upstream_failed"),
        (403, "AccessDenied.Unpurchased", True, "upstream_failed"),
        (400, "Arrearage", True, "upstream_failed"),
        (429, "Throttling", True, "upstream_rate_limited"),
        (429, "Throttling.RateQuota", True, "upstream_rate_limited"),
        (429, "Throttling.AllocationQuota", True, "upstream_rate_limited"),
        (500, "InternalError", True, "upstream_failed"),
        (408, "RequestTimeOut", True, "upstream_failed"),
        (400, "InvalidParameter", False, None),
        (400, "Model.AccessDenied", True, "upstream_failed"),
        (400, "InternalError.Algo.InvalidParameter", False, None),
        (400, "BadRequest.EmptyInput", False, None),
        (400, "DataInspectionFailed", False, "content_filter"),
        (400, "InternalError.Algo.DataInspectionFailed", False, "content_filter"),
        (503, "", True, "upstream_failed"),
    ],
)
def test_error_codes_are_classified(
    standin: tuple[DashScopeStandIn, str],
    status: int,
    code: str,
    retryable: bool,
    error_code: str | None,
) -> None:
    upstream, url = standin
    upstream.fail_next(status, code, "boom", headers={"Retry-After": "3"})
    error = failure(url, {"messages": USER})
    assert error.retryable is retryable
    assert isinstance(error, UpstreamRejected) is (not retryable)
    assert error.code == (error_code or "upstream_failed")  # UpstreamError's default code
    if error_code == "upstream_rate_limited":
        assert error.retry_after_s == 3.0 and error.status == 429


def test_too_large_and_sse_error_bodies(standin: tuple[DashScopeStandIn, str]) -> None:
    upstream, url = standin
    upstream.fail_next(413, "BadRequest.TooLarge", "Payload Too Large")
    large = failure(url, {"messages": USER})
    assert isinstance(large, UpstreamRejected) and large.status == 413

    async def go(provider: DashScopeProvider) -> UpstreamError:
        with pytest.raises(UpstreamError) as caught:
            await provider.open_stream(
                Call(body={"messages": USER}, upstream_model="qwen-plus", api_key=KEY)
            )
        return caught.value

    upstream.fail_next(429, "Throttling.RateQuota", "slow down", sse=True)
    throttled = run(url, go)
    assert throttled.retryable and throttled.code == "upstream_rate_limited"


def test_real_overflow_and_moderation_answers(standin: tuple[DashScopeStandIn, str]) -> None:
    _, url = standin
    overflow = failure(url, {"messages": [{"role": "user", "content": "context overflow"}]})
    assert isinstance(overflow, UpstreamRejected) and overflow.code == "context_length_exceeded"
    unsafe = failure(url, {"messages": [{"role": "user", "content": "unsafe stuff"}]})
    assert isinstance(unsafe, UpstreamRejected) and unsafe.code == "content_filter"


def test_wrong_key_is_retryable_and_scrubbed(standin: tuple[DashScopeStandIn, str]) -> None:
    upstream, url = standin
    error = failure(url, {"messages": USER}, key="sk-wrong-secret")
    assert error.retryable and "sk-wrong-secret" not in error.message
    upstream.fail_next(400, "InvalidParameter", f"bad {KEY}")
    assert KEY not in failure(url, {"messages": USER}).message


def test_unreachable_and_stalled_upstreams() -> None:
    assert failure("http://127.0.0.1:9", {"messages": USER}).retryable

    async def go(provider: DashScopeProvider) -> None:
        from aiohttp import web

        async def slow(request: Any) -> Any:
            await asyncio.sleep(3)

        app = web.Application()
        app.router.add_post(TEXT, slow)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        provider._base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        try:
            with pytest.raises(UpstreamTimeout):
                await provider.open_stream(
                    Call(body={"messages": USER}, upstream_model="qwen-plus", api_key=KEY)
                )
        finally:
            await runner.cleanup()

    run("http://unused", go)


# ---------------------------------------------------------------------------- embeddings


def embed(url: str, body: dict[str, Any]) -> Any:
    async def go(provider: DashScopeProvider) -> Any:
        return await provider.embed(
            Call(body=body, upstream_model="text-embedding-v4", api_key=KEY)
        )

    return run(url, go)


def test_embeddings_are_batched_and_merged(standin: tuple[DashScopeStandIn, str]) -> None:
    upstream, url = standin
    texts = [f"text number {i}" for i in range(23)]
    before = len(upstream.requests)
    result = embed(url, {"input": texts, "dimensions": 64})
    sent = upstream.requests[before:]
    assert {r.path for r in sent} == {EMBEDDING}
    assert [len(r.body["input"]["texts"]) for r in sent] == [10, 10, 3]
    assert all(r.body["parameters"] == {"dimension": 64} for r in sent)
    assert [d["index"] for d in result.body["data"]] == list(range(23))
    assert len(result.body["data"][0]["embedding"]) == 64
    assert result.usage.prompt_tokens == 69 == result.body["usage"]["prompt_tokens"]
    assert result.body["model"] == "text-embedding-v4" and result.body["object"] == "list"


def test_embeddings_in_base64_and_token_arrays(standin: tuple[DashScopeStandIn, str]) -> None:
    _, url = standin
    floats = embed(url, {"input": "hi"}).body["data"][0]["embedding"]
    packed = embed(url, {"input": "hi", "encoding_format": "base64"}).body["data"][0]["embedding"]
    raw = base64.b64decode(packed)
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == floats

    async def go(provider: DashScopeProvider) -> None:
        with pytest.raises(UpstreamRejected):
            await provider.embed(Call(body={"input": [[1, 2]]}, upstream_model="e", api_key=KEY))

    run(url, go)


# ---------------------------------------------------------------------------- build


def test_build_from_config(standin: tuple[DashScopeStandIn, str]) -> None:
    _, url = standin
    cfg = ProviderConfig(
        api="dashscope",
        base_url=url + "/api/v1/",
        timeout_s=30,
        headers={"X-DashScope-WorkSpace": "ws-1"},
    )

    async def go() -> None:
        async with HttpClient() as client:
            provider = build("qwen", cfg, client)
            assert isinstance(provider, DashScopeProvider)
            result = await provider.chat(
                Call(body={"messages": USER}, upstream_model="qwen-plus", api_key=KEY)
            )
            assert result.body["choices"][0]["message"]["content"] == "echo: hello there"

    asyncio.run(go())
    assert standin[0].requests[-1].headers["x-dashscope-workspace"] == "ws-1"


def test_closing_a_stream_early_releases_it(standin: tuple[DashScopeStandIn, str]) -> None:
    _, url = standin

    async def go(provider: DashScopeProvider) -> bool:
        call = Call(body={"messages": USER}, upstream_model="qwen-plus", api_key=KEY)
        stream = await provider.open_stream(call)
        iterator = aiter(stream)
        await anext(iterator)
        await stream.aclose()
        closed = stream._response.released
        again = await provider.chat(call)  # the client's pool still works
        return closed and again.body["choices"][0]["message"]["content"] == "echo: hello there"

    assert run(url, go)
