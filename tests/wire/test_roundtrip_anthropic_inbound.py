"""Round trips through the Anthropic-compatible client endpoint (``POST /v1/messages``).

The endpoint translates an Anthropic request to the canonical form (``wire.anthropic``) and
the canonical answer back. Composed with the Anthropic upstream adapter — the other
direction of the same wire — that is an Anthropic → Anthropic translator, so the properties
can demand that it keeps what both directions can express:

* request: Anthropic request → canonical → Anthropic request keeps the system prompt, every
  non-blank text, every ``tool_use`` (id, name, input) and ``tool_result`` (id, text, the
  ``Error:`` mark of ``is_error``), in order, and the tool definitions.
* answer: Anthropic ``Message`` → canonical ``chat.completion`` → ``Message`` keeps thinking
  text, text, ``tool_use`` blocks, the stop reason (up to the documented merges:
  ``stop_sequence``/``pause_turn`` → ``end_turn``, ``model_context_window_exceeded`` →
  ``max_tokens``) and usage (cache writes are folded into ``input_tokens``).
* stream: Anthropic SSE → the adapter's canonical chunks → the endpoint's SSE, bytes cut
  anywhere, read by the official SDK's accumulator, gives the same message.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.roundtrip.canonical import cuts
from tests.roundtrip.strategies import (
    ARGUMENTS,
    CUT_POINTS,
    ID_STEMS,
    ROUNDTRIP,
    TEXTS,
    TOOL_NAMES,
)
from tests.roundtrip.upstream import TIMEOUTS, Bench, Reply
from tokenyard.errors import UpstreamRejected
from tokenyard.providers.anthropic.provider import AnthropicProvider
from tokenyard.providers.anthropic.request import encode
from tokenyard.providers.anthropic.response import to_chat_completion
from tokenyard.providers.base import Call
from tokenyard.wire.anthropic import StreamTranslator, chat_to_message, messages_to_chat

STOP_REASONS = {  # there and back (providers.md §14.1 and its inverse)
    "end_turn": "end_turn",
    "stop_sequence": "end_turn",
    "pause_turn": "end_turn",
    "max_tokens": "max_tokens",
    "model_context_window_exceeded": "max_tokens",
    "tool_use": "tool_use",
    "refusal": "refusal",
}


def blank(text: str) -> bool:
    return not text.strip()


# -- request ------------------------------------------------------------------------------


@st.composite
def anthropic_requests(draw: st.DrawFn) -> dict[str, Any]:
    """Alternating user/assistant turns: user turns open with the results of the previous
    turn's tool uses, assistant turns may end with tool uses (unique ids)."""
    messages: list[dict[str, Any]] = []
    pending: list[str] = []
    for round_ in range(draw(st.integers(1, 3))):
        blocks: list[dict[str, Any]] = [
            {
                "type": "tool_result",
                "tool_use_id": use,
                "content": draw(
                    TEXTS
                    | st.lists(TEXTS, max_size=2).map(
                        lambda ts: [{"type": "text", "text": t} for t in ts]
                    )
                ),
                "is_error": draw(st.booleans()),
            }
            for use in pending
        ]
        blocks += [{"type": "text", "text": t} for t in draw(st.lists(TEXTS, max_size=2))]
        if not blocks:
            blocks = [{"type": "text", "text": draw(TEXTS)}]
        messages.append({"role": "user", "content": blocks})
        said = [{"type": "text", "text": t} for t in draw(st.lists(TEXTS, max_size=2))]
        uses = [
            {
                "type": "tool_use",
                "id": f"toolu_{draw(ID_STEMS)}{round_}{n}",
                "name": draw(TOOL_NAMES),
                "input": draw(ARGUMENTS),
            }
            for n in range(draw(st.integers(0, 2)))
        ]
        pending = [u["id"] for u in uses]
        messages.append({"role": "assistant", "content": said + uses or draw(TEXTS)})
    messages.append(
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": use, "content": draw(TEXTS)}
                for use in pending
            ]
            + [{"type": "text", "text": draw(TEXTS)}],
        }
    )
    body: dict[str, Any] = {"model": "claude-public", "max_tokens": 512, "messages": messages}
    if draw(st.booleans()):
        body["system"] = draw(TEXTS)
    tools = draw(st.lists(st.tuples(TOOL_NAMES, TEXTS), max_size=2, unique_by=lambda t: t[0]))
    if tools:
        body["tools"] = [
            {"name": n, "description": d, "input_schema": {"type": "object", "properties": {}}}
            for n, d in tools
        ]
    return body


def atoms(messages: list[dict[str, Any]], *, sent: bool) -> list[tuple[Any, ...]]:
    """Texts, tool uses and tool results in order. ``sent=False`` reads a client's request
    the way the two translations must treat it (blank texts left out; a result's parts
    joined into one text, ``is_error`` marked); ``sent=True`` reads what went upstream."""
    out: list[tuple[Any, ...]] = []
    for m in messages:
        content = m["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if m["role"] == "assistant" and not sent:  # its texts become one, newline-joined
            text = "\n".join(b["text"] for b in blocks if b["type"] == "text")
            blocks = [{"type": "text", "text": text}] + [b for b in blocks if b["type"] != "text"]
        for b in blocks:
            if b["type"] == "text" and (sent or not blank(b["text"])):
                out.append((m["role"], b["text"]))
            elif b["type"] == "tool_use":
                out.append(("use", b["id"], b["name"], b["input"]))
            elif b["type"] == "tool_result":
                value = b.get("content", "")
                if not sent:  # one string (parts joined), marked, blank → nothing
                    parts = [value] if isinstance(value, str) else [p["text"] for p in value]
                    value = ("Error: " if b.get("is_error") else "") + "\n".join(parts)
                    value = "" if blank(value) else value
                out.append(("result", b["tool_use_id"], value))
    return out


@ROUNDTRIP
@given(anthropic_requests())
def test_request_there_and_back_keeps_texts_tool_uses_and_results(body: dict[str, Any]) -> None:
    chat = messages_to_chat(json.loads(json.dumps(body)))
    said = atoms(body["messages"], sent=False)
    if not said or said[-1][0] in ("assistant", "use"):  # a blank question is not sendable
        with pytest.raises(UpstreamRejected):
            encode(chat, "claude-up", stream=False, default_max_tokens=1)
        return
    again = encode(chat, "claude-up", stream=False, default_max_tokens=1)
    assert again["max_tokens"] == body["max_tokens"]
    assert atoms(again["messages"], sent=True) == atoms(body["messages"], sent=False)
    system = body.get("system", "")
    assert [b["text"] for b in again.get("system", ())] == ([] if blank(system) else [system])
    assert again.get("tools", []) == body.get("tools", [])


# -- answer -------------------------------------------------------------------------------


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if thinking := draw(TEXTS):
        content.append({"type": "thinking", "thinking": thinking, "signature": ""})
    if text := draw(TEXTS):
        content.append({"type": "text", "text": text})
    content += [
        {
            "type": "tool_use",
            "id": f"toolu_{draw(ID_STEMS)}{n}",
            "name": draw(TOOL_NAMES),
            "input": draw(ARGUMENTS),
        }
        for n in range(draw(st.integers(0, 3)))
    ]
    stop = draw(st.sampled_from(sorted(STOP_REASONS)))
    if stop == "end_turn" and any(b["type"] == "tool_use" for b in content):
        stop = "tool_use"  # an end_turn after tool uses is not a thing Anthropic sends
    output = draw(st.integers(0, 10**12))
    usage = {
        "input_tokens": draw(st.integers(0, 10**9)),
        "cache_creation_input_tokens": draw(st.integers(0, 10**9)),
        "cache_read_input_tokens": draw(st.integers(0, 10**9)),
        "output_tokens": output,
        "output_tokens_details": {"thinking_tokens": draw(st.integers(0, output))},
    }
    return {
        "id": "msg_roundtrip",
        "type": "message",
        "role": "assistant",
        "model": "claude-public",
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage,
    }


def expected_message(original: dict[str, Any]) -> dict[str, Any]:
    usage = original["usage"]
    thinking = usage["output_tokens_details"]["thinking_tokens"]
    back = {
        "input_tokens": usage["input_tokens"] + usage["cache_creation_input_tokens"],
        "output_tokens": usage["output_tokens"],
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": usage["cache_read_input_tokens"],
    }
    if thinking:
        back["output_tokens_details"] = {"thinking_tokens": thinking}
    stop = STOP_REASONS[original["stop_reason"]]
    if stop == "end_turn" and any(b["type"] == "tool_use" for b in original["content"]):
        stop = "tool_use"  # canonical "stop" with tool calls reads as tool_use
    return {**original, "stop_reason": stop, "usage": back}


@ROUNDTRIP
@given(messages())
def test_answer_there_and_back_keeps_blocks_stop_reason_and_usage(
    message: dict[str, Any],
) -> None:
    completion, _ = to_chat_completion(json.loads(json.dumps(message)), 1_760_000_000)
    assert chat_to_message(completion, model="claude-public") == expected_message(message)


# -- stream -------------------------------------------------------------------------------


def upstream_events(message: dict[str, Any], points: list[int]) -> list[dict[str, Any]]:
    usage = message["usage"]
    start = {k: v for k, v in usage.items() if k != "output_tokens_details"}
    events: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {
                **message,
                "content": [],
                "stop_reason": None,
                "usage": {**start, "output_tokens": 1},
            },
        }
    ]
    for index, block in enumerate(message["content"]):
        if block["type"] == "thinking":
            opening = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [
                {"type": "thinking_delta", "thinking": p} for p in cuts(block["thinking"], points)
            ]
        elif block["type"] == "text":
            opening = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in cuts(block["text"], points)]
        else:
            opening = {**block, "input": {}}
            deltas = [
                {"type": "input_json_delta", "partial_json": p}
                for p in cuts(json.dumps(block["input"], ensure_ascii=False), points)
            ]
        events.append({"type": "content_block_start", "index": index, "content_block": opening})
        events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
        events.append({"type": "content_block_stop", "index": index})
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {
                "output_tokens": usage["output_tokens"],
                "output_tokens_details": usage["output_tokens_details"],
            },
        }
    )
    events.append({"type": "message_stop"})
    return events


def sdk(body: bytes) -> anthropic.Anthropic:
    """The official client, reading ``body`` as the endpoint's stream."""

    def respond(_: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    return anthropic.Anthropic(
        api_key="ty-test",
        base_url="http://gateway.test",
        http_client=httpx2.Client(transport=httpx2.MockTransport(respond)),
        max_retries=0,
    )


@ROUNDTRIP
@given(messages(), CUT_POINTS, CUT_POINTS)
def test_stream_there_and_back_is_the_same_message(
    bench: Bench, message: dict[str, Any], points: list[int], byte_points: list[int]
) -> None:
    raw = "".join(
        f"event: {e['type']}\ndata: {json.dumps(e, ensure_ascii=False)}\n\n"
        for e in upstream_events(message, points)
    ).encode()
    bench.upstream.answer(Reply(cuts(raw, byte_points), content_type="text/event-stream"))
    adapter = AnthropicProvider(
        name="claude",
        base_url=bench.url,
        client=bench.client,
        **TIMEOUTS,
    )
    translator = StreamTranslator(model="claude-public", message_id="msg_roundtrip")
    call = Call(
        {"model": "claude-public", "messages": [{"role": "user", "content": "hi"}]}, "claude-up"
    )

    payloads, usage = bench.stream(adapter, call)
    frames = [frame for payload in payloads for frame in translator.feed(json.loads(payload))]
    assert usage is not None
    frames += translator.finish(usage.to_openai())
    with sdk(b"".join(frames)).messages.stream(
        model="claude-public", max_tokens=1, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        final = stream.get_final_message()
    assert final.model_dump(exclude_none=True) == {
        k: v for k, v in expected_message(message).items() if v is not None
    }
