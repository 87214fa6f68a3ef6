"""The Gemini adapter against the Gemini stand-in: what it sends, how it reads answers and
streams, how it classifies failures."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import orjson
import pytest

from tests.upstreams.gemini_wire import SIGNATURE, THOUGHT, GeminiStandIn, run_in_thread
from tokenyard.config import ProviderConfig
from tokenyard.errors import UpstreamError, UpstreamRejected, UpstreamTimeout
from tokenyard.providers.base import Call
from tokenyard.providers.gemini import GeminiProvider, build
from tokenyard.providers.gemini.failure import from_response
from tokenyard.providers.gemini.request import SIGNATURE_PLACEHOLDER
from tokenyard.providers.gemini.response import chat_completion, finish_reason, usage_from_gemini
from tokenyard.providers.gemini.stream import documents
from tokenyard.providers.transport import HttpClient

T = TypeVar("T")
KEY = "gm-unit-secret"
FLASH = "gemini-2.5-flash"
PRO3 = "gemini-3-pro-preview"
USER = [{"role": "user", "content": "hello there"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[GeminiStandIn, str]]:
    upstream = GeminiStandIn(api_key=KEY)
    url, stop = run_in_thread(upstream)
    yield upstream, url
    stop()


@pytest.fixture
def standin(server: tuple[GeminiStandIn, str]) -> tuple[GeminiStandIn, str]:
    server[0].reset()
    return server


def with_provider(url: str, body: Callable[[GeminiProvider], Awaitable[T]], **options: Any) -> T:
    async def main() -> T:
        async with HttpClient() as client:
            provider = GeminiProvider(
                name="g",
                base_url=url,
                client=client,
                timeout_s=5,
                connect_timeout_s=1,
                first_byte_timeout_s=1,
                idle_timeout_s=1,
                clock=lambda: 1_760_000_000.0,
                **options,
            )
            return await body(provider)

    return asyncio.run(main())


def encoded(body: dict[str, Any], model: str = FLASH, **options: Any) -> dict[str, Any]:
    async def run(provider: GeminiProvider) -> dict[str, Any]:
        result: dict[str, Any] = orjson.loads(provider.encode_chat(Call(body, model)))
        return result

    return with_provider("http://127.0.0.1:9", run, **options)


def chat(url: str, body: dict[str, Any], model: str = FLASH, key: str | None = KEY) -> Any:
    async def run(provider: GeminiProvider) -> Any:
        return await provider.chat(Call(body=body, upstream_model=model, api_key=key))

    return with_provider(url, run)


def failure(url: str, body: dict[str, Any], key: str | None = KEY) -> UpstreamError:
    async def run(provider: GeminiProvider) -> UpstreamError:
        with pytest.raises(UpstreamError) as caught:
            await provider.chat(Call(body=body, upstream_model=FLASH, api_key=key))
        return caught.value

    return with_provider(url, run)


def stream(
    url: str, body: dict[str, Any], model: str = FLASH
) -> tuple[list[dict[str, Any]], Any, UpstreamError | None]:
    """(decoded chunks, recorded usage, the error iteration raised if any)."""

    async def run(provider: GeminiProvider) -> tuple[list[dict[str, Any]], Any, Any]:
        opened = await provider.open_stream(Call(body=body, upstream_model=model, api_key=KEY))
        chunks: list[dict[str, Any]] = []
        error = None
        try:
            async for payload in opened:
                chunks.append(orjson.loads(payload))
        except UpstreamError as exc:
            error = exc
        finally:
            await opened.aclose()
        return chunks, opened.usage, error

    return with_provider(url, run)


# -- request translation -----------------------------------------------------------------


def test_request_translation() -> None:
    body = {
        "model": "public",
        "messages": [
            {"role": "developer", "content": "Be terse."},
            {"role": "system", "content": [{"type": "text", "text": "Answer in English."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather in Paris and Rome?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_0123456789abcdef01234567",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                        "extra_content": {"google": {"thought_signature": "c2ln"}},
                    },
                    {
                        "id": "fc-upstream-7",
                        "type": "function",
                        "function": {"name": "get_time", "arguments": ""},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_0123456789abcdef01234567", "content": "18C"},
            {"role": "tool", "tool_call_id": "fc-upstream-7", "content": '{"time": "noon"}'},
            {"role": "user", "content": "Thanks"},
        ],
        "tools": [WEATHER_TOOL],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 50,
        "max_completion_tokens": 99,
        "stop": ["END", "STOP"],
        "n": 2,
        "seed": 7,
        "presence_penalty": 0.5,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "x", "schema": {"$schema": "s", "type": "object"}},
        },
        "user": "u-1",
        "stream_options": {"include_usage": True},
    }
    before = copy.deepcopy(body)
    out = encoded(body)
    assert body == before  # the caller's body is never changed
    assert set(out) == {"contents", "systemInstruction", "tools", "toolConfig", "generationConfig"}
    assert out["systemInstruction"] == {
        "parts": [{"text": "Be terse."}, {"text": "Answer in English."}]
    }
    user, model, results = out["contents"]  # the tool results and "Thanks" form one user turn
    assert user == {
        "role": "user",
        "parts": [
            {"text": "Weather in Paris and Rome?"},
            {"inlineData": {"mimeType": "image/png", "data": "iVBORw0K"}},
        ],
    }
    assert model == {
        "role": "model",
        "parts": [
            {
                "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                "thoughtSignature": "c2ln",
            },
            {"functionCall": {"name": "get_time", "args": {}, "id": "fc-upstream-7"}},
        ],
    }
    assert results == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"result": "18C"}}},
            {
                "functionResponse": {
                    "name": "get_time",
                    "response": {"time": "noon"},
                    "id": "fc-upstream-7",
                }
            },
            {"text": "Thanks"},
        ],
    }
    declaration = out["tools"][0]["functionDeclarations"][0]
    assert declaration == {
        "name": "get_weather",
        "description": "Current weather",
        "parametersJsonSchema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    }
    assert out["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
    }
    assert out["generationConfig"] == {
        "temperature": 0.2,
        "topP": 0.9,
        "presencePenalty": 0.5,
        "seed": 7,
        "maxOutputTokens": 99,
        "candidateCount": 2,
        "stopSequences": ["END", "STOP"],
        "responseMimeType": "application/json",
        "responseJsonSchema": {"type": "object"},
    }


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        (None, None),
    ],
)
def test_tool_choice(choice: Any, config: Any) -> None:
    body: dict[str, Any] = {"messages": USER, "tools": [WEATHER_TOOL]}
    if choice is not None:
        body["tool_choice"] = choice
    out = encoded(body)
    assert out.get("toolConfig") == (None if config is None else {"functionCallingConfig": config})
    assert "toolConfig" not in encoded({"messages": USER, "tool_choice": "required"})


@pytest.mark.parametrize(
    ("model", "effort", "thinking"),
    [
        (FLASH, "low", {"thinkingBudget": 1024, "includeThoughts": True}),
        (FLASH, "high", {"thinkingBudget": 24576, "includeThoughts": True}),
        (FLASH, "none", {"thinkingBudget": 0}),
        (f"models/{FLASH}", "medium", {"thinkingBudget": 8192, "includeThoughts": True}),
        (PRO3, "medium", {"thinkingLevel": "MEDIUM", "includeThoughts": True}),
        (PRO3, "minimal", {"thinkingLevel": "MINIMAL", "includeThoughts": True}),
        ("gemini-3.5-flash", "none", {"thinkingLevel": "MINIMAL"}),
    ],
)
def test_reasoning_effort_becomes_thinking_config(
    model: str, effort: str, thinking: dict[str, Any]
) -> None:
    out = encoded({"messages": USER, "reasoning_effort": effort}, model)
    assert out["generationConfig"]["thinkingConfig"] == thinking


def test_google_thinking_config_wins_over_reasoning_effort() -> None:
    body = {
        "messages": USER,
        "reasoning_effort": "high",
        "google": {"thinking_config": {"thinking_budget": 333, "include_thoughts": False}},
    }
    thinking = encoded(body)["generationConfig"]["thinkingConfig"]
    assert thinking == {"thinkingBudget": 333, "includeThoughts": False}


def test_image_urls_and_media() -> None:
    def part(url: str, **options: Any) -> dict[str, Any]:
        content = [{"type": "image_url", "image_url": {"url": url}}]
        out = encoded({"messages": [{"role": "user", "content": content}]}, **options)
        result: dict[str, Any] = out["contents"][0]["parts"][0]
        return result

    with pytest.raises(UpstreamRejected, match="data URL"):
        part("https://example.com/cat.png")
    with pytest.raises(UpstreamRejected, match="data URL"):
        part("http://169.254.169.254/latest/meta-data")
    assert part("https://example.com/cat.png", external_image_urls=True) == {
        "fileData": {"fileUri": "https://example.com/cat.png", "mimeType": "image/png"}
    }
    with pytest.raises(UpstreamRejected):
        part("http://example.com/cat.png", external_image_urls=True)
    files_uri = "https://generativelanguage.googleapis.com/v1beta/files/abc123"
    assert part(files_uri) == {"fileData": {"fileUri": files_uri, "mimeType": "image/jpeg"}}
    with pytest.raises(UpstreamRejected, match="base64"):
        part("data:image/png,rawbytes")
    audio = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
    pdf = {
        "type": "file",
        "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"},
    }
    out = encoded({"messages": [{"role": "user", "content": [audio, pdf]}]})
    assert out["contents"][0]["parts"] == [
        {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
    ]


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({"messages": USER, "stop": ["a", "b", "c", "d", "e", "f"]}, "at most 5"),
        (
            {"messages": [*USER, {"role": "tool", "tool_call_id": "nope", "content": "x"}]},
            "no earlier",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {"id": "a", "function": {"name": "f", "arguments": "{oops"}}
                        ],
                    }
                ]
            },
            "JSON object",
        ),
        ({"messages": [{"role": "user", "content": [{"type": "video", "video": {}}]}]}, "video"),
        ({"messages": [{"role": "system", "content": "only system"}]}, "no user"),
        ({"messages": USER, "reasoning_effort": "extreme"}, "reasoning_effort"),
        ({"messages": USER, "response_format": {"type": "grammar"}}, "response_format"),
        ({"messages": USER, "tools": [{"type": "web_search"}]}, "function tools"),
        ({"messages": []}, "non-empty"),
    ],
)
def test_requests_gemini_cannot_serve_are_rejected(body: dict[str, Any], match: str) -> None:
    with pytest.raises(UpstreamRejected, match=match):
        encoded(body)


# -- non-streamed answers ----------------------------------------------------------------


def test_chat_sends_the_native_wire_and_reads_the_answer(
    standin: tuple[GeminiStandIn, str],
) -> None:
    upstream, url = standin
    system = {"role": "system", "content": "cached: you are a test"}
    result = chat(url, {"messages": [system, *USER], "max_tokens": 40})
    recorded = upstream.requests[-1]
    assert recorded.path == f"/v1beta/models/{FLASH}:generateContent"
    assert recorded.query == {}  # the key never goes into the URL
    assert recorded.headers["x-goog-api-key"] == KEY
    assert "authorization" not in recorded.headers
    assert recorded.body["generationConfig"] == {"maxOutputTokens": 40}
    body = result.body
    assert body["id"].startswith("chatcmpl-standin-")
    assert body["object"] == "chat.completion"
    assert body["created"] == 1_760_000_000
    assert body["model"] == FLASH
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "echo: hello there"},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    # prompt: 5 system words + 2 user words + 3 per content; cached: the system words
    assert result.usage.prompt_tokens == 5 + (2 + 3)
    assert result.usage.cached_tokens == 5
    assert result.usage.completion_tokens == 3
    assert body["usage"] == result.usage.to_openai()


def test_tool_call_answer_and_round_trip_on_gemini_3(standin: tuple[GeminiStandIn, str]) -> None:
    _, url = standin
    ask = [{"role": "user", "content": "weather in two cities please"}]
    first = chat(url, {"messages": ask, "tools": [WEATHER_TOOL]}, model=PRO3).body
    choice = first["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["content"] is None
    paris, rome = message["tool_calls"]
    assert paris["type"] == "function"
    assert paris["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert rome["function"]["arguments"] == '{"city":"Rome"}'
    assert paris["id"].startswith("call_") and len(paris["id"]) == 29
    assert paris["id"] != rome["id"]
    assert paris["extra_content"] == {"google": {"thought_signature": SIGNATURE}}
    assert "extra_content" not in rome

    results = [
        {"role": "tool", "tool_call_id": paris["id"], "content": "18C"},
        {"role": "tool", "tool_call_id": rome["id"], "content": "21C"},
    ]
    second = chat(url, {"messages": [*ask, message, *results], "tools": [WEATHER_TOOL]}, PRO3)
    assert second.body["choices"][0]["message"]["content"] == 'echo: tool said {"result": "18C"}'

    # A client that dropped extra_content: Google's placeholder signature keeps Gemini 3 going.
    stripped = {
        **message,
        "tool_calls": [
            {k: v for k, v in call.items() if k != "extra_content"}
            for call in message["tool_calls"]
        ],
    }
    upstream, _ = standin
    chat(url, {"messages": [*ask, stripped, *results], "tools": [WEATHER_TOOL]}, PRO3)
    sent = upstream.requests[-1].body["contents"][1]["parts"]
    assert sent[0]["thoughtSignature"] == SIGNATURE_PLACEHOLDER
    assert "thoughtSignature" not in sent[1]
    assert "id" not in sent[0]["functionCall"]  # made-up ids are not sent upstream


def test_upstream_call_ids_are_kept(standin: tuple[GeminiStandIn, str]) -> None:
    upstream, url = standin
    upstream.call_ids = True
    ask = [{"role": "user", "content": "weather?"}]
    message = chat(url, {"messages": ask, "tools": [WEATHER_TOOL]}).body["choices"][0]["message"]
    call_id = message["tool_calls"][0]["id"]
    assert call_id.startswith("fc-")
    tool = {"role": "tool", "tool_call_id": call_id, "content": "sunny"}
    chat(url, {"messages": [*ask, message, tool], "tools": [WEATHER_TOOL]})
    contents = upstream.requests[-1].body["contents"]
    assert contents[1]["parts"][0]["functionCall"]["id"] == call_id
    assert contents[2]["parts"][0]["functionResponse"]["id"] == call_id


def test_made_up_tool_call_ids_are_stable() -> None:
    doc = {
        "responseId": "r1",
        "candidates": [
            {
                "content": {"parts": [{"functionCall": {"name": "f", "args": {"a": 1}}}]},
                "finishReason": "STOP",
            }
        ],
    }

    def ids() -> str:
        body, _ = chat_completion(doc, provider="g", model="m", created=0, fallback_id="x")
        return str(body["choices"][0]["message"]["tool_calls"][0]["id"])

    assert ids() == ids()


def test_reasoning_and_candidates(standin: tuple[GeminiStandIn, str]) -> None:
    _, url = standin
    result = chat(url, {"messages": USER, "reasoning_effort": "high", "n": 2})
    choices = result.body["choices"]
    assert [c["index"] for c in choices] == [0, 1]
    for choice in choices:
        assert choice["message"]["reasoning_content"] == THOUGHT
        assert choice["message"]["content"] == "echo: hello there"
    thoughts = len(THOUGHT.split()) * 2
    assert result.usage.reasoning_tokens == thoughts
    assert result.usage.completion_tokens == 3 * 2 + thoughts  # thoughts are billed output


@pytest.mark.parametrize(
    ("body", "finish", "content"),
    [
        ({"messages": USER, "max_tokens": 1}, "length", "echo:"),
        ({"messages": [{"role": "user", "content": "unsafe words"}]}, "content_filter", ""),
        ({"messages": [{"role": "user", "content": "blocked prompt"}]}, "content_filter", ""),
        ({"messages": USER, "stop": "there"}, "stop", "echo: hello "),
        (
            {"messages": USER, "response_format": {"type": "json_object"}},
            "stop",
            '{"echo": "hello there"}',
        ),
        (
            {
                "messages": USER,
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "e", "schema": {"type": "object"}},
                },
            },
            "stop",
            '{"echo": "hello there"}',
        ),
    ],
)
def test_finish_reasons_through_the_wire(
    standin: tuple[GeminiStandIn, str], body: dict[str, Any], finish: str, content: str
) -> None:
    _, url = standin
    choice = chat(url, body).body["choices"][0]
    assert choice["finish_reason"] == finish
    assert choice["message"]["content"] == content


@pytest.mark.parametrize(
    ("native", "calls", "expected"),
    [
        ("STOP", False, "stop"),
        ("STOP", True, "tool_calls"),
        ("MAX_TOKENS", True, "length"),
        ("SAFETY", False, "content_filter"),
        ("RECITATION", False, "content_filter"),
        ("PROHIBITED_CONTENT", False, "content_filter"),
        ("SPII", False, "content_filter"),
        ("BLOCKLIST", False, "content_filter"),
        ("LANGUAGE", False, "content_filter"),
        ("IMAGE_SAFETY", False, "content_filter"),
        ("MALFORMED_FUNCTION_CALL", False, "stop"),
        ("OTHER", False, "stop"),
        ("FINISH_REASON_UNSPECIFIED", False, "stop"),
        ("SOMETHING_NEW", False, "stop"),
    ],
)
def test_finish_reason_table(native: str, calls: bool, expected: str) -> None:
    assert finish_reason(native, calls) == expected


def test_usage_mapping() -> None:
    usage = usage_from_gemini(
        {
            "promptTokenCount": 100,
            "toolUsePromptTokenCount": 20,
            "candidatesTokenCount": 30,
            "thoughtsTokenCount": 50,
            "cachedContentTokenCount": 60,
            "totalTokenCount": 200,
        }
    )
    assert usage.to_openai() == {
        "prompt_tokens": 120,
        "completion_tokens": 80,
        "total_tokens": 200,
        "prompt_tokens_details": {"cached_tokens": 60},
        "completion_tokens_details": {"reasoning_tokens": 50},
    }


# -- streams -----------------------------------------------------------------------------


def test_stream_text(standin: tuple[GeminiStandIn, str]) -> None:
    upstream, url = standin
    chunks, usage, error = stream(url, {"messages": USER, "stream": True})
    assert error is None
    recorded = upstream.requests[-1]
    assert recorded.path == f"/v1beta/models/{FLASH}:streamGenerateContent"
    assert recorded.query == {"alt": "sse"}
    assert {(c["id"], c["created"], c["model"], c["object"]) for c in chunks} == {
        (chunks[0]["id"], 1_760_000_000, FLASH, "chat.completion.chunk")
    }
    assert chunks[0]["id"].startswith("chatcmpl-standin-")
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert [d["content"] for d in deltas[1:-1]] == ["echo:", " hello", " there"]
    assert deltas[-1] == {}
    assert [c["choices"][0]["finish_reason"] for c in chunks][-2:] == [None, "stop"]
    assert all("usage" not in c for c in chunks)
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (5, 3)


def test_stream_reasoning_and_tool_calls(standin: tuple[GeminiStandIn, str]) -> None:
    _, url = standin
    body = {
        "messages": [{"role": "user", "content": "weather in two cities"}],
        "tools": [WEATHER_TOOL],
        "reasoning_effort": "low",
    }
    chunks, usage, error = stream(url, body)
    assert error is None
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert deltas[1] == {"reasoning_content": THOUGHT}
    calls = deltas[2]["tool_calls"]
    assert [c["index"] for c in calls] == [0, 1]
    assert calls[0]["id"].startswith("call_") and calls[0]["type"] == "function"
    assert calls[0]["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert calls[0]["extra_content"] == {"google": {"thought_signature": SIGNATURE}}
    assert calls[1]["function"]["arguments"] == '{"city":"Rome"}'
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert usage is not None and usage.reasoning_tokens == len(THOUGHT.split())


def test_stream_with_two_candidates(standin: tuple[GeminiStandIn, str]) -> None:
    _, url = standin
    chunks, _, error = stream(url, {"messages": USER, "n": 2})
    assert error is None
    for index in (0, 1):
        mine = [c["choices"][0] for c in chunks if c["choices"][0]["index"] == index]
        assert mine[0]["delta"] == {"role": "assistant", "content": ""}
        assert "".join(c["delta"].get("content", "") for c in mine) == "echo: hello there"
        assert mine[-1]["finish_reason"] == "stop"


def test_stream_of_a_blocked_prompt(standin: tuple[GeminiStandIn, str]) -> None:
    _, url = standin
    chunks, usage, error = stream(
        url, {"messages": [{"role": "user", "content": "blocked prompt"}]}
    )
    assert error is None
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, "content_filter"]
    assert usage is not None and usage.prompt_tokens == 4


def test_raw_json_error_mid_stream(standin: tuple[GeminiStandIn, str]) -> None:
    upstream, url = standin
    upstream.break_stream_next(2)
    chunks, _, error = stream(url, {"messages": USER})
    # two upstream events (two words) were relayed, after the role chunk
    assert [c["choices"][0]["delta"].get("content") for c in chunks] == ["", "echo:", " hello"]
    assert error is not None and error.retryable
    assert "mid-stream" in error.message and "UNAVAILABLE" in error.message


def test_stream_cut_without_finishing_is_an_error(standin: tuple[GeminiStandIn, str]) -> None:
    upstream, url = standin
    upstream.break_stream_next(2, error=False)
    chunks, _, error = stream(url, {"messages": USER})
    assert len(chunks) == 3
    assert error is not None and error.retryable


def test_documents_follow_the_sdk_framing() -> None:
    wire = [
        b": comment\r\n",
        b'data: {"a":',  # a chunk boundary inside an event
        b' 1}\r\n\r\ndata:{"b": 2}\n\n',
        b'[{\n  "error": {\n    "code": 429,\n',
        b'    "status": "RESOURCE_EXHAUSTED"\n  }\n}\n]\n',
        b'data: {"c": 3}',  # no trailing blank line before the connection closes
    ]

    async def collect() -> list[Any]:
        async def source() -> AsyncIterator[bytes]:
            for piece in wire:
                yield piece

        return [json.loads(doc) async for doc in documents(source())]

    assert asyncio.run(collect()) == [
        {"a": 1},
        {"b": 2},
        [{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED"}}],
        {"c": 3},
    ]


# -- failures ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(400, False), (403, True), (404, True), (429, True), (500, True), (503, True), (504, True)],
)
def test_failures_are_classified(
    standin: tuple[GeminiStandIn, str], status: int, retryable: bool
) -> None:
    upstream, url = standin
    upstream.fail_next(status)
    error = failure(url, {"messages": USER})
    assert error.retryable is retryable
    assert isinstance(error, UpstreamRejected) is (not retryable)
    if status == 429:
        assert error.retry_after_s == 17.0  # google.rpc.RetryInfo.retryDelay
        assert error.code == "upstream_rate_limited"


def test_bad_key_is_retryable_and_never_echoed(standin: tuple[GeminiStandIn, str]) -> None:
    _, url = standin
    error = failure(url, {"messages": USER}, key="gm-wrong-secret")
    assert error.retryable and not isinstance(error, UpstreamRejected)
    assert "gm-wrong-secret" not in error.message
    assert failure(url, {"messages": USER}, key=None).retryable  # 403 without a key


def test_context_overflow_and_invalid_requests(standin: tuple[GeminiStandIn, str]) -> None:
    upstream, url = standin
    overflow = failure(url, {"messages": [{"role": "user", "content": "context overflow"}]})
    assert isinstance(overflow, UpstreamRejected)
    assert overflow.code == "context_length_exceeded"
    upstream.fail_next(
        400, {"error": {"code": 400, "message": "bad field", "status": "INVALID_ARGUMENT"}}
    )
    invalid = failure(url, {"messages": USER})
    assert isinstance(invalid, UpstreamRejected) and invalid.message == "bad field"
    assert invalid.code != "context_length_exceeded"
    region = {
        "code": 400,
        "message": "User location is not supported",
        "status": "FAILED_PRECONDITION",
    }
    upstream.fail_next(400, {"error": region})
    assert failure(url, {"messages": USER}).retryable


def test_retry_after_header_and_wrapped_bodies() -> None:
    body = b'[{"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}]'
    error = from_response(503, body, provider="g", secret=None, retry_after="3")
    assert error.retryable and error.retry_after_s == 3.0
    assert "UNAVAILABLE" in error.message
    not_json = from_response(502, b"<html>", provider="g", secret=None, retry_after=None)
    assert not_json.retryable


def test_connection_refused_and_stalls(standin: tuple[GeminiStandIn, str]) -> None:
    upstream, url = standin
    assert failure("http://127.0.0.1:9", {"messages": USER}).retryable
    upstream.stall_next(2)

    async def stalled(provider: GeminiProvider) -> None:
        with pytest.raises(UpstreamTimeout):
            await provider.open_stream(
                Call(body={"messages": USER}, upstream_model=FLASH, api_key=KEY)
            )

    with_provider(url, stalled)


# -- embeddings ----------------------------------------------------------------------------


def test_embeddings(standin: tuple[GeminiStandIn, str]) -> None:
    upstream, url = standin

    async def run(provider: GeminiProvider) -> tuple[Any, Any]:
        floats = await provider.embed(
            Call({"input": ["alpha beta", "gamma"], "dimensions": 4}, "gemini-embedding-001", KEY)
        )
        packed = await provider.embed(
            Call({"input": "alpha beta", "encoding_format": "base64"}, "gemini-embedding-001", KEY)
        )
        return floats, packed

    floats, packed = with_provider(url, run)
    first = upstream.requests[-2]
    assert first.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert first.body["requests"][1] == {
        "model": "models/gemini-embedding-001",
        "content": {"parts": [{"text": "gamma"}]},
        "outputDimensionality": 4,
    }
    body = floats.body
    assert body["object"] == "list" and body["model"] == "gemini-embedding-001"
    assert [d["index"] for d in body["data"]] == [0, 1]
    assert len(body["data"][0]["embedding"]) == 4
    # estimated, one token per four characters: "alpha beta" → 3, "gamma" → 2
    assert body["usage"] == {"prompt_tokens": 5, "total_tokens": 5}
    assert floats.usage.prompt_tokens == 5
    raw = base64.b64decode(packed.body["data"][0]["embedding"])
    decoded = list(struct.unpack(f"<{len(raw) // 4}f", raw))
    assert len(decoded) == 8
    assert decoded[:4] == body["data"][0]["embedding"]


def test_token_array_embeddings_are_rejected() -> None:
    async def run(provider: GeminiProvider) -> None:
        with pytest.raises(UpstreamRejected, match="token arrays"):
            await provider.embed(Call({"input": [[1, 2, 3]]}, "gemini-embedding-001", KEY))

    with_provider("http://127.0.0.1:9", run)


# -- construction ----------------------------------------------------------------------------


def test_build_from_config(standin: tuple[GeminiStandIn, str]) -> None:
    upstream, url = standin

    async def run() -> str:
        async with HttpClient() as client:
            cfg = ProviderConfig(api="gemini", base_url=url + "/v1beta/", headers={"x-team": "a"})
            provider = build("gm", cfg, client)
            result = await provider.chat(Call({"messages": USER}, FLASH, KEY))
            default = build("gm", ProviderConfig(api="gemini"), client)
            assert isinstance(default, GeminiProvider)
            assert default._url(FLASH, "generateContent") == (
                f"https://generativelanguage.googleapis.com/v1beta/models/{FLASH}:generateContent"
            )
            return str(result.body["choices"][0]["message"]["content"])

    assert asyncio.run(run()) == "echo: hello there"
    assert upstream.requests[-1].path == f"/v1beta/models/{FLASH}:generateContent"
    assert upstream.requests[-1].headers["x-team"] == "a"
