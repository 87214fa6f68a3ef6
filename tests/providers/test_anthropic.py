"""The Anthropic adapter alone, against the Anthropic stand-in: what it sends, how it reads
answers and streams, how it classifies failures, and the raw relay for the inbound endpoint."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import orjson
import pytest

from tests.upstreams.anthropic_wire import AnthropicStandIn, error_body, run_in_thread
from tokenyard.config import ProviderConfig
from tokenyard.errors import UpstreamError, UpstreamRejected, UpstreamTimeout
from tokenyard.providers.anthropic import AnthropicProvider, build
from tokenyard.providers.anthropic.request import JSON_OBJECT_INSTRUCTION
from tokenyard.providers.anthropic.response import finish_reason
from tokenyard.providers.base import Call
from tokenyard.providers.transport import HttpClient
from tokenyard.wire.usage import Usage

T = TypeVar("T")
KEY = "sk-ant-unit"
NOW = 1_760_000_000.0
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture(scope="module")
def standin() -> Iterator[tuple[AnthropicStandIn, str]]:
    upstream = AnthropicStandIn(api_key=KEY)
    url, stop = run_in_thread(upstream)
    yield upstream, url
    stop()


@pytest.fixture
def upstream(standin: tuple[AnthropicStandIn, str]) -> AnthropicStandIn:
    standin[0].reset()
    return standin[0]


def with_provider(url: str, body: Callable[[AnthropicProvider], Awaitable[T]], **kw: Any) -> T:
    async def main() -> T:
        async with HttpClient() as client:
            provider = AnthropicProvider(
                name="claude",
                base_url=url,
                client=client,
                timeout_s=5,
                connect_timeout_s=1,
                first_byte_timeout_s=1,
                idle_timeout_s=1,
                clock=lambda: NOW,
                **kw,
            )
            return await body(provider)

    return asyncio.run(main())


def encoded(body: dict[str, Any], *, stream: bool = False, **kw: Any) -> dict[str, Any]:
    async def run(provider: AnthropicProvider) -> dict[str, Any]:
        return provider.encode_chat_body(Call(body=body, upstream_model="claude-up"), stream=stream)

    return with_provider("http://127.0.0.1:9", run, **kw)


def chat(url: str, body: dict[str, Any], key: str = KEY) -> dict[str, Any]:
    async def run(provider: AnthropicProvider) -> dict[str, Any]:
        result = await provider.chat(Call(body=body, upstream_model="claude-up", api_key=key))
        assert result.body["usage"] == result.usage.to_openai()
        return result.body

    return with_provider(url, run)


def stream(url: str, body: dict[str, Any]) -> tuple[list[dict[str, Any]], Usage | None]:
    async def run(provider: AnthropicProvider) -> tuple[list[dict[str, Any]], Usage | None]:
        opened = await provider.open_stream(
            Call(body=body, upstream_model="claude-up", api_key=KEY)
        )
        try:
            chunks = [orjson.loads(chunk) async for chunk in opened]
        finally:
            await opened.aclose()
        return chunks, opened.usage

    return with_provider(url, run)


def failure(url: str, body: dict[str, Any], key: str = KEY) -> UpstreamError:
    async def run(provider: AnthropicProvider) -> UpstreamError:
        with pytest.raises(UpstreamError) as caught:
            await provider.chat(Call(body=body, upstream_model="claude-up", api_key=key))
        return caught.value

    return with_provider(url, run)


def user(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


# -- request translation ------------------------------------------------------------------


def test_system_messages_sampling_and_dropped_fields() -> None:
    body = {
        "model": "public",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Be kind."}]},
            {"role": "user", "content": "hi"},
        ],
        "max_completion_tokens": 77,
        "max_tokens": 5,
        "temperature": 1.6,
        "top_p": 0.5,
        "stop": "END",
        "user": "u-1",
        "presence_penalty": 1,
        "frequency_penalty": 1,
        "seed": 3,
        "logprobs": True,
        "top_logprobs": 2,
        "logit_bias": {"1": 2},
        "stream_options": {"include_usage": True},
        "n": 1,
    }
    before = copy.deepcopy(body)
    sent = encoded(body, stream=True)
    assert sent == {
        "model": "claude-up",
        "max_tokens": 77,
        "system": [
            {"type": "text", "text": "You are terse."},
            {"type": "text", "text": "Be kind."},
        ],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "temperature": 1.0,  # clamped, not halved
        "top_p": 0.5,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "u-1"},
        "stream": True,
    }
    assert body == before  # the caller's body is never changed


def test_max_tokens_default_and_fallbacks() -> None:
    assert encoded(user("x"))["max_tokens"] == 4096
    assert encoded(user("x"), default_max_tokens=1000)["max_tokens"] == 1000
    assert encoded({**user("x"), "max_tokens": 12})["max_tokens"] == 12
    assert encoded({**user("x"), "temperature": 0.3, "stop": ["a", "b"]})["stop_sequences"] == [
        "a",
        "b",
    ]
    with pytest.raises(UpstreamRejected, match="n must be 1"):
        encoded({**user("x"), "n": 2})


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        (None, None, None),
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            None,
            {"type": "tool", "name": "get_weather"},
        ),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        ("auto", True, {"type": "auto"}),
    ],
)
def test_tools_and_tool_choice(choice: Any, parallel: Any, expected: Any) -> None:
    body: dict[str, Any] = {**user("x"), "tools": [WEATHER_TOOL]}
    if choice is not None:
        body["tool_choice"] = choice
    if parallel is not None:
        body["parallel_tool_calls"] = parallel
    sent = encoded(body)
    assert sent["tools"] == [
        {
            "name": "get_weather",
            "description": "Current weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    assert sent.get("tool_choice") == expected


def test_tool_choice_without_tools_is_left_out() -> None:
    assert "tool_choice" not in encoded({**user("x"), "tool_choice": "required"})


def test_tool_conversation_becomes_tool_use_and_merged_tool_results() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "weather in Paris?"},
            {"role": "user", "content": "and Rome?"},
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    {
                        "id": "toolu_a",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    },
                    {
                        "id": "toolu_b",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_a", "content": "18C"},
            {
                "role": "tool",
                "tool_call_id": "toolu_b",
                "content": [{"type": "text", "text": "21C"}],
            },
            {"role": "user", "content": "thanks"},
        ]
    }
    assert encoded(body)["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "weather in Paris?"},
                {"type": "text", "text": "and Rome?"},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {
                    "type": "tool_use",
                    "id": "toolu_a",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {"type": "tool_use", "id": "toolu_b", "name": "get_weather", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_a", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "toolu_b", "content": "21C"},
                {"type": "text", "text": "thanks"},
            ],
        },
    ]


def test_tool_results_lead_their_user_turn_and_prefill_is_trimmed() -> None:
    call = {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    body = {
        "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "tool_calls": [call]},
            {"role": "user", "content": "by the way"},
            {"role": "tool", "tool_call_id": "t1", "content": "done"},
            {"role": "assistant", "content": "Result: "},
        ]
    }
    messages = encoded(body)["messages"]
    assert messages[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "t1", "content": "done"},
        {"type": "text", "text": "by the way"},
    ]
    assert messages[3] == {"role": "assistant", "content": [{"type": "text", "text": "Result:"}]}


def test_a_pinned_later_api_version_sends_no_sampling_parameters(
    standin: tuple[AnthropicStandIn, str], upstream: AnthropicStandIn
) -> None:
    body = {**user("hi"), "temperature": 0.3, "top_p": 0.9, "top_k": 5}
    assert encoded(body)["top_k"] == 5
    pinned = {"anthropic-version": "2026-10-21"}
    sent = encoded(body, extra_headers=pinned)
    assert not {"temperature", "top_p", "top_k"} & set(sent)

    async def run(provider: AnthropicProvider) -> Any:
        return (await provider.chat(Call(body=body, upstream_model="m", api_key=KEY))).body

    answer = with_provider(standin[1], run, extra_headers=pinned)
    assert answer["choices"][0]["message"]["content"] == "echo: hi"
    assert upstream.requests[-1].headers["anthropic-version"] == "2026-10-21"


def test_bad_tool_arguments_are_rejected() -> None:
    call = {"id": "t", "type": "function", "function": {"name": "f", "arguments": "[1]"}}
    body = {
        "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [call]}]
    }
    with pytest.raises(UpstreamRejected, match="not a JSON object"):
        encoded(body)


def test_images_and_pdf_parts() -> None:
    content = [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}},
        {"type": "image_url", "image_url": {"url": f"data:image/jpg;base64,{PNG}"}},
        {
            "type": "file",
            "file": {"file_data": f"data:application/pdf;base64,{PNG}", "filename": "a.pdf"},
        },
    ]
    blocks = encoded({"messages": [{"role": "user", "content": content}]})["messages"][0]["content"]
    assert blocks == [
        {"type": "text", "text": "what is this"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": PNG}},
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": PNG},
            "title": "a.pdf",
        },
    ]
    for url in (f"data:image/bmp;base64,{PNG}", "data:image/png,rawbytes", "ftp://x/y.png"):
        bad = [{"type": "image_url", "image_url": {"url": url}}]
        with pytest.raises(UpstreamRejected):
            encoded({"messages": [{"role": "user", "content": bad}]})
    audio = [{"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]
    with pytest.raises(UpstreamRejected, match="input_audio"):
        encoded({"messages": [{"role": "user", "content": audio}]})


def test_response_formats() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema, "strict": True}}
    sent = encoded({**user("x"), "response_format": fmt})
    assert sent["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    sent = encoded({**user("x"), "response_format": {"type": "json_object"}})
    assert sent["system"] == [{"type": "text", "text": JSON_OBJECT_INSTRUCTION}]
    assert "output_config" not in encoded({**user("x"), "response_format": {"type": "text"}})


@pytest.mark.parametrize(
    ("effort", "max_tokens", "budget"),
    [
        ("low", None, 1024),
        ("medium", None, 4096),
        ("high", None, 16384),
        ("max", None, 16384),
        ("high", 32000, 16384),
        ("high", 5000, 4999),
        ("high", 1024, None),
        ("none", None, None),
    ],
)
def test_reasoning_effort_becomes_a_thinking_budget(
    effort: str, max_tokens: int | None, budget: int | None
) -> None:
    body: dict[str, Any] = {
        **user("x"),
        "reasoning_effort": effort,
        "temperature": 0.2,
        "top_p": 0.5,
    }
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    sent = encoded(body)
    if budget is None:
        assert "thinking" not in sent and sent["temperature"] == 0.2
    else:
        assert sent["thinking"] == {"type": "enabled", "budget_tokens": budget}
        assert sent["max_tokens"] == (max_tokens or 4096 + budget)  # room left for the answer
        assert "temperature" not in sent and sent["top_p"] == 0.95


def test_forced_tool_use_leaves_thinking_off() -> None:
    body = {
        **user("x"),
        "tools": [WEATHER_TOOL],
        "tool_choice": "required",
        "reasoning_effort": "low",
    }
    assert "thinking" not in encoded(body)


# -- non-streamed answers ---------------------------------------------------------------


def test_chat_sends_the_anthropic_wire_and_reads_the_message(
    standin: tuple[AnthropicStandIn, str], upstream: AnthropicStandIn
) -> None:
    body = chat(standin[1], {**user("hello there"), "temperature": 2})
    request = upstream.requests[-1]
    assert request.path == "/v1/messages"
    assert request.headers["x-api-key"] == KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in request.headers
    assert request.body["temperature"] == 1.0
    assert body == {
        "id": "msg_standin_" + body["id"].rsplit("_", 1)[1],
        "object": "chat.completion",
        "created": int(NOW),
        "model": "claude-up",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "echo: hello there"},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": 5,
            "completion_tokens": 3,
            "total_tokens": 8,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }


def test_chat_tool_calls_thinking_and_cache_usage(standin: tuple[AnthropicStandIn, str]) -> None:
    body = chat(
        standin[1],
        {
            "messages": [
                {"role": "system", "content": "cached: a long shared preamble"},
                {"role": "user", "content": "weather in Paris and Rome?"},
            ],
            "tools": [WEATHER_TOOL],
            "reasoning_effort": "low",
        },
    )
    message = body["choices"][0]["message"]
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    assert message["content"] == "Let me check."
    assert message["reasoning_content"] == "The user wants an echo, so I echo."
    assert [orjson.loads(c["function"]["arguments"]) for c in message["tool_calls"]] == [
        {"city": "Paris"},
        {"city": "Rome"},
    ]
    assert message["tool_calls"][0]["type"] == "function"
    assert message["tool_calls"][0]["function"]["name"] == "get_weather"
    usage = body["usage"]
    assert usage["prompt_tokens_details"]["cached_tokens"] == 5  # the system text's words
    assert usage["prompt_tokens"] == 5 + 8  # cache read + uncached input
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 8
    assert usage["completion_tokens"] == 8 + 3 + 4


def test_a_tool_loop_is_accepted_by_the_api_rules(standin: tuple[AnthropicStandIn, str]) -> None:
    call = {
        "id": "toolu_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
    }
    body = chat(
        standin[1],
        {
            "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "toolu_1", "content": "18C and sunny"},
            ],
            "tools": [WEATHER_TOOL],
        },
    )
    assert body["choices"][0]["message"]["content"] == "echo: 18C and sunny"


@pytest.mark.parametrize(
    ("extra", "text", "finish", "content"),
    [
        ({"max_tokens": 2}, "one two three", "length", "echo: one"),
        ({"stop": ["two"]}, "one two three", "stop", "echo: one "),
        ({}, "please refuse", "content_filter", "echo: please refuse"),
    ],
)
def test_finish_reasons_from_the_upstream(
    standin: tuple[AnthropicStandIn, str],
    extra: dict[str, Any],
    text: str,
    finish: str,
    content: str,
) -> None:
    body = chat(standin[1], {**user(text), **extra})
    assert body["choices"][0]["finish_reason"] == finish
    assert body["choices"][0]["message"]["content"] == content


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("something_new", "stop"),
    ],
)
def test_stop_reason_table(stop_reason: str, finish: str) -> None:
    assert finish_reason(stop_reason) == finish


def test_json_modes_reach_the_upstream(
    standin: tuple[AnthropicStandIn, str], upstream: AnthropicStandIn
) -> None:
    body = chat(standin[1], {**user("hi"), "response_format": {"type": "json_object"}})
    assert orjson.loads(body["choices"][0]["message"]["content"]) == {"echo": "hi"}
    schema = {"type": "object", "properties": {"echo": {"type": "string"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "e", "schema": schema}}
    body = chat(standin[1], {**user("hi"), "response_format": fmt})
    assert orjson.loads(body["choices"][0]["message"]["content"]) == {"echo": "hi"}
    assert upstream.requests[-1].body["output_config"]["format"]["schema"] == schema


# -- streams ------------------------------------------------------------------------------


def test_stream_of_text(standin: tuple[AnthropicStandIn, str], upstream: AnthropicStandIn) -> None:
    chunks, usage = stream(standin[1], user("hello big world"))
    assert upstream.requests[-1].body["stream"] is True
    assert {(c["id"], c["created"], c["model"], c["object"]) for c in chunks} == {
        (chunks[0]["id"], int(NOW), "claude-up", "chat.completion.chunk")
    }
    assert chunks[0]["id"].startswith("msg_standin_")
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert "".join(d.get("content", "") for d in deltas) == "echo: hello big world"
    assert [c["choices"][0]["finish_reason"] for c in chunks][-1] == "stop"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert all("usage" not in c for c in chunks)
    assert usage == Usage(prompt_tokens=6, completion_tokens=4)


def test_stream_of_thinking_and_tool_calls(standin: tuple[AnthropicStandIn, str]) -> None:
    chunks, usage = stream(
        standin[1],
        {**user("weather in Paris and Tokyo?"), "tools": [WEATHER_TOOL], "reasoning_effort": "low"},
    )
    deltas = [c["choices"][0]["delta"] for c in chunks]
    reasoning = "".join(d.get("reasoning_content", "") for d in deltas)
    assert reasoning == "The user wants an echo, so I echo."
    assert "".join(d.get("content", "") for d in deltas) == "Let me check."
    calls = [call for d in deltas for call in d.get("tool_calls", ())]
    # Anthropic blocks 2 and 3 (after thinking and text) are OpenAI tool calls 0 and 1.
    firsts = [c for c in calls if "id" in c]
    assert [(c["index"], c["type"], c["function"]) for c in firsts] == [
        (0, "function", {"name": "get_weather", "arguments": ""}),
        (1, "function", {"name": "get_weather", "arguments": ""}),
    ]
    assert all(
        set(c) == {"index", "function"} and c["function"]["arguments"]
        for c in calls
        if "id" not in c
    )
    arguments = {
        i: "".join(c["function"]["arguments"] for c in calls if c["index"] == i) for i in (0, 1)
    }
    assert {i: orjson.loads(a) for i, a in arguments.items()} == {
        0: {"city": "Paris"},
        1: {"city": "Tokyo"},
    }
    assert chunks[-1]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "tool_calls",
    }
    assert (
        usage is not None and usage.reasoning_tokens == 8 and usage.completion_tokens == 8 + 3 + 4
    )


def test_stream_usage_is_known_from_message_start(standin: tuple[AnthropicStandIn, str]) -> None:
    async def run(provider: AnthropicProvider) -> tuple[Usage | None, Usage | None]:
        opened = await provider.open_stream(
            Call(body=user("a b c"), upstream_model="m", api_key=KEY)
        )
        seen: list[Usage | None] = []
        async for _ in opened:
            seen.append(opened.usage)
        await opened.aclose()
        return seen[0], opened.usage

    first, last = with_provider(standin[1], run)
    assert first == Usage(prompt_tokens=6, completion_tokens=1)
    assert last == Usage(prompt_tokens=6, completion_tokens=4)


@pytest.mark.parametrize(
    ("kind", "retryable", "status"),
    [
        ("overloaded_error", True, 503),
        ("api_error", True, 502),
        ("invalid_request_error", False, 400),
    ],
)
def test_mid_stream_error_event(
    standin: tuple[AnthropicStandIn, str],
    upstream: AnthropicStandIn,
    kind: str,
    retryable: bool,
    status: int,
) -> None:
    upstream.error_stream_next(after_events=4, kind=kind)

    async def run(provider: AnthropicProvider) -> tuple[list[bytes], UpstreamError]:
        opened = await provider.open_stream(
            Call(body=user("a b c d"), upstream_model="m", api_key=KEY)
        )
        got: list[bytes] = []
        with pytest.raises(UpstreamError) as caught:
            async for chunk in opened:
                got.append(chunk)
        await opened.aclose()
        return got, caught.value

    got, error = with_provider(standin[1], run)
    assert len(got) == 2  # role chunk and the first word; ping and block start send nothing
    assert error.retryable is retryable and error.status == status
    assert isinstance(error, UpstreamRejected) is not retryable


def test_stream_cut_before_message_stop(
    standin: tuple[AnthropicStandIn, str], upstream: AnthropicStandIn
) -> None:
    upstream.break_stream_next(after_events=5)

    async def run(provider: AnthropicProvider) -> list[bytes]:
        opened = await provider.open_stream(
            Call(body=user("a b c d"), upstream_model="m", api_key=KEY)
        )
        got: list[bytes] = []
        with pytest.raises(UpstreamError, match="before message_stop"):
            async for chunk in opened:
                got.append(chunk)
        await opened.aclose()
        return got

    assert len(with_provider(standin[1], run)) == 3


def test_stream_closed_early_by_the_client(standin: tuple[AnthropicStandIn, str]) -> None:
    async def run(provider: AnthropicProvider) -> bytes:
        opened = await provider.open_stream(
            Call(body=user("a b c d"), upstream_model="m", api_key=KEY)
        )
        first = b""
        async for chunk in opened:
            first = chunk
            break
        await opened.aclose()
        return first

    assert b'"role":"assistant"' in with_provider(standin[1], run)


# -- failures -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "retryable", "client_status"),
    [
        (400, False, 400),
        (413, False, 413),
        (401, True, 502),
        (402, True, 502),
        (403, True, 502),
        (404, True, 502),
        (429, True, 502),
        (500, True, 502),
        (504, True, 502),
        (529, True, 503),
    ],
)
def test_failures_are_classified(
    standin: tuple[AnthropicStandIn, str],
    upstream: AnthropicStandIn,
    status: int,
    retryable: bool,
    client_status: int,
) -> None:
    upstream.fail_next(status, headers={"retry-after": "7"} if status == 429 else None)
    error = failure(standin[1], user("x"))
    assert error.retryable is retryable
    assert isinstance(error, UpstreamRejected) is (not retryable)
    assert error.status == client_status
    if status == 429:
        assert error.retry_after_s == 7.0 and error.code == "upstream_rate_limited"


def test_context_overflow_and_account_400s(
    standin: tuple[AnthropicStandIn, str], upstream: AnthropicStandIn
) -> None:
    error = failure(standin[1], user("context overflow please"))
    assert isinstance(error, UpstreamRejected) and error.code == "context_length_exceeded"
    assert "prompt is too long" in error.message
    for message in (
        "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing.",
        "You have reached your specified API usage limits. You will regain access on 2026-04-01.",
    ):
        upstream.fail_next(400, error_body(400, message))
        error = failure(standin[1], user("x"))
        assert error.retryable and not isinstance(error, UpstreamRejected)
    error = failure(standin[1], {**user("x"), "max_tokens": 0})
    assert isinstance(error, UpstreamRejected)  # refused before sending


def test_rate_limit_reset_headers(
    standin: tuple[AnthropicStandIn, str], upstream: AnthropicStandIn
) -> None:
    upstream.fail_next(
        429,
        headers={
            "anthropic-ratelimit-requests-remaining": "10",
            "anthropic-ratelimit-requests-reset": "2025-10-09T08:53:30Z",
            "anthropic-ratelimit-input-tokens-remaining": "0",
            "anthropic-ratelimit-input-tokens-reset": "2025-10-09T08:53:40Z",
            "anthropic-ratelimit-output-tokens-remaining": "0",
            "anthropic-ratelimit-output-tokens-reset": "2025-10-09T08:53:50+00:00",
        },
    )
    error = failure(standin[1], user("x"))
    assert error.retry_after_s == 30.0  # NOW is 2025-10-09T08:53:20Z; latest exhausted limit
    upstream.fail_next(429, headers={"retry-after-ms": "1500", "retry-after": "9"})
    assert failure(standin[1], user("x")).retry_after_s == 1.5


def test_a_non_json_413_from_a_proxy(standin: tuple[AnthropicStandIn, str]) -> None:
    async def run(provider: AnthropicProvider) -> UpstreamError:
        with pytest.raises(UpstreamError) as caught:
            await provider.chat(Call(body=user("x"), upstream_model="m", api_key=KEY))
        return caught.value

    standin[0].fail_next(413, b"<html><h1>413 Request Entity Too Large</h1></html>")
    error = with_provider(standin[1], run)
    assert isinstance(error, UpstreamRejected) and error.status == 413
    assert error.code == "request_too_large" and "<html>" not in error.message


def test_wrong_key_is_retryable_and_scrubbed(standin: tuple[AnthropicStandIn, str]) -> None:
    error = failure(standin[1], user("x"), key="sk-ant-wrong-secret")
    assert error.retryable and error.status == 502
    assert "sk-ant-wrong-secret" not in error.message


def test_echoed_key_never_reaches_the_message(
    standin: tuple[AnthropicStandIn, str], upstream: AnthropicStandIn
) -> None:
    upstream.fail_next(400, error_body(400, f"bad key {KEY} in body"))
    assert KEY not in failure(standin[1], user("x")).message


def test_timeouts_and_unreachable(
    standin: tuple[AnthropicStandIn, str], upstream: AnthropicStandIn
) -> None:
    upstream.stall_next(2)

    async def stalled(provider: AnthropicProvider) -> None:
        with pytest.raises(UpstreamTimeout):
            await provider.open_stream(Call(body=user("x"), upstream_model="m", api_key=KEY))

    with_provider(standin[1], stalled)
    error = failure("http://127.0.0.1:9", user("x"))
    assert error.retryable and "could not be reached" in error.message


def test_no_embeddings() -> None:
    async def run(provider: AnthropicProvider) -> None:
        with pytest.raises(UpstreamRejected, match="does not offer embeddings"):
            await provider.embed(Call(body={"input": "x"}, upstream_model="m"))

    with_provider("http://127.0.0.1:9", run)


# -- the raw relay for the inbound Anthropic endpoint ------------------------------------


def test_messages_raw_relays_bytes_untouched(
    standin: tuple[AnthropicStandIn, str], upstream: AnthropicStandIn
) -> None:
    raw = b'{"model":"claude-up", "max_tokens":50,"messages":[{"role":"user","content":"hi you"}],"stream":true}'

    async def run(provider: AnthropicProvider) -> bytes:
        response = await provider.messages_raw(
            raw, KEY, stream=True, headers={"anthropic-beta": "x-2026", "x-api-key": "evil"}
        )
        try:
            return await response.read()
        finally:
            response.release()

    relayed = with_provider(standin[1], run)
    request = upstream.requests[-1]
    assert request.raw == raw
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["x-api-key"] == KEY
    assert request.headers["anthropic-beta"] == "x-2026"
    assert relayed.startswith(b"event: message_start\ndata: ")
    assert relayed.rstrip().endswith(b'event: message_stop\ndata: {"type":"message_stop"}')


def test_messages_raw_non_streamed_and_errors(
    standin: tuple[AnthropicStandIn, str], upstream: AnthropicStandIn
) -> None:
    raw = b'{"model":"claude-up","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}'

    async def run(provider: AnthropicProvider) -> tuple[dict[str, Any], UpstreamError]:
        response = await provider.messages_raw(raw, KEY, stream=False)
        try:
            doc = orjson.loads(await response.read())
        finally:
            response.release()
        with pytest.raises(UpstreamError) as caught:
            await provider.messages_raw(raw.replace(b"50", b"0"), KEY, stream=False)
        # A client on API version 2026-10-21 gets its own version's rules.
        sampled = raw.replace(b'"max_tokens"', b'"temperature":0.5,"max_tokens"')
        newer = {"anthropic-version": "2026-10-21"}
        with pytest.raises(UpstreamRejected, match="temperature"):
            await provider.messages_raw(sampled, KEY, stream=False, headers=newer)
        response = await provider.messages_raw(sampled, KEY, stream=False)
        response.release()
        return doc, caught.value

    doc, error = with_provider(standin[1], run)
    assert doc["type"] == "message" and doc["content"] == [{"type": "text", "text": "echo: hi"}]
    assert isinstance(error, UpstreamRejected) and "max_tokens" in error.message


# -- construction and the stand-in's fidelity --------------------------------------------


def test_build_from_config() -> None:
    async def run() -> None:
        async with HttpClient() as client:
            cfg = ProviderConfig(
                api="anthropic",
                base_url="https://api.anthropic.com/v1/",
                headers={"anthropic-beta": "b"},
            )
            provider = build("claude", cfg, client)
            assert isinstance(provider, AnthropicProvider)
            assert provider._base == "https://api.anthropic.com"
            assert provider._auth("k") == {
                "anthropic-version": "2023-06-01",
                "anthropic-beta": "b",
                "Content-Type": "application/json",
                "x-api-key": "k",
            }
            default = build("c", ProviderConfig(api="anthropic"), client)
            assert isinstance(default, AnthropicProvider)
            assert default._base == "https://api.anthropic.com"

    asyncio.run(run())


def test_the_official_sdk_reads_the_stand_in(standin: tuple[AnthropicStandIn, str]) -> None:
    anthropic = pytest.importorskip("anthropic")
    client = anthropic.Anthropic(api_key=KEY, base_url=standin[1], max_retries=0)
    message = client.messages.create(
        model="claude-up",
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        tools=[{"name": "get_weather", "input_schema": {"type": "object"}}],
        messages=[{"role": "user", "content": "weather in Rome?"}],
    )
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use"]
    assert message.usage.output_tokens_details.thinking_tokens == 8
    with client.messages.stream(
        model="claude-up",
        max_tokens=64,
        tools=[{"name": "get_weather", "input_schema": {"type": "object"}}],
        messages=[{"role": "user", "content": "weather in Rome and Paris?"}],
    ) as events:
        final = events.get_final_message()
    assert [b.input for b in final.content if b.type == "tool_use"] == [
        {"city": "Paris"},
        {"city": "Rome"},
    ]
    assert final.stop_reason == "tool_use" and final.usage.output_tokens == 3 + 4
