"""Round trips through iFlytek Spark (``api: spark``), both transports.

* request, HTTP API: the messages keep their order, roles, texts (part lists joined), tool
  calls and tool-call ids; every system text lands in one leading system message (or, on
  models without system support, in front of the first user turn) — providers.md §9.2.
* request, WebSocket: only system/user/assistant texts exist there, so the property is that
  reading the frame back finds every text in order in a turn of the right role, each
  assistant tool call as a ``{"function_call": {name, arguments}}`` line with equal
  arguments, tool outputs in user turns, and strictly alternating roles (§9.1).
* answer and stream, both transports: content, X1 ``reasoning_content``, the one function
  call Spark can make (its id made up from the session id, the same in the stream and in
  the whole answer), the finish reason Spark never sends (``tool_calls`` after a call, else
  ``stop``) and exact usage; the HTTP stream is cut anywhere, the WebSocket answer is spread
  over frames at drawn points.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.roundtrip.canonical import Call as CanonicalCall
from tests.roundtrip.canonical import Reading, cuts, from_chunks, from_completion
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
    conversations,
    counts,
    short_answer,
    text_parts,
    tool_calls,
)
from tests.roundtrip.upstream import TIMEOUTS, Bench, Reply
from tests.upstreams.spark_wire import _problem as ws_problem
from tokenyard.errors import UpstreamRejected
from tokenyard.providers.base import Call
from tokenyard.providers.spark.models import MODELS
from tokenyard.providers.spark.provider import SparkProvider
from tokenyard.wire.usage import Usage

PASSWORD = "spark-api-password"
WS_KEY = "app1:key1:secret1"
MADE_UP = re.compile(r"call_[0-9a-f]{24}")
SPARK_MODELS = st.sampled_from(["lite", "generalv3.5", "x1"])


def provider(bench: Bench) -> SparkProvider:
    return SparkProvider(
        name="spark",
        base_url=bench.url + "/v1",
        ws_base_url=bench.url.replace("http://", "ws://"),
        client=bench.client,
        **TIMEOUTS,
        clock=lambda: 1_760_000_000.0,
    )


def run_call(bench: Bench, call: Call, stream: bool) -> tuple[Any, Usage | None]:
    adapter = provider(bench)

    if stream:
        return bench.stream(adapter, call)
    result = bench.call(lambda: adapter.chat(call))
    return result.body, result.usage


# -- request, HTTP ------------------------------------------------------------------------


def http_expected(conversation: Conversation, model: str) -> list[dict[str, Any]]:
    system = "\n\n".join(
        t
        for m in conversation.messages
        if m["role"] in ("system", "developer")
        if (t := "".join(text_parts(m["content"])))
    )
    turns = [
        {
            **{k: m[k] for k in ("role", "tool_calls", "tool_call_id") if k in m},
            "content": "".join(text_parts(m["content"])),
        }
        for m in conversation.messages
        if m["role"] not in ("system", "developer")
    ]
    if not system:
        return turns
    if MODELS[model].system:
        return [{"role": "system", "content": system}, *turns]
    first = next(t for t in turns if t["role"] == "user")
    first["content"] = f"{system}\n\n{first['content']}"
    return turns


def unsupported(conversation: Conversation, model: str) -> bool:
    return bool(conversation.tools) and not MODELS[model].functions


@ROUNDTRIP
@given(conversations(), SPARK_MODELS, st.booleans())
def test_http_request_carries_messages_and_tools(
    bench: Bench, conversation: Conversation, model: str, stream: bool
) -> None:
    if stream:
        bench.upstream.answer(
            Reply(http_sse(http_chunks(_OK, [], "sid1")), content_type="text/event-stream")
        )
    else:
        bench.upstream.answer(Reply([json.dumps(http_body(_OK, "sid1", DUMPERS[0])).encode()]))
    call = Call(body=conversation.body(), upstream_model=model, api_key=PASSWORD)
    if unsupported(conversation, model):
        with pytest.raises(UpstreamRejected):
            run_call(bench, call, stream)
        return
    run_call(bench, call, stream)
    recorded = bench.upstream.last
    assert recorded.path == "/v1/chat/completions"
    assert recorded.headers["authorization"] == f"Bearer {PASSWORD}"
    wire = recorded.body
    assert wire["model"] == model
    assert wire["messages"] == http_expected(conversation, model)
    assert wire.get("tools") == (conversation.tools or None)


# -- request, WebSocket -------------------------------------------------------------------


def ws_read_back(conversation: Conversation, text: list[dict[str, Any]], model: str) -> None:
    """Every canonical text, call and result is found, in order, in the frame's turns."""
    roles = [t["role"] for t in text]
    body = roles[1:] if roles[:1] == ["system"] else roles
    assert all(a != b for a, b in itertools.pairwise(body)), roles
    calls = [
        json.loads(line)["function_call"]
        for t in text
        if t["role"] == "assistant"
        for line in t["content"].split("\n")
        if line.startswith('{"function_call"')
    ]
    sent_calls = [c["function"] for m in conversation.messages for c in m.get("tool_calls", ())]
    assert [(c["name"], json.loads(c["arguments"])) for c in calls] == [
        (c["name"], json.loads(c["arguments"])) for c in sent_calls
    ]
    turn, at = 0, 0
    system_role = "system" if MODELS[model].system else "user"
    for m in conversation.messages:
        role = {"system": system_role, "developer": system_role, "assistant": "assistant"}.get(
            m["role"], "user"
        )
        for piece in text_parts(m["content"]):
            if not piece:
                continue
            while True:  # the next turn of this role that holds the text after the cursor
                if (
                    text[turn]["role"] == role
                    and (found := text[turn]["content"].find(piece, at)) >= 0
                ):
                    at = found + len(piece)
                    break
                turn, at = turn + 1, 0
                assert turn < len(text), (piece, text)
            if m["role"] in ("system", "developer") and system_role == "user":
                turn, at = 0, 0  # folded in front of the first user turn


@ROUNDTRIP
@given(conversations(), SPARK_MODELS)
def test_websocket_frame_carries_every_text_and_call(
    bench: Bench, conversation: Conversation, model: str
) -> None:
    bench.upstream.answer(Reply(ws_frames(_OK, "cht1", [])))
    call = Call(body=conversation.body(), upstream_model=model, api_key=WS_KEY)
    if unsupported(conversation, model):
        with pytest.raises(UpstreamRejected):
            run_call(bench, call, False)
        return
    run_call(bench, call, False)
    recorded = bench.upstream.last
    assert recorded.path == MODELS[model].ws_path
    frame = recorded.body
    assert ws_problem(frame, MODELS[model].domain, "app1") is None
    ws_read_back(conversation, frame["payload"]["message"]["text"], model)


# -- answers and streams ------------------------------------------------------------------


@st.composite
def answers(draw: st.DrawFn) -> Answer:
    """At most one call (Spark makes one per answer) and no id (Spark sends none)."""
    calls = draw(tool_calls(max_size=1))
    return Answer(draw(TEXTS), draw(TEXTS), calls, "", draw(counts(cached=False, reasoning=False)))


_OK = short_answer("")


def expected(answer: Answer) -> tuple[Reading, Usage]:
    reading = Reading(
        answer.text,
        answer.reasoning,
        tuple(CanonicalCall("", c.name, c.arguments) for c in answer.calls),
        "tool_calls" if answer.calls else "stop",
    )
    return reading, Usage(answer.usage.prompt, answer.usage.completion)


def same_modulo_made_up_ids(got: Reading, want: Reading) -> None:
    assert all(MADE_UP.fullmatch(c.id) for c in got.calls), got.calls
    blank = tuple(CanonicalCall("", c.name, c.arguments) for c in got.calls)
    assert Reading(got.content, got.reasoning, blank, got.finish_reason) == want


def spark_usage(answer: Answer) -> dict[str, int]:
    u = answer.usage
    return {
        "prompt_tokens": u.prompt,
        "completion_tokens": u.completion,
        "total_tokens": u.prompt + u.completion,
    }


def http_body(answer: Answer, sid: str, dump: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": answer.text}
    if answer.reasoning:
        message["reasoning_content"] = answer.reasoning
    if answer.calls:
        c = answer.calls[0]
        message["tool_calls"] = [
            {"type": "function", "function": {"name": c.name, "arguments": dump(c.arguments)}}
        ]
    return {
        "code": 0,
        "message": "Success",
        "sid": sid,
        "choices": [{"message": message, "index": 0}],
        "usage": spark_usage(answer),
    }


def http_chunks(answer: Answer, points: list[int], sid: str) -> list[dict[str, Any]]:
    head = {"code": 0, "message": "Success", "sid": sid, "id": sid, "created": 1_760_000_000}
    deltas: list[dict[str, Any]] = []
    for field, text in (("reasoning_content", answer.reasoning), ("content", answer.text)):
        if text:
            deltas += [{"role": "assistant", "content": "", field: p} for p in cuts(text, points)]
    for c in answer.calls:
        call = {
            "type": "function",
            "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
        }
        deltas.append({"role": "assistant", "content": "", "tool_calls": [call]})
    out = [{**head, "choices": [{"delta": d, "index": 0}]} for d in deltas]
    out.append(
        {
            **head,
            "choices": [{"delta": {"role": "assistant", "content": ""}, "index": 0}],
            "usage": spark_usage(answer),
        }
    )
    return out


def http_sse(chunks: list[dict[str, Any]]) -> list[bytes]:
    lines = [f"data:{json.dumps(c, ensure_ascii=False)}\n\n" for c in chunks]
    return [line.encode() for line in [*lines, "data:[DONE]\n\n"]]


def ws_frames(answer: Answer, sid: str, points: list[int]) -> list[bytes]:
    texts: list[dict[str, Any]] = []
    for field, text in (("reasoning_content", answer.reasoning), ("content", answer.text)):
        if text:
            texts += [
                {"content": "", "role": "assistant", "index": 0, field: p}
                for p in cuts(text, points)
            ]
    for c in answer.calls:
        call = {"name": c.name, "arguments": json.dumps(c.arguments, ensure_ascii=False)}
        texts.append({"content": "", "role": "assistant", "index": 0, "function_call": call})
    texts = texts or [{"content": "", "role": "assistant", "index": 0}]
    frames = []
    for seq, text in enumerate(texts):
        status = 2 if seq == len(texts) - 1 else 0 if seq == 0 else 1
        frame: dict[str, Any] = {
            "header": {"code": 0, "message": "Success", "sid": sid, "status": status},
            "payload": {"choices": {"status": status, "seq": seq, "text": [text]}},
        }
        if status == 2:
            frame["payload"]["usage"] = {"text": {"question_tokens": 1, **spark_usage(answer)}}
        frames.append(json.dumps(frame, ensure_ascii=False).encode())
    return frames


@ROUNDTRIP
@given(answers(), st.sampled_from(DUMPERS), CUT_POINTS, CUT_POINTS)
@example(Answer(LONG_TEXT, "", [], "", Counts(7, 9)), DUMPERS[0], [], [])  # a very long event
def test_http_answer_and_stream_agree_with_the_content(
    bench: Bench, answer: Answer, dump: Any, points: list[int], byte_points: list[int]
) -> None:
    call = Call(HI, "x1", PASSWORD)
    bench.upstream.answer(Reply([json.dumps(http_body(answer, "cha1", dump)).encode()]))
    whole, whole_usage = run_call(bench, call, False)
    raw = b"".join(http_sse(http_chunks(answer, points, "cha1")))
    bench.upstream.answer(Reply(cuts(raw, byte_points), content_type="text/event-stream"))
    payloads, usage = run_call(bench, call, True)
    reading, expected_usage = expected(answer)
    streamed = from_chunks(payloads)
    assert streamed == from_completion(whole)
    same_modulo_made_up_ids(streamed, reading)
    assert usage == whole_usage == expected_usage


@ROUNDTRIP
@given(answers(), CUT_POINTS)
def test_websocket_answer_and_stream_agree_with_the_content(
    bench: Bench, answer: Answer, points: list[int]
) -> None:
    call = Call(HI, "x1", WS_KEY)
    bench.upstream.answer(Reply(ws_frames(answer, "cht1", points)))
    whole, whole_usage = run_call(bench, call, False)
    bench.upstream.answer(Reply(ws_frames(answer, "cht1", points)))
    payloads, usage = run_call(bench, call, True)
    reading, expected_usage = expected(answer)
    streamed = from_chunks(payloads)
    assert streamed == from_completion(whole)
    same_modulo_made_up_ids(streamed, reading)
    assert usage == whole_usage == expected_usage
