"""The inbound Anthropic Messages translator, checked against the official ``anthropic`` SDK:
its request serialisation, its strict response models and its own stream accumulation."""

from __future__ import annotations

import itertools
import json
import string
from collections.abc import Callable
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic.types import Message, RawMessageStreamEvent
from anthropic.types.shared import ErrorResponse
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from tokenyard.errors import InvalidRequest
from tokenyard.wire.anthropic import (
    StreamTranslator,
    anthropic_error,
    chat_to_message,
    messages_to_chat,
)

EVENTS = TypeAdapter(RawMessageStreamEvent)
MESSAGE = TypeAdapter(Message)
ERROR = TypeAdapter(ErrorResponse)
PNG = "iVBORw0KGgo="


def sdk(handler: Callable[[httpx2.Request], httpx2.Response]) -> anthropic.Anthropic:
    """The official client, talking to an in-process stand-in for the gateway."""
    return anthropic.Anthropic(
        api_key="ty-test",
        base_url="http://gateway.test",
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
        max_retries=0,
        _strict_response_validation=True,
    )


def sse(frames: list[bytes]) -> Callable[[httpx2.Request], httpx2.Response]:
    body = b"".join(frames)
    return lambda _: httpx2.Response(
        200, headers={"content-type": "text/event-stream"}, content=body
    )


def parse(frames: list[bytes]) -> list[tuple[str, dict[str, Any]]]:
    """Each frame is exactly ``event: X\\ndata: {...}\\n\\n`` with X == data.type."""
    out = []
    for frame in frames:
        assert frame.endswith(b"\n\n") and frame.count(b"\n") == 3
        head, data = frame[:-2].split(b"\n")
        name = head.removeprefix(b"event: ").decode()
        payload = json.loads(data.removeprefix(b"data: "))
        assert payload["type"] == name
        out.append((name, payload))
    return out


def check_sequence(events: list[tuple[str, dict[str, Any]]]) -> None:
    """Anthropic's grammar: start, blocks opened one at a time with increasing index, end."""
    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    open_index, next_index = None, 0
    for name, payload in events[1:-2]:
        if name != "error":
            EVENTS.validate_python(payload)
        if name == "content_block_start":
            assert open_index is None and payload["index"] == next_index
            open_index, next_index = next_index, next_index + 1
        elif name == "content_block_stop":
            assert payload["index"] == open_index
            open_index = None
        else:
            assert name == "content_block_delta"
    assert open_index is None
    for _, payload in (events[0], *events[-2:]):
        EVENTS.validate_python(payload)


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "deepseek-chat",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def call(
    index: int, arguments: str, call_id: str | None = None, name: str | None = None
) -> dict[str, Any]:
    delta: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if call_id is not None:
        delta |= {"id": call_id, "type": "function"}
        delta["function"]["name"] = name
    return {"tool_calls": [delta]}


# --- request ---------------------------------------------------------------------------------


def test_minimal_request_and_system_prompt() -> None:
    chat = messages_to_chat(
        {
            "model": "deepseek-chat",
            "max_tokens": 100,
            "system": [{"type": "text", "text": "Be terse."}, {"type": "text", "text": "Be kind."}],
            "messages": [{"role": "user", "content": "Hi"}],
        }
    )
    assert chat == {
        "model": "deepseek-chat",
        "max_tokens": 100,
        "messages": [
            {"role": "system", "content": "Be terse.\nBe kind."},
            {"role": "user", "content": "Hi"},
        ],
    }
    plain = messages_to_chat(
        {
            "model": "m",
            "max_tokens": 1,
            "system": "S",
            "messages": [{"role": "user", "content": "x"}],
        }
    )
    assert plain["messages"][0] == {"role": "system", "content": "S"}


def test_user_blocks_text_images_and_documents() -> None:
    chat = messages_to_chat(
        {
            "model": "m",
            "max_tokens": 10,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "text",
                            "text": "What is this?",
                            "cache_control": {"type": "ephemeral"},
                        },
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                        },
                        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}},
                        {
                            "type": "document",
                            "source": {"type": "text", "media_type": "text/plain", "data": "notes"},
                        },
                        {
                            "type": "document",
                            "title": "a.pdf",
                            "source": {
                                "type": "base64",
                                "media_type": "application/pdf",
                                "data": "JVBE",
                            },
                        },
                    ],
                },
                {"role": "user", "content": [{"type": "text", "text": "single"}]},
            ],
        }
    )
    assert chat["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
                {"type": "text", "text": "notes"},
                {
                    "type": "file",
                    "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"},
                },
            ],
        },
        {"role": "user", "content": "single"},
    ]


def test_assistant_thinking_text_and_tool_use() -> None:
    chat = messages_to_chat(
        {
            "model": "m",
            "max_tokens": 10,
            "messages": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "Two cities.", "signature": "EqQB"},
                        {"type": "redacted_thinking", "data": "opaque"},
                        {"type": "text", "text": "Checking."},
                        {
                            "type": "tool_use",
                            "id": "toolu_1",
                            "name": "get_weather",
                            "input": {"city": "Paris"},
                        },
                        {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {}},
                    ],
                },
                {
                    "role": "assistant",
                    "content": [
                        {"type": "tool_use", "id": "t3", "name": "f", "input": {"a": [1, None]}}
                    ],
                },
                {"role": "assistant", "content": "prefill"},
            ],
        }
    )
    first, only_tool, prefill = chat["messages"][1:]
    assert first == {
        "role": "assistant",
        "content": "Checking.",
        "reasoning_content": "Two cities.",
        "tool_calls": [
            {
                "id": "toolu_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            },
            {
                "id": "toolu_2",
                "type": "function",
                "function": {"name": "get_weather", "arguments": "{}"},
            },
        ],
    }
    assert only_tool["content"] is None and json.loads(
        only_tool["tool_calls"][0]["function"]["arguments"]
    ) == {"a": [1, None]}
    assert prefill == {"role": "assistant", "content": "prefill"}


def test_tool_results_become_tool_messages_before_the_rest_of_the_turn() -> None:
    chat = messages_to_chat(
        {
            "model": "m",
            "max_tokens": 10,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "And now?"},
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_2",
                            "content": [
                                {"type": "text", "text": "line 1"},
                                {
                                    "type": "image",
                                    "source": {"type": "url", "url": "https://x.test/shot.png"},
                                },
                                {"type": "text", "text": "line 2"},
                            ],
                        },
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_3",
                            "content": "boom",
                            "is_error": True,
                        },
                        {"type": "tool_result", "tool_use_id": "toolu_4"},
                    ],
                },
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "toolu_5", "content": []}],
                },
            ],
        }
    )
    assert chat["messages"] == [
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "line 1\nline 2"},
        {"role": "tool", "tool_call_id": "toolu_3", "content": "Error: boom"},
        {"role": "tool", "tool_call_id": "toolu_4", "content": ""},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "https://x.test/shot.png"}},
                {"type": "text", "text": "And now?"},
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_5", "content": ""},
    ]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, {"tool_choice": "auto"}),
        ({"type": "any"}, {"tool_choice": "required"}),
        ({"type": "none"}, {"tool_choice": "none"}),
        (
            {"type": "tool", "name": "get_weather"},
            {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
        ),
        (
            {"type": "auto", "disable_parallel_tool_use": True},
            {"tool_choice": "auto", "parallel_tool_calls": False},
        ),
        ({"type": "any", "disable_parallel_tool_use": False}, {"tool_choice": "required"}),
    ],
)
def test_tools_and_tool_choice(choice: dict[str, Any], expected: dict[str, Any]) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    chat = messages_to_chat(
        {
            "model": "m",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": "x"}],
            "tools": [
                {
                    "name": "get_weather",
                    "description": "Current weather",
                    "input_schema": schema,
                    "cache_control": {"type": "ephemeral"},
                },
                {
                    "type": "custom",
                    "name": "noop",
                    "input_schema": {"type": "object"},
                    "strict": True,
                },
            ],
            "tool_choice": choice,
        }
    )
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather",
                "parameters": schema,
            },
        },
        {
            "type": "function",
            "function": {"name": "noop", "parameters": {"type": "object"}, "strict": True},
        },
    ]
    assert {k: chat[k] for k in ("tool_choice", "parallel_tool_calls") if k in chat} == expected


def test_no_tools_means_no_tool_choice() -> None:
    chat = messages_to_chat(
        {
            "model": "m",
            "max_tokens": 1,
            "messages": [{"role": "user", "content": "x"}],
            "tools": [],
            "tool_choice": {"type": "any"},
        }
    )
    assert "tools" not in chat and "tool_choice" not in chat


def test_sampling_metadata_stream_and_routing_fields() -> None:
    chat = messages_to_chat(
        {
            "model": "m",
            "max_tokens": 300,
            "messages": [{"role": "user", "content": "x"}],
            "stop_sequences": ["\n\nHuman:", "END"],
            "temperature": 0.2,
            "top_p": 0.9,
            "top_k": 40,
            "metadata": {"user_id": "user-7"},
            "stream": True,
            "service_tier": "auto",
            "models": ["deepseek-chat", "qwen-plus"],
            "routing": {"sort": "price"},
        }
    )
    assert chat == {
        "model": "m",
        "max_tokens": 300,
        "messages": [{"role": "user", "content": "x"}],
        "stop": ["\n\nHuman:", "END"],
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 40,
        "user": "user-7",
        "stream": True,
        "stream_options": {"include_usage": True},
        "models": ["deepseek-chat", "qwen-plus"],
        "routing": {"sort": "price"},
    }
    unstreamed = messages_to_chat(
        {
            "model": "m",
            "max_tokens": 1,
            "messages": [{"role": "user", "content": "x"}],
            "stream": False,
        }
    )
    assert unstreamed["stream"] is False and "stream_options" not in unstreamed


@pytest.mark.parametrize(
    ("thinking", "effort"),
    [
        ({"type": "enabled", "budget_tokens": 1024}, "low"),
        ({"type": "enabled", "budget_tokens": 2048}, "low"),
        ({"type": "enabled", "budget_tokens": 2049}, "medium"),
        ({"type": "enabled", "budget_tokens": 8192}, "medium"),
        ({"type": "enabled", "budget_tokens": 8193}, "high"),
        ({"type": "adaptive"}, None),
        ({"type": "disabled"}, None),
    ],
)
def test_thinking_budget_to_reasoning_effort(thinking: dict[str, Any], effort: str | None) -> None:
    chat = messages_to_chat(
        {
            "model": "m",
            "max_tokens": 20000,
            "messages": [{"role": "user", "content": "x"}],
            "thinking": thinking,
        }
    )
    assert chat.get("reasoning_effort") == effort


def test_output_config_effort_and_json_schema_format() -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
    chat = messages_to_chat(
        {
            "model": "m",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": "x"}],
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "output_config": {
                "effort": "xhigh",
                "format": {"type": "json_schema", "schema": schema},
            },
        }
    )
    assert chat["reasoning_effort"] == "xhigh"
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema, "strict": True},
    }


def test_system_turn_inside_messages_is_accepted() -> None:
    chat = messages_to_chat(
        {
            "model": "m",
            "max_tokens": 1,
            "messages": [
                {"role": "system", "content": [{"type": "text", "text": "S"}]},
                {"role": "user", "content": "x"},
            ],
        }
    )
    assert chat["messages"][0] == {"role": "system", "content": "S"}


VALID: dict[str, Any] = {
    "model": "m",
    "max_tokens": 10,
    "messages": [{"role": "user", "content": "x"}],
}


def user(*blocks: Any) -> dict[str, Any]:
    return VALID | {"messages": [{"role": "user", "content": list(blocks)}]}


def assistant(*blocks: Any) -> dict[str, Any]:
    return VALID | {
        "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": list(blocks)},
        ]
    }


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"max_tokens": 10, "messages": VALID["messages"]}, "model"),
        (VALID | {"model": ""}, "model"),
        ({"model": "m", "messages": VALID["messages"]}, "max_tokens"),
        (VALID | {"max_tokens": True}, "max_tokens"),
        (VALID | {"max_tokens": 0}, "max_tokens"),
        (VALID | {"max_tokens": "10"}, "max_tokens"),
        (VALID | {"messages": []}, "messages"),
        (VALID | {"messages": "hi"}, "messages"),
        ({"model": "m", "max_tokens": 1}, "messages"),
        (VALID | {"messages": ["hi"]}, "messages[0]"),
        (VALID | {"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
        (VALID | {"messages": [{"role": "user", "content": 3}]}, "messages[0].content"),
        (VALID | {"messages": [{"role": "user"}]}, "messages[0].content"),
        (user({"text": "no type"}), "messages[0].content[0]"),
        (user({"type": "text", "text": 5}), "messages[0].content[0].text"),
        (user({"type": "tool_use", "id": "t", "name": "f", "input": {}}), "messages[0].content[0]"),
        (user({"type": "thinking", "thinking": "x", "signature": ""}), "messages[0].content[0]"),
        (
            user({"type": "image", "source": {"type": "file", "file_id": "f"}}),
            "messages[0].content[0].source",
        ),
        (
            user({"type": "image", "source": {"type": "base64", "data": PNG}}),
            "messages[0].content[0].source",
        ),
        (
            user({"type": "document", "source": {"type": "url", "url": "https://x"}}),
            "messages[0].content[0].source",
        ),
        (user({"type": "tool_result", "content": "x"}), "messages[0].content[0].tool_use_id"),
        (
            user({"type": "tool_result", "tool_use_id": "t", "content": 5}),
            "messages[0].content[0].content",
        ),
        (
            user({"type": "tool_result", "tool_use_id": "t", "content": [{"type": "document"}]}),
            "messages[0].content[0].content[0]",
        ),
        (
            assistant({"type": "tool_result", "tool_use_id": "t", "content": "x"}),
            "messages[1].content[0]",
        ),
        (
            assistant({"type": "image", "source": {"type": "url", "url": "u"}}),
            "messages[1].content[0]",
        ),
        (
            assistant({"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}}),
            "messages[1].content[0]",
        ),
        (assistant({"type": "tool_use", "name": "f", "input": {}}), "messages[1].content[0].id"),
        (assistant({"type": "tool_use", "id": "t", "input": {}}), "messages[1].content[0].name"),
        (
            assistant({"type": "tool_use", "id": "t", "name": "f", "input": "{}"}),
            "messages[1].content[0].input",
        ),
        (VALID | {"system": 5}, "system"),
        (VALID | {"system": [{"type": "image"}]}, "system[0]"),
        (VALID | {"tools": {"name": "f"}}, "tools"),
        (VALID | {"tools": [{"name": "f"}]}, "tools[0].input_schema"),
        (VALID | {"tools": [{"input_schema": {}}]}, "tools[0].name"),
        (
            VALID | {"tools": [{"type": "web_search_20250305", "name": "web_search"}]},
            "tools[0].type",
        ),
        (
            VALID
            | {"tools": [{"name": "f", "input_schema": {}}], "tool_choice": {"type": "function"}},
            "tool_choice",
        ),
        (
            VALID | {"tools": [{"name": "f", "input_schema": {}}], "tool_choice": {"type": "tool"}},
            "tool_choice",
        ),
        (
            VALID | {"tools": [{"name": "f", "input_schema": {}}], "tool_choice": "auto"},
            "tool_choice",
        ),
        (VALID | {"stop_sequences": "END"}, "stop_sequences"),
        (VALID | {"temperature": "hot"}, "temperature"),
        (VALID | {"top_k": 0.5}, "top_k"),
        (VALID | {"stream": "yes"}, "stream"),
        (VALID | {"thinking": {"type": "enabled"}}, "thinking.budget_tokens"),
        (
            VALID | {"output_config": {"format": {"type": "json_schema"}}},
            "output_config.format.schema",
        ),
    ],
)
def test_malformed_requests_name_the_parameter(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        messages_to_chat(body)
    assert caught.value.param == param and caught.value.status == 400


def test_request_as_the_official_sdk_serialises_it_round_trips_through_the_sdk() -> None:
    """An SDK client calls the gateway; the body it sent is translated, and the answer it gets
    back (strictly validated by the SDK) is built from the canonical completion."""
    seen: dict[str, Any] = {}
    completion = {
        "id": "chatcmpl-9",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Looking.",
                    "reasoning_content": "Use the tool.",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {
            "prompt_tokens": 50,
            "completion_tokens": 9,
            "prompt_tokens_details": {"cached_tokens": 20},
            "cost": 0.0002,
        },
    }

    def handler(request: httpx2.Request) -> httpx2.Response:
        assert request.url.path == "/v1/messages"
        seen["chat"] = messages_to_chat(json.loads(request.content))
        return httpx2.Response(200, json=chat_to_message(completion, model="deepseek-chat"))

    message = sdk(handler).messages.create(
        model="deepseek-chat",
        max_tokens=4096,
        system=[{"type": "text", "text": "Be terse.", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    },
                    {"type": "text", "text": "Weather?"},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "toolu_A",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    }
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_A", "content": "18C"},
                    {"type": "text", "text": "And Rome?"},
                ],
            },
        ],
        tools=[
            {
                "name": "get_weather",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
            }
        ],
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
        thinking={"type": "enabled", "budget_tokens": 4096},
        metadata={"user_id": "u1"},
        stop_sequences=["END"],
        extra_body={"temperature": 0.3},  # dropped from the typed signature of SDK 2.x
    )
    chat = seen["chat"]
    assert [m["role"] for m in chat["messages"]] == ["system", "user", "assistant", "tool", "user"]
    assert chat["messages"][3] == {"role": "tool", "tool_call_id": "toolu_A", "content": "18C"}
    assert chat["tool_choice"] == "auto" and chat["parallel_tool_calls"] is False
    assert (chat["reasoning_effort"], chat["user"], chat["stop"], chat["temperature"]) == (
        "medium",
        "u1",
        ["END"],
        0.3,
    )
    assert message.id == "msg_9" and message.stop_reason == "tool_use"
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use"]
    tool = message.content[2]
    assert tool.type == "tool_use" and (tool.id, tool.name, tool.input) == (
        "call_1",
        "get_weather",
        {"city": "Rome"},
    )
    assert (
        message.usage.input_tokens,
        message.usage.cache_read_input_tokens,
        message.usage.output_tokens,
    ) == (30, 20, 9)


# --- response --------------------------------------------------------------------------------


def completion_with(
    message: dict[str, Any], finish: str | None = "stop", **extra: Any
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-abc",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        **extra,
    }


def test_message_with_every_block_type_and_usage() -> None:
    usage = {
        "prompt_tokens": 1200,
        "completion_tokens": 18,
        "total_tokens": 1218,
        "prompt_tokens_details": {"cached_tokens": 1024},
        "completion_tokens_details": {"reasoning_tokens": 5},
        "cost": 0.0012,
    }
    message = chat_to_message(
        completion_with(
            {
                "role": "assistant",
                "reasoning_content": "Think.",
                "content": "Answer.",
                "tool_calls": [
                    {
                        "id": "call_A",
                        "type": "function",
                        "function": {"name": "a", "arguments": '{"x": [1, 2]}'},
                    },
                    {
                        "id": "call_B",
                        "type": "function",
                        "function": {"name": "b", "arguments": ""},
                    },
                    {
                        "id": "call_C",
                        "type": "function",
                        "function": {"name": "c", "arguments": "{not json"},
                    },
                    {
                        "id": "call_D",
                        "type": "function",
                        "function": {"name": "d", "arguments": {"as": "object"}},
                    },
                ],
            },
            "tool_calls",
            usage=usage,
        ),
        model="deepseek-chat",
    )
    assert message == {
        "id": "msg_abc",
        "type": "message",
        "role": "assistant",
        "model": "deepseek-chat",
        "content": [
            {"type": "thinking", "thinking": "Think.", "signature": ""},
            {"type": "text", "text": "Answer."},
            {"type": "tool_use", "id": "call_A", "name": "a", "input": {"x": [1, 2]}},
            {"type": "tool_use", "id": "call_B", "name": "b", "input": {}},
            {
                "type": "tool_use",
                "id": "call_C",
                "name": "c",
                "input": {"_raw_arguments": "{not json"},
            },
            {"type": "tool_use", "id": "call_D", "name": "d", "input": {"as": "object"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 176,
            "output_tokens": 18,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 1024,
            "output_tokens_details": {"thinking_tokens": 5},
            "cost": 0.0012,
        },
    }
    MESSAGE.validate_python(message)


@pytest.mark.parametrize(
    ("finish", "stop"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("function_call", "tool_use"),
        ("content_filter", "refusal"),
        (None, "end_turn"),
        ("weird", "end_turn"),
    ],
)
def test_finish_reason_to_stop_reason(finish: str | None, stop: str) -> None:
    message = chat_to_message(
        completion_with({"role": "assistant", "content": "x"}, finish), model="m"
    )
    assert message["stop_reason"] == stop
    MESSAGE.validate_python(message)


def test_stop_with_tool_calls_is_tool_use_and_refusal_is_text() -> None:
    tools = chat_to_message(
        completion_with(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{}"}}],
            }
        ),
        model="m",
    )
    assert tools["stop_reason"] == "tool_use" and tools["content"] == [
        {"type": "tool_use", "id": "c", "name": "f", "input": {}}
    ]
    refusal = chat_to_message(
        completion_with({"role": "assistant", "content": None, "refusal": "I can't."}), model="m"
    )
    assert (
        refusal["content"] == [{"type": "text", "text": "I can't."}]
        and refusal["stop_reason"] == "refusal"
    )


def test_odd_completions_still_make_valid_messages() -> None:
    for completion in (
        {},
        {"id": "msg_kept", "choices": []},
        completion_with(
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            }
        ),
        completion_with({"role": "assistant", "content": "", "tool_calls": [{"function": {}}]}),
    ):
        message = chat_to_message(completion, model="m")
        MESSAGE.validate_python(message)
    assert chat_to_message({}, model="m")["id"] == "msg_tokenyard"
    assert chat_to_message({"id": "msg_kept"}, model="m")["id"] == "msg_kept"
    assert chat_to_message(completion, model="m")["content"] == [
        {"type": "tool_use", "id": "toolu_0", "name": "", "input": {}}
    ]


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (402, "billing_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (405, "invalid_request_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "api_error"),
        (504, "timeout_error"),
        (529, "overloaded_error"),
    ],
)
def test_anthropic_error_bodies(status: int, kind: str) -> None:
    body = anthropic_error(status, "nope")
    assert body == {"type": "error", "error": {"type": kind, "message": "nope"}}
    if kind != "request_too_large":  # documented by Anthropic, absent from the SDK's union
        ERROR.validate_python(body)


# --- stream ----------------------------------------------------------------------------------

USAGE = {
    "prompt_tokens": 472,
    "completion_tokens": 89,
    "total_tokens": 561,
    "prompt_tokens_details": {"cached_tokens": 400},
    "completion_tokens_details": {"reasoning_tokens": 7},
    "cost": 0.000123,
}


def full_stream() -> list[bytes]:
    translator = StreamTranslator(model="deepseek-chat", message_id="msg_01")
    chunks = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"reasoning_content": "Need "}),
        chunk({"reasoning_content": "weather."}),
        chunk({"content": "Checking"}),
        chunk({"content": " now."}),
        chunk(call(0, "", "call_A", "get_weather")),
        chunk(call(0, '{"city":')),
        chunk(call(0, '"Paris"}')),
        chunk(call(1, "{}", "call_B", "get_time")),
        chunk({}, "tool_calls"),
        {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [], "usage": USAGE},
    ]
    frames = [frame for c in chunks for frame in translator.feed(c)]
    return frames + translator.finish(USAGE)


def test_full_stream_event_by_event() -> None:
    events = parse(full_stream())
    assert events == [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_01",
                    "type": "message",
                    "role": "assistant",
                    "model": "deepseek-chat",
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {
                        "input_tokens": 0,
                        "output_tokens": 0,
                        "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 0,
                    },
                },
            },
        ),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "thinking", "thinking": "", "signature": ""},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "thinking_delta", "thinking": "Need "},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "thinking_delta", "thinking": "weather."},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "text_delta", "text": "Checking"},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "text_delta", "text": " now."},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 2,
                "content_block": {
                    "type": "tool_use",
                    "id": "call_A",
                    "name": "get_weather",
                    "input": {},
                },
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 2,
                "delta": {"type": "input_json_delta", "partial_json": '{"city":'},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 2,
                "delta": {"type": "input_json_delta", "partial_json": '"Paris"}'},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 2}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 3,
                "content_block": {
                    "type": "tool_use",
                    "id": "call_B",
                    "name": "get_time",
                    "input": {},
                },
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 3,
                "delta": {"type": "input_json_delta", "partial_json": "{}"},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 3}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {
                    "input_tokens": 72,
                    "output_tokens": 89,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 400,
                    "output_tokens_details": {"thinking_tokens": 7},
                    "cost": 0.000123,
                },
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    check_sequence(events)


def test_full_stream_reassembled_by_the_official_sdk() -> None:
    client = sdk(sse(full_stream()))
    with client.messages.stream(
        model="deepseek-chat", max_tokens=100, messages=[{"role": "user", "content": "x"}]
    ) as stream:
        texts = list(stream.text_stream)
        message = stream.get_final_message()
    assert texts == ["Checking", " now."]
    assert message.model_dump(
        include={"id", "model", "stop_reason", "content"}, exclude_none=True
    ) == {
        "id": "msg_01",
        "model": "deepseek-chat",
        "stop_reason": "tool_use",
        "content": [
            {"type": "thinking", "thinking": "Need weather.", "signature": ""},
            {"type": "text", "text": "Checking now."},
            {"type": "tool_use", "id": "call_A", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_B", "name": "get_time", "input": {}},
        ],
    }
    usage = message.usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.output_tokens) == (72, 400, 89)


def test_empty_stream_still_is_a_message() -> None:
    translator = StreamTranslator(model="m", message_id="msg_x")
    events = parse(translator.finish(None))
    assert [name for name, _ in events] == ["message_start", "message_delta", "message_stop"]
    assert events[1][1]["delta"]["stop_reason"] == "end_turn" and events[1][1]["usage"] == {
        "output_tokens": 0
    }
    check_sequence(events)
    assert translator.finish(None) == [] and translator.feed(chunk({"content": "late"})) == []


def test_usage_chunk_is_remembered_for_finish_without_usage() -> None:
    translator = StreamTranslator(model="m", message_id="msg_x")
    frames = translator.feed(chunk({"content": "hi"}, "length"))
    frames += translator.feed(
        {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}}
    )
    events = parse(frames + translator.finish(None))
    check_sequence(events)
    assert events[-2][1]["delta"]["stop_reason"] == "max_tokens"
    assert (
        events[-2][1]["usage"]["input_tokens"] == 5 and events[-2][1]["usage"]["output_tokens"] == 2
    )


def test_whole_tool_calls_in_one_chunk_and_stop_reason_fixups() -> None:
    translator = StreamTranslator(model="m", message_id="msg_x")
    whole = {
        "tool_calls": [
            {"index": 0, "id": "c0", "function": {"name": "f", "arguments": '{"a":1}'}},
            {"index": 1, "id": "c1", "function": {"name": "g", "arguments": {"b": 2}}},
        ]
    }
    events = parse(translator.feed(chunk(whole, "stop")) + translator.finish(None))
    check_sequence(events)
    starts = [p["content_block"]["id"] for n, p in events if n == "content_block_start"]
    assert starts == ["c0", "c1"] and events[-2][1]["delta"]["stop_reason"] == "tool_use"

    refusing = StreamTranslator(model="m", message_id="msg_y")
    events = parse(refusing.feed(chunk({"refusal": "I can't."}, "stop")) + refusing.finish(None))
    check_sequence(events)
    assert events[2][1]["delta"] == {"type": "text_delta", "text": "I can't."}
    assert events[-2][1]["delta"]["stop_reason"] == "refusal"


def test_error_events_end_the_stream_and_the_sdk_raises() -> None:
    translator = StreamTranslator(model="m", message_id="msg_x")
    frames = translator.feed(chunk({"content": "partial"}))
    frames += translator.feed(
        {
            "error": {
                "message": "upstream died",
                "type": "upstream_error",
                "param": None,
                "code": "upstream_failed",
            }
        }
    )
    assert translator.feed(chunk({"content": "more"})) == [] and translator.finish(None) == []
    assert parse(frames)[-1] == (
        "error",
        {"type": "error", "error": {"type": "api_error", "message": "upstream died"}},
    )
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        sdk(sse(frames)).messages.stream(
            model="m", max_tokens=1, messages=[{"role": "user", "content": "x"}]
        ) as stream,
    ):
        stream.get_final_message()
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "api_error", "message": "upstream died"},
    }

    overloaded = StreamTranslator(model="m", message_id="msg_y").error(
        "Overloaded", "overloaded_error"
    )
    assert parse(overloaded) == [
        ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    ]
    ERROR.validate_python(parse(overloaded)[0][1])
    quota = StreamTranslator(model="m", message_id="msg_z").feed(
        {"error": {"type": "insufficient_quota"}}
    )
    assert parse(quota)[0][1]["error"] == {"type": "billing_error", "message": "upstream error"}


# --- properties ------------------------------------------------------------------------------

TEXTS = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
IDS = st.text(alphabet=string.ascii_letters + string.digits + "_", min_size=1, max_size=10)
NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,15}", fullmatch=True)
SCALARS = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | TEXTS
INPUTS = st.dictionaries(
    TEXTS,
    st.recursive(
        SCALARS,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXTS, inner, max_size=3),
        max_leaves=6,
    ),
    max_size=4,
)

TEXT_BLOCKS = st.builds(lambda t: {"type": "text", "text": t}, TEXTS)
TOOL_USES = st.builds(
    lambda i, n, x: {"type": "tool_use", "id": i, "name": n, "input": x},
    IDS,
    NAMES,
    INPUTS | INPUTS.map(lambda d: d | {"f": 0.1}),
)
TOOL_RESULTS = st.builds(
    lambda i, texts, as_blocks, error: {
        "type": "tool_result",
        "tool_use_id": i,
        "content": [{"type": "text", "text": t} for t in texts] if as_blocks else "\n".join(texts),
        "is_error": error,
    },
    IDS,
    st.lists(TEXTS, max_size=3),
    st.booleans(),
    st.booleans(),
)
USER_TURNS = TEXTS | st.lists(TEXT_BLOCKS | TOOL_RESULTS, min_size=1, max_size=4)
ASSISTANT_TURNS = TEXTS | st.lists(TEXT_BLOCKS | TOOL_USES, max_size=4)
CONVERSATIONS = st.lists(st.tuples(USER_TURNS, ASSISTANT_TURNS), min_size=1, max_size=4).map(
    lambda pairs: [
        {"role": role, "content": c}
        for u, a in pairs
        for role, c in (("user", u), ("assistant", a))
    ]
)


def expected_turns(messages: list[dict[str, Any]]) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """What must survive: texts, tool ids/names/inputs, tool results (tool results first)."""
    out: list[tuple[str, list[tuple[Any, ...]]]] = []
    for m in messages:
        blocks = (
            [{"type": "text", "text": m["content"]}]
            if isinstance(m["content"], str)
            else m["content"]
        )
        if m["role"] == "user":
            results = [
                (
                    "tool_result",
                    b["tool_use_id"],
                    ("Error: " if b["is_error"] else "")
                    + (
                        b["content"]
                        if isinstance(b["content"], str)
                        else "\n".join(t["text"] for t in b["content"])
                    ),
                )
                for b in blocks
                if b["type"] == "tool_result"
            ]
            out.append(
                ("user", results + [("text", b["text"]) for b in blocks if b["type"] == "text"])
            )
        else:
            text = "\n".join(b["text"] for b in blocks if b["type"] == "text")
            uses = [
                ("tool_use", b["id"], b["name"], b["input"])
                for b in blocks
                if b["type"] == "tool_use"
            ]
            out.append(("assistant", [("text", text), *uses]))
    return out


def inverse(chat: dict[str, Any]) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """Canonical messages back to Anthropic turns: tool messages and the user message after
    them form one user turn."""
    turns: list[tuple[str, list[tuple[Any, ...]]]] = []
    for m in chat["messages"]:
        if m["role"] == "assistant":
            uses = [
                ("tool_use", c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
                for c in m.get("tool_calls", [])
            ]
            turns.append(("assistant", [("text", m["content"] or ""), *uses]))
            continue
        if not turns or turns[-1][0] == "assistant":
            turns.append(("user", []))
        if m["role"] == "tool":
            turns[-1][1].append(("tool_result", m["tool_call_id"], m["content"]))
        elif isinstance(m["content"], str):
            turns[-1][1].append(("text", m["content"]))
        else:
            turns[-1][1].extend(("text", p["text"]) for p in m["content"])
    return turns


@settings(max_examples=200, deadline=None)
@given(CONVERSATIONS, st.none() | TEXTS)
def test_request_round_trip_keeps_texts_tools_and_ids(
    messages: list[dict[str, Any]], system: str | None
) -> None:
    body = {"model": "m", "max_tokens": 64, "messages": messages} | (
        {"system": system} if system is not None else {}
    )
    chat = messages_to_chat(json.loads(json.dumps(body)))
    has_system = bool(system)
    assert (
        (chat["messages"][0] == {"role": "system", "content": system})
        if has_system
        else chat["messages"][0]["role"] != "system"
    )
    assert inverse(chat | {"messages": chat["messages"][int(has_system) :]}) == expected_turns(
        messages
    )


NONEMPTY = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=8)
SEGMENTS = st.lists(
    st.tuples(st.sampled_from(["thinking", "text"]), st.lists(NONEMPTY, min_size=1, max_size=3))
    | st.tuples(st.just("tool"), NAMES, INPUTS, st.integers(1, 4)),
    max_size=6,
)


@settings(max_examples=100, deadline=None)
@given(SEGMENTS)
def test_stream_reassembled_by_the_sdk_equals_the_chunks(segments: list[tuple[Any, ...]]) -> None:
    translator = StreamTranslator(model="m", message_id="msg_p")
    frames: list[bytes] = []
    expected: list[dict[str, Any]] = []
    tools = 0
    for segment in segments:
        if segment[0] == "tool":
            _, name, arguments, pieces = segment
            text = json.dumps(arguments)
            cuts = sorted({len(text) * k // pieces for k in range(pieces + 1)})
            frames += translator.feed(chunk(call(tools, "", f"call_{tools}", name)))
            for a, b in itertools.pairwise(cuts):
                frames += translator.feed(chunk(call(tools, text[a:b])))
            expected.append(
                {"type": "tool_use", "id": f"call_{tools}", "name": name, "input": arguments}
            )
            tools += 1
            continue
        kind, pieces = segment
        field = "reasoning_content" if kind == "thinking" else "content"
        for piece in pieces:
            frames += translator.feed(chunk({field: piece}))
        if expected and expected[-1]["type"] == kind:
            expected[-1][kind] += "".join(pieces)
        else:
            expected.append(
                {"type": kind, kind: "".join(pieces)}
                | ({"signature": ""} if kind == "thinking" else {})
            )
    frames += translator.finish(None)
    check_sequence(parse(frames))
    with sdk(sse(frames)).messages.stream(
        model="m", max_tokens=1, messages=[{"role": "user", "content": "x"}]
    ) as stream:
        message = stream.get_final_message()
    assert [b.model_dump(exclude_none=True) for b in message.content] == expected
    assert message.stop_reason == ("tool_use" if tools else "end_turn")
