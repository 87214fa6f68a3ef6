"""The canonical chat.completion → an Anthropic Message; stop reasons, usage and error bodies
shared with the stream translator.

* Content order is Anthropic's: ``thinking`` (from ``reasoning_content``, ``signature: ""``
  — there is none to give), ``text`` (``content``, or else ``refusal``), then one
  ``tool_use`` per tool call with its id kept and its ``arguments`` string parsed back into
  ``input``. Arguments that are not a JSON object arrive as ``{"_raw_arguments": "…"}``
  rather than being lost.
* ``finish_reason`` → ``stop_reason``: stop → end_turn, length → max_tokens, tool_calls →
  tool_use, content_filter → refusal. A ``stop`` with tool calls (some vendors send it) is
  ``tool_use``; a ``stop`` after a refusal is ``refusal``. The stop text of a
  ``stop_sequence`` is not reported by OpenAI-wire vendors, so it stays ``end_turn``.
* Usage (Anthropic splits input, providers.md §3.3): ``input_tokens`` = prompt − cached,
  ``cache_read_input_tokens`` = cached, ``cache_creation_input_tokens`` = 0,
  ``output_tokens`` = completion (reasoning included), ``output_tokens_details.thinking_tokens``
  when known; the gateway's ``cost`` is kept as an extra field.
"""

from __future__ import annotations

from tokenyard.wire.json import JSONDecodeError, JSONObject, loads
from tokenyard.wire.usage import usage_from_openai

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",  # the SDK's GatewayTimeoutErrorObject
    529: "overloaded_error",
}
# OpenAI-shaped error types (tokenyard's own and vendors') that have an Anthropic name
OPENAI_ERROR_KINDS = {
    "insufficient_quota": "billing_error",
    "invalid_request_error": "invalid_request_error",
    "authentication_error": "authentication_error",
    "permission_error": "permission_error",
    "not_found_error": "not_found_error",
    "rate_limit_error": "rate_limit_error",
    "overloaded_error": "overloaded_error",
}


def anthropic_error(status: int, message: str) -> JSONObject:
    """The Anthropic error body for an HTTP status. Unlisted 4xx are
    ``invalid_request_error`` (as Anthropic does), other statuses ``api_error``."""
    kind = ERROR_TYPES.get(status)
    if kind is None:
        kind = "invalid_request_error" if 400 <= status < 500 else "api_error"
    return {"type": "error", "error": {"type": kind, "message": message}}


def error_kind(openai_type: object) -> str:
    """The Anthropic ``error.type`` for an OpenAI-shaped error's ``type``."""
    if isinstance(openai_type, str):
        return OPENAI_ERROR_KINDS.get(openai_type, "api_error")
    return "api_error"


def stop_reason(finish_reason: object, *, used_tools: bool, refused: bool) -> str:
    reason = "end_turn"
    if isinstance(finish_reason, str):
        reason = STOP_REASONS.get(finish_reason, "end_turn")
    if reason == "end_turn" and used_tools:
        return "tool_use"
    if reason == "end_turn" and refused:
        return "refusal"
    return reason


def anthropic_usage(usage: object) -> JSONObject:
    """OpenAI-shaped usage (with the gateway's ``cost``) → Anthropic usage."""
    source: JSONObject = usage if isinstance(usage, dict) else {}
    counts = usage_from_openai(source)
    out: JSONObject = {
        "input_tokens": counts.prompt_tokens - counts.cached_tokens,
        "output_tokens": counts.completion_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": counts.cached_tokens,
    }
    if counts.reasoning_tokens:
        out["output_tokens_details"] = {"thinking_tokens": counts.reasoning_tokens}
    cost = source.get("cost")
    if isinstance(cost, int | float) and not isinstance(cost, bool):
        out["cost"] = cost
    return out


def message_id(completion_id: object) -> str:
    """``msg_`` + the completion's id without its ``chatcmpl-`` prefix."""
    raw = completion_id if isinstance(completion_id, str) else ""
    if raw.startswith("msg_"):
        return raw
    return "msg_" + (raw.removeprefix("chatcmpl-") or "tokenyard")


def tool_input(arguments: object) -> JSONObject:
    """An OpenAI ``arguments`` string (or an object, from lenient vendors) → ``input``."""
    if isinstance(arguments, dict):
        return arguments
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        parsed = loads(arguments)
    except JSONDecodeError:
        parsed = None
    return parsed if isinstance(parsed, dict) else {"_raw_arguments": arguments}


def _text_of(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def _content(message: JSONObject) -> tuple[list[JSONObject], bool, bool]:
    """Blocks, whether tools were called, whether it is a refusal."""
    blocks: list[JSONObject] = []
    reasoning = message.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        blocks.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = _text_of(message.get("content"))
    refusal = message.get("refusal")
    refused = not text and isinstance(refusal, str) and bool(refusal)
    if refused:
        text = str(refusal)
    if text:
        blocks.append({"type": "text", "text": text})
    calls = message.get("tool_calls")
    for i, call in enumerate(calls if isinstance(calls, list) else []):
        if not isinstance(call, dict):
            continue
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        call_id, name = call.get("id"), function.get("name")
        blocks.append(
            {
                "type": "tool_use",
                "id": call_id if isinstance(call_id, str) and call_id else f"toolu_{i}",
                "name": name if isinstance(name, str) else "",
                "input": tool_input(function.get("arguments")),
            }
        )
    used_tools = any(b["type"] == "tool_use" for b in blocks)
    return blocks, used_tools, refused


def chat_to_message(completion: JSONObject, *, model: str) -> JSONObject:
    """Canonical chat.completion → Anthropic Message (first choice; ``n`` is never set by
    :func:`messages_to_chat`)."""
    choices = completion.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else {}
    choice = choice if isinstance(choice, dict) else {}
    message = choice.get("message")
    blocks, used_tools, refused = _content(message if isinstance(message, dict) else {})
    return {
        "id": message_id(completion.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": stop_reason(
            choice.get("finish_reason"), used_tools=used_tools, refused=refused
        ),
        "stop_sequence": None,
        "usage": anthropic_usage(completion.get("usage")),
    }
