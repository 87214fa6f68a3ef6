"""Token usage in OpenAI semantics (providers.md §1.3).

``prompt_tokens`` includes ``cached_tokens``; ``completion_tokens`` includes
``reasoning_tokens``. Adapters translate every vendor's fields into this one type.
"""

from __future__ import annotations

from tokenyard.immutable import immutable
from tokenyard.wire.json import JSONObject


@immutable
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_openai(self) -> JSONObject:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
        }


def _int(value: object) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def usage_from_openai(usage: JSONObject, cached_tokens_field: str | None = None) -> Usage:
    """Read an OpenAI-shaped usage object; ``cached_tokens_field`` names a vendor's own
    top-level field for cache hits (DeepSeek: ``prompt_cache_hit_tokens``)."""
    prompt_details = usage.get("prompt_tokens_details")
    completion_details = usage.get("completion_tokens_details")
    cached = _int(prompt_details.get("cached_tokens")) if isinstance(prompt_details, dict) else 0
    if cached_tokens_field is not None:
        cached = cached or _int(usage.get(cached_tokens_field))
    if not cached:
        cached = _int(usage.get("cached_tokens"))  # Moonshot's top-level spelling
    reasoning = (
        _int(completion_details.get("reasoning_tokens"))
        if isinstance(completion_details, dict)
        else 0
    )
    prompt = _int(usage.get("prompt_tokens"))
    completion = _int(usage.get("completion_tokens"))
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=min(cached, prompt),
        reasoning_tokens=min(reasoning, completion),
    )
