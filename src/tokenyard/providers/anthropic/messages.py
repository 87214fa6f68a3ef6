"""Canonical (OpenAI) messages → Anthropic ``system`` + ``messages``.

Wire facts (anthropic-sdk-python ``types/message_create_params.py``, ``message_param.py``,
``text_block_param.py``, ``image_block_param.py``, ``base64_image_source_param.py``,
``url_image_source_param.py``, ``document_block_param.py``, ``tool_use_block_param.py``,
``tool_result_block_param.py``; providers.md §3.2):

* ``system``/``developer`` messages leave ``messages`` and become the top-level ``system``
  (here a list of text blocks, in their order).
* Only ``user`` and ``assistant`` turns are sent, and two turns of the same role are merged
  into one (one list of content blocks), as the Messages API requires alternation.
* Assistant ``tool_calls`` → ``tool_use`` blocks ``{id, name, input}`` with the JSON
  ``arguments`` string parsed into an object.
* ``role: tool`` → a user turn of ``tool_result`` blocks ``{tool_use_id, content}``;
  consecutive results land in one user turn, and in any user turn the ``tool_result``
  blocks come first (the API rejects text before them).
* Image parts: a ``data:`` URL → ``{"type":"image","source":{"type":"base64",
  "media_type","data"}}`` (jpeg/png/gif/webp only); an http(s) URL →
  ``{"type":"image","source":{"type":"url","url"}}``. A PDF ``file`` part with
  ``file_data`` → a ``document`` block with a base64 ``application/pdf`` source.
* Empty and blank text is dropped: the API rejects a text block that is empty ("text
  content blocks must be non-empty") or only whitespace ("… must contain non-whitespace
  text"; both 400s are seen on real answers, e.g. anthropics/claude-code#23440). A final
  assistant turn (a prefill) loses its trailing whitespace, which the API also rejects. A
  blank last user message is refused rather than dropped: dropping it would turn the
  assistant turn before it into a prefill and change what is asked.
* Assistant ``reasoning_content`` is not sent back: Anthropic only accepts thinking blocks
  with the signature it issued, which the OpenAI shape does not carry.
"""

from __future__ import annotations

from typing import Any

from tokenyard.errors import UpstreamRejected
from tokenyard.wire.images import parse_data_url
from tokenyard.wire.json import JSONDecodeError, JSONObject, loads

IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})

Block = JSONObject
Turn = tuple[str, list[Block]]  # (role, content blocks)


def image_block(url: object) -> Block:
    if not isinstance(url, str) or not url:
        raise UpstreamRejected("image_url.url must be a non-empty string")
    parsed = parse_data_url(url)
    if parsed is not None:
        media_type, data = parsed
        media_type = "image/jpeg" if media_type == "image/jpg" else media_type
        if media_type not in IMAGE_TYPES:
            raise UpstreamRejected(
                f"anthropic accepts images of type {', '.join(sorted(IMAGE_TYPES))}, "
                f"not {media_type}"
            )
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise UpstreamRejected("image_url.url must be an http(s) URL or a base64 data URL")


def _file_block(file: object) -> Block:
    data_url = file.get("file_data") if isinstance(file, dict) else None
    parsed = parse_data_url(data_url) if isinstance(data_url, str) else None
    if parsed is None or parsed[0] != "application/pdf":
        raise UpstreamRejected("anthropic accepts file parts only as base64 PDF file_data")
    block: Block = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": parsed[1]},
    }
    filename = file.get("filename") if isinstance(file, dict) else None
    if isinstance(filename, str) and filename:
        block["title"] = filename
    return block


def content_blocks(content: object, *, images: bool = True) -> list[Block]:
    """A message ``content`` (string or part list) as Anthropic blocks."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content.strip() else []
    if not isinstance(content, list):
        raise UpstreamRejected("message content must be a string or a list of parts")
    blocks: list[Block] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("text", "refusal"):
            text = part.get(kind)
            if not isinstance(text, str):
                raise UpstreamRejected(f"a {kind} part needs a string '{kind}'")
            if text.strip():
                blocks.append({"type": "text", "text": text})
        elif kind == "image_url" and images:
            image = part.get("image_url")
            blocks.append(image_block(image.get("url") if isinstance(image, dict) else image))
        elif kind == "file" and images:
            blocks.append(_file_block(part.get("file")))
        else:
            raise UpstreamRejected(f"anthropic cannot take a content part of type {kind!r} here")
    return blocks


def system_text(content: object) -> str:
    return "\n".join(b["text"] for b in content_blocks(content, images=False))


def _tool_use(call: object) -> Block:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(call, dict) or not isinstance(function, dict):
        raise UpstreamRejected("each tool_calls entry needs a 'function' object")
    name, arguments = function.get("name"), function.get("arguments")
    if not isinstance(name, str) or not isinstance(call.get("id"), str):
        raise UpstreamRejected("each tool call needs a string 'id' and 'function.name'")
    parsed: Any = {}
    if isinstance(arguments, dict):
        parsed = arguments
    elif isinstance(arguments, str) and arguments.strip():
        try:
            parsed = loads(arguments)
        except JSONDecodeError:
            raise UpstreamRejected(
                f"the arguments of tool call {call['id']!r} are not valid JSON"
            ) from None
    if not isinstance(parsed, dict):
        raise UpstreamRejected(f"the arguments of tool call {call['id']!r} are not a JSON object")
    return {"type": "tool_use", "id": call["id"], "name": name, "input": parsed}


def _tool_result(message: JSONObject) -> Block:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise UpstreamRejected("a tool message needs its 'tool_call_id'")
    block: Block = {"type": "tool_result", "tool_use_id": call_id}
    content = content_blocks(message.get("content"))
    if content:
        only_text = all(b["type"] == "text" for b in content)
        block["content"] = "\n".join(b["text"] for b in content) if only_text else content
    return block


def _turn(message: JSONObject) -> Turn:
    role = message.get("role")
    if role == "user":
        return "user", content_blocks(message.get("content"))
    if role == "assistant":
        blocks = content_blocks(message.get("content"), images=False)
        calls = message.get("tool_calls")
        if isinstance(calls, list):
            blocks.extend(_tool_use(call) for call in calls)
        return "assistant", blocks
    if role == "tool":
        return "user", [_tool_result(message)]
    raise UpstreamRejected(f"anthropic cannot take a message with role {role!r}")


def _results_first(blocks: list[Block]) -> list[Block]:
    results = [b for b in blocks if b["type"] == "tool_result"]
    if not results or len(results) == len(blocks):
        return blocks
    return results + [b for b in blocks if b["type"] != "tool_result"]


def _trim_prefill(turn: Turn) -> None:
    """A final assistant turn is a prefill, and the API rejects one ending in whitespace."""
    role, blocks = turn
    if role == "assistant" and blocks and blocks[-1]["type"] == "text":
        text = blocks[-1]["text"].rstrip()
        if text:
            blocks[-1] = {**blocks[-1], "text": text}
        elif len(blocks) > 1:
            blocks.pop()


def convert(messages: object) -> tuple[list[str], list[JSONObject]]:
    """(system texts, Anthropic messages) of the canonical ``messages`` list."""
    if not isinstance(messages, list) or not messages:
        raise UpstreamRejected("'messages' must be a non-empty list")
    system: list[str] = []
    turns: list[Turn] = []
    last_role = None
    for message in messages:
        if not isinstance(message, dict):
            raise UpstreamRejected("each message must be an object")
        if message.get("role") in ("system", "developer"):
            text = system_text(message.get("content"))
            if text:
                system.append(text)
            continue
        turn = _turn(message)
        last_role = turn[0]
        if not turn[1]:
            continue  # nothing to say: the API rejects empty turns
        if turns and turns[-1][0] == turn[0]:
            turns[-1][1].extend(turn[1])
        else:
            turns.append((turn[0], list(turn[1])))
    if not turns:
        raise UpstreamRejected("anthropic needs at least one user or assistant message")
    if last_role == "user" and turns[-1][0] == "assistant":
        raise UpstreamRejected("anthropic rejects a last user message without non-blank text")
    _trim_prefill(turns[-1])
    out = [
        {"role": role, "content": _results_first(blocks) if role == "user" else blocks}
        for role, blocks in turns
    ]
    return system, out
