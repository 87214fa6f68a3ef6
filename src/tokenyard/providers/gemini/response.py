"""A Gemini ``GenerateContentResponse`` → an OpenAI ``chat.completion`` (and the pieces the
stream reuses).

Wire facts (python-genai ``types.GenerateContentResponse``, ``Candidate``, ``Part``,
``FinishReason``, ``BlockedReason``, ``GenerateContentResponseUsageMetadata``; providers.md
§4.3, §14.1, §14.3):

* Each candidate becomes one choice (``index`` from the candidate, else its position).
  ``text`` parts → ``content``; ``text`` parts with ``thought: true`` → ``reasoning_content``;
  ``functionCall {id?, name, args{}}`` parts → ``tool_calls`` with ``arguments`` as a JSON
  string. Gemini may omit ``functionCall.id``; tokenyard then makes a stable one,
  ``call_`` + 24 hex digits of a hash over the response id, candidate, position, name and
  arguments. A part's ``thoughtSignature`` is handed to the client as
  ``tool_calls[].extra_content.google.thought_signature`` (Google's OpenAI-compatible field).
* ``finishReason``: a function call ends with ``STOP`` → ``tool_calls``; ``MAX_TOKENS`` →
  ``length``; the safety/recitation family → ``content_filter``; everything else → ``stop``.
* No candidates and ``promptFeedback.blockReason`` → one empty choice with
  ``content_filter``.
* Usage: ``prompt = promptTokenCount + toolUsePromptTokenCount`` (cached content is inside
  ``promptTokenCount``), ``completion = candidatesTokenCount + thoughtsTokenCount`` (thoughts are
  billed as output but not counted in ``candidatesTokenCount``), ``cached =
  cachedContentTokenCount``, ``reasoning = thoughtsTokenCount``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from tokenyard.errors import UpstreamError
from tokenyard.wire.json import JSONObject, dumps
from tokenyard.wire.usage import Usage

_FILTERED = frozenset(
    {
        "SAFETY",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "LANGUAGE",
        "RECITATION",
        "IMAGE_RECITATION",
    }
)


def finish_reason(native: object, has_tool_calls: bool) -> str:
    """providers.md §14.1. ``MALFORMED_FUNCTION_CALL``, ``OTHER`` and the rest → ``stop``."""
    if native == "MAX_TOKENS":
        return "length"
    if native in _FILTERED:
        return "content_filter"
    if has_tool_calls and native in ("STOP", None, "", "FINISH_REASON_UNSPECIFIED"):
        return "tool_calls"
    return "stop"


def _count(meta: JSONObject, name: str) -> int:
    value = meta.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def usage_from_gemini(meta: object) -> Usage:
    if not isinstance(meta, dict):
        return Usage()
    prompt = _count(meta, "promptTokenCount") + _count(meta, "toolUsePromptTokenCount")
    thoughts = _count(meta, "thoughtsTokenCount")
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=_count(meta, "candidatesTokenCount") + thoughts,
        cached_tokens=min(_count(meta, "cachedContentTokenCount"), prompt),
        reasoning_tokens=thoughts,
    )


def _tool_call(part: JSONObject, seed: str, ordinal: int) -> JSONObject:
    call = part["functionCall"]
    name = str(call.get("name") or "")
    args = call.get("args")
    arguments = dumps(args if isinstance(args, dict) else {}).decode()
    call_id = call.get("id")
    if not isinstance(call_id, str) or not call_id:
        key = f"{seed}\x00{ordinal}\x00{name}\x00{arguments}".encode()
        call_id = "call_" + hashlib.sha256(key).hexdigest()[:24]
    out: JSONObject = {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }
    signature = part.get("thoughtSignature")
    if isinstance(signature, str) and signature:
        out["extra_content"] = {"google": {"thought_signature": signature}}
    return out


@dataclass(slots=True)
class Pieces:
    """What one candidate's ``content.parts`` said, in OpenAI terms."""

    text: list[str] = field(default_factory=list)
    thoughts: list[str] = field(default_factory=list)
    tool_calls: list[JSONObject] = field(default_factory=list)


def read_parts(candidate: JSONObject, seed: str, first_ordinal: int = 0) -> Pieces:
    """Text, thoughts and function calls of a candidate. Other part kinds (inline images,
    executable code) have no Chat Completions form and are left out."""
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    pieces = Pieces()
    for part in parts if isinstance(parts, list) else ():
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("functionCall"), dict):
            ordinal = first_ordinal + len(pieces.tool_calls)
            pieces.tool_calls.append(_tool_call(part, seed, ordinal))
        elif isinstance(part.get("text"), str):
            (pieces.thoughts if part.get("thought") is True else pieces.text).append(part["text"])
    return pieces


def candidate_index(candidate: JSONObject, position: int) -> int:
    index = candidate.get("index")
    return index if isinstance(index, int) and not isinstance(index, bool) else position


def blocked(doc: JSONObject) -> bool:
    feedback = doc.get("promptFeedback")
    return isinstance(feedback, dict) and bool(feedback.get("blockReason"))


def _choice(candidate: JSONObject, position: int, response_id: str) -> JSONObject:
    index = candidate_index(candidate, position)
    pieces = read_parts(candidate, f"{response_id}:{index}")
    message: JSONObject = {
        "role": "assistant",
        "content": "".join(pieces.text) if pieces.text or not pieces.tool_calls else None,
    }
    if pieces.thoughts:
        message["reasoning_content"] = "".join(pieces.thoughts)
    if pieces.tool_calls:
        message["tool_calls"] = pieces.tool_calls
    return {
        "index": index,
        "message": message,
        "logprobs": None,
        "finish_reason": finish_reason(candidate.get("finishReason"), bool(pieces.tool_calls)),
    }


def chat_completion(
    doc: JSONObject, *, provider: str, model: str, created: int, fallback_id: str
) -> tuple[JSONObject, Usage]:
    usage = usage_from_gemini(doc.get("usageMetadata"))
    response_id = doc.get("responseId")
    response_id = response_id if isinstance(response_id, str) and response_id else ""
    candidates = [c for c in doc.get("candidates") or () if isinstance(c, dict)]
    if candidates:
        choices = [_choice(c, i, response_id) for i, c in enumerate(candidates)]
        choices.sort(key=lambda choice: int(choice["index"]))
    elif blocked(doc):
        empty = {"role": "assistant", "content": ""}
        choices = [
            {"index": 0, "message": empty, "logprobs": None, "finish_reason": "content_filter"}
        ]
    else:
        raise UpstreamError(f"provider {provider} answered without candidates", retryable=True)
    version = doc.get("modelVersion")
    body: JSONObject = {
        "id": f"chatcmpl-{response_id}" if response_id else fallback_id,
        "object": "chat.completion",
        "created": created,
        "model": version if isinstance(version, str) and version else model,
        "choices": choices,
        "usage": usage.to_openai(),
    }
    return body, usage
