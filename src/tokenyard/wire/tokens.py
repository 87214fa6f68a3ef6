"""Token estimates for prompts, before any upstream has counted them.

A tokenizer per vendor would be exact but heavy and would need downloads; the gateway only
needs an estimate to check context windows and reserve money (which is settled from the
upstream's own count afterwards). Rule: one token per CJK character, one per four other
characters, plus a small per-message overhead. It errs high for English prose.
"""

from __future__ import annotations

from tokenyard.wire.json import JSONObject

MESSAGE_OVERHEAD = 4


def estimate_text_tokens(text: str) -> int:
    wide = sum(1 for ch in text if ord(ch) >= 0x2E80)
    return wide + (len(text) - wide + 3) // 4


def content_text(content: object) -> str:
    """The text of a message's ``content``: a string or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def estimate_prompt_tokens(messages: list[JSONObject]) -> int:
    total = 0
    for message in messages:
        total += MESSAGE_OVERHEAD + estimate_text_tokens(content_text(message.get("content")))
        calls = message.get("tool_calls")
        if isinstance(calls, list):
            for call in calls:
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict):
                    total += estimate_text_tokens(str(function.get("arguments", "")))
    return total
