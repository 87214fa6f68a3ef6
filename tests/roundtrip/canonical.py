"""The canonical answer a family's translation is judged on, read from a ``chat.completion``
or folded from ``chat.completion.chunk`` payloads.

Folding also checks the stream rules clients depend on (providers.md §2.4): one completion
id, choice 0 only, the first delta of each tool call carries ``id``, ``type`` and
``function.name`` and later ones only ``function.arguments`` fragments, and exactly one
``finish_reason``, on the last chunk.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any, TypeVar

from tests.roundtrip.strategies import Answer, Counts
from tokenyard.wire.usage import Usage

S = TypeVar("S", str, bytes)


@dataclass(frozen=True)
class Call:
    id: str
    name: str
    arguments: Any  # parsed: equal JSON, whatever the spacing


@dataclass(frozen=True)
class Reading:
    content: str
    reasoning: str
    calls: tuple[Call, ...]
    finish_reason: str


def reading_of(answer: Answer, finish_reason: str) -> Reading:
    """What ``answer`` must read as once translated, its finish reason as the family maps it."""
    return Reading(
        answer.text,
        answer.reasoning,
        tuple(Call(c.id, c.name, c.arguments) for c in answer.calls),
        finish_reason,
    )


def usage_of(counts: Counts) -> Usage:
    """The usage of counts that already have OpenAI semantics."""
    return Usage(counts.prompt, counts.completion, counts.cached, counts.reasoning)


def from_completion(body: dict[str, Any]) -> Reading:
    assert body["object"] == "chat.completion"
    [choice] = body["choices"]
    message = choice["message"]
    assert message["role"] == "assistant"
    calls = tuple(
        Call(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
        for c in message.get("tool_calls") or ()
    )
    for raw in message.get("tool_calls") or ():
        assert raw["type"] == "function"
    return Reading(
        message.get("content") or "",
        message.get("reasoning_content") or "",
        calls,
        choice["finish_reason"],
    )


def from_chunks(payloads: list[bytes]) -> Reading:
    chunks = [json.loads(p) for p in payloads]
    assert chunks, "the stream sent nothing"
    ids = {c["id"] for c in chunks}
    assert len(ids) == 1, ids
    content: list[str] = []
    reasoning: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    finishes: list[tuple[int, str]] = []
    for position, chunk in enumerate(chunks):
        assert chunk["object"] == "chat.completion.chunk"
        assert "usage" not in chunk or chunk["usage"] is None
        [choice] = chunk["choices"]
        assert choice["index"] == 0
        delta = choice["delta"]
        content.append(delta.get("content") or "")
        reasoning.append(delta.get("reasoning_content") or "")
        for call in delta.get("tool_calls") or ():
            function = call.get("function") or {}
            if call["index"] not in calls:
                assert call["id"] and call["type"] == "function" and function["name"], call
                calls[call["index"]] = {
                    "id": call["id"],
                    "name": function["name"],
                    "arguments": [function.get("arguments") or ""],
                }
            else:
                assert "id" not in call and "name" not in function, call
                calls[call["index"]]["arguments"].append(function.get("arguments") or "")
        if choice["finish_reason"] is not None:
            finishes.append((position, choice["finish_reason"]))
    assert len(finishes) == 1 and finishes[0][0] == len(chunks) - 1, finishes
    assert sorted(calls) == list(range(len(calls)))
    return Reading(
        "".join(content),
        "".join(reasoning),
        tuple(
            Call(c["id"], c["name"], json.loads("".join(c["arguments"])))
            for _, c in sorted(calls.items())
        ),
        finishes[0][1],
    )


def cuts(data: S, points: list[int]) -> list[S]:
    """``data`` (bytes or text) split at the given offsets (modulo its length, any order);
    empty data is one empty piece."""
    if not data:
        return [data]
    at = sorted({p % len(data) for p in points} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(at)]
