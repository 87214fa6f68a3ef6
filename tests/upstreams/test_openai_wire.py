"""Self-tests of the OpenAI-wire stand-in upstream, through the official SDK and raw HTTP."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import time
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import openai
import pytest

from tests.upstreams.openai_wire import Flavor, Recorded, StandInUpstream, run_in_thread

KEY = "sk-test"
Factory = Callable[..., tuple[StandInUpstream, str]]
SSE = tuple[list[str], list[Any]]  # (comment lines, data payloads with "[DONE]" kept as str)


@pytest.fixture
def make() -> Iterator[Factory]:
    stops: list[Callable[[], None]] = []

    def start(
        flavor: Flavor = Flavor.OPENAI, api_key: str | None = KEY
    ) -> tuple[StandInUpstream, str]:
        upstream = StandInUpstream(flavor, api_key)
        url, stop = run_in_thread(upstream)
        stops.append(stop)
        return upstream, url

    yield start
    for stop in stops:
        stop()


_CLIENTS: list[openai.OpenAI] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _CLIENTS:
        _CLIENTS.pop().close()


def client(url: str, **kwargs: Any) -> openai.OpenAI:
    """An SDK client without retries, closed after the test."""
    sdk = openai.OpenAI(base_url=url, api_key=kwargs.pop("api_key", KEY), max_retries=0, **kwargs)
    _CLIENTS.append(sdk)
    return sdk


def raw(
    url: str, path: str, body: dict[str, Any] | None = None, key: str | None = KEY
) -> tuple[int, dict[str, str], bytes]:
    """One request with aiohttp: (status, headers, body bytes). GET when ``body`` is None."""

    async def go() -> tuple[int, dict[str, str], bytes]:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        async with aiohttp.ClientSession(headers=headers) as session:
            method = "GET" if body is None else "POST"
            async with session.request(method, url + path, json=body) as response:
                return response.status, dict(response.headers), await response.read()

    return asyncio.run(go())


def parse_sse(data: bytes) -> SSE:
    comments: list[str] = []
    events: list[Any] = []
    for block in data.decode().split("\n\n"):
        for line in block.splitlines():
            if line.startswith(":"):
                comments.append(line)
            elif line.startswith("data: "):
                payload = line[len("data: ") :]
                events.append(payload if payload == "[DONE]" else json.loads(payload))
    return comments, events


def chat(text: str = "hello there world", model: str = "m", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def stream(url: str, body: dict[str, Any]) -> SSE:
    status, headers, data = raw(url, "/chat/completions", {**body, "stream": True})
    assert status == 200
    assert headers["Content-Type"].startswith("text/event-stream")
    return parse_sse(data)


# ------------------------------------------------------------------------------ basics


def test_sdk_non_stream_echo_usage_and_recording(make: Factory) -> None:
    upstream, url = make()
    messages: list[Any] = [
        {"role": "system", "content": "cached: you are terse"},
        {"role": "user", "content": "hello there world"},
    ]
    result = client(url).chat.completions.create(model="gpt-4o-mini", messages=messages)
    assert result.object == "chat.completion"
    assert result.model == "gpt-4o-mini"
    choice = result.choices[0]
    assert choice.message.content == "echo: hello there world"
    assert choice.finish_reason == "stop"
    assert choice.logprobs is None
    assert result.usage is not None
    # 4 + 3 words, 3 per message; answer has 4 words; "cached:" system -> half cached
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (13, 4)
    assert result.usage.total_tokens == 17
    assert result.usage.prompt_tokens_details is not None
    assert result.usage.prompt_tokens_details.cached_tokens == 6
    [recorded] = upstream.requests
    assert isinstance(recorded, Recorded)
    assert recorded.path == "/v1/chat/completions"
    assert recorded.headers["authorization"] == f"Bearer {KEY}"
    assert recorded.body["messages"] == messages


def test_sdk_stream_concatenates_to_non_stream_text(make: Factory) -> None:
    _, url = make()
    sdk = client(url)
    text = "the  quick brown\tfox"
    full = sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": text}])
    chunks = list(
        sdk.chat.completions.create(
            model="m", messages=[{"role": "user", "content": text}], stream=True
        )
    )
    assert len({c.id for c in chunks}) == 1
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert pieces == ["echo:", " the", "  quick", " brown", "\tfox"]
    assert "".join(pieces) == full.choices[0].message.content == "echo: " + text
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)


def test_models_list(make: Factory) -> None:
    _, url = make(Flavor.DEEPSEEK)
    models = client(url).models.list()
    assert [m.id for m in models.data] == ["deepseek-chat", "deepseek-reasoner"]
    assert all(m.owned_by == "standin" and m.created == 0 for m in models.data)


@pytest.mark.parametrize("flavor", list(Flavor))
def test_auth_required_and_flavour_error_shape(make: Factory, flavor: Flavor) -> None:
    _, url = make(flavor)
    status, _, data = raw(url, "/chat/completions", chat(), key="sk-wrong")
    assert status == 401
    body = json.loads(data)
    with pytest.raises(openai.AuthenticationError):
        client(url, api_key="nope").models.list()
    status, _, _ = raw(url, "/models", key=None)
    assert status == 401
    if flavor is Flavor.MISTRAL:
        assert body["object"] == "error"
        assert set(body) >= {"message", "type", "param", "code"}
        return
    error = body["error"]
    if flavor is Flavor.MOONSHOT:
        assert set(error) == {"type", "message"}
    elif flavor is Flavor.VLLM:
        assert error["code"] == 401
        assert error["param"] is None
    elif flavor is Flavor.OLLAMA:
        assert error["type"] == "api_error"
        assert error["code"] is None
    else:
        assert error["code"] == "invalid_api_key"
    assert ("request_id" in body) is (flavor is Flavor.DASHSCOPE)


def test_no_auth_when_api_key_is_none(make: Factory) -> None:
    _, url = make(Flavor.OLLAMA, api_key=None)
    status, _, _ = raw(url, "/chat/completions", chat(), key=None)
    assert status == 200


# ------------------------------------------------------------------------------ usage placement


def usage_places(events: list[Any]) -> dict[str, Any]:
    """Where usage showed up: finish chunk top level, finish chunk choices[0], trailing chunk."""
    chunks = [e for e in events if e != "[DONE]"]
    finish = next(c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"])
    trailing = [c for c in chunks if c["choices"] == []]
    return {
        "top": finish.get("usage"),
        "choice": finish["choices"][0].get("usage"),
        "trailing": trailing[0]["usage"] if trailing else None,
        "n_trailing": len(trailing),
        "last_is_done": events[-1] == "[DONE]",
    }


# flavour, include_usage -> (top, choice, trailing) present?
PLACEMENT = [
    (Flavor.OPENAI, True, (False, False, True)),
    (Flavor.OPENAI, False, (False, False, False)),
    (Flavor.DASHSCOPE, True, (False, False, True)),
    (Flavor.DASHSCOPE, False, (False, False, False)),
    (Flavor.VLLM, True, (False, False, True)),
    (Flavor.VLLM, False, (False, False, False)),
    (Flavor.OLLAMA, True, (False, False, True)),
    (Flavor.OLLAMA, False, (False, False, False)),
    (Flavor.MISTRAL, True, (True, False, False)),
    (Flavor.MISTRAL, False, (True, False, False)),
    (Flavor.DEEPSEEK, True, (True, False, False)),
    (Flavor.DEEPSEEK, False, (False, False, False)),
    (Flavor.MOONSHOT, True, (False, True, True)),
    (Flavor.MOONSHOT, False, (False, True, False)),
]


@pytest.mark.parametrize(("flavor", "include", "expected"), PLACEMENT)
def test_stream_usage_placement(
    make: Factory, flavor: Flavor, include: bool, expected: tuple[bool, bool, bool]
) -> None:
    _, url = make(flavor)
    body = chat(stream_options={"include_usage": include}) if include else chat()
    _, events = stream(url, body)
    places = usage_places(events)
    assert (
        places["top"] is not None,
        places["choice"] is not None,
        places["trailing"] is not None,
    ) == expected
    assert places["last_is_done"]
    assert places["n_trailing"] == int(expected[2])
    usage = places["top"] or places["choice"] or places["trailing"]
    if usage is not None:
        counts = (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"])
        assert counts == (6, 4, 10)


def test_vllm_stream_options_present_defaults_include_usage(make: Factory) -> None:
    _, url = make(Flavor.VLLM)
    _, events = stream(url, chat(stream_options={}))
    assert usage_places(events)["trailing"] is not None


def test_openai_chunks_carry_null_usage_when_included(make: Factory) -> None:
    _, url = make()
    _, events = stream(url, chat(stream_options={"include_usage": True}))
    assert all("usage" in e and e["usage"] is None for e in events[:-2])


def test_sdk_sees_trailing_usage_chunk(make: Factory) -> None:
    _, url = make(Flavor.DASHSCOPE)
    messages: Any = [{"role": "user", "content": "hi"}]
    chunks = list(
        client(url).chat.completions.create(
            model="qwen-plus",
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    details = chunks[-1].usage.prompt_tokens_details
    assert details is not None
    assert details.cached_tokens == 0


# ------------------------------------------------------------------------------ DeepSeek


def test_deepseek_keep_alive_reasoning_and_cache_usage(make: Factory) -> None:
    _, url = make(Flavor.DEEPSEEK)
    messages = [{"role": "system", "content": "cached: sys"}, {"role": "user", "content": "hello"}]
    body = {
        "model": "deepseek-reasoner",
        "messages": messages,
        "stream_options": {"include_usage": True},
    }
    comments, events = stream(url, body)
    assert comments
    assert all(c == ": keep-alive" for c in comments)
    deltas = [e["choices"][0]["delta"] for e in events[:-1] if e["choices"]]
    reasoning = [d["reasoning_content"] for d in deltas if "reasoning_content" in d]
    assert "".join(reasoning) == "thinking about it"
    first_content = next(i for i, d in enumerate(deltas) if d.get("content"))
    assert max(i for i, d in enumerate(deltas) if "reasoning_content" in d) < first_content
    usage = usage_places(events)["top"]
    assert "prompt_tokens_details" not in usage
    assert usage["prompt_tokens"] == 9
    assert usage["prompt_cache_hit_tokens"] == 4
    assert (
        usage["prompt_cache_hit_tokens"] + usage["prompt_cache_miss_tokens"]
        == usage["prompt_tokens"]
    )
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 3
    assert usage["completion_tokens"] == 3 + 2  # reasoning words + "echo: hello"


def test_deepseek_non_stream_padding_parsed_by_sdk(make: Factory) -> None:
    _, url = make(Flavor.DEEPSEEK)
    status, _, data = raw(url, "/chat/completions", chat(model="deepseek-reasoner"))
    assert status == 200
    assert data.startswith(b"\n\n")
    body = json.loads(data)
    assert body["usage"]["prompt_cache_hit_tokens"] == 0
    assert "prompt_tokens_details" not in body["usage"]
    result = client(url).chat.completions.create(
        model="deepseek-reasoner", messages=[{"role": "user", "content": "hi"}]
    )
    assert result.choices[0].message.content == "echo: hi"
    extra = result.choices[0].message.model_extra or {}
    assert extra["reasoning_content"] == "thinking about it"
    chat_model = json.loads(raw(url, "/chat/completions", chat(model="deepseek-chat"))[2])
    assert "reasoning_content" not in chat_model["choices"][0]["message"]


def test_deepseek_429_has_no_retry_after(make: Factory) -> None:
    upstream, url = make(Flavor.DEEPSEEK)
    upstream.fail_next(429)
    status, headers, data = raw(url, "/chat/completions", chat())
    assert status == 429
    assert "Retry-After" not in headers
    assert set(json.loads(data)["error"]) == {"message", "type", "param", "code"}


# ------------------------------------------------------------------------------ reasoning fields


@pytest.mark.parametrize(
    ("flavor", "model", "field"),
    [
        (Flavor.VLLM, "Qwen/Qwen3-8B-think", "reasoning"),
        (Flavor.OLLAMA, "deepthink:7b", "reasoning"),
        (Flavor.DASHSCOPE, "qwq-plus", "reasoning_content"),
        (Flavor.DASHSCOPE, "qwen3-thinking", "reasoning_content"),
        (Flavor.DEEPSEEK, "deepseek-reasoner", "reasoning_content"),
    ],
)
def test_reasoning_field_names(make: Factory, flavor: Flavor, model: str, field: str) -> None:
    _, url = make(flavor)
    other = "reasoning_content" if field == "reasoning" else "reasoning"
    body = json.loads(raw(url, "/chat/completions", chat(model=model))[2])
    message = body["choices"][0]["message"]
    assert message[field] == "thinking about it"
    assert other not in message
    _, events = stream(url, chat(model=model))
    deltas = [e["choices"][0]["delta"] for e in events[:-1] if e["choices"]]
    assert "".join(d.get(field, "") for d in deltas) == "thinking about it"
    assert not any(other in d for d in deltas)


def test_non_reasoning_models_have_no_reasoning(make: Factory) -> None:
    _, url = make(Flavor.VLLM)
    body = json.loads(raw(url, "/chat/completions", chat(model="Qwen/Qwen3-8B"))[2])
    message = body["choices"][0]["message"]
    assert "reasoning" not in message
    assert "reasoning_content" not in message


def test_dashscope_enable_thinking_requires_stream(make: Factory) -> None:
    _, url = make(Flavor.DASHSCOPE)
    status, _, data = raw(url, "/chat/completions", chat(model="qwen-plus", enable_thinking=True))
    assert status == 400
    assert "enable_thinking" in json.loads(data)["error"]["message"]
    _, events = stream(url, chat(model="qwen-plus", enable_thinking=True))
    assert any("reasoning_content" in e["choices"][0]["delta"] for e in events[:-1] if e["choices"])


# ------------------------------------------------------------------------------ answer shaping

WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def test_tool_call_non_stream_and_stream(make: Factory) -> None:
    _, url = make()
    sdk = client(url)
    messages: Any = [{"role": "user", "content": "What's the weather like?"}]
    result = sdk.chat.completions.create(model="m", messages=messages, tools=[WEATHER_TOOL])
    choice = result.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.type == "function"
    assert (call.id, call.function.name, call.function.arguments) == (
        "call_1",
        "get_weather",
        '{"city":"Paris"}',
    )

    chunks = list(
        sdk.chat.completions.create(model="m", messages=messages, tools=[WEATHER_TOOL], stream=True)
    )
    tool_deltas = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert len(tool_deltas) == 3
    assert all(tc.index == 0 for tc in tool_deltas)
    first = tool_deltas[0]
    assert first.function is not None
    assert (first.id, first.type, first.function.name, first.function.arguments) == (
        "call_1",
        "function",
        "get_weather",
        "",
    )
    fragments = [tc.function.arguments if tc.function else None for tc in tool_deltas[1:]]
    assert all(fragments)
    assert "".join(f or "" for f in fragments) == '{"city":"Paris"}'
    assert all(tc.id is None for tc in tool_deltas[1:])
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_no_tool_call_without_weather_or_tools(make: Factory) -> None:
    _, url = make()
    sdk = client(url)
    plain = sdk.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "weather?"}]
    )
    assert plain.choices[0].message.content == "echo: weather?"
    other = sdk.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}], tools=[WEATHER_TOOL]
    )
    assert other.choices[0].finish_reason == "stop"


def test_mistral_tool_call_ids(make: Factory) -> None:
    _, url = make(Flavor.MISTRAL)
    body = chat("weather in Paris", tools=[WEATHER_TOOL])
    message = json.loads(raw(url, "/chat/completions", body)[2])["choices"][0]["message"]
    call_id = message["tool_calls"][0]["id"]
    assert len(call_id) == 9
    assert call_id.isalnum()
    history = [
        {"role": "user", "content": "weather in Paris"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
    ]
    status, _, data = raw(url, "/chat/completions", {"model": "m", "messages": history})
    assert status == 400
    assert "length of 9" in json.loads(data)["message"]


def test_json_object_n_and_max_tokens(make: Factory) -> None:
    _, url = make()
    sdk = client(url)
    messages: Any = [{"role": "user", "content": "say it in json"}]
    result = sdk.chat.completions.create(
        model="m", messages=messages, response_format={"type": "json_object"}
    )
    assert json.loads(result.choices[0].message.content or "") == {"echo": "say it in json"}

    result = sdk.chat.completions.create(model="m", messages=messages, n=3)
    assert [c.index for c in result.choices] == [0, 1, 2]
    assert {c.message.content for c in result.choices} == {"echo: say it in json"}

    result = sdk.chat.completions.create(model="m", messages=messages, max_tokens=2)
    assert result.choices[0].message.content == "echo: say"
    assert result.choices[0].finish_reason == "length"
    assert result.usage is not None
    assert result.usage.completion_tokens == 2
    chunks = list(
        sdk.chat.completions.create(
            model="m", messages=messages, max_completion_tokens=3, stream=True
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "echo: say it"
    assert chunks[-1].choices[0].finish_reason == "length"


def test_content_parts_and_images(make: Factory) -> None:
    _, url = make()
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    content = [{"type": "text", "text": "what is"}, image, {"type": "text", "text": "this"}, image]
    body = {"model": "m", "messages": [{"role": "user", "content": content}]}
    result = json.loads(raw(url, "/chat/completions", body)[2])
    assert result["choices"][0]["message"]["content"] == "echo: what is this [2 images]"
    assert result["usage"]["prompt_tokens"] == 3 + 3


# ------------------------------------------------------------------------------ errors & faults


@pytest.mark.parametrize("flavor", list(Flavor))
def test_missing_model_is_404(make: Factory, flavor: Flavor) -> None:
    _, url = make(flavor)
    with pytest.raises(openai.NotFoundError):
        client(url).chat.completions.create(
            model="missing-model", messages=[{"role": "user", "content": "hi"}]
        )
    status, _, _ = raw(url, "/embeddings", {"model": "missing-model", "input": "x"})
    assert status == 404


@pytest.mark.parametrize("flavor", list(Flavor))
def test_context_overflow(make: Factory, flavor: Flavor) -> None:
    _, url = make(flavor)
    status, _, data = raw(url, "/chat/completions", chat("a context overflow please"))
    assert status == 400
    body = json.loads(data)
    error = body if flavor is Flavor.MISTRAL else body["error"]
    if flavor is Flavor.MOONSHOT:
        assert "exceeded model token limit" in error["message"]
        assert "code" not in error
    elif flavor is Flavor.VLLM:
        assert error["code"] == 400
        assert "maximum context length" in error["message"]
    elif flavor is Flavor.OLLAMA:
        assert error["type"] == "invalid_request_error"
        assert "maximum context length" in error["message"]
    else:
        assert error["code"] == "context_length_exceeded"
        assert error["param"] == "messages"


def test_fail_next_default_429_and_times(make: Factory) -> None:
    upstream, url = make()
    upstream.fail_next(429, times=2)
    sdk = client(url)
    for _ in range(2):
        with pytest.raises(openai.RateLimitError) as caught:
            sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        assert caught.value.response.headers["retry-after"] == "1"
        assert caught.value.code == "rate_limit_exceeded"
    assert sdk.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}]
    ).choices
    assert len(upstream.requests) == 3


def test_fail_next_custom_body_headers_and_queue_order(make: Factory) -> None:
    upstream, url = make(Flavor.MOONSHOT)
    upstream.fail_next(503, body={"custom": True}, headers={"X-Why": "because"})
    upstream.fail_next(500)
    status, headers, data = raw(url, "/embeddings", {"model": "m", "input": "x"})
    assert (status, headers["X-Why"], json.loads(data)) == (503, "because", {"custom": True})
    status, _, data = raw(url, "/chat/completions", chat(stream=True))
    error = json.loads(data)["error"]
    assert status == 500
    assert set(error) == {"type", "message"}
    assert error["type"] == "server_error"
    assert raw(url, "/models")[0] == 200  # models are never failed


def test_dashscope_and_vllm_error_bodies(make: Factory) -> None:
    upstream, url = make(Flavor.DASHSCOPE)
    upstream.fail_next(400)
    body = json.loads(raw(url, "/chat/completions", chat())[2])
    assert body["request_id"]
    assert set(body["error"]) == {"message", "type", "param", "code"}
    upstream, url = make(Flavor.VLLM)
    upstream.fail_next(400)
    body = json.loads(raw(url, "/chat/completions", chat())[2])
    assert body == {
        "error": {
            "message": body["error"]["message"],
            "type": "BadRequestError",
            "param": None,
            "code": 400,
        }
    }


def test_stall_next_delays_one_request(make: Factory) -> None:
    upstream, url = make()
    upstream.stall_next(0.6)
    with pytest.raises(openai.APITimeoutError):
        client(url, timeout=0.2).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )
    started = time.monotonic()
    assert raw(url, "/chat/completions", chat())[0] == 200
    assert time.monotonic() - started < 0.5


def test_break_stream_next(make: Factory) -> None:
    upstream, url = make()
    upstream.break_stream_next(after_chunks=2)
    status, _, data = raw(url, "/chat/completions", chat("a b c d e", stream=True))
    _, events = parse_sse(data)
    assert status == 200
    assert len(events) == 3
    assert "[DONE]" not in events
    assert set(events[-1]) == {"error"}
    assert events[-1]["error"]["message"]
    upstream.break_stream_next(after_chunks=3)
    stream_ = client(url).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "a b c d e"}], stream=True
    )
    received: list[Any] = []
    with pytest.raises(openai.APIError):
        received.extend(stream_)  # keeps the chunks that arrived before the error
    assert len(received) == 3
    _, events = stream(url, chat())  # only the next streamed answer is broken
    assert events[-1] == "[DONE]"


# ------------------------------------------------------------------------------ embeddings


def test_embeddings_float_base64_and_dimensions(make: Factory) -> None:
    upstream, url = make()
    status, _, data = raw(
        url,
        "/embeddings",
        {"model": "e", "input": ["hello world", "x"], "encoding_format": "float"},
    )
    body = json.loads(data)
    assert status == 200
    assert body["object"] == "list"
    assert body["model"] == "e"
    assert body["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    floats = [d["embedding"] for d in body["data"]]
    assert [d["index"] for d in body["data"]] == [0, 1]
    assert all(len(v) == 8 for v in floats)
    for vector in floats:  # float32-representable
        assert list(struct.unpack("<8f", struct.pack("<8f", *vector))) == vector
    assert floats[0] != floats[1]

    b64 = json.loads(
        raw(
            url, "/embeddings", {"model": "e", "input": "hello world", "encoding_format": "base64"}
        )[2]
    )
    decoded = list(struct.unpack("<8f", base64.b64decode(b64["data"][0]["embedding"])))
    assert decoded == floats[0]

    # the SDK asks for base64 unless told otherwise, and decodes it
    sdk = client(url).embeddings.create(model="e", input=["hello world"], dimensions=4)
    assert upstream.requests[-1].body["encoding_format"] == "base64"
    assert sdk.data[0].embedding == floats[0][:4]
    assert sdk.usage.prompt_tokens == 2


def test_embeddings_token_arrays(make: Factory) -> None:
    _, url = make(Flavor.VLLM)
    body = json.loads(raw(url, "/embeddings", {"model": "e", "input": [[1, 2, 3], [4]]})[2])
    assert body["usage"]["prompt_tokens"] == 4
    assert len(body["data"]) == 2
    assert body["id"]


# ------------------------------------------------------------------------------ lifecycle


def test_async_start_stop_with_async_sdk() -> None:
    async def scenario() -> str | None:
        upstream = StandInUpstream(Flavor.OLLAMA)
        url = await upstream.start()
        try:
            sdk = openai.AsyncOpenAI(base_url=url, api_key=KEY, max_retries=0)
            result = await sdk.chat.completions.create(
                model="llama3.2", messages=[{"role": "user", "content": "yo"}]
            )
            await sdk.close()
            return result.choices[0].message.content
        finally:
            await upstream.stop()

    assert asyncio.run(scenario()) == "echo: yo"


def test_run_in_thread_stop_is_idempotent_and_closes_port() -> None:
    upstream = StandInUpstream()
    url, stop = run_in_thread(upstream)
    assert url.startswith("http://127.0.0.1:")
    assert url.endswith("/v1")
    assert raw(url, "/models")[0] == 200
    stop()
    stop()
    with pytest.raises(aiohttp.ClientConnectionError):
        raw(url, "/models")
