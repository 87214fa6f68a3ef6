"""Round trips through the Zhipu GLM family (``api: zhipu``).

* request: messages reach the upstream with their order, roles (``developer`` → ``system``),
  texts (part lists flattened to one string where GLM wants a string), tool calls with ids
  and arguments, tool-call ids of the results, and the tool definitions (providers.md §7.3).
* answer: content, ``reasoning_content``, tool calls, finish reasons (``sensitive`` →
  ``content_filter``, ``model_context_window_exceeded`` → ``length``) and usage with cache
  and reasoning details read back exactly (§7.4, §14).
* stream: the same answer as GLM chunks — role repeated in every delta, each tool call whole
  in one delta (under its own index, or all under index 0 with their own ids, as GLM does),
  usage on the finish chunk, ``[DONE]`` — cut anywhere, reassembles to the non-streamed
  answer.
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
from tokenyard.providers.zhipu.provider import ZhipuProvider
from tokenyard.wire.usage import Usage

KEY = "zp-roundtrip.secret"
FINISHES = {  # providers.md §14.1
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "sensitive": "content_filter",
    "model_context_window_exceeded": "length",
}


def provider(bench: Bench) -> ZhipuProvider:
    return ZhipuProvider(
        name="glm",
        base_url=bench.url + "/api/paas/v4",
        client=bench.client,
        **TIMEOUTS,
        jwt=False,
        clock=lambda: 1_760_000_000.0,
    )


# -- request ------------------------------------------------------------------------------


def expected_messages(conversation: Conversation) -> list[dict[str, Any]]:
    out = []
    for m in copy.deepcopy(conversation.messages):
        role = "system" if m["role"] == "developer" else m["role"]
        if role != "user" and isinstance(m["content"], list):
            m["content"] = "\n".join(text_parts(m["content"]))
        out.append({**m, "role": role})
    return out


@ROUNDTRIP
@given(conversations(), st.booleans())
def test_request_carries_messages_and_tools(
    bench: Bench, conversation: Conversation, stream: bool
) -> None:
    if stream:
        events = sse(chunks(_OK, [], 0), "data: ")
        bench.upstream.answer(Reply(events, content_type="text/event-stream"))
    else:
        bench.upstream.answer(Reply([json.dumps(completion_body(_OK, DUMPERS[0])).encode()]))
    call = Call(body=conversation.body(), upstream_model="glm-4.6", api_key=KEY)
    adapter = provider(bench)

    bench.send(adapter, call, stream=stream)
    recorded = bench.upstream.last
    assert recorded.path == "/api/paas/v4/chat/completions"
    wire = recorded.body
    assert wire["model"] == "glm-4.6"
    assert wire["messages"] == expected_messages(conversation)
    assert wire.get("tools") == (conversation.tools or None)
    assert wire.get("stream") == (True if stream else None)


# -- answer -------------------------------------------------------------------------------


_OK = short_answer("stop")


def usage_object(answer: Answer) -> dict[str, Any]:
    return answer.usage.canonical()


def completion_body(answer: Answer, dump: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": answer.text}
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
        "id": "2025101812345",
        "request_id": "req-1",
        "created": 1_760_000_000,
        "model": "glm-4.6",
        "choices": [{"index": 0, "finish_reason": answer.finish, "message": message}],
        "usage": usage_object(answer),
    }


def expected(answer: Answer) -> tuple[Reading, Usage]:
    return reading_of(answer, FINISHES[answer.finish]), usage_of(answer.usage)


def as_object(arguments: Any) -> Any:
    """GLM sometimes sends ``arguments`` as a JSON object rather than a string."""
    return arguments


ARGUMENT_FORMS = st.sampled_from([*DUMPERS, as_object])


@ROUNDTRIP
@given(answers(sorted(FINISHES)), ARGUMENT_FORMS)
def test_answer_keeps_text_reasoning_calls_and_usage(
    bench: Bench, answer: Answer, dump: Any
) -> None:
    bench.upstream.answer(Reply([json.dumps(completion_body(answer, dump)).encode()]))
    result = bench.call(lambda: provider(bench).chat(Call(HI, "glm-4.6", KEY)))
    reading, usage = expected(answer)
    assert from_completion(result.body) == reading
    assert result.usage == usage


# -- stream -------------------------------------------------------------------------------


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "delta": {"role": "assistant", **delta}}
    if finish is not None:
        choice["finish_reason"] = finish
    return {
        "id": "2025",
        "created": 1_760_000_000,
        "model": "glm-4.6",
        "choices": [choice],
        **extra,
    }


def chunks(
    answer: Answer, points: list[int], all_at_zero: int, dump: Any = json.dumps
) -> list[dict[str, Any]]:
    out = []
    for field, text in (("reasoning_content", answer.reasoning), ("content", answer.text)):
        if text:
            out += [chunk({field: piece}) for piece in cuts(text, points)]
    for n, c in enumerate(answer.calls):
        call = {
            "id": c.id,
            "type": "function",
            "index": 0 if all_at_zero else n,
            "function": {"name": c.name, "arguments": dump(c.arguments)},
        }
        out.append(chunk({"tool_calls": [call]}))
    out.append(chunk({"content": ""}, answer.finish, usage=usage_object(answer)))
    return out


def sse(events: list[dict[str, Any]], prefix: str) -> list[bytes]:
    lines = [f"{prefix}{json.dumps(e, ensure_ascii=False)}\n\n" for e in events]
    return [line.encode() for line in [*lines, f"{prefix}[DONE]\n\n"]]


@st.composite
def stream_cases(draw: st.DrawFn) -> tuple[Answer, list[bytes]]:
    answer = draw(answers(sorted(FINISHES)))
    events = chunks(answer, draw(CUT_POINTS), draw(st.integers(0, 1)), draw(ARGUMENT_FORMS))
    raw = b"".join(sse(events, draw(st.sampled_from(["data: ", "data:"]))))
    return answer, cuts(raw, draw(CUT_POINTS))


_LONG = Answer(LONG_TEXT, "", [], "stop", Counts(7, 9))


@ROUNDTRIP
@given(stream_cases())
@example((_LONG, sse(chunks(_LONG, [], 0), "data: ")))  # one event past the line reader's limit
def test_stream_in_any_cut_reassembles_to_the_answer(
    bench: Bench, case: tuple[Answer, list[bytes]]
) -> None:
    answer, pieces = case
    adapter = provider(bench)
    bench.upstream.answer(Reply(pieces, content_type="text/event-stream"))

    payloads, usage = bench.stream(adapter, Call(HI, "glm-4.6", KEY))
    bench.upstream.answer(Reply([json.dumps(completion_body(answer, DUMPERS[1])).encode()]))
    whole = bench.call(lambda: adapter.chat(Call(HI, "glm-4.6", KEY)))
    reading, expected_usage = expected(answer)
    assert from_chunks(payloads) == reading == from_completion(whole.body)
    assert usage == expected_usage == whole.usage
