"""Canonical (OpenAI) shapes built from what either Spark transport answered.

Spark gives no finish reason (providers.md §14.1): an answer that carried a function call
ends with ``tool_calls``; one whose completion used up the ``max_tokens`` we sent ends with
``length`` (a heuristic: Spark does not say it truncated); output moderation (10014) ends
with ``content_filter``; everything else with ``stop``. Spark sends at most one function
call per answer and no call id, so ids are synthesised from the session id (``sid``), which
keeps them the same in every delta and in the aggregated answer.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from tokenyard.immutable import immutable
from tokenyard.wire.json import JSONObject, dumps
from tokenyard.wire.tokens import estimate_prompt_tokens, estimate_text_tokens
from tokenyard.wire.usage import Usage

_FINISH = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


def completion_id(sid: str | None) -> str:
    return f"chatcmpl-{sid}" if sid else f"chatcmpl-{uuid.uuid4().hex}"


def tool_call_id(sid: str | None, index: int) -> str:
    """A stable id for the ``index``-th call of the answer with session id ``sid``."""
    seed = f"{sid}:{index}" if sid else uuid.uuid4().hex
    return "call_" + hashlib.sha256(seed.encode()).hexdigest()[:24]


def arguments_text(value: object) -> str:
    """Function-call arguments as the JSON string OpenAI clients expect."""
    if isinstance(value, str):
        return value
    if value is None:
        return "{}"
    return dumps(value).decode()


def as_object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def tool_calls_of(raw: object, sid: str | None) -> list[JSONObject]:
    """A message's ``tool_calls`` (array, or Spark's single object) in OpenAI's shape."""
    items = raw if isinstance(raw, list) else [raw] if isinstance(raw, dict) else []
    calls = []
    for position, item in enumerate(i for i in items if isinstance(i, dict)):
        function = as_object(item.get("function")) or item
        if not function.get("name"):
            continue
        call_id = item.get("id") or tool_call_id(sid, position)
        arguments = arguments_text(function.get("arguments"))
        calls.append(
            {
                "id": call_id,
                "type": "function",
                "function": {"name": function["name"], "arguments": arguments},
            }
        )
    return calls


def finish_reason(
    native: object, *, tool_calls: bool, completion_tokens: int, max_tokens: int | None
) -> str:
    mapped = _FINISH.get(native) if isinstance(native, str) else None
    if mapped is not None:
        return mapped
    if tool_calls:
        return "tool_calls"
    if max_tokens is not None and completion_tokens >= max_tokens:
        return "length"
    return "stop"


def estimated_usage(messages: object, output: str) -> Usage:
    """Usage when the upstream did not report it (wire/tokens.py's estimate)."""
    prompt = estimate_prompt_tokens(
        [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []
    )
    return Usage(prompt_tokens=prompt, completion_tokens=estimate_text_tokens(output))


def usage_of(raw: object) -> Usage | None:
    """Spark's usage object (WS ``payload.usage.text`` or HTTP ``usage``), if it has counts."""
    if not isinstance(raw, dict):
        return None
    prompt, completion = raw.get("prompt_tokens"), raw.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    return Usage(prompt_tokens=max(prompt, 0), completion_tokens=max(completion, 0))


@immutable
class ChunkWriter:
    """Writes ``chat.completion.chunk`` payloads that share one id, created and model."""

    id: str
    created: int
    model: str

    def chunk(self, delta: JSONObject, finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return dumps(
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [choice],
            }
        )

    def role(self) -> bytes:
        return self.chunk({"role": "assistant", "content": ""})

    def tool_call(self, index: int, call_id: str, name: str, arguments: str) -> bytes:
        call = {
            "index": index,
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }
        return self.chunk({"tool_calls": [call]})

    def finish(self, reason: str) -> bytes:
        return self.chunk({}, reason)


def completion(
    writer: ChunkWriter,
    *,
    content: str,
    reasoning: str,
    tool_calls: list[JSONObject],
    finish: str,
    usage: Usage,
) -> JSONObject:
    message: JSONObject = {
        "role": "assistant",
        "content": content if content or not tool_calls else None,
    }
    if reasoning:
        message["reasoning_content"] = reasoning
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": writer.id,
        "object": "chat.completion",
        "created": writer.created,
        "model": writer.model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": usage.to_openai(),
    }
