"""An OpenAI Chat Completions request → a Gemini ``generateContent`` body.

Wire facts (providers.md §4.2 and §13; checked against python-genai ``models.py``
``_GenerateContentConfig_to_mldev`` and ``types.py``):

* Empty text is left out: the API reads ``{"text": ""}`` as a part without data and answers
  400 "required oneof field 'data' must have one initialized field" (seen on real answers,
  e.g. router-for-me/CLIProxyAPI#1292).
* ``system``/``developer`` messages → ``systemInstruction {parts}``; ``user`` → role ``user``,
  ``assistant`` → role ``model``; tool results → ``functionResponse`` parts in a ``user`` turn
  (the function *name* is required: it is looked up from the earlier assistant tool call).
  Adjacent turns of one role are merged, so parallel tool results form one turn.
* ``functionResponse.response`` must be a JSON object: a tool's JSON-object output is sent as
  is, anything else as ``{"result": <text>}``.
* Tools go as ``functionDeclarations[].parametersJsonSchema`` — what the SDK itself sends for
  Python callables (``t_tool`` → ``use_json_schema=True``). Unlike ``parameters`` (an OpenAPI
  subset that rejects ``additionalProperties`` on this API), it takes JSON Schema, so only
  ``$schema`` is removed.
* ``response_format`` ``json_object`` → ``responseMimeType: application/json``; ``json_schema``
  → the same plus ``responseJsonSchema`` (the SDK's JSON-Schema field; ``responseSchema`` is the
  OpenAPI subset).
* ``tool_choice``: auto/none/required → ``AUTO``/``NONE``/``ANY``; a named function → ``ANY``
  with ``allowedFunctionNames`` (SDK enum ``FunctionCallingConfigMode``).
* Gemini 3 requires the ``thoughtSignature`` of each step's first ``functionCall`` part back.
  It travels to clients as ``tool_calls[].extra_content.google.thought_signature`` (the field
  Google's own OpenAI-compatible endpoint uses) and is restored from there; when a client
  dropped it, the first call of the turn gets Google's documented placeholder
  ``skip_thought_signature_validator`` (ai.google.dev/gemini-api/docs/thought-signatures).
"""

from __future__ import annotations

import re
from typing import Any

from tokenyard.errors import UpstreamRejected
from tokenyard.providers.gemini.media import audio_part, file_part, image_part
from tokenyard.providers.gemini.thinking import thinking_config
from tokenyard.wire.json import JSONDecodeError, JSONObject, loads

SYNTHETIC_ID = re.compile(r"call_[0-9a-f]{24}")
"""Tool-call ids tokenyard made up (Gemini sent none); they are not sent back upstream."""
SIGNATURE_PLACEHOLDER = "skip_thought_signature_validator"
MAX_STOP_SEQUENCES = 5
_TOOL_CHOICE = {"auto": "AUTO", "none": "NONE", "required": "ANY"}


def chat_request(body: JSONObject, model: str, *, external_urls: bool) -> JSONObject:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise UpstreamRejected("'messages' must be a non-empty array")
    turns = _Turns(external_urls)
    for position, message in enumerate(messages):
        if not isinstance(message, dict):
            raise UpstreamRejected(f"messages[{position}] must be an object")
        turns.add_message(message)
    if not turns.contents:
        raise UpstreamRejected("the request has no user or assistant messages")
    out: JSONObject = {"contents": turns.contents}
    if turns.system:
        out["systemInstruction"] = {"parts": turns.system}
    tools = _tools(body.get("tools"))
    if tools:
        out["tools"] = tools
        choice = _tool_config(body.get("tool_choice"))
        if choice is not None:
            out["toolConfig"] = choice
    generation = _generation_config(body, model)
    if generation:
        out["generationConfig"] = generation
    return out


def _text_of(content: object, role: str) -> list[JSONObject]:
    """Text parts of a system/assistant/tool ``content`` (a string or text parts)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise UpstreamRejected(f"{role} message content must be a string or an array")
    parts = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in ("text", "refusal"):
            raise UpstreamRejected(f"{role} messages may only carry text parts for this upstream")
        text = part.get(kind)
        if isinstance(text, str) and text:
            parts.append({"text": text})
    return parts


class _Turns:
    """Gemini ``contents`` built message by message."""

    def __init__(self, external_urls: bool) -> None:
        self.contents: list[JSONObject] = []
        self.system: list[JSONObject] = []
        self._external_urls = external_urls
        self._names: dict[str, str] = {}  # tool_call id → function name

    def add_message(self, message: JSONObject) -> None:
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            self.system.extend(_text_of(content, str(role)))
        elif role == "user":
            self._add("user", self._user_parts(content))
        elif role == "assistant":
            parts = _text_of(content, "assistant")
            parts.extend(self._function_calls(message.get("tool_calls")))
            self._add("model", parts)
        elif role == "tool":
            self._add("user", [self._function_response(message)])
        else:
            raise UpstreamRejected(f"unsupported message role {role!r}")

    def _add(self, role: str, parts: list[JSONObject]) -> None:
        if not parts:
            return
        if self.contents and self.contents[-1]["role"] == role:
            self.contents[-1]["parts"].extend(parts)
        else:
            self.contents.append({"role": role, "parts": parts})

    def _user_parts(self, content: object) -> list[JSONObject]:
        if isinstance(content, str):
            return [{"text": content}] if content else []
        if not isinstance(content, list):
            raise UpstreamRejected("user message content must be a string or an array")
        parts: list[JSONObject] = []
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str):
                if part["text"]:
                    parts.append({"text": part["text"]})
            elif kind == "image_url":
                parts.append(image_part(part.get("image_url"), external_urls=self._external_urls))
            elif kind == "input_audio":
                parts.append(audio_part(part.get("input_audio")))
            elif kind == "file":
                parts.append(file_part(part.get("file")))
            else:
                raise UpstreamRejected(f"unsupported content part type {kind!r} for this upstream")
        return parts

    def _function_calls(self, tool_calls: object) -> list[JSONObject]:
        if tool_calls is None:
            return []
        if not isinstance(tool_calls, list):
            raise UpstreamRejected("assistant tool_calls must be an array")
        parts: list[JSONObject] = []
        for position, call in enumerate(tool_calls):
            if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
                raise UpstreamRejected(f"tool_calls[{position}] needs a function")
            function = call["function"]
            name = function.get("name")
            if not isinstance(name, str) or not name:
                raise UpstreamRejected(f"tool_calls[{position}] needs a function name")
            payload: JSONObject = {"name": name, "args": _arguments(function.get("arguments"))}
            call_id = call.get("id")
            if isinstance(call_id, str) and call_id:
                self._names[call_id] = name
                if not SYNTHETIC_ID.fullmatch(call_id):
                    payload["id"] = call_id
            part: JSONObject = {"functionCall": payload}
            signature = _signature(call)
            if signature is None and position == 0:
                signature = SIGNATURE_PLACEHOLDER
            if signature is not None:
                part["thoughtSignature"] = signature
            parts.append(part)
        return parts

    def _function_response(self, message: JSONObject) -> JSONObject:
        call_id = message.get("tool_call_id")
        name = self._names.get(call_id) if isinstance(call_id, str) else None
        name = name or message.get("name")
        if not isinstance(name, str) or not name:
            raise UpstreamRejected(
                f"tool message answers tool_call_id {call_id!r}, which no earlier assistant "
                "message called"
            )
        text = "".join(p["text"] for p in _text_of(message.get("content"), "tool"))
        payload: JSONObject = {"name": name, "response": _tool_output(text)}
        if isinstance(call_id, str) and call_id and not SYNTHETIC_ID.fullmatch(call_id):
            payload["id"] = call_id
        return {"functionResponse": payload}


def _arguments(raw: object) -> JSONObject:
    if raw is None or raw == "":
        return {}
    if isinstance(raw, dict):
        return raw
    try:
        value = loads(raw) if isinstance(raw, str) else None
    except JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise UpstreamRejected("tool call arguments must be a JSON object")
    return value


def _signature(call: JSONObject) -> str | None:
    extra = call.get("extra_content")
    google = extra.get("google") if isinstance(extra, dict) else None
    signature = google.get("thought_signature") if isinstance(google, dict) else None
    return signature if isinstance(signature, str) and signature else None


def _tool_output(text: str) -> JSONObject:
    try:
        value = loads(text) if text.lstrip().startswith("{") else None
    except JSONDecodeError:
        value = None
    return value if isinstance(value, dict) else {"result": text}


def _clean_schema(schema: JSONObject) -> JSONObject:
    return {k: v for k, v in schema.items() if k != "$schema"}


def _tools(tools: object) -> list[JSONObject]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise UpstreamRejected("'tools' must be an array")
    declarations: list[JSONObject] = []
    for position, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            raise UpstreamRejected("only function tools are supported by this upstream")
        function = tool.get("function")
        if not isinstance(function, dict) or not function.get("name"):
            raise UpstreamRejected(f"tools[{position}].function needs a name")
        name = str(function["name"])
        declaration: JSONObject = {"name": name}
        if isinstance(function.get("description"), str):
            declaration["description"] = function["description"]
        parameters = function.get("parameters")
        if isinstance(parameters, dict) and parameters:
            declaration["parametersJsonSchema"] = _clean_schema(parameters)
        declarations.append(declaration)
    return [{"functionDeclarations": declarations}] if declarations else []


def _tool_config(choice: object) -> JSONObject | None:
    if choice is None:
        return None
    if isinstance(choice, str) and choice in _TOOL_CHOICE:
        return {"functionCallingConfig": {"mode": _TOOL_CHOICE[choice]}}
    function = choice.get("function") if isinstance(choice, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if isinstance(name, str) and name:
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    raise UpstreamRejected("unsupported tool_choice for this upstream")


def _stop_sequences(stop: object) -> list[str] | None:
    if stop is None:
        return None
    sequences = [stop] if isinstance(stop, str) else stop
    if not isinstance(sequences, list) or not all(isinstance(s, str) for s in sequences):
        raise UpstreamRejected("'stop' must be a string or an array of strings")
    if len(sequences) > MAX_STOP_SEQUENCES:
        raise UpstreamRejected(f"this upstream takes at most {MAX_STOP_SEQUENCES} stop sequences")
    return sequences or None


def _response_format(fmt: object, config: JSONObject) -> None:
    if fmt is None:
        return
    if not isinstance(fmt, dict):
        raise UpstreamRejected("'response_format' must be an object")
    kind = fmt.get("type")
    if kind == "text":
        return
    if kind == "json_object":
        config["responseMimeType"] = "application/json"
        return
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        config["responseMimeType"] = "application/json"
        if isinstance(schema, dict):
            config["responseJsonSchema"] = _clean_schema(schema)
        return
    raise UpstreamRejected(f"unsupported response_format type {kind!r}")


_NUMERIC = (
    ("temperature", "temperature"),
    ("top_p", "topP"),
    ("presence_penalty", "presencePenalty"),
    ("frequency_penalty", "frequencyPenalty"),
    ("seed", "seed"),
)


def _generation_config(body: JSONObject, model: str) -> JSONObject:
    config: JSONObject = {}
    for openai_name, gemini_name in _NUMERIC:
        value: Any = body.get(openai_name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            config[gemini_name] = value
    limit = body.get("max_completion_tokens")
    limit = body.get("max_tokens") if limit is None else limit
    if isinstance(limit, int) and not isinstance(limit, bool):
        config["maxOutputTokens"] = limit
    n = body.get("n")
    if isinstance(n, int) and not isinstance(n, bool) and n != 1:
        config["candidateCount"] = n
    stop = _stop_sequences(body.get("stop"))
    if stop:
        config["stopSequences"] = stop
    _response_format(body.get("response_format"), config)
    thinking = thinking_config(body, model)
    if thinking:
        config["thinkingConfig"] = thinking
    return config
