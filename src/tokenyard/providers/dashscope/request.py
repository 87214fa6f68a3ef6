"""OpenAI Chat Completions / Embeddings requests → DashScope native requests.

Wire facts (providers.md §6.4; dashscope/dashscope-sdk-python ``c0d7a0b``:
``aigc/generation.py``, ``aigc/multimodal_conversation.py``, ``api_entities/http_request.py``,
``embeddings/text_embedding.py``, ``utils/oss_utils.py``; Model Studio "DashScope API
reference"):

* ``POST /api/v1/services/aigc/text-generation/generation`` with
  ``{model, input: {messages}, parameters: {...}}``. Multimodal models — and, per the API
  reference, the Qwen3.5+ series — take ``/api/v1/services/aigc/multimodal-generation/
  generation``, whose content is a list of ``{"text": ...}`` / ``{"image": url}`` /
  ``{"audio": ...}`` / ``{"video": ...}`` items. A request goes there when the model name
  contains one of the provider's ``multimodal_markers`` or any message carries an image,
  audio or video part. Image URLs and ``data:`` URLs pass unchanged (the SDK uploads only
  local files and leaves other strings alone).
* ``parameters``: ``result_format: "message"`` (choices, not legacy ``output.text``);
  ``incremental_output: true`` on every streamed call (deltas; thinking requires it);
  ``max_tokens`` (from ``max_completion_tokens``/``max_tokens``); ``temperature`` [0, 2)
  (2 → 1.99); ``top_p`` (0, 1] (≤ 0 → 0.01); ``top_k``, ``seed``, ``stop``,
  ``presence_penalty``, ``repetition_penalty``, ``n``, ``tools``, ``tool_choice``,
  ``parallel_tool_calls``, ``response_format``, ``logprobs``, ``top_logprobs``,
  ``enable_search``, ``search_options``, ``thinking_budget`` pass through;
  ``enable_thinking`` comes from the client's own ``enable_thinking`` or from
  ``reasoning_effort`` (``"none"`` → false, any other effort → true). OpenAI's
  ``frequency_penalty``, ``user``, ``stream_options`` have no native counterpart.
* Text-generation content is a string: part lists (text only) are joined. ``developer`` →
  ``system``; a null ``content`` (assistant tool-call turns) is sent as ``""``.
* Embeddings: ``POST /api/v1/services/embeddings/text-embedding/text-embedding`` with
  ``{model, input: {texts: [...]}, parameters: {dimension}}`` (singular ``dimension``);
  text-embedding-v3/v4 take at most 10 texts a call, so longer lists go in batches.
"""

from __future__ import annotations

from typing import Any

from tokenyard.errors import UpstreamRejected
from tokenyard.wire.embeddings import text_batches
from tokenyard.wire.json import JSONObject

TEXT_PATH = "/api/v1/services/aigc/text-generation/generation"
MULTIMODAL_PATH = "/api/v1/services/aigc/multimodal-generation/generation"
EMBEDDING_PATH = "/api/v1/services/embeddings/text-embedding/text-embedding"
MULTIMODAL_MARKERS = ("vl", "omni", "qvq", "qwen3.5", "qwen3.6", "qwen3.7")
EMBEDDING_BATCH = 10
_PASSED = (
    "top_k",
    "seed",
    "stop",
    "presence_penalty",
    "repetition_penalty",
    "n",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "logprobs",
    "top_logprobs",
    "enable_search",
    "search_options",
    "thinking_budget",
)
_MESSAGE_FIELDS = ("name", "tool_calls", "tool_call_id", "partial")
_MEDIA_PARTS = frozenset({"image_url", "input_audio", "video_url", "video"})


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def thinking(body: JSONObject) -> bool | None:
    """Whether the client asked for thinking (None: the model's default)."""
    explicit = body.get("enable_thinking")
    if isinstance(explicit, bool):
        return explicit
    effort = body.get("reasoning_effort")
    if isinstance(effort, str):
        return effort != "none"
    return None


def _has_media(messages: list[Any]) -> bool:
    return any(
        isinstance(part, dict) and part.get("type") in _MEDIA_PARTS
        for message in messages
        if isinstance(message, dict) and isinstance(message.get("content"), list)
        for part in message["content"]
    )


def is_multimodal(model: str, messages: list[Any], markers: tuple[str, ...]) -> bool:
    name = model.lower()
    return any(marker in name for marker in markers) or _has_media(messages)


def _item(part: object) -> JSONObject:
    if not isinstance(part, dict):
        raise UpstreamRejected("message content parts must be objects")
    kind = part.get("type", "text")
    if kind == "text":
        return {"text": str(part.get("text", ""))}
    if kind == "image_url":
        image = part.get("image_url")
        return {"image": image.get("url") if isinstance(image, dict) else image}
    if kind == "input_audio":
        audio = part.get("input_audio") or {}
        return {"audio": f"data:audio/{audio.get('format', 'wav')};base64,{audio.get('data', '')}"}
    if kind in ("video_url", "video"):
        video = part.get(kind)
        return {"video": video.get("url") if isinstance(video, dict) else video}
    raise UpstreamRejected(f"DashScope does not take {kind!r} content parts")


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(_item(part).get("text", "")) for part in content)
    return ""


def _message(message: object, multimodal: bool) -> JSONObject:
    if not isinstance(message, dict):
        raise UpstreamRejected("each message must be an object")
    role = message.get("role")
    role = "system" if role == "developer" else role
    out: JSONObject = {"role": role}
    content = message.get("content")
    if multimodal and role != "tool" and content is not None:
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
        out["content"] = [_item(part) for part in parts] if isinstance(parts, list) else []
    else:
        out["content"] = _text(content)
    out.update((k, message[k]) for k in _MESSAGE_FIELDS if k in message)
    return out


def _parameters(body: JSONObject, *, stream: bool) -> JSONObject:
    params: JSONObject = {"result_format": "message"}
    if stream:
        params["incremental_output"] = True
    limit = body.get("max_completion_tokens")
    limit = body.get("max_tokens") if limit is None else limit
    if limit is not None:
        params["max_tokens"] = limit
    temperature = _number(body.get("temperature"))
    if temperature is not None:
        params["temperature"] = min(max(temperature, 0.0), 1.99)
    top_p = _number(body.get("top_p"))
    if top_p is not None:
        params["top_p"] = 0.01 if top_p <= 0 else min(top_p, 1.0)
    for key in _PASSED:
        if body.get(key) is not None:
            params[key] = body[key]
    enable = thinking(body)
    if enable is not None:
        params["enable_thinking"] = enable
    return params


def encode_chat(
    body: JSONObject, model: str, *, stream: bool, markers: tuple[str, ...]
) -> tuple[str, JSONObject]:
    """(path, request body) of a chat call."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise UpstreamRejected("'messages' must be an array")
    multimodal = is_multimodal(model, messages, markers)
    payload = {
        "model": model,
        "input": {"messages": [_message(m, multimodal) for m in messages]},
        "parameters": _parameters(body, stream=stream),
    }
    return (MULTIMODAL_PATH if multimodal else TEXT_PATH), payload


def embedding_batches(body: JSONObject, model: str, batch: int) -> list[JSONObject]:
    parameters: JSONObject = {}
    if isinstance(body.get("dimensions"), int):
        parameters["dimension"] = body["dimensions"]
    return [
        {"model": model, "input": {"texts": texts}, "parameters": parameters}
        for texts in text_batches(body, batch, "DashScope")
    ]
