"""Translating the canonical request into Spark's two request shapes.

What Spark cannot serve is refused with :class:`UpstreamRejected` before any I/O: ``n > 1``,
``response_format: json_schema`` (and JSON mode on the WebSocket, where it is not
documented), image or audio parts (the chat API is text-only; iFlytek's image understanding
is a different API), tools on a model without function calling (Lite), and a forced
``tool_choice`` on the WebSocket (no such field there). Parameters Spark lacks (``stop``,
``seed``, ``logprobs``, ``reasoning_effort`` …) are dropped; out-of-range ones are clamped:
WebSocket ``temperature`` to (0, 1], ``top_k`` to [1, 6], ``max_tokens`` to the model's
limit (models.py).

Messages: Spark wants at most one system message and it must come first (websdk-java
README "如果传入system参数，需要保证第一条是system"; the official Python SDK turns later
system messages into user ones), so every system/developer text is merged into one leading
system message, or into the first user turn on models without system support. The
WebSocket knows only the roles system/user/assistant: an assistant tool call is sent as its
JSON text, a tool result as a user turn, and consecutive turns of one role are merged
(alternation is what iFlytek's examples show; that it is required is **unverified**).
"""

from __future__ import annotations

from typing import Any

from tokenyard.errors import UpstreamRejected
from tokenyard.providers.spark.models import SparkModel
from tokenyard.wire.json import JSONObject, dumps

WS_TEMPERATURE_MIN = 0.01  # the documented range is (0, 1]
_HTTP_FIELDS = (
    "user",
    "temperature",
    "top_k",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "tool_choice",
    "suppress_plugin",
)
_SYSTEM_ROLES = ("system", "developer")


def check_supported(body: JSONObject, *, websocket: bool) -> None:
    n = body.get("n")
    if isinstance(n, int) and n > 1:
        raise UpstreamRejected("Spark answers with one choice per request: n must be 1")
    response_format = body.get("response_format")
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "json_schema":
        raise UpstreamRejected("Spark does not support response_format json_schema")
    if kind == "json_object" and websocket:
        raise UpstreamRejected(
            "Spark's WebSocket API has no JSON mode; configure an APIPassword (HTTP API)"
        )
    choice = body.get("tool_choice")
    if websocket and body.get("tools") and (choice == "required" or isinstance(choice, dict)):
        raise UpstreamRejected(
            "Spark's WebSocket API cannot force a tool call (tool_choice must be auto or none)"
        )


def _text(content: object) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise UpstreamRejected("message content must be a string or a list of parts")
    texts: list[str] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            texts.append(str(part.get("text", "")))
        else:
            raise UpstreamRejected(
                f"Spark's chat API takes text only; a {kind or 'non-text'} part cannot be sent"
            )
    return "".join(texts)


def _calls_text(calls: list[Any]) -> str:
    lines = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            lines.append(
                dumps(
                    {
                        "function_call": {
                            "name": function.get("name"),
                            "arguments": function.get("arguments"),
                        }
                    }
                ).decode()
            )
    return "\n".join(lines)


def _ws_turn(message: JSONObject) -> JSONObject:
    role = message.get("role")
    text = _text(message.get("content"))
    if role == "assistant":
        calls = message.get("tool_calls")
        if isinstance(calls, list) and calls:
            text = "\n".join(t for t in (text, _calls_text(calls)) if t)
        return {"role": "assistant", "content": text}
    return {"role": "user", "content": text}  # user, tool and function results


def _http_turn(message: JSONObject) -> JSONObject:
    turn = {k: v for k, v in message.items() if k in ("role", "tool_calls", "tool_call_id", "name")}
    turn["content"] = _text(message.get("content"))
    return turn


def spark_messages(messages: object, *, system: bool, websocket: bool) -> list[JSONObject]:
    if not isinstance(messages, list) or not messages:
        raise UpstreamRejected("'messages' must be a non-empty array")
    system_texts: list[str] = []
    turns: list[JSONObject] = []
    for message in messages:
        if not isinstance(message, dict):
            raise UpstreamRejected("every message must be an object")
        if message.get("role") in _SYSTEM_ROLES:
            system_texts.append(_text(message.get("content")))
            continue
        turn = _ws_turn(message) if websocket else _http_turn(message)
        previous = turns[-1] if turns else None
        if websocket and previous is not None and previous["role"] == turn["role"]:
            previous["content"] = f"{previous['content']}\n\n{turn['content']}"
        else:
            turns.append(turn)
    prompt = "\n\n".join(t for t in system_texts if t)
    if not prompt:
        return turns
    if system:
        return [{"role": "system", "content": prompt}, *turns]
    for turn in turns:
        if turn["role"] == "user":
            turn["content"] = f"{prompt}\n\n{turn['content']}"
            return turns
    return [{"role": "user", "content": prompt}, *turns]


def max_tokens_of(body: JSONObject, model: SparkModel | None) -> int | None:
    limit = body.get("max_completion_tokens")
    limit = body.get("max_tokens") if limit is None else limit
    if not isinstance(limit, int) or isinstance(limit, bool):
        return None
    return max(1, min(limit, model.max_tokens)) if model is not None else max(1, limit)


def _functions(body: JSONObject, model: SparkModel | None) -> list[JSONObject]:
    tools = body.get("tools")
    if not isinstance(tools, list) or not tools or body.get("tool_choice") == "none":
        return []
    if model is not None and not model.functions:
        raise UpstreamRejected(f"Spark model {model.domain} does not support function calling")
    functions = []
    for tool in tools:
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and function.get("name"):
            functions.append(
                {k: function[k] for k in ("name", "description", "parameters") if k in function}
            )
    return functions


def _clamp(value: object, low: float, high: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return min(max(float(value), low), high)


def ws_frame(body: JSONObject, model: SparkModel, app_id: str) -> JSONObject:
    """The one request frame (header / parameter.chat / payload) of a WebSocket call."""
    check_supported(body, websocket=True)
    chat: JSONObject = {"domain": model.domain}
    if (temperature := _clamp(body.get("temperature"), WS_TEMPERATURE_MIN, 1.0)) is not None:
        chat["temperature"] = temperature
    if (limit := max_tokens_of(body, model)) is not None:
        chat["max_tokens"] = limit
    if (top_k := _clamp(body.get("top_k"), 1, 6)) is not None:
        chat["top_k"] = int(top_k)
    if model.sampling:
        if (top_p := _clamp(body.get("top_p"), WS_TEMPERATURE_MIN, 1.0)) is not None:
            chat["top_p"] = top_p
        for penalty in ("presence_penalty", "frequency_penalty"):
            if (value := _clamp(body.get(penalty), -2.0, 10.0)) is not None:
                chat[penalty] = value
    payload: JSONObject = {
        "message": {
            "text": spark_messages(body.get("messages"), system=model.system, websocket=True)
        }
    }
    if functions := _functions(body, model):
        payload["functions"] = {"text": functions}
    user = body.get("user")
    uid = user[:32] if isinstance(user, str) and user else "tokenyard"
    return {
        "header": {"app_id": app_id, "uid": uid},
        "parameter": {"chat": chat},
        "payload": payload,
    }


def http_body(
    body: JSONObject, model_name: str, model: SparkModel | None, *, stream: bool
) -> JSONObject:
    """The JSON body of ``POST /chat/completions``: only the fields Spark documents."""
    check_supported(body, websocket=False)
    out: JSONObject = {"model": model.domain if model is not None else model_name}
    out["messages"] = spark_messages(
        body.get("messages"), system=model is None or model.system, websocket=False
    )
    out.update((k, body[k]) for k in _HTTP_FIELDS if body.get(k) is not None)
    if (temperature := _clamp(out.get("temperature"), 0.0, 2.0)) is not None:
        out["temperature"] = temperature
    if (top_p := _clamp(out.get("top_p"), WS_TEMPERATURE_MIN, 1.0)) is not None:
        out["top_p"] = top_p  # documented range (0, 1]
    if (limit := max_tokens_of(body, model)) is not None:
        out["max_tokens"] = limit
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") == "json_object":
        out["response_format"] = {"type": "json_object"}
    if _functions(body, model):
        out["tools"] = body["tools"]
        out["tool_calls_switch"] = True  # else Spark returns tool_calls as an object
    else:
        out.pop("tool_choice", None)
    if stream:
        out["stream"] = True
    return out
