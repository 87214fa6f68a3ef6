"""Round trips through the OpenAI wire family (``api: openai``) for every vendor spec.

The canonical form is this family's wire form, so the properties are strict: the request
reaches the upstream as the client wrote it except for the vendor's documented changes
(model name, ``stream``/``stream_options``, ``developer`` → ``system``), and an answer —
whole or streamed in any cut, reasoning under the vendor's own field name, usage where the
vendor puts it — comes back with the same text, reasoning, tool calls, finish reason and
exact usage.
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
    ToolCall,
    answers,
    conversations,
    short_answer,
)
from tests.roundtrip.upstream import TIMEOUTS, Bench, Reply
from tokenyard.providers.base import Call
from tokenyard.providers.openai import OpenAIProvider
from tokenyard.providers.vendors import VENDORS, VendorSpec
from tokenyard.wire.usage import Usage

KEY = "sk-roundtrip"
FINISHES = ("stop", "length", "tool_calls", "content_filter")


def provider(bench: Bench, vendor: VendorSpec) -> OpenAIProvider:
    return OpenAIProvider(
        name="compat",
        base_url=bench.url + "/v1",
        vendor=vendor,
        client=bench.client,
        **TIMEOUTS,
    )


VENDOR_SPECS = st.sampled_from(sorted(VENDORS.values(), key=lambda v: v.name))


def usage_object(answer: Answer, vendor: VendorSpec) -> dict[str, Any]:
    usage = answer.usage.canonical()
    if vendor.cached_tokens_field is not None:  # DeepSeek: its own field, no details
        del usage["prompt_tokens_details"]
        usage[vendor.cached_tokens_field] = answer.usage.cached
    return usage


def expected(answer: Answer) -> tuple[Reading, Usage]:
    return reading_of(answer, answer.finish), usage_of(answer.usage)


# -- request ------------------------------------------------------------------------------


def expected_request(conversation: Conversation, vendor: VendorSpec, stream: bool) -> Any:
    body = copy.deepcopy(conversation.body())
    body["model"] = "up-model"
    if not vendor.developer_role:
        for message in body["messages"]:
            if message["role"] == "developer":
                message["role"] = "system"
    if stream:
        body["stream"] = True
        if vendor.stream_usage_option:
            body["stream_options"] = {"include_usage": True}
    return body


@ROUNDTRIP
@given(conversations(), VENDOR_SPECS, st.booleans())
def test_request_reaches_the_upstream_as_written(
    bench: Bench, conversation: Conversation, vendor: VendorSpec, stream: bool
) -> None:
    wire = completion_body(short_answer("stop"), vendor, DUMPERS[0])
    if stream:
        chunks = [wire_chunk({}, "stop")]
        bench.upstream.answer(Reply([sse(chunks, "data: ", "\n", compact=True)]))
    else:
        bench.upstream.answer(Reply([json.dumps(wire).encode()]))
    call = Call(body=conversation.body(), upstream_model="up-model", api_key=KEY)
    adapter = provider(bench, vendor)

    bench.send(adapter, call, stream=stream)
    recorded = bench.upstream.last
    assert recorded.path == "/v1/chat/completions"
    assert recorded.headers["authorization"] == f"Bearer {KEY}"
    assert recorded.body == expected_request(conversation, vendor, stream)


# -- response -----------------------------------------------------------------------------


def completion_body(answer: Answer, vendor: VendorSpec, dump: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": answer.text or (None if answer.calls else ""),
    }
    if answer.reasoning:
        message[vendor.reasoning_field] = answer.reasoning
    if answer.calls:
        message["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": dump(c.arguments)},
            }
            for c in answer.calls
        ]
    return {
        "id": "chatcmpl-roundtrip",
        "object": "chat.completion",
        "created": 1_760_000_000,
        "model": "up-model",
        "choices": [
            {"index": 0, "message": message, "finish_reason": answer.finish, "logprobs": None}
        ],
        "usage": usage_object(answer, vendor),
    }


@ROUNDTRIP
@given(answers(FINISHES), VENDOR_SPECS, st.sampled_from(DUMPERS))
def test_answer_keeps_text_reasoning_tool_calls_and_usage(
    bench: Bench, answer: Answer, vendor: VendorSpec, dump: Any
) -> None:
    bench.upstream.answer(Reply([json.dumps(completion_body(answer, vendor, dump)).encode()]))
    result = bench.call(lambda: provider(bench, vendor).chat(Call(HI, "up-model", KEY)))
    reading, usage = expected(answer)
    assert from_completion(result.body) == reading
    assert result.usage == usage
    assert result.body["usage"]["prompt_tokens"] == usage.prompt_tokens


# -- stream -------------------------------------------------------------------------------


def wire_chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-roundtrip",
        "object": "chat.completion.chunk",
        "created": 1_760_000_000,
        "model": "up-model",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        **extra,
    }


def sse(chunks: list[dict[str, Any]], prefix: str, newline: str, compact: bool) -> bytes:
    separators = (",", ":") if compact else (", ", ": ")
    events = [
        f"{prefix}{json.dumps(c, ensure_ascii=False, separators=separators)}{newline}{newline}"
        for c in chunks
    ]
    events.append(f"{prefix}[DONE]{newline}{newline}")
    return "".join(events).encode()


@st.composite
def streamed(draw: st.DrawFn, answer: Answer, vendor: VendorSpec) -> list[dict[str, Any]]:
    """The answer as OpenAI-wire chunks, each text and argument string cut at drawn points;
    usage where the vendor puts it."""
    chunks = [wire_chunk({"role": "assistant", "content": ""})]
    for field, text in ((vendor.reasoning_field, answer.reasoning), ("content", answer.text)):
        if text:
            chunks += [wire_chunk({field: piece}) for piece in cuts(text, draw(CUT_POINTS))]
    dump = draw(st.sampled_from(DUMPERS))
    for index, c in enumerate(answer.calls):
        first, *rest = cuts(dump(c.arguments), draw(CUT_POINTS))
        opening = {
            "index": index,
            "id": c.id,
            "type": "function",
            "function": {"name": c.name, "arguments": first},
        }
        chunks.append(wire_chunk({"tool_calls": [opening]}))
        chunks += [
            wire_chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            for piece in rest
        ]
    return chunks + finish_chunks(answer, vendor)


def finish_chunks(answer: Answer, vendor: VendorSpec) -> list[dict[str, Any]]:
    usage = usage_object(answer, vendor)
    if vendor.name == "moonshot":  # Moonshot: usage inside the finishing choice
        finish = wire_chunk({}, answer.finish)
        finish["choices"][0]["usage"] = usage
        return [finish]
    if not vendor.stream_usage_option:  # Mistral: usage on the last chunk, unasked
        return [wire_chunk({}, answer.finish, usage=usage)]
    return [wire_chunk({}, answer.finish), {**wire_chunk({}), "choices": [], "usage": usage}]


Case = tuple[Answer, VendorSpec, list[bytes]]


@st.composite
def stream_cases(draw: st.DrawFn) -> Case:
    """(answer, vendor, the stream's bytes cut at drawn points), framed with or without the
    space after ``data:``, LF or CR LF, compact or spaced JSON."""
    answer, vendor = draw(answers(FINISHES)), draw(VENDOR_SPECS)
    raw = sse(
        draw(streamed(answer, vendor)),
        draw(st.sampled_from(["data: ", "data:"])),
        draw(st.sampled_from(["\n", "\r\n"])),
        draw(st.booleans()),
    )
    return answer, vendor, cuts(raw, draw(CUT_POINTS))


_BIG = Answer(
    "", "", [ToolCall("call_big", "write_file", {"text": LONG_TEXT})], "tool_calls", Counts(3, 9)
)
_BIG_OPENING = {
    "index": 0,
    "id": "call_big",
    "type": "function",
    "function": {"name": "write_file", "arguments": json.dumps({"text": LONG_TEXT})},
}


@ROUNDTRIP
@given(stream_cases())
@example(  # a whole tool call in one event longer than aiohttp's line reader takes
    (
        _BIG,
        VENDORS["generic"],
        [
            sse(
                [
                    wire_chunk({"tool_calls": [_BIG_OPENING]}),
                    *finish_chunks(_BIG, VENDORS["generic"]),
                ],
                "data: ",
                "\n",
                compact=False,
            )
        ],
    )
)
def test_stream_in_any_cut_reassembles_to_the_answer(bench: Bench, case: Case) -> None:
    answer, vendor, pieces = case
    bench.upstream.answer(Reply(pieces, content_type="text/event-stream"))
    adapter = provider(bench, vendor)

    payloads, usage = bench.stream(adapter, Call(HI, "up-model", KEY))
    reading, expected_usage = expected(answer)
    assert from_chunks(payloads) == reading
    assert usage == expected_usage
