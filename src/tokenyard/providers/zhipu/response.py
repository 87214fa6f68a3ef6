"""Zhipu v4 answers → canonical (OpenAI) answers.

Wire facts (providers.md §7.4, §14.1, §14.3; SDK ``types/chat/chat_completion.py``,
``chat_completion_chunk.py``; docs.bigmodel.cn chat reference):

* Completion: ``id``, ``request_id``, ``created``, ``model``, ``choices[{index,
  finish_reason, message{role, content, reasoning_content, tool_calls}}]``, ``usage``
  (OpenAI names; cache hits in ``prompt_tokens_details.cached_tokens``, reasoning in
  ``completion_tokens_details.reasoning_tokens``).
* ``finish_reason``: ``stop``, ``length``, ``tool_calls``; ``sensitive`` (moderation cut the
  output) → ``content_filter``; ``model_context_window_exceeded`` → ``length``;
  ``network_error`` ("模型推理异常", the inference failed) → **raised** as a retryable
  :class:`UpstreamError`, not relayed as a finish: the answer is broken and another
  upstream may succeed (mid-stream, the client gets the error event). Unknown → ``stop``.
* Embeddings: OpenAI's ``list`` shape; tokenyard merges batches and encodes base64 itself.
"""

from __future__ import annotations

from typing import Any

from tokenyard.errors import UpstreamError
from tokenyard.providers.toolcalls import ToolCallDeltas
from tokenyard.wire.embeddings import float32_base64
from tokenyard.wire.json import JSONObject
from tokenyard.wire.usage import Usage, usage_from_openai

_FINISH = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "sensitive": "content_filter",
    "model_context_window_exceeded": "length",
}


def finish_reason(native: object, provider: str) -> str | None:
    """The OpenAI finish reason; None while in progress. Raises on ``network_error``."""
    if native is None or native == "":
        return None
    if native == "network_error":
        raise UpstreamError(
            f"provider {provider} reported an inference failure (network_error)",
            retryable=True,
        )
    return _FINISH.get(str(native), "stop")


def usage_of(raw: object) -> Usage:
    return usage_from_openai(raw) if isinstance(raw, dict) else Usage()


def _tool_calls(raw: object) -> list[JSONObject]:
    if not isinstance(raw, list):
        return []
    tools = ToolCallDeltas()
    calls: list[JSONObject] = []
    for position, item in enumerate(raw):
        if isinstance(item, dict) and item.get("type", "function") != "function":
            continue  # GLM built-ins (web_search, retrieval) are not client tool calls
        delta = tools.feed(item, position)
        if delta is not None and "id" in delta:
            calls.append({k: v for k, v in delta.items() if k != "index"})
    return calls


def _choice(raw: Any, position: int, provider: str) -> JSONObject:
    message = raw.get("message") if isinstance(raw, dict) else None
    message = message if isinstance(message, dict) else {}
    out: JSONObject = {"role": "assistant", "content": message.get("content")}
    reasoning = message.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        out["reasoning_content"] = reasoning
    calls = _tool_calls(message.get("tool_calls"))
    if calls:
        out["tool_calls"] = calls
    index = raw.get("index") if isinstance(raw, dict) else None
    finish = finish_reason(raw.get("finish_reason") if isinstance(raw, dict) else None, provider)
    return {
        "index": index if isinstance(index, int) else position,
        "message": out,
        "finish_reason": finish or ("tool_calls" if calls else "stop"),
        "logprobs": None,
    }


def chat_body(doc: JSONObject, model: str, now: int, provider: str) -> tuple[JSONObject, Usage]:
    usage = usage_of(doc.get("usage"))
    choices = doc.get("choices")
    request_id = doc.get("id") or doc.get("request_id")
    body: JSONObject = {
        "id": str(request_id) if request_id else "chatcmpl-zhipu",
        "object": "chat.completion",
        "created": doc.get("created") if isinstance(doc.get("created"), int) else now,
        "model": doc.get("model") or model,
        "choices": [
            _choice(c, i, provider)
            for i, c in enumerate(choices if isinstance(choices, list) else [])
        ],
        "usage": usage.to_openai(),
    }
    return body, usage


def embedding_body(
    pages: list[JSONObject], model: str, *, as_base64: bool
) -> tuple[JSONObject, Usage]:
    """Merge the answers to the batches (in order) into one OpenAI ``list``."""
    data: list[JSONObject] = []
    tokens = 0
    for page in pages:
        offset = len(data)
        items = page.get("data")
        for position, item in enumerate(items if isinstance(items, list) else []):
            vector = item.get("embedding") if isinstance(item, dict) else None
            if not isinstance(vector, list):
                raise UpstreamError("Zhipu sent an embedding without a vector", retryable=True)
            index = item.get("index")
            index = index if isinstance(index, int) else position
            embedding: Any = float32_base64(vector) if as_base64 else vector
            data.append({"object": "embedding", "index": offset + index, "embedding": embedding})
        usage = page.get("usage")
        if isinstance(usage, dict):
            tokens += int(usage.get("prompt_tokens") or usage.get("total_tokens") or 0)
    data.sort(key=lambda item: int(item["index"]))
    body: JSONObject = {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return body, Usage(prompt_tokens=tokens)
