"""An Anthropic Messages request → the canonical OpenAI Chat Completions request.

providers.md §3.2 read backwards. Turns keep their order; within a user turn the
``tool_result`` blocks become ``role: "tool"`` messages placed *before* the turn's other
content, because OpenAI wants tool answers right after the assistant message that asked.

Lossy on purpose, because no other vendor could use it:

* ``thinking`` signatures and whole ``redacted_thinking`` blocks are dropped; the thinking
  text of an assistant turn becomes its ``reasoning_content``.
* ``cache_control`` markers, citations, ``service_tier``, ``container`` and other
  Anthropic-only fields are ignored. ``thinking`` of type ``adaptive``/``disabled`` sets no
  effort (the vendor's default applies).
* Images inside a ``tool_result`` cannot ride in an OpenAI tool message (text only); they
  go, in order, at the head of the user message that follows the tool messages.

Several text blocks of a ``system`` prompt, an assistant turn or a ``tool_result`` are joined
with a newline into one string (OpenAI-compatible vendors do not all accept content arrays
there). A user turn keeps its blocks as content parts, collapsed to a plain string when it is
a single text block. The routing controls of SPEC §3 (``models``, ``routing``) pass through.
"""

from __future__ import annotations

from tokenyard.errors import InvalidRequest
from tokenyard.wire.json import JSONObject, dumps

ROUTING_FIELDS = ("models", "routing")
JOIN = "\n"
EFFORTS = ("low", "medium", "high", "xhigh", "max")
LOW_BUDGET = 2048  # thinking.budget_tokens ≤ this → reasoning_effort "low"
MEDIUM_BUDGET = 8192  # ≤ this → "medium", above → "high"
TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}


def messages_to_chat(body: JSONObject) -> JSONObject:
    """Anthropic Messages request → canonical OpenAI Chat Completions request. Raises
    :class:`InvalidRequest` (``param`` set) for malformed input."""
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model is required and must be a string", param="model")
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise InvalidRequest(
            "max_tokens is required and must be a positive integer", param="max_tokens"
        )
    chat: JSONObject = {"model": model, "messages": _messages(body), "max_tokens": max_tokens}
    chat.update(_sampling(body))
    chat.update(_tools(body))
    chat.update(_reasoning(body))
    chat.update({k: body[k] for k in ROUTING_FIELDS if k in body})
    return chat


# --- messages ------------------------------------------------------------------------------


def _messages(body: JSONObject) -> list[JSONObject]:
    out: list[JSONObject] = []
    if body.get("system") is not None:
        system = _plain_text(body["system"], "system")
        if system:
            out.append({"role": "system", "content": system})
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages must be a non-empty array", param="messages")
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequest(f"{where} must be an object", param=where)
        role, content = message.get("role"), message.get("content")
        if role == "user":
            out.extend(_user_turn(content, where))
        elif role == "assistant":
            out.append(_assistant_turn(content, where))
        elif role == "system":  # newer API versions accept system turns inside messages
            out.append({"role": "system", "content": _plain_text(content, f"{where}.content")})
        else:
            raise InvalidRequest(
                f"{where}.role must be 'user' or 'assistant'", param=f"{where}.role"
            )
    return out


def _blocks(content: object, where: str) -> list[JSONObject]:
    """Content as a list of typed blocks (a string is one text block)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise InvalidRequest(
            f"{where}.content must be a string or an array of content blocks",
            param=f"{where}.content",
        )
    for j, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            at = f"{where}.content[{j}]"
            raise InvalidRequest(f"{at} must be an object with a type", param=at)
    return content


def _text(block: JSONObject, at: str, field: str = "text") -> str:
    text = block.get(field)
    if not isinstance(text, str):
        raise InvalidRequest(f"{at}.{field} must be a string", param=f"{at}.{field}")
    return text


def _plain_text(content: object, where: str) -> str:
    """A string, or text blocks joined: system prompts."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"{where} must be a string or an array of text blocks", param=where)
    texts = []
    for j, block in enumerate(content):
        at = f"{where}[{j}]"
        if not isinstance(block, dict) or block.get("type") != "text":
            raise InvalidRequest(f"{at} must be a text block", param=at)
        texts.append(_text(block, at))
    return JOIN.join(texts)


def _unsupported(kind: str, turn: str, at: str) -> InvalidRequest:
    return InvalidRequest(f"{at}: a {kind!r} block is not supported in a {turn} turn", param=at)


def _user_turn(content: object, where: str) -> list[JSONObject]:
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    tool_messages: list[JSONObject] = []
    carried: list[JSONObject] = []  # images out of tool results
    parts: list[JSONObject] = []
    for j, block in enumerate(_blocks(content, where)):
        at, kind = f"{where}.content[{j}]", block["type"]
        if kind == "tool_result":
            message, images = _tool_result(block, at)
            tool_messages.append(message)
            carried.extend(images)
        elif kind == "text":
            parts.append({"type": "text", "text": _text(block, at)})
        elif kind == "image":
            parts.append(_image_part(block, at))
        elif kind == "document":
            parts.append(_document_part(block, at))
        else:
            raise _unsupported(kind, "user", at)
    parts = carried + parts
    if not parts and tool_messages:
        return tool_messages
    if len(parts) == 1 and parts[0]["type"] == "text":
        return [*tool_messages, {"role": "user", "content": parts[0]["text"]}]
    return [*tool_messages, {"role": "user", "content": parts or ""}]


def _image_part(block: JSONObject, at: str) -> JSONObject:
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if isinstance(source, dict) and kind == "base64":
        media_type, data = source.get("media_type"), source.get("data")
        if isinstance(media_type, str) and isinstance(data, str):
            return {"type": "image_url", "image_url": {"url": f"data:{media_type};base64,{data}"}}
    elif isinstance(source, dict) and kind == "url" and isinstance(source.get("url"), str):
        return {"type": "image_url", "image_url": {"url": source["url"]}}
    raise InvalidRequest(
        f"{at}.source must be a base64 source (media_type, data) or a url source",
        param=f"{at}.source",
    )


def _document_part(block: JSONObject, at: str) -> JSONObject:
    """Plain-text documents become text; base64 ones (PDF) an OpenAI ``file`` part."""
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if isinstance(source, dict) and kind == "text":
        return {"type": "text", "text": _text(source, f"{at}.source", "data")}
    if isinstance(source, dict) and kind == "base64":
        media_type, data = source.get("media_type"), source.get("data")
        if isinstance(media_type, str) and isinstance(data, str):
            file: JSONObject = {"file_data": f"data:{media_type};base64,{data}"}
            if isinstance(block.get("title"), str):
                file["filename"] = block["title"]
            return {"type": "file", "file": file}
    raise InvalidRequest(
        f"{at}.source: only text and base64 documents are supported", param=f"{at}.source"
    )


def _tool_result(block: JSONObject, at: str) -> tuple[JSONObject, list[JSONObject]]:
    tool_use_id = block.get("tool_use_id")
    if not isinstance(tool_use_id, str) or not tool_use_id:
        raise InvalidRequest(f"{at}.tool_use_id must be a string", param=f"{at}.tool_use_id")
    content = block.get("content")
    images: list[JSONObject] = []
    if content is None or isinstance(content, str):
        text = content or ""
    elif isinstance(content, list):
        texts = []
        for k, item in enumerate(content):
            where = f"{at}.content[{k}]"
            kind = item.get("type") if isinstance(item, dict) else None
            if kind == "text":
                texts.append(_text(item, where))
            elif kind == "image":
                images.append(_image_part(item, where))
            else:
                raise InvalidRequest(f"{where} must be a text or image block", param=where)
        text = JOIN.join(texts)
    else:
        raise InvalidRequest(
            f"{at}.content must be a string or an array of blocks", param=f"{at}.content"
        )
    if block.get("is_error") is True:
        text = "Error: " + text
    return {"role": "tool", "tool_call_id": tool_use_id, "content": text}, images


def _assistant_turn(content: object, where: str) -> JSONObject:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[JSONObject] = []
    for j, block in enumerate(_blocks(content, where)):
        at, kind = f"{where}.content[{j}]", block["type"]
        if kind == "text":
            texts.append(_text(block, at))
        elif kind == "thinking":
            reasoning.append(_text(block, at, "thinking"))
        elif kind == "redacted_thinking":
            continue
        elif kind == "tool_use":
            calls.append(_tool_call(block, at))
        else:
            raise _unsupported(kind, "assistant", at)
    message: JSONObject = {
        "role": "assistant",
        "content": JOIN.join(texts) if texts else (None if calls else ""),
    }
    if reasoning:
        message["reasoning_content"] = JOIN.join(reasoning)
    if calls:
        message["tool_calls"] = calls
    return message


def _tool_call(block: JSONObject, at: str) -> JSONObject:
    call_id, name, arguments = block.get("id"), block.get("name"), block.get("input", {})
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequest(f"{at}.id must be a string", param=f"{at}.id")
    if not isinstance(name, str) or not name:
        raise InvalidRequest(f"{at}.name must be a string", param=f"{at}.name")
    if not isinstance(arguments, dict):
        raise InvalidRequest(f"{at}.input must be an object", param=f"{at}.input")
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": dumps(arguments).decode()},
    }


# --- parameters ----------------------------------------------------------------------------


def _number(body: JSONObject, name: str, kind: type[int] | type[float]) -> JSONObject:
    value = body.get(name)
    if value is None:
        return {}
    allowed = (int,) if kind is int else (int, float)
    if isinstance(value, bool) or not isinstance(value, allowed):
        raise InvalidRequest(f"{name} must be a number", param=name)
    return {name: value}


def _sampling(body: JSONObject) -> JSONObject:
    out: JSONObject = {}
    for name, kind in (("temperature", float), ("top_p", float), ("top_k", int)):
        out.update(_number(body, name, kind))
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise InvalidRequest(
                "stop_sequences must be an array of strings", param="stop_sequences"
            )
        if stops:
            out["stop"] = stops
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        out["user"] = metadata["user_id"]
    stream = body.get("stream")
    if stream is not None:
        if not isinstance(stream, bool):
            raise InvalidRequest("stream must be a boolean", param="stream")
        out["stream"] = stream
        if stream:
            out["stream_options"] = {"include_usage": True}
    return out


def _tools(body: JSONObject) -> JSONObject:
    tools = body.get("tools")
    if tools is None:
        return {}
    if not isinstance(tools, list):
        raise InvalidRequest("tools must be an array", param="tools")
    if not tools:  # OpenAI rejects an empty array, and a tool_choice without tools
        return {}
    out: JSONObject = {"tools": [_tool(tool, f"tools[{i}]") for i, tool in enumerate(tools)]}
    choice = body.get("tool_choice")
    if choice is None:
        return out
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind in TOOL_CHOICES:
        out["tool_choice"] = TOOL_CHOICES[kind]
    elif kind == "tool" and isinstance(choice, dict) and isinstance(choice.get("name"), str):
        out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        raise InvalidRequest(
            "tool_choice must be {type: auto|any|none} or {type: tool, name}", param="tool_choice"
        )
    if isinstance(choice, dict) and choice.get("disable_parallel_tool_use") is True:
        out["parallel_tool_calls"] = False
    return out


def _tool(tool: object, at: str) -> JSONObject:
    if not isinstance(tool, dict):
        raise InvalidRequest(f"{at} must be an object", param=at)
    if tool.get("type") not in (None, "custom"):
        raise InvalidRequest(
            f"{at}: server tools ({tool.get('type')!r}) are not supported", param=f"{at}.type"
        )
    name, schema = tool.get("name"), tool.get("input_schema")
    if not isinstance(name, str) or not name:
        raise InvalidRequest(f"{at}.name must be a string", param=f"{at}.name")
    if not isinstance(schema, dict):
        raise InvalidRequest(f"{at}.input_schema must be an object", param=f"{at}.input_schema")
    function: JSONObject = {"name": name}
    if isinstance(tool.get("description"), str):
        function["description"] = tool["description"]
    function["parameters"] = schema
    if isinstance(tool.get("strict"), bool):
        function["strict"] = tool["strict"]
    return {"type": "function", "function": function}


def _reasoning(body: JSONObject) -> JSONObject:
    """``output_config.effort`` wins; else an enabled thinking budget picks the effort."""
    out: JSONObject = {}
    config = body.get("output_config")
    config = config if isinstance(config, dict) else {}
    output_format = config.get("format")
    if isinstance(output_format, dict) and output_format.get("type") == "json_schema":
        schema = output_format.get("schema")
        if not isinstance(schema, dict):
            raise InvalidRequest(
                "output_config.format.schema must be an object",
                param="output_config.format.schema",
            )
        out["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": schema, "strict": True},
        }
    if config.get("effort") in EFFORTS:
        out["reasoning_effort"] = config["effort"]
        return out
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
            raise InvalidRequest(
                "thinking.budget_tokens must be a positive integer",
                param="thinking.budget_tokens",
            )
        effort = "low" if budget <= LOW_BUDGET else "medium" if budget <= MEDIUM_BUDGET else "high"
        out["reasoning_effort"] = effort
    return out
