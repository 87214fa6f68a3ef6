"""Round trips through DashScope's native API (``api: dashscope``).

* request: ``input.messages`` keep order, roles (``developer`` → ``system``), texts (part
  lists joined into the string the text-generation API takes, null content as ``""``),
  tool calls and tool-call ids; ``parameters`` carry the tools, ``result_format: message``
  and, streamed, ``incremental_output`` (providers.md §6.4).
* answer: ``output.choices[0].message`` content, ``reasoning_content`` and tool calls read
  back; ``finish_reason`` ``stop`` after tool calls is ``tool_calls``; usage
  (``input_tokens``/``output_tokens`` with cache and reasoning details) exact.
* stream: the same answer as DashScope SSE (``id:``/``event:result``/``:HTTP_STATUS/200``/
  ``data:`` frames, no ``[DONE]``, ``finish_reason`` the string ``"null"`` until the end,
  cumulative usage on every event, a tool call's id and name first and then argument
  fragments with an empty id) cut anywhere, reassembles to the non-streamed answer — and so
  does a thinking call, which only streams and is folded back into one completion.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from tests.roundtrip.canonical import (
    Reading,
    cuts,
    from_chunks,
    from_completion,
    reading_of,
    usage_of,
)
from tests.roundtrip.strategies import (
    CUT_POINTS,
    DUMPERS,
    HI,
    LONG_TEXT,
    ROUNDTRIP,
    Answer,
    Conversation,
    Counts,
    answers,
    conversations,
    short_answer,
    text_parts,
)
from tests.roundtrip.upstream import TIMEOUTS, Bench, Reply
from tokenyard.providers.base import Call
from tokenyard.providers.dashscope.provider import DashScopeProvider
from tokenyard.providers.dashscope.request import TEXT_PATH
from tokenyard.wire.usage import Usage

KEY = "sk-dashscope-roundtrip"
MODEL = "qwen-plus"
FINISHES = ("stop", "length", "tool_calls")


def provider(bench: Bench) -> DashScopeProvider:
    return DashScopeProvider(
        name="qwen",
        base_url=bench.url,
        client=bench.client,
        **TIMEOUTS,
        clock=lambda: 1_760_000_000.0,
    )


# -- request ------------------------------------------------------------------------------


def expected_messages(conversation: Conversation) -> list[dict[str, Any]]:
    out = []
    for m in copy.deepcopy(conversation.messages):
        role = "system" if m["role"] == "developer" else m["role"]
        out.append({**m, "role": role, "content": "\n".join(text_parts(m["content"]))})
    return out


@ROUNDTRIP
@given(conversations(), st.booleans())
def test_request_carries_messages_and_tools(
    bench: Bench, conversation: Conversation, stream: bool
) -> None:
    if stream:
        bench.upstream.answer(Reply(sse(events(_OK, [], [])), content_type="text/event-stream"))
    else:
        bench.upstream.answer(Reply([json.dumps(response_body(_OK, DUMPERS[0])).encode()]))
    call = Call(body=conversation.body(), upstream_model=MODEL, api_key=KEY)
    adapter = provider(bench)

    bench.send(adapter, call, stream=stream)
    recorded = bench.upstream.last
    assert recorded.path == TEXT_PATH
    wire = recorded.body
    assert wire["model"] == MODEL
    assert wire["input"]["messages"] == expected_messages(conversation)
    parameters = wire["parameters"]
    assert parameters["result_format"] == "message"
    assert parameters.get("incremental_output") == (True if stream else None)
    assert parameters.get("tools") == (conversation.tools or None)


# -- answer -------------------------------------------------------------------------------


_OK = short_answer("stop")


def usage_object(answer: Answer) -> dict[str, Any]:
    u = answer.usage
    return {
        "input_tokens": u.prompt,
        "output_tokens": u.completion,
        "total_tokens": u.prompt + u.completion,
        "prompt_tokens_details": {"cached_tokens": u.cached},
        "output_tokens_details": {"reasoning_tokens": u.reasoning},
    }


def response_body(answer: Answer, dump: Any, items: bool = False) -> dict[str, Any]:
    """The native answer; ``items``: content as the multimodal API's ``[{"text"}]`` list."""
    content: Any = [{"text": answer.text}] if items else answer.text
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if answer.reasoning:
        message["reasoning_content"] = answer.reasoning
    if answer.calls:
        message["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "index": n,
                "function": {"name": c.name, "arguments": dump(c.arguments)},
            }
            for n, c in enumerate(answer.calls)
        ]
    return {
        "output": {"choices": [{"finish_reason": answer.finish, "message": message}]},
        "usage": usage_object(answer),
        "request_id": "b7d1c2a4-roundtrip",
    }


def expected(answer: Answer) -> tuple[Reading, Usage]:
    finish = "tool_calls" if answer.finish == "stop" and answer.calls else answer.finish
    return reading_of(answer, finish), usage_of(answer.usage)


@ROUNDTRIP
@given(answers(FINISHES), st.sampled_from(DUMPERS), st.booleans())
def test_answer_keeps_text_reasoning_calls_and_usage(
    bench: Bench, answer: Answer, dump: Any, items: bool
) -> None:
    bench.upstream.answer(Reply([json.dumps(response_body(answer, dump, items)).encode()]))
    result = bench.call(lambda: provider(bench).chat(Call(HI, MODEL, KEY)))
    reading, usage = expected(answer)
    assert from_completion(result.body) == reading
    assert result.usage == usage


# -- stream -------------------------------------------------------------------------------


def event(message: dict[str, Any], finish: str, usage: dict[str, Any]) -> dict[str, Any]:
    return {
        "output": {
            "choices": [{"message": {"role": "assistant", **message}, "finish_reason": finish}]
        },
        "usage": usage,
        "request_id": "b7d1c2a4-roundtrip",
    }


def events(answer: Answer, points: list[int], argument_points: list[int]) -> list[Any]:
    u = answer.usage
    growing = {"input_tokens": u.prompt, "output_tokens": 0, "total_tokens": u.prompt}
    out = []
    for field, text in (("reasoning_content", answer.reasoning), ("content", answer.text)):
        if text:
            out += [
                event(
                    {field: piece, "content": piece if field == "content" else ""}, "null", growing
                )
                for piece in cuts(text, points)
            ]
    for n, c in enumerate(answer.calls):
        opening = {
            "index": n,
            "id": c.id,
            "type": "function",
            "function": {"name": c.name, "arguments": ""},
        }
        out.append(event({"content": "", "tool_calls": [opening]}, "null", growing))
        for piece in cuts(json.dumps(c.arguments, ensure_ascii=False), argument_points):
            fragment = {"index": n, "id": "", "type": "function", "function": {"arguments": piece}}
            out.append(event({"content": "", "tool_calls": [fragment]}, "null", growing))
    out.append(event({"content": ""}, answer.finish, usage_object(answer)))
    return out


def sse(docs: list[Any]) -> list[bytes]:
    return [
        f"id:{n}\nevent:result\n:HTTP_STATUS/200\ndata:{json.dumps(d, ensure_ascii=False)}\n\n".encode()
        for n, d in enumerate(docs, 1)
    ]


@st.composite
def stream_cases(draw: st.DrawFn) -> tuple[Answer, list[bytes]]:
    answer = draw(answers(FINISHES))
    raw = b"".join(sse(events(answer, draw(CUT_POINTS), draw(CUT_POINTS))))
    return answer, cuts(raw, draw(CUT_POINTS))


_LONG = Answer(LONG_TEXT, "", [], "stop", Counts(7, 9))


@ROUNDTRIP
@given(stream_cases())
@example((_LONG, sse(events(_LONG, [], []))))  # one event past the line reader's limit
def test_stream_in_any_cut_reassembles_to_the_answer(
    bench: Bench, case: tuple[Answer, list[bytes]]
) -> None:
    answer, pieces = case
    adapter = provider(bench)
    bench.upstream.answer(Reply(pieces, content_type="text/event-stream"))

    payloads, usage = bench.stream(adapter, Call(HI, MODEL, KEY))
    bench.upstream.answer(Reply([json.dumps(response_body(answer, DUMPERS[0])).encode()]))
    whole = bench.call(lambda: adapter.chat(Call(HI, MODEL, KEY)))
    bench.upstream.answer(Reply(pieces, content_type="text/event-stream"))
    thinking = {**HI, "reasoning_effort": "high"}  # thinking needs a stream: folded back
    folded = bench.call(lambda: adapter.chat(Call(thinking, MODEL, KEY)))
    assert bench.upstream.last.body["parameters"]["incremental_output"] is True
    reading, expected_usage = expected(answer)
    assert from_chunks(payloads) == reading == from_completion(whole.body)
    assert from_completion(folded.body) == reading
    assert usage == expected_usage == whole.usage == folded.usage
