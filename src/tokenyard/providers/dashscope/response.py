"""DashScope native answers → canonical (OpenAI) answers.

Wire facts (providers.md §6.4, §14.1, §14.3; SDK ``api_entities/dashscope_response.py``,
``utils/message_utils.py``):

* ``{"output": {"choices": [{"finish_reason", "message": {role, content,
  reasoning_content, tool_calls}}]}, "usage": {...}, "request_id"}`` — no id, model or
  created: the id is ``chatcmpl-<request_id>``, the model the upstream model name.
  Multimodal answers carry ``content`` as a list of ``{"text": ...}`` items. Legacy
  ``result_format: text`` answers (``output.text`` + ``output.finish_reason``) are read too.
* ``finish_reason``: ``stop``, ``length``, ``tool_calls``; the **string** ``"null"`` means
  "not finished". ``stop`` after tool calls is reported as ``tool_calls``.
* Usage: ``input_tokens`` (includes cache hits: ``prompt_tokens_details.cached_tokens``),
  ``output_tokens`` (includes ``output_tokens_details.reasoning_tokens`` — that field's
  presence is unverified, read when there).
* Embeddings: ``output.embeddings[{text_index, embedding}]``, ``usage.total_tokens``.
"""

from __future__ import annotations

from typing import Any

from tokenyard.errors import UpstreamError
from tokenyard.wire.embeddings import float32_base64
from tokenyard.wire.json import JSONObject
from tokenyard.wire.usage import Usage

_FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls"}


def finish_reason(native: object, tool_calls: bool) -> str | None:
    if native is None or native in ("", "null"):
        return None
    mapped = _FINISH.get(str(native))
    if mapped is None:
        lowered = str(native).lower()
        filtered = "filter" in lowered or "inspection" in lowered or "sensitive" in lowered
        mapped = "content_filter" if filtered else "stop"
    return "tool_calls" if mapped == "stop" and tool_calls else mapped


def _int(value: object) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def _detail(raw: JSONObject, field: str, key: str) -> int:
    details = raw.get(field)
    return _int(details.get(key)) if isinstance(details, dict) else 0


def usage_parts(raw: object) -> tuple[int, int, int, int]:
    """(input, output, cached, reasoning) of a native usage object."""
    if not isinstance(raw, dict):
        return 0, 0, 0, 0
    cached = _detail(raw, "prompt_tokens_details", "cached_tokens") or _detail(
        raw, "input_tokens_details", "cached_tokens"
    )
    reasoning = _detail(raw, "output_tokens_details", "reasoning_tokens")
    return _int(raw.get("input_tokens")), _int(raw.get("output_tokens")), cached, reasoning


def usage_of(parts: list[tuple[int, int, int, int]]) -> Usage:
    """One Usage from per-choice usages (n > 1 streams report each choice apart)."""
    prompt = max((p[0] for p in parts), default=0)
    completion = sum(p[1] for p in parts)
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=min(max((p[2] for p in parts), default=0), prompt),
        reasoning_tokens=min(sum(p[3] for p in parts), completion),
    )


def content_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(item.get("text", "")) for item in content if isinstance(item, dict))
    return ""


def choices_of(output: object) -> list[Any]:
    """The choices of an ``output`` object, legacy ``text`` answers included."""
    if not isinstance(output, dict):
        return []
    choices = output.get("choices")
    if isinstance(choices, list):
        return choices
    if "text" in output:
        message = {"role": "assistant", "content": output.get("text") or ""}
        return [{"message": message, "finish_reason": output.get("finish_reason")}]
    return []


def _tool_calls(raw: object) -> list[JSONObject]:
    calls: list[JSONObject] = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict):
            continue
        function: Any = item.get("function")
        function = function if isinstance(function, dict) else {}
        calls.append(
            {
                "id": item.get("id") or f"call_{len(calls)}",
                "type": "function",
                "function": {
                    "name": function.get("name", ""),
                    "arguments": function.get("arguments") or "",
                },
            }
        )
    return calls


def chat_body(doc: JSONObject, model: str, created: int) -> tuple[JSONObject, Usage]:
    choices: list[JSONObject] = []
    for position, item in enumerate(choices_of(doc.get("output"))):
        raw: JSONObject = item if isinstance(item, dict) else {}
        message: Any = raw.get("message")
        message = message if isinstance(message, dict) else {}
        out: JSONObject = {"role": "assistant", "content": content_text(message.get("content"))}
        if message.get("reasoning_content"):
            out["reasoning_content"] = message["reasoning_content"]
        calls = _tool_calls(message.get("tool_calls"))
        if calls:
            out["tool_calls"] = calls
        index = raw.get("index")
        finish = finish_reason(raw.get("finish_reason"), bool(calls))
        choices.append(
            {
                "index": index if isinstance(index, int) else position,
                "message": out,
                "finish_reason": finish or "stop",
                "logprobs": raw.get("logprobs"),
            }
        )
    usage = usage_of([usage_parts(doc.get("usage"))])
    body = {
        "id": f"chatcmpl-{doc.get('request_id') or 'dashscope'}",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": usage.to_openai(),
    }
    return body, usage


def collect(chunks: list[JSONObject], usage: Usage) -> JSONObject:
    """A ``chat.completion`` folded from canonical stream chunks (a non-streamed chat that
    had to be streamed upstream)."""
    head = chunks[0] if chunks else {"id": "chatcmpl-dashscope", "created": 0, "model": ""}
    choices: dict[int, JSONObject] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            slot = choices.setdefault(
                choice["index"],
                {"content": "", "reasoning_content": "", "tool_calls": {}, "finish": None},
            )
            delta = choice["delta"]
            slot["content"] += delta.get("content", "")
            slot["reasoning_content"] += delta.get("reasoning_content", "")
            for call in delta.get("tool_calls", ()):
                known = slot["tool_calls"].get(call["index"])
                if known is None:
                    slot["tool_calls"][call["index"]] = {**call, "function": dict(call["function"])}
                else:
                    known["function"]["arguments"] += call["function"].get("arguments", "")
            slot["finish"] = choice["finish_reason"] or slot["finish"]
    out: list[JSONObject] = []
    for index in sorted(choices):
        slot = choices[index]
        message: JSONObject = {"role": "assistant", "content": slot["content"]}
        if slot["reasoning_content"]:
            message["reasoning_content"] = slot["reasoning_content"]
        if slot["tool_calls"]:
            message["tool_calls"] = [
                {k: v for k, v in call.items() if k != "index"}
                for _, call in sorted(slot["tool_calls"].items())
            ]
        finish = slot["finish"] or "stop"
        out.append({"index": index, "message": message, "finish_reason": finish, "logprobs": None})
    return {
        "id": head["id"],
        "object": "chat.completion",
        "created": head["created"],
        "model": head["model"],
        "choices": out,
        "usage": usage.to_openai(),
    }


def embedding_body(
    pages: list[JSONObject], model: str, *, as_base64: bool
) -> tuple[JSONObject, Usage]:
    data: list[JSONObject] = []
    tokens = 0
    for page in pages:
        offset = len(data)
        output = page.get("output")
        items = output.get("embeddings") if isinstance(output, dict) else None
        for position, item in enumerate(items if isinstance(items, list) else []):
            vector = item.get("embedding") if isinstance(item, dict) else None
            if not isinstance(vector, list):
                raise UpstreamError("DashScope sent an embedding without a vector", retryable=True)
            index = item.get("text_index")
            index = offset + (index if isinstance(index, int) else position)
            packed = float32_base64(vector)
            data.append(
                {
                    "object": "embedding",
                    "index": index,
                    "embedding": packed if as_base64 else vector,
                }
            )
        usage = page.get("usage")
        if isinstance(usage, dict):
            tokens += _int(usage.get("total_tokens")) or _int(usage.get("input_tokens"))
    data.sort(key=lambda item: int(item["index"]))
    body: JSONObject = {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return body, Usage(prompt_tokens=tokens)
