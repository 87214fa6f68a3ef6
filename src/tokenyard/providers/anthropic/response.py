"""An Anthropic ``Message`` → a canonical ``chat.completion``; usage and stop reasons.

Wire facts (anthropic-sdk-python ``types/message.py``, ``usage.py``,
``message_delta_usage.py``, ``output_tokens_details.py``, ``stop_reason.py``;
providers.md §3.3, §14.1, §14.3):

* ``content`` blocks: ``text`` → ``message.content`` (joined), ``thinking`` →
  ``message.reasoning_content``, ``tool_use {id, name, input}`` → ``tool_calls`` with
  ``arguments`` as a JSON string. ``redacted_thinking`` and server-tool blocks have no
  OpenAI form and are left out.
* ``stop_reason``: ``end_turn``/``stop_sequence``/``pause_turn`` → ``stop``,
  ``max_tokens``/``model_context_window_exceeded`` → ``length``, ``tool_use`` →
  ``tool_calls``, ``refusal`` → ``content_filter``.
* ``usage.input_tokens`` counts only the uncached input: ``prompt_tokens = input_tokens +
  cache_creation_input_tokens + cache_read_input_tokens``, ``cached_tokens =
  cache_read_input_tokens``, ``completion_tokens = output_tokens`` (which includes
  thinking), ``reasoning_tokens = output_tokens_details.thinking_tokens`` when reported.
"""

from __future__ import annotations

from collections.abc import Mapping

from tokenyard.wire.json import JSONObject, dumps
from tokenyard.wire.usage import Usage

FINISH_REASONS: Mapping[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def finish_reason(stop_reason: object) -> str:
    """OpenAI's ``finish_reason`` for an Anthropic ``stop_reason`` (unknown ones: stop)."""
    return FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def usage_from_anthropic(usage: JSONObject) -> Usage:
    cache_read = _int(usage.get("cache_read_input_tokens"))
    prompt = (
        _int(usage.get("input_tokens"))
        + _int(usage.get("cache_creation_input_tokens"))
        + cache_read
    )
    completion = _int(usage.get("output_tokens"))
    details = usage.get("output_tokens_details")
    thinking = _int(details.get("thinking_tokens")) if isinstance(details, dict) else 0
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=cache_read,
        reasoning_tokens=min(thinking, completion),
    )


def tool_call(block: JSONObject) -> JSONObject:
    arguments = block.get("input")
    return {
        "id": block.get("id"),
        "type": "function",
        "function": {
            "name": block.get("name"),
            "arguments": dumps(arguments if arguments is not None else {}).decode(),
        },
    }


def to_chat_completion(doc: JSONObject, created: int) -> tuple[JSONObject, Usage]:
    """The canonical ``chat.completion`` for an Anthropic ``Message`` and its usage."""
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[JSONObject] = []
    for block in doc.get("content") or ():
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            thoughts.append(block["thinking"])
        elif kind == "tool_use":
            calls.append(tool_call(block))
    message: JSONObject = {
        "role": "assistant",
        "content": "".join(texts) if texts or not calls else None,
    }
    if thoughts:
        message["reasoning_content"] = "".join(thoughts)
    if calls:
        message["tool_calls"] = calls
    details = doc.get("stop_details")
    if doc.get("stop_reason") == "refusal" and isinstance(details, dict):
        explanation = details.get("explanation")
        message["refusal"] = explanation if isinstance(explanation, str) else None
    raw_usage = doc.get("usage")
    usage = usage_from_anthropic(raw_usage) if isinstance(raw_usage, dict) else Usage()
    body: JSONObject = {
        "id": doc.get("id"),
        "object": "chat.completion",
        "created": created,
        "model": doc.get("model"),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish_reason(doc.get("stop_reason")),
                "logprobs": None,
            }
        ],
        "usage": usage.to_openai(),
    }
    return body, usage
