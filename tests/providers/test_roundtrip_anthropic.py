"""Round trips through the Anthropic Messages family (``api: anthropic``).

* request: a canonical history goes out as ``system`` + alternating ``messages`` that the
  API accepts (the stand-in's own checks plus "text blocks contain non-whitespace text"),
  and reading it back gives every text, tool call (id, name, input) and tool result in
  order; system prompts and tool definitions arrive whole.
* answer: a ``Message`` with thinking, text and ``tool_use`` blocks reads back as the same
  content, reasoning and tool calls; ``stop_reason`` maps per providers.md §14.1 and usage
  re-sums the split input exactly (§14.3).
* stream: the same message as SSE events, texts and ``partial_json`` cut anywhere and the
  bytes cut anywhere (inside UTF-8 sequences too), reassembles to the same answer.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.roundtrip.canonical import Reading, cuts, from_chunks, from_completion, reading_of
from tests.roundtrip.strategies import (
    CUT_POINTS,
    DUMPERS,
    HI,
    LONG_TEXT,
    ROUNDTRIP,
    TEXTS,
    Answer,
    Conversation,
    Counts,
    ToolCall,
    conversations,
    short_answer,
    text_parts,
    tool_calls,
)
from tests.roundtrip.upstream import TIMEOUTS, Bench, Reply
from tests.upstreams.anthropic_wire import check_request
from tokenyard.errors import UpstreamRejected
from tokenyard.providers.anthropic import AnthropicProvider
from tokenyard.providers.base import Call
from tokenyard.wire.usage import Usage

KEY = "sk-ant-roundtrip"
FINISHES = {  # providers.md §14.1
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def provider(bench: Bench) -> AnthropicProvider:
    return AnthropicProvider(
        name="claude",
        base_url=bench.url,
        client=bench.client,
        **TIMEOUTS,
        clock=lambda: 1_760_000_000.0,
    )


# -- request ------------------------------------------------------------------------------

Atom = tuple[Any, ...]


def said(text: str) -> bool:
    """Whether the API takes this text as a block (it rejects empty and blank ones)."""
    return bool(text.strip())


def canonical_atoms(conversation: Conversation) -> tuple[list[str], list[Atom]]:
    """(system texts, conversation atoms) the wire must carry, by providers.md §3.2."""
    system: list[str] = []
    atoms: list[Atom] = []
    for m in conversation.messages:
        texts = [t for t in text_parts(m.get("content")) if said(t)]
        if m["role"] in ("system", "developer"):
            if texts:
                system.append("\n".join(texts))
        elif m["role"] == "tool":
            atoms.append(("result", m["tool_call_id"], "\n".join(texts)))
        else:
            atoms += [(m["role"], t) for t in texts]
            atoms += [
                ("call", c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
                for c in m.get("tool_calls", ())
            ]
    return system, atoms


def wire_atoms(wire: dict[str, Any]) -> tuple[list[str], list[Atom]]:
    """The same, read back from an Anthropic request as the API reads it."""
    system = [block["text"] for block in wire.get("system", ())]
    atoms: list[Atom] = []
    roles = [turn["role"] for turn in wire["messages"]]
    assert all(a != b for a, b in itertools.pairwise(roles)), roles
    for turn in wire["messages"]:
        for block in turn["content"]:
            if block["type"] == "text":
                assert said(block["text"]), block
                atoms.append((turn["role"], block["text"]))
            elif block["type"] == "tool_use":
                atoms.append(("call", block["id"], block["name"], block["input"]))
            else:
                assert block["type"] == "tool_result"
                atoms.append(("result", block["tool_use_id"], block.get("content", "")))
    for text in system:
        assert said(text)
    return system, atoms


def wire_tools(conversation: Conversation) -> list[dict[str, Any]]:
    return [
        {
            "name": t["function"]["name"],
            "input_schema": t["function"]["parameters"],
            "description": t["function"]["description"],
        }
        for t in conversation.tools
    ]


@ROUNDTRIP
@given(conversations())
@example(  # a blank last question: refused, not sent as a prefill of the answer before it
    Conversation(
        [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": " \n"},
        ]
    )
)
@example(  # blank texts in the history: left out (the API answers 400 to them)
    Conversation(
        [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": " "},
            {"role": "user", "content": "\n"},
        ]
    )
)
def test_request_carries_every_text_tool_call_and_result(
    bench: Bench, conversation: Conversation
) -> None:
    bench.upstream.answer(Reply([json.dumps(message_body(_ANSWER, "")).encode()]))
    system, atoms = canonical_atoms(conversation)
    call = Call(body=conversation.body(), upstream_model="claude-up", api_key=KEY)
    if not atoms or atoms[-1][0] in ("assistant", "call"):  # nothing, or a blank question
        with pytest.raises(UpstreamRejected):
            bench.call(lambda: provider(bench).chat(call))
        return
    bench.call(lambda: provider(bench).chat(call))
    wire = bench.upstream.last.body
    check_request(wire)
    assert wire_atoms(wire) == (system, atoms)
    assert wire.get("tools", []) == wire_tools(conversation)


# -- answer -------------------------------------------------------------------------------


@st.composite
def answers(draw: st.DrawFn) -> Answer:
    calls = draw(tool_calls())
    output = draw(st.sampled_from([0, 1, 10**12]) | st.integers(0, 10**9))
    usage = Counts(
        prompt=draw(st.integers(0, 10**9)),  # input_tokens (uncached)
        completion=output,
        cached=draw(st.sampled_from([0, 10**12]) | st.integers(0, 10**9)),  # cache reads
        reasoning=draw(st.integers(0, output)),  # thinking_tokens
    )
    return Answer(draw(TEXTS), draw(TEXTS), calls, draw(st.sampled_from(sorted(FINISHES))), usage)


_ANSWER = short_answer("end_turn")


def anthropic_usage(answer: Answer, creation: int) -> dict[str, Any]:
    u = answer.usage
    return {
        "input_tokens": u.prompt,
        "cache_creation_input_tokens": creation,
        "cache_read_input_tokens": u.cached,
        "output_tokens": u.completion,
        "output_tokens_details": {"thinking_tokens": u.reasoning},
    }


def expected(answer: Answer, creation: int) -> tuple[Reading, Usage]:
    u = answer.usage
    usage = Usage(u.prompt + creation + u.cached, u.completion, u.cached, u.reasoning)
    return reading_of(answer, FINISHES[answer.finish]), usage


def message_body(answer: Answer, signature: str, creation: int = 0) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if answer.reasoning:
        content.append({"type": "thinking", "thinking": answer.reasoning, "signature": signature})
    if answer.text:
        content.append({"type": "text", "text": answer.text})
    content += [
        {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments} for c in answer.calls
    ]
    return {
        "id": "msg_roundtrip",
        "type": "message",
        "role": "assistant",
        "model": "claude-up",
        "content": content,
        "stop_reason": answer.finish,
        "stop_sequence": None,
        "usage": anthropic_usage(answer, creation),
    }


@ROUNDTRIP
@given(answers(), TEXTS, st.integers(0, 10**9))
def test_answer_keeps_text_thinking_tool_calls_and_usage(
    bench: Bench, answer: Answer, signature: str, creation: int
) -> None:
    bench.upstream.answer(Reply([json.dumps(message_body(answer, signature, creation)).encode()]))
    result = bench.call(lambda: provider(bench).chat(Call(HI, "claude-up", KEY)))
    reading, usage = expected(answer, creation)
    assert from_completion(result.body) == reading
    assert result.usage == usage


# -- stream -------------------------------------------------------------------------------


def sse_event(payload: dict[str, Any]) -> bytes:
    return f"event: {payload['type']}\ndata: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()


@st.composite
def stream_events(draw: st.DrawFn, answer: Answer, creation: int) -> list[dict[str, Any]]:
    """The answer as Anthropic stream events (providers.md §3.4): input counts on
    ``message_start``, cumulative output on ``message_delta``, texts and ``partial_json``
    cut at drawn points, ``ping`` and ``signature_delta`` where the API sends them."""
    full = anthropic_usage(answer, creation)
    start_usage = {k: v for k, v in full.items() if k != "output_tokens_details"}
    events: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {
                **message_body(answer, ""),
                "content": [],
                "stop_reason": None,
                "usage": {**start_usage, "output_tokens": 1},
            },
        },
        {"type": "ping"},
    ]
    blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    if answer.reasoning:
        deltas = [
            {"type": "thinking_delta", "thinking": p}
            for p in cuts(answer.reasoning, draw(CUT_POINTS))
        ]
        deltas.append({"type": "signature_delta", "signature": "c2ln"})
        blocks.append(({"type": "thinking", "thinking": "", "signature": ""}, deltas))
    if answer.text:
        deltas = [{"type": "text_delta", "text": p} for p in cuts(answer.text, draw(CUT_POINTS))]
        blocks.append(({"type": "text", "text": ""}, deltas))
    for c in answer.calls:
        encoded = draw(st.sampled_from(DUMPERS))(c.arguments)
        if c.arguments == {} and draw(st.booleans()):
            encoded = ""  # a call without input may stream no JSON at all
        pieces = [p for p in cuts(encoded, draw(CUT_POINTS)) if p]
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in ["", *pieces]]
        blocks.append(({"type": "tool_use", "id": c.id, "name": c.name, "input": {}}, deltas))
    for index, (block, deltas) in enumerate(blocks):
        events.append({"type": "content_block_start", "index": index, "content_block": block})
        events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
        events.append({"type": "content_block_stop", "index": index})
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": answer.finish, "stop_sequence": None},
            "usage": {
                "output_tokens": answer.usage.completion,
                "output_tokens_details": full["output_tokens_details"],
            },
        }
    )
    events.append({"type": "message_stop"})
    return events


@st.composite
def stream_cases(draw: st.DrawFn) -> tuple[Answer, int, list[bytes]]:
    """(answer, cache-creation count, the stream's bytes cut at drawn points)."""
    answer, creation = draw(answers()), draw(st.integers(0, 10**9))
    raw = b"".join(sse_event(e) for e in draw(stream_events(answer, creation)))
    return answer, creation, cuts(raw, draw(CUT_POINTS))


_NO_INPUT = Answer("", "", [ToolCall("toolu_1", "now", {})], "tool_use", Counts(0, 0))
_LONG = Answer(LONG_TEXT, "", [], "end_turn", Counts(7, 9))


def text_only_events(answer: Answer) -> list[bytes]:
    """A text answer as one ``text_delta`` (for examples that need no drawn cuts)."""
    events = (
        {
            "type": "message_start",
            "message": {**message_body(answer, ""), "content": [], "stop_reason": None},
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": answer.text},
        },
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": answer.finish},
            "usage": {
                "output_tokens": answer.usage.completion,
                "output_tokens_details": {"thinking_tokens": 0},
            },
        },
        {"type": "message_stop"},
    )
    return [sse_event(e) for e in events]


@ROUNDTRIP
@given(stream_cases())
@example((_LONG, 0, text_only_events(_LONG)))  # one event longer than the line reader takes
@example(  # a call without input that streams no JSON: arguments must still be "{}"
    (
        _NO_INPUT,
        0,
        [
            sse_event(e)
            for e in (
                {
                    "type": "message_start",
                    "message": {**message_body(_NO_INPUT, ""), "content": [], "stop_reason": None},
                },
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "now",
                        "input": {},
                    },
                },
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "input_json_delta", "partial_json": ""},
                },
                {"type": "content_block_stop", "index": 0},
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "tool_use"},
                    "usage": {"output_tokens": 0},
                },
                {"type": "message_stop"},
            )
        ],
    )
)
def test_stream_in_any_cut_reassembles_to_the_answer(
    bench: Bench, case: tuple[Answer, int, list[bytes]]
) -> None:
    answer, creation, pieces = case
    bench.upstream.answer(Reply(pieces, content_type="text/event-stream"))
    adapter = provider(bench)

    payloads, usage = bench.stream(adapter, Call(HI, "claude-up", KEY))
    reading, expected_usage = expected(answer, creation)
    assert from_chunks(payloads) == reading
    assert usage == expected_usage
