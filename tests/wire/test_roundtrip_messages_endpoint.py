"""``POST /v1/messages`` on the running gateway, as the official Anthropic SDK sees it, in
front of an OpenAI-wire upstream that answers with generated content.

The upstream's answer (text, reasoning, tool calls, finish reason, usage with cache and
reasoning counts — 0 and huge included) goes through the real server: canonical answer,
billing (prices are 0, so any count is affordable), and the endpoint's translation. The
SDK's ``Message`` — parsed from the JSON answer, or accumulated from the stream — must keep
the thinking text, the text, every ``tool_use`` (id, name, input), the mapped stop reason
and the usage (``input_tokens`` = prompt − cached, cache reads, output and thinking counts).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from hypothesis import given

from tests.e2e.harness import ADMIN_KEY, RunningGateway, start_gateway
from tests.roundtrip.canonical import cuts
from tests.roundtrip.strategies import (
    CUT_POINTS,
    ROUNDTRIP,
    Answer,
    answers,
)
from tests.roundtrip.upstream import Bench, Reply

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
QUESTION = [{"role": "user", "content": "hi"}]
ENDPOINT_EXAMPLES = ROUNDTRIP.__class__(ROUNDTRIP, max_examples=40)
"""Fewer examples: each one is a full request through the gateway process."""


@pytest.fixture(scope="module")
def gateway(bench: Bench, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    directory: Path = tmp_path_factory.mktemp("messages-roundtrip")
    config = f"""
database: sqlite:///{directory / "tokenyard.db"}
admin_key: {ADMIN_KEY}
billing: {{currency: USD}}
providers:
  scripted:
    api: openai
    vendor: generic
    base_url: {bench.url}/v1
    timeout_s: 10
    keys: [{{key: sk-scripted-secret}}]
models:
  claude-public:
    capabilities: [tools]
    deployments:
      - {{provider: scripted, model: up-model, price: {{input: 0, output: 0}}}}
"""
    running = start_gateway(directory, config)
    yield running
    assert running.stop() == 0, running.log()


@pytest.fixture(scope="module")
def sdk(gateway: RunningGateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.base_url, api_key=gateway.new_key(), max_retries=0)


def completion(answer: Answer) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": answer.text or None}
    if answer.reasoning:
        message["reasoning_content"] = answer.reasoning
    if answer.calls:
        message["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
            }
            for c in answer.calls
        ]
    return {
        "id": "chatcmpl-rt",
        "object": "chat.completion",
        "created": 1,
        "model": "up-model",
        "choices": [{"index": 0, "message": message, "finish_reason": answer.finish}],
        "usage": answer.usage.canonical(),
    }


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-rt",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "up-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def stream_body(answer: Answer, points: list[int]) -> bytes:
    chunks = [chunk({"role": "assistant", "content": ""})]
    for field, text in (("reasoning_content", answer.reasoning), ("content", answer.text)):
        if text:
            chunks += [chunk({field: p}) for p in cuts(text, points)]
    for n, c in enumerate(answer.calls):
        first, *rest = cuts(json.dumps(c.arguments), points)
        chunks.append(
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": n,
                            "id": c.id,
                            "type": "function",
                            "function": {"name": c.name, "arguments": first},
                        }
                    ]
                }
            )
        )
        chunks += [
            chunk({"tool_calls": [{"index": n, "function": {"arguments": p}}]}) for p in rest
        ]
    chunks.append(chunk({}, answer.finish))
    chunks.append({**chunk({}), "choices": [], "usage": answer.usage.canonical()})
    lines = [f"data: {json.dumps(c, ensure_ascii=False)}\n\n" for c in chunks]
    return "".join([*lines, "data: [DONE]\n\n"]).encode()


def expected(answer: Answer) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if answer.reasoning:
        content.append({"type": "thinking", "thinking": answer.reasoning, "signature": ""})
    if answer.text:
        content.append({"type": "text", "text": answer.text})
    content += [
        {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments} for c in answer.calls
    ]
    stop = STOP_REASONS[answer.finish]
    if stop == "end_turn" and answer.calls:
        stop = "tool_use"
    u = answer.usage
    return {
        "content": content,
        "stop_reason": stop,
        "input_tokens": u.prompt - u.cached,
        "cache_read_input_tokens": u.cached,
        "output_tokens": u.completion,
        "thinking_tokens": u.reasoning,
    }


def seen(message: anthropic.types.Message) -> dict[str, Any]:
    dumped = message.model_dump()
    details = dumped["usage"].get("output_tokens_details") or {}
    return {
        "content": [
            {k: v for k, v in block.items() if v is not None and k != "citations"}
            for block in dumped["content"]
        ],
        "stop_reason": message.stop_reason,
        "input_tokens": message.usage.input_tokens,
        "cache_read_input_tokens": message.usage.cache_read_input_tokens,
        "output_tokens": message.usage.output_tokens,
        "thinking_tokens": details.get("thinking_tokens", 0),
    }


@ENDPOINT_EXAMPLES
@given(answers(sorted(STOP_REASONS)))
def test_a_message_keeps_text_tool_uses_and_usage(
    bench: Bench, sdk: anthropic.Anthropic, answer: Answer
) -> None:
    bench.upstream.answer(Reply([json.dumps(completion(answer)).encode()]))
    message = sdk.messages.create(model="claude-public", max_tokens=64, messages=QUESTION)  # type: ignore[arg-type]
    assert seen(message) == expected(answer)


@ENDPOINT_EXAMPLES
@given(answers(sorted(STOP_REASONS)), CUT_POINTS, CUT_POINTS)
def test_a_streamed_message_keeps_text_tool_uses_and_usage(
    bench: Bench,
    sdk: anthropic.Anthropic,
    answer: Answer,
    points: list[int],
    byte_points: list[int],
) -> None:
    body = stream_body(answer, points)
    bench.upstream.answer(Reply(cuts(body, byte_points), content_type="text/event-stream"))
    with sdk.messages.stream(model="claude-public", max_tokens=64, messages=QUESTION) as stream:  # type: ignore[arg-type]
        message = stream.get_final_message()
    assert seen(message) == expected(answer)
