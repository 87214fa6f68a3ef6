"""OpenAI Chat Completions / Embeddings requests → Zhipu v4 requests.

Wire facts (providers.md §7.3; MetaGLM/zhipuai-sdk-python-v4 ``ccbec4c``
``api_resource/chat/completions.py``; docs.bigmodel.cn chat and embedding references):

* Fields the API knows (the SDK's ``create``): model, messages, stream, temperature, top_p,
  do_sample, max_tokens, seed, stop, tools, tool_choice, response_format, thinking,
  user_id, request_id, meta, sensitive_word_check. Newer GLM endpoints reject unknown fields
  ("Extra inputs are not permitted"), so only these are sent.
* temperature and top_p live in the **open** interval (0, 1). Like the SDK: temperature
  ≤ 0 → 0.01 with ``do_sample: false`` (greedy), ≥ 1 → 0.99; top_p ≤ 0 → 0.01, ≥ 1 → 0.99.
* ``system``/``assistant``/``tool`` content must be a string (GLM's templates drop list
  content silently): part lists are flattened to their text. ``developer`` → ``system``.
* Images: like the SDK's ``drop_prefix_image_data``, a ``data:image/...;base64,`` prefix is
  stripped and the bare base64 is sent in ``image_url.url``; http(s) URLs pass unchanged.
* ``tool_choice``: only ``"auto"`` is accepted. ``"auto"`` is sent; ``"none"`` is honoured
  by not sending the tools at all; ``"required"`` and a named function are dropped (the
  model then decides on its own) — GLM has no way to force a call.
* Reasoning: ``thinking: {"type": "enabled" | "disabled"}``. A client's own ``thinking``
  object is forwarded; otherwise ``reasoning_effort: "none"`` → disabled, any other effort
  → enabled, and nothing → the model's default.
* ``response_format``: ``json_object`` (and ``text``); ``json_schema`` is not offered and is
  sent as ``json_object`` (the reply is still JSON, the schema is not enforced).
* ``n`` > 1 is not offered: :class:`UpstreamRejected`. ``user`` → ``user_id`` (6–128
  characters, else dropped). ``stop`` is sent as a list.
* Embeddings: ``input`` is a string or an array of up to 64 strings (docs.bigmodel.cn;
  one-api's one-input limit is outdated), ``dimensions`` for embedding-3. Longer lists are
  sent in batches; ``encoding_format`` is not sent (base64 is produced by tokenyard).
"""

from __future__ import annotations

from typing import Any

from tokenyard.errors import UpstreamRejected
from tokenyard.wire.embeddings import text_batches
from tokenyard.wire.json import JSONObject

EMBEDDING_BATCH = 64
_MESSAGE_FIELDS = ("content", "tool_calls", "tool_call_id", "reasoning_content")
_STRING_CONTENT = frozenset({"system", "assistant", "tool"})
_DATA_IMAGE = "data:image/"


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _text_of(parts: list[Any]) -> str:
    return "\n".join(
        str(part.get("text", ""))
        for part in parts
        if isinstance(part, dict) and part.get("type", "text") == "text"
    )


def _part(part: object) -> object:
    if not isinstance(part, dict) or part.get("type") != "image_url":
        return part
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if isinstance(url, str) and url.startswith(_DATA_IMAGE):
        url = url.split("base64,")[-1]
    return {"type": "image_url", "image_url": {"url": url}}


def _message(message: object) -> object:
    if not isinstance(message, dict):
        return message
    role = message.get("role")
    role = "system" if role == "developer" else role
    out: JSONObject = {"role": role}
    out.update((k, message[k]) for k in _MESSAGE_FIELDS if k in message)
    content = message.get("content")
    if isinstance(content, list):
        if role in _STRING_CONTENT:
            out["content"] = _text_of(content)
        else:
            out["content"] = [_part(part) for part in content]
    return out


def _sampling(body: JSONObject, out: JSONObject) -> None:
    temperature = _number(body.get("temperature"))
    if temperature is not None:
        if temperature <= 0:
            out["temperature"] = 0.01
            out["do_sample"] = False
        else:
            out["temperature"] = min(temperature, 0.99)
    top_p = _number(body.get("top_p"))
    if top_p is not None:
        out["top_p"] = 0.01 if top_p <= 0 else min(top_p, 0.99)


def _tools(body: JSONObject, out: JSONObject) -> None:
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if not tools or choice == "none":
        return
    out["tools"] = tools
    if choice == "auto":
        out["tool_choice"] = "auto"


def _thinking(body: JSONObject) -> JSONObject | None:
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "disabled"):
        return dict(thinking)
    effort = body.get("reasoning_effort")
    if isinstance(effort, str):
        return {"type": "disabled" if effort == "none" else "enabled"}
    return None


def encode_chat(body: JSONObject, model: str, *, stream: bool) -> JSONObject:
    n = body.get("n")
    if isinstance(n, int) and n > 1:
        raise UpstreamRejected("Zhipu GLM returns one choice per request: n > 1 is not supported")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise UpstreamRejected("'messages' must be an array")
    out: JSONObject = {"model": model, "messages": [_message(m) for m in messages]}
    if stream:
        out["stream"] = True
    limit = body.get("max_completion_tokens")
    limit = body.get("max_tokens") if limit is None else limit
    if limit is not None:
        out["max_tokens"] = limit
    _sampling(body, out)
    stop = body.get("stop")
    if isinstance(stop, str):
        out["stop"] = [stop]
    elif isinstance(stop, list) and stop:
        out["stop"] = stop
    if isinstance(body.get("seed"), int):
        out["seed"] = body["seed"]
    _tools(body, out)
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") in (
        "json_object",
        "json_schema",
    ):
        out["response_format"] = {"type": "json_object"}
    thinking = _thinking(body)
    if thinking is not None:
        out["thinking"] = thinking
    user = body.get("user")
    if isinstance(user, str) and 6 <= len(user) <= 128:
        out["user_id"] = user
    return out


def embedding_batches(body: JSONObject, model: str, batch: int) -> list[JSONObject]:
    """One request body per batch of at most ``batch`` input strings."""
    extra: JSONObject = {}
    if isinstance(body.get("dimensions"), int):
        extra["dimensions"] = body["dimensions"]
    batches = text_batches(body, batch, "Zhipu")
    if isinstance(body.get("input"), str):
        return [{"model": model, "input": body["input"], **extra}]
    return [{"model": model, "input": texts, **extra} for texts in batches]
