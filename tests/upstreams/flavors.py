"""Per-provider wire differences for the OpenAI-wire stand-in upstream.

Everything a flavour changes about the OpenAI wire lives here (see /work/shared/providers.md
sections 2, 5, 6, 8, 10 and 11): error envelopes, reasoning field names, usage fields and where
usage goes in a stream. ``openai_wire.py`` holds the server and the flavour-neutral logic.
"""

from __future__ import annotations

import re
import uuid
from enum import Enum
from typing import Any

CONTEXT_WINDOW = 8192
REASONING_TEXT = "thinking about it"


class Flavor(str, Enum):  # noqa: UP042 - the public API is spelled (str, Enum)
    OPENAI = "openai"
    DEEPSEEK = "deepseek"
    MOONSHOT = "moonshot"
    DASHSCOPE = "dashscope"
    MISTRAL = "mistral"
    VLLM = "vllm"
    OLLAMA = "ollama"


DEFAULT_MODELS: dict[Flavor, list[str]] = {
    Flavor.OPENAI: ["gpt-4o-mini", "text-embedding-3-small"],
    Flavor.DEEPSEEK: ["deepseek-chat", "deepseek-reasoner"],
    Flavor.MOONSHOT: ["moonshot-v1-8k", "kimi-k2-thinking"],
    Flavor.DASHSCOPE: ["qwen-plus", "qwq-plus", "text-embedding-v3"],
    Flavor.MISTRAL: ["mistral-large-latest", "mistral-embed"],
    Flavor.VLLM: ["Qwen/Qwen3-8B"],
    Flavor.OLLAMA: ["llama3.2:latest"],
}

# --------------------------------------------------------------------------- reasoning


def reasoning_field(flavor: Flavor, model: str, body: dict[str, Any]) -> str | None:
    """Name of the message/delta field carrying reasoning text, or None if the model does not
    reason. DeepSeek: models named *reasoner*; DashScope: *qwq* / *thinking* models or
    ``enable_thinking: true``; vLLM / Ollama: models containing "think" (field ``reasoning``)."""
    name = model.lower()
    if flavor is Flavor.DEEPSEEK and "reasoner" in name:
        return "reasoning_content"
    if flavor is Flavor.DASHSCOPE and (
        "qwq" in name or "thinking" in name or body.get("enable_thinking") is True
    ):
        return "reasoning_content"
    if flavor in (Flavor.VLLM, Flavor.OLLAMA) and "think" in name:
        return "reasoning"
    return None


# --------------------------------------------------------------------------- request checks

_MISTRAL_ID = re.compile(r"[a-zA-Z0-9]{9}")


def request_problem(flavor: Flavor, body: dict[str, Any]) -> str | None:
    """A flavour-specific HTTP 400 message for a chat request, or None if it is acceptable.

    Mistral rejects tool-call ids that are not 9 alphanumerics (providers.md 10.2); DashScope
    rejects ``enable_thinking: true`` on non-streamed calls (providers.md 6.2)."""
    thinking = body.get("enable_thinking") is True
    if flavor is Flavor.DASHSCOPE and thinking and body.get("stream") is not True:
        return "parameter.enable_thinking must be set to false for non-streaming calls"
    if flavor is Flavor.MISTRAL:
        for message in body.get("messages") or []:
            calls = message.get("tool_calls") or []
            ids = [c.get("id") for c in calls if isinstance(c, dict)]
            if message.get("role") == "tool":
                ids.append(message.get("tool_call_id"))
            for tid in ids:
                if not (isinstance(tid, str) and _MISTRAL_ID.fullmatch(tid)):
                    return f"Tool call id was {tid} but must be a-z, A-Z, 0-9, with a length of 9."
    return None


# --------------------------------------------------------------------------- usage


def usage_for(
    flavor: Flavor, prompt: int, completion: int, reasoning: int, cached: bool
) -> dict[str, Any]:
    """The flavour's ``usage`` object. ``cached`` = the system message starts with "cached:"."""
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    hit = prompt // 2 if cached else 0
    if flavor is Flavor.OPENAI:
        usage["prompt_tokens_details"] = {"cached_tokens": hit, "audio_tokens": 0}
        usage["completion_tokens_details"] = {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        }
    elif flavor is Flavor.DEEPSEEK:  # no prompt_tokens_details: hit/miss counters instead
        usage["prompt_cache_hit_tokens"] = hit
        usage["prompt_cache_miss_tokens"] = prompt - hit
        if reasoning:
            usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    elif flavor in (Flavor.DASHSCOPE, Flavor.VLLM):
        usage["prompt_tokens_details"] = {"cached_tokens": hit}
        if reasoning and flavor is Flavor.DASHSCOPE:
            usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return usage


def stream_usage_plan(flavor: Flavor, body: dict[str, Any]) -> tuple[str | None, bool]:
    """Where usage goes in a stream: (placement on the finish chunk, trailing usage chunk?).

    Placement is "top" (``chunk.usage``), "choice" (``chunk.choices[0].usage``) or None.
    The trailing chunk is ``{"choices": [], "usage": {...}}`` just before ``[DONE]``.
    """
    options = body.get("stream_options")
    include = isinstance(options, dict) and options.get("include_usage") is True
    if flavor is Flavor.VLLM and isinstance(options, dict):
        include = options.get("include_usage", True) is not False  # vLLM defaults it to true
    if flavor is Flavor.MISTRAL:
        return "top", False  # usage on the last chunk regardless of stream_options
    if flavor is Flavor.DEEPSEEK:
        return ("top" if include else None), False
    if flavor is Flavor.MOONSHOT:
        return "choice", include
    return None, include


# --------------------------------------------------------------------------- errors

_STATUS_DEFAULTS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request (stand-in injected failure)."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    402: ("invalid_request_error", "insufficient_balance", "Insufficient Balance"),
    403: ("permission_error", None, "You are not allowed to access this resource."),
    404: ("invalid_request_error", "model_not_found", "The requested resource was not found."),
    422: ("invalid_request_error", None, "Invalid parameters (stand-in injected failure)."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached. Please try again in 1s."),
    500: ("server_error", None, "The server had an error while processing your request."),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", "overloaded", "The server is overloaded, please try again later."),
}
_MOONSHOT_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "invalid_authentication_error",
    403: "exceeded_current_quota_error",
    404: "resource_not_found_error",
    429: "rate_limit_reached_error",
}
_VLLM_TYPES: dict[int, str] = {
    400: "BadRequestError",
    401: "UnauthorizedError",
    404: "NotFoundError",
    429: "TooManyRequestsError",
    500: "InternalServerError",
    503: "ServiceUnavailableError",
}
# DashScope's per-minute throttle reuses OpenAI's quota wording but is transient (providers.md 6.3).
_DASHSCOPE_429 = (
    "insufficient_quota",
    "insufficient_quota",
    "You exceeded your current quota, please check your plan and billing details.",
)


def error_body(
    flavor: Flavor,
    status: int,
    message: str | None = None,
    *,
    type_: str | None = None,
    code: str | None = None,
    param: str | None = None,
) -> dict[str, Any]:
    """The flavour's error envelope for ``status``. Arguments left as None take the status'
    defaults; fields that the flavour's envelope does not have are dropped."""
    fallback = ("server_error" if status >= 500 else "invalid_request_error", None, "")
    d_type, d_code, d_message = _STATUS_DEFAULTS.get(status, fallback)
    if flavor is Flavor.DASHSCOPE and status == 429:
        d_type, d_code, d_message = _DASHSCOPE_429
    etype = type_ or d_type
    ecode = code if code is not None else d_code
    text = message or d_message or f"Stand-in error (HTTP {status})."
    if flavor is Flavor.MOONSHOT:  # Kimi: no code / param
        mtype = type_ or _MOONSHOT_TYPES.get(status, "server_error")
        return {"error": {"type": mtype, "message": text}}
    if flavor is Flavor.VLLM:  # integer code = HTTP status
        vtype = type_ or _VLLM_TYPES.get(status, "BadRequestError" if status < 500 else "Error")
        return {"error": {"message": text, "type": vtype, "param": param, "code": status}}
    if flavor is Flavor.OLLAMA:  # fixed three types, code always null
        otype = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
        return {"error": {"message": text, "type": otype, "param": None, "code": None}}
    if flavor is Flavor.MISTRAL:
        if status == 422:  # FastAPI validation style
            return {"detail": [{"loc": ["body"], "msg": text, "type": "value_error"}]}
        return {"object": "error", "message": text, "type": etype, "param": param, "code": ecode}
    body: dict[str, Any] = {
        "error": {"message": text, "type": etype, "param": param, "code": ecode}
    }
    if flavor is Flavor.DASHSCOPE:
        request_id = str(uuid.UUID(int=status))
        body["id"] = f"chatcmpl-{request_id}"
        body["request_id"] = request_id
    return body


def not_found_body(flavor: Flavor, model: str) -> dict[str, Any]:
    messages = {
        Flavor.MOONSHOT: f"Not found the model {model} or Permission denied",
        Flavor.OLLAMA: f'model "{model}" not found, try pulling it first',
        Flavor.VLLM: f"The model `{model}` does not exist.",
    }
    default = f"The model `{model}` does not exist or you do not have access to it."
    return error_body(flavor, 404, messages.get(flavor, default), code="model_not_found")


def context_overflow_body(flavor: Flavor, prompt_tokens: int) -> dict[str, Any]:
    """HTTP 400 for an over-long prompt. OpenAI's body (code "context_length_exceeded") where
    the flavour's envelope has a string code; Kimi's own wording; vLLM's integer code."""
    requested = max(prompt_tokens, CONTEXT_WINDOW + 1)
    if flavor is Flavor.MOONSHOT:
        message = f"Invalid request: Your request exceeded model token limit : {CONTEXT_WINDOW}"
        return error_body(flavor, 400, message)
    if flavor is Flavor.VLLM:
        message = (
            f"This model's maximum context length is {CONTEXT_WINDOW} tokens. However, you "
            f"requested {requested} tokens in the messages, Please reduce the length of the "
            "messages."
        )
        return error_body(flavor, 400, message)
    message = (
        f"This model's maximum context length is {CONTEXT_WINDOW} tokens. However, your "
        f"messages resulted in {requested} tokens. Please reduce the length of the messages."
    )
    return error_body(flavor, 400, message, code="context_length_exceeded", param="messages")


def default_fail_headers(flavor: Flavor, status: int) -> dict[str, str]:
    """Headers of an injected failure: ``Retry-After: 1`` on 429, except DeepSeek, which
    documents no Retry-After (providers.md 5.6)."""
    if status == 429 and flavor is not Flavor.DEEPSEEK:
        return {"Retry-After": "1"}
    return {}


def tool_call_id(flavor: Flavor) -> str:
    """Mistral requires ids matching [a-zA-Z0-9]{9}; everyone else gets "call_1"."""
    return "call00001" if flavor is Flavor.MISTRAL else "call_1"
