"""Round trips through the Gemini family (``api: gemini``).

* request: a canonical history becomes ``systemInstruction`` + ``contents`` the API accepts
  (the stand-in's checks, plus: no empty ``text`` part — the API answers 400 "required oneof
  field 'data' must have one initialized field"); reading it back gives every text, every
  ``functionCall`` (id unless tokenyard made it up, name, args) and every
  ``functionResponse`` (id, the *called* function's name, the tool output) in order.
* answer: a ``GenerateContentResponse`` with thought, text and ``functionCall`` parts reads
  back as reasoning, content and tool calls; ``finishReason`` maps per providers.md §14.1;
  usage re-sums tool-use prompt and thoughts exactly (§14.3).
* stream: the same answer as ``?alt=sse`` events (new parts per event, usage on events, the
  last complete), the bytes cut anywhere, reassembles to the non-streamed answer — made-up
  tool-call ids included.
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
from tests.roundtrip.canonical import Reading, cuts, from_chunks, from_completion, reading_of
from tests.roundtrip.strategies import (
    CUT_POINTS,
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
from tests.upstreams.gemini_wire import request_problem
from tokenyard.errors import UpstreamRejected
from tokenyard.providers.base import Call
from tokenyard.providers.gemini.provider import GeminiProvider
from tokenyard.providers.gemini.request import SIGNATURE_PLACEHOLDER, SYNTHETIC_ID
from tokenyard.wire.usage import Usage

KEY = "gm-roundtrip"
MODEL = "gemini-2.5-flash"
FILTERED = (
    "SAFETY",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT",
    "LANGUAGE",
    "RECITATION",
    "IMAGE_RECITATION",
)
FINISHES = ("STOP", "MAX_TOKENS", *FILTERED, "MALFORMED_FUNCTION_CALL", "OTHER")
MADE_UP = re.compile(r"call_[0-9a-f]{24}")


def provider(bench: Bench) -> GeminiProvider:
    return GeminiProvider(
        name="gemini",
        base_url=bench.url,
        client=bench.client,
        **TIMEOUTS,
        clock=lambda: 1_760_000_000.0,
    )


def finish_reason(native: str, calls: bool) -> str:
    """providers.md §14.1."""
    if native == "MAX_TOKENS":
        return "length"
    if native in FILTERED:
        return "content_filter"
    return "tool_calls" if calls and native == "STOP" else "stop"


# -- request ------------------------------------------------------------------------------

Atom = tuple[Any, ...]


def tool_output(text: str) -> Any:
    """A tool's output as ``functionResponse.response``: its JSON object, else a result."""
    try:
        value = json.loads(text) if text.lstrip().startswith("{") else None
    except ValueError:
        value = None
    return value if isinstance(value, dict) else {"result": text}


def canonical_atoms(conversation: Conversation) -> tuple[list[str], list[Atom]]:
    system: list[str] = []
    atoms: list[Atom] = []
    names: dict[str, str] = {}
    for m in conversation.messages:
        texts = [t for t in text_parts(m.get("content")) if t]
        if m["role"] in ("system", "developer"):
            system += texts
        elif m["role"] == "tool":
            sent = None if SYNTHETIC_ID.fullmatch(m["tool_call_id"]) else m["tool_call_id"]
            atoms.append(("result", sent, names[m["tool_call_id"]], tool_output("".join(texts))))
        else:
            atoms += [(m["role"], t) for t in texts]
            for c in m.get("tool_calls", ()):
                names[c["id"]] = c["function"]["name"]
                sent = None if SYNTHETIC_ID.fullmatch(c["id"]) else c["id"]
                arguments = json.loads(c["function"]["arguments"])
                atoms.append(("call", sent, c["function"]["name"], arguments))
    return system, atoms


def wire_atoms(wire: dict[str, Any]) -> tuple[list[str], list[Atom]]:
    system = [part["text"] for part in wire.get("systemInstruction", {}).get("parts", ())]
    atoms: list[Atom] = []
    for content in wire["contents"]:
        role = {"user": "user", "model": "assistant"}[content["role"]]
        first_call = True
        for part in content["parts"]:
            if "text" in part:
                assert part["text"], "an empty text part is a 400"
                atoms.append((role, part["text"]))
            elif "functionCall" in part:
                call = part["functionCall"]
                if first_call:  # Gemini 3 wants the step's first call signed
                    assert part["thoughtSignature"] == SIGNATURE_PLACEHOLDER
                first_call = False
                atoms.append(("call", call.get("id"), call["name"], call["args"]))
            else:
                answer = part["functionResponse"]
                atoms.append(("result", answer.get("id"), answer["name"], answer["response"]))
    return system, atoms


def declarations(conversation: Conversation) -> list[dict[str, Any]]:
    if not conversation.tools:
        return []
    return [
        {
            "functionDeclarations": [
                {
                    "name": t["function"]["name"],
                    "description": t["function"]["description"],
                    "parametersJsonSchema": t["function"]["parameters"],
                }
                for t in conversation.tools
            ]
        }
    ]


@ROUNDTRIP
@given(conversations())
@example(
    Conversation(
        [
            {"role": "user", "content": ""},
            {"role": "assistant", "content": "a"},
            {
                "role": "user",
                "content": [{"type": "text", "text": ""}, {"type": "text", "text": "b"}],
            },
        ]
    )
)
def test_request_carries_every_text_call_and_response(
    bench: Bench, conversation: Conversation
) -> None:
    bench.upstream.answer(Reply([json.dumps(response_body(_OK, "r1")).encode()]))
    system, atoms = canonical_atoms(conversation)
    call = Call(body=conversation.body(), upstream_model=MODEL, api_key=KEY)
    if not atoms:
        with pytest.raises(UpstreamRejected):
            bench.call(lambda: provider(bench).chat(call))
        return
    bench.call(lambda: provider(bench).chat(call))
    recorded = bench.upstream.last
    assert recorded.path == f"/v1beta/models/{MODEL}:generateContent"
    assert recorded.headers["x-goog-api-key"] == KEY
    assert request_problem(recorded.body, MODEL) is None
    assert wire_atoms(recorded.body) == (system, atoms)
    assert recorded.body.get("tools", []) == declarations(conversation)


# -- answer -------------------------------------------------------------------------------


@st.composite
def answers(draw: st.DrawFn) -> tuple[Answer, int]:
    """(answer, toolUsePromptTokenCount). Counts: prompt = promptTokenCount, completion =
    candidatesTokenCount, reasoning = thoughtsTokenCount, cached ⊆ prompt. A call id of ""
    stands for a call Gemini sent without one."""
    calls = [  # an empty stem makes an id of digits only: sent as a call without id
        ToolCall("" if c.id.isdigit() else c.id, c.name, c.arguments)
        for c in draw(tool_calls(ids=st.sampled_from(["", "fc-"])))
    ]
    prompt, output, thoughts = (draw(st.integers(0, 10**9)) for _ in range(3))
    usage = Counts(prompt, output, draw(st.integers(0, prompt)), thoughts)
    return (
        Answer(draw(TEXTS), draw(TEXTS), calls, draw(st.sampled_from(FINISHES)), usage),
        draw(st.integers(0, 10**6)),
    )


_OK = short_answer("STOP")


def usage_metadata(answer: Answer, tool_prompt: int) -> dict[str, Any]:
    u = answer.usage
    return {
        "promptTokenCount": u.prompt,
        "candidatesTokenCount": u.completion,
        "thoughtsTokenCount": u.reasoning,
        "cachedContentTokenCount": u.cached,
        "toolUsePromptTokenCount": tool_prompt,
        "totalTokenCount": u.prompt + u.completion + u.reasoning + tool_prompt,
    }


def call_part(c: ToolCall) -> dict[str, Any]:
    payload: dict[str, Any] = {"name": c.name, "args": c.arguments}
    if c.id:
        payload["id"] = c.id
    return {"functionCall": payload}


def response_body(answer: Answer, response_id: str, tool_prompt: int = 0) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if answer.reasoning:
        parts.append({"text": answer.reasoning, "thought": True})
    if answer.text:
        parts.append({"text": answer.text})
    parts += [call_part(c) for c in answer.calls]
    return {
        "candidates": [
            {
                "content": {"role": "model", "parts": parts},
                "finishReason": answer.finish,
                "index": 0,
            }
        ],
        "usageMetadata": usage_metadata(answer, tool_prompt),
        "modelVersion": MODEL,
        "responseId": response_id,
    }


def expected(answer: Answer, tool_prompt: int) -> tuple[Reading, Usage]:
    u = answer.usage
    reading = reading_of(answer, finish_reason(answer.finish, bool(answer.calls)))
    return reading, Usage(u.prompt + tool_prompt, u.completion + u.reasoning, u.cached, u.reasoning)


def same_modulo_made_up_ids(got: Reading, want: Reading) -> None:
    """Equal, where a call Gemini sent without an id got a made-up one (distinct per call)."""
    made_up = [g.id for g, w in zip(got.calls, want.calls, strict=True) if not w.id]
    assert all(MADE_UP.fullmatch(i) for i in made_up), made_up
    assert len(set(made_up)) == len(made_up)
    ids = tuple(
        CanonicalCall(g.id if not w.id else w.id, w.name, w.arguments)
        for g, w in zip(got.calls, want.calls, strict=True)
    )
    assert got == Reading(want.content, want.reasoning, ids, want.finish_reason)


@ROUNDTRIP
@given(answers(), st.text(alphabet="abcdef0123456789", max_size=12))
def test_answer_keeps_text_thoughts_calls_and_usage(
    bench: Bench, case: tuple[Answer, int], response_id: str
) -> None:
    answer, tool_prompt = case
    bench.upstream.answer(
        Reply([json.dumps(response_body(answer, response_id, tool_prompt)).encode()])
    )
    result = bench.call(lambda: provider(bench).chat(Call(HI, MODEL, KEY)))
    reading, usage = expected(answer, tool_prompt)
    same_modulo_made_up_ids(from_completion(result.body), reading)
    assert result.usage == usage


# -- stream -------------------------------------------------------------------------------


@st.composite
def stream_cases(draw: st.DrawFn) -> tuple[Answer, int, list[bytes]]:
    """The answer as SSE events: text and thoughts cut at drawn points, one part per event
    or several, calls whole, partial usage on early events and the full one last."""
    answer, tool_prompt = draw(answers())
    parts: list[dict[str, Any]] = []
    if answer.reasoning:
        parts += [{"text": p, "thought": True} for p in cuts(answer.reasoning, draw(CUT_POINTS))]
    if answer.text:
        parts += [{"text": p} for p in cuts(answer.text, draw(CUT_POINTS))]
    parts += [call_part(c) for c in answer.calls]
    bounds = sorted({p % (len(parts) + 1) for p in draw(CUT_POINTS)} | {0, len(parts)})
    groups = [parts[a:b] for a, b in itertools.pairwise(bounds)]
    events: list[dict[str, Any]] = []
    partial = {"promptTokenCount": answer.usage.prompt}
    for group in groups:
        candidate = {"content": {"role": "model", "parts": group}, "index": 0}
        events.append(
            {
                "candidates": [candidate],
                "usageMetadata": partial,
                "modelVersion": MODEL,
                "responseId": "rs1",
            }
        )
    last = {"content": {"role": "model", "parts": []}, "finishReason": answer.finish, "index": 0}
    events.append(
        {
            "candidates": [last],
            "usageMetadata": usage_metadata(answer, tool_prompt),
            "modelVersion": MODEL,
            "responseId": "rs1",
        }
    )
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    raw = "".join(f"data: {json.dumps(e, ensure_ascii=False)}{newline}{newline}" for e in events)
    return answer, tool_prompt, cuts(raw.encode(), draw(CUT_POINTS))


_LONG = Answer(LONG_TEXT, "", [], "STOP", Counts(7, 9))


@ROUNDTRIP
@given(stream_cases())
@example(
    (
        _LONG,
        0,
        [  # one event longer than aiohttp's line reader takes
            f"data: {json.dumps(response_body(_LONG, 'rs1'), ensure_ascii=False)}\r\n\r\n".encode()
        ],
    )
)
def test_stream_in_any_cut_reassembles_to_the_answer(
    bench: Bench, case: tuple[Answer, int, list[bytes]]
) -> None:
    answer, tool_prompt, pieces = case
    adapter = provider(bench)
    bench.upstream.answer(Reply(pieces, content_type="text/event-stream"))

    payloads, usage = bench.stream(adapter, Call(HI, MODEL, KEY))
    assert bench.upstream.last.query == {"alt": "sse"}
    bench.upstream.answer(Reply([json.dumps(response_body(answer, "rs1", tool_prompt)).encode()]))
    whole = bench.call(lambda: adapter.chat(Call(HI, MODEL, KEY)))
    reading, expected_usage = expected(answer, tool_prompt)
    streamed = from_chunks(payloads)
    assert streamed == from_completion(whole.body)
    same_modulo_made_up_ids(streamed, reading)
    assert usage == expected_usage == whole.usage
