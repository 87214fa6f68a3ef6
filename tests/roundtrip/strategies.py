"""Hypothesis strategies for canonical (OpenAI Chat Completions) content.

Text is where translators break, so :data:`TEXTS` mixes arbitrary Unicode (no surrogates:
they cannot be UTF-8 encoded) with samples chosen to hurt: emoji with skin-tone and ZWJ
sequences, combining marks, CJK, line and paragraph separators, NUL, JSON- and SSE-looking
text. Tool names follow the pattern every family accepts (OpenAI's ``^[a-zA-Z0-9_-]{1,64}$``
and Gemini's "start with a letter or an underscore"); arguments are JSON objects of every
JSON type with 64-bit integers and finite floats. Usage counts include 0 and values far
beyond any real answer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

ROUNDTRIP = settings(
    max_examples=100,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
"""Fixed examples (CI reruns exactly what passed here) and no per-example deadline: each
example is a real HTTP exchange with the scripted upstream."""
CUT_POINTS = st.lists(st.integers(0, 10**6), max_size=6)
"""Where a text or a byte stream is cut (offsets modulo its length)."""

HURTFUL = (
    "",
    " ",
    "\n",
    "\r\n",
    "\n\n",
    "\t",
    "👩🏽‍💻",
    "🇫🇷🏳️‍🌈",
    "e\u0301",
    "\u0915\u094d\u0937",
    "日本語のテキスト",
    "\u2028\u2029\u0085",
    "\x00",
    "\\",
    '"',
    '{"a": 1}',
    '{"usage": {"prompt_tokens": 9}}',
    "[1, 2]",
    "null",
    "data: [DONE]",
    "event: error\ndata: {}\n\n",
    ": comment",
    "</s>",
)
LONG_TEXT = "👩🏽‍💻e\u0301 " * 40_000
"""~760 KB of multi-byte text: one event carrying it is longer than aiohttp's line reader
takes (``LineTooLong`` past twice the 256 KiB read buffer)."""
TEXTS = st.one_of(
    st.text(max_size=30),
    st.sampled_from(HURTFUL),
    st.lists(st.text(max_size=6) | st.sampled_from(HURTFUL), max_size=5).map("".join),
)
TOOL_NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,63}", fullmatch=True)
ID_STEMS = st.from_regex(r"[A-Za-z0-9_-]{0,30}", fullmatch=True)
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXTS
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXTS, inner, max_size=4),
    max_leaves=12,
)
ARGUMENTS = st.dictionaries(TEXTS, JSON_VALUES, max_size=5)
COUNTS = st.sampled_from([0, 1, 2**31, 10**12]) | st.integers(0, 10**9)


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Counts:
    """Usage in OpenAI semantics: cached ⊆ prompt, reasoning ⊆ completion."""

    prompt: int
    completion: int
    cached: int = 0
    reasoning: int = 0

    def canonical(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.prompt + self.completion,
            "prompt_tokens_details": {"cached_tokens": self.cached},
            "completion_tokens_details": {"reasoning_tokens": self.reasoning},
        }


@st.composite
def counts(draw: st.DrawFn, *, cached: bool = True, reasoning: bool = True) -> Counts:
    prompt, completion = draw(COUNTS), draw(COUNTS)
    return Counts(
        prompt,
        completion,
        draw(st.integers(0, prompt)) if cached else 0,
        draw(st.integers(0, completion)) if reasoning else 0,
    )


@st.composite
def tool_calls(
    draw: st.DrawFn, *, max_size: int = 3, ids: st.SearchStrategy[str] = ID_STEMS
) -> list[ToolCall]:
    """Calls with distinct ids (a generated stem plus the call's position)."""
    size = draw(st.integers(0, max_size))
    return [ToolCall(f"{draw(ids)}{n}", draw(TOOL_NAMES), draw(ARGUMENTS)) for n in range(size)]


@dataclass(frozen=True)
class Answer:
    """What an upstream says in one answer, before any wire shape is put on it."""

    text: str
    reasoning: str
    calls: list[ToolCall]
    finish: str  # the family's own native finish reason
    usage: Counts


@st.composite
def answers(draw: st.DrawFn, finishes: Sequence[str]) -> Answer:
    """Any text, reasoning, tool calls and usage, with one of the family's ``finishes``."""
    return Answer(
        draw(TEXTS),
        draw(TEXTS),
        draw(tool_calls()),
        draw(st.sampled_from(finishes)),
        draw(counts()),
    )


def short_answer(finish: str) -> Answer:
    """A one-word answer, for the tests that read only what reached the upstream."""
    return Answer("ok", "", [], finish, Counts(1, 1))


HI = {"model": "public", "messages": [{"role": "user", "content": "hi"}]}
"""The smallest canonical request, for the tests about the answer."""


def content(draw: st.DrawFn, text: st.SearchStrategy[str] = TEXTS) -> Any:
    """A message ``content``: a string, or a list of text parts."""
    if draw(st.booleans()):
        return draw(text)
    return [{"type": "text", "text": t} for t in draw(st.lists(text, min_size=1, max_size=3))]


def text_parts(value: Any) -> list[str]:
    """The texts of a ``content`` (string → one text; None → none)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [part["text"] for part in value]


@dataclass
class Conversation:
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)

    def body(self, **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"model": "public", "messages": self.messages, **extra}
        if self.tools:
            body["tools"] = self.tools
        return body


TOOL_DEFINITIONS = st.lists(
    st.builds(
        lambda name, description, properties: {
            "type": "function",
            "function": {
                "name": name,
                "description": description,
                "parameters": {
                    "type": "object",
                    "properties": {key: {"type": "string"} for key in properties},
                },
            },
        },
        TOOL_NAMES,
        TEXTS,
        st.lists(TEXTS, max_size=3),
    ),
    max_size=3,
    unique_by=lambda tool: tool["function"]["name"],
)


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _spaced(value: Any) -> str:
    return json.dumps(value)


DUMPERS = (_compact, _spaced)
"""How clients serialise arguments: compact UTF-8, or Python's default (ASCII escapes)."""


@st.composite
def conversations(
    draw: st.DrawFn,
    *,
    system_roles: tuple[str, ...] = ("system", "developer"),
    ids: st.SearchStrategy[str] = ID_STEMS,
    text: st.SearchStrategy[str] = TEXTS,
) -> Conversation:
    """A canonical multi-turn history: system prompts, then rounds of a user message, an
    assistant answer (text and/or tool calls) and one tool message per call, in the order
    OpenAI requires; the last message is a user message. Tool-call ids are unique."""
    messages: list[dict[str, Any]] = [
        {"role": draw(st.sampled_from(system_roles)), "content": content(draw, text)}
        for _ in range(draw(st.integers(0, 2)))
    ]
    for round_ in range(draw(st.integers(1, 3))):
        messages.append({"role": "user", "content": content(draw, text)})
        calls = [
            ToolCall(f"{c.id}r{round_}", c.name, c.arguments) for c in draw(tool_calls(ids=ids))
        ]
        said = content(draw, text)
        assistant: dict[str, Any] = {"role": "assistant", "content": said}
        if calls:
            if not text_parts(said) or not any(text_parts(said)):
                assistant["content"] = draw(st.sampled_from([None, ""]))
            assistant["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {
                        "name": c.name,
                        "arguments": draw(st.sampled_from(DUMPERS))(c.arguments),
                    },
                }
                for c in calls
            ]
        messages.append(assistant)
        messages.extend(
            {"role": "tool", "tool_call_id": c.id, "content": content(draw, text)} for c in calls
        )
    messages.append({"role": "user", "content": content(draw, text)})
    return Conversation(messages, draw(TOOL_DEFINITIONS))
