"""A canonical (OpenAI Chat Completions) request → an Anthropic ``POST /v1/messages`` body.

Wire facts (anthropic-sdk-python ``types/message_create_params.py``, ``tool_param.py``,
``tool_choice_*_param.py``, ``thinking_config_enabled_param.py``, ``output_config_param.py``,
``json_output_format_param.py``, ``metadata_param.py``; providers.md §3.2):

* ``max_tokens`` is required: ``max_completion_tokens``, else ``max_tokens``, else the
  provider's configured default.
* ``temperature`` ranges 0.0–1.0 on Anthropic, 0–2 on OpenAI. Policy: **clamp** (values above
  1 become 1), not halve — a client asking for 0.7 gets 0.7. API version 2026-10-21 removed
  ``temperature``/``top_p``/``top_k``; under it they are not sent at all.
* ``stop`` → ``stop_sequences``; ``user`` / ``safety_identifier`` → ``metadata.user_id``.
* ``tools`` → ``{name, description, input_schema, strict}``; ``tool_choice`` ``auto`` →
  ``{"type":"auto"}``, ``required`` → ``{"type":"any"}``, ``none`` → ``{"type":"none"}``, a
  named function → ``{"type":"tool","name"}``; ``parallel_tool_calls: false`` →
  ``disable_parallel_tool_use: true`` inside ``tool_choice``.
* ``response_format`` ``json_schema`` → ``output_config.format = {"type":"json_schema",
  "schema"}`` (structured outputs). ``json_object`` has no Anthropic switch: policy is one
  more ``system`` instruction asking for a single JSON object (a forced tool would hide the
  answer in ``tool_use`` and rule out thinking; a prefilled ``{`` is refused by newer models).
* ``reasoning_effort`` → ``thinking: {"type":"enabled","budget_tokens"}`` with
  minimal/low 1024, medium 4096, high/xhigh/max 16384. The budget must be ≥ 1024 and
  < ``max_tokens`` and is part of it: a client's own limit caps the budget at
  ``max_tokens - 1`` (below 1024: no thinking); without one, ``max_tokens`` becomes the
  default plus the budget, so thinking does not eat the answer. ``none`` sends nothing.
  Thinking is incompatible with forced tool use (``any``/``tool``): the explicit tool
  choice wins and thinking is left off. With thinking on, ``temperature`` and ``top_k``
  are not sent and ``top_p`` is raised to at least 0.95 (the API's documented limits).
* ``n > 1`` is refused (Anthropic returns one message). ``presence_penalty``,
  ``frequency_penalty``, ``seed``, ``logprobs``, ``top_logprobs``, ``logit_bias`` and every
  other OpenAI-only field are dropped: the body is built from known fields only.
"""

from __future__ import annotations

from tokenyard.errors import UpstreamRejected
from tokenyard.providers.anthropic.messages import convert
from tokenyard.wire.json import JSONObject

THINKING_BUDGETS = {
    "minimal": 1024,
    "low": 1024,
    "medium": 4096,
    "high": 16384,
    "xhigh": 16384,  # more would pass some models' output limit (Opus 4: 32000 in all)
    "max": 16384,
}
MIN_THINKING_BUDGET = 1024
THINKING_MIN_TOP_P = 0.95
JSON_OBJECT_INSTRUCTION = (
    "Answer with a single valid JSON object and nothing else: no prose, no Markdown code fences."
)


def _max_tokens(body: JSONObject) -> int | None:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UpstreamRejected(f"'{name}' must be a positive integer")
        return value
    return None


def _tools(body: JSONObject) -> list[JSONObject]:
    tools = body.get("tools")
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise UpstreamRejected("'tools' must be a list")
    out: list[JSONObject] = []
    for tool in tools:
        function = tool.get("function") if isinstance(tool, dict) else None
        if (
            not isinstance(tool, dict)
            or tool.get("type") != "function"
            or not isinstance(function, dict)
        ):
            raise UpstreamRejected("anthropic accepts only tools of type 'function'")
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise UpstreamRejected("each function tool needs a 'name'")
        schema = function.get("parameters")
        entry: JSONObject = {
            "name": name,
            "input_schema": schema
            if isinstance(schema, dict)
            else {"type": "object", "properties": {}},
        }
        if isinstance(function.get("description"), str):
            entry["description"] = function["description"]
        if isinstance(function.get("strict"), bool):
            entry["strict"] = function["strict"]
        out.append(entry)
    return out


def _tool_choice(body: JSONObject) -> JSONObject | None:
    choice = body.get("tool_choice")
    mapped: JSONObject
    if choice is None or choice == "auto":
        mapped = {"type": "auto"}
    elif choice == "required":
        mapped = {"type": "any"}
    elif choice == "none":
        return {"type": "none"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        name = choice["function"].get("name")
        if not isinstance(name, str) or not name:
            raise UpstreamRejected("tool_choice.function.name must be a string")
        mapped = {"type": "tool", "name": name}
    else:
        raise UpstreamRejected(f"anthropic cannot honour tool_choice {choice!r}")
    if body.get("parallel_tool_calls") is False:
        mapped["disable_parallel_tool_use"] = True
    elif choice is None:
        return None  # the API's own default is auto
    return mapped


def _stop(value: object) -> list[str] | None:
    if value is None:
        return None
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise UpstreamRejected("'stop' must be a string or a list of strings")
    return [s for s in stops if s] or None


def _response_format(body: JSONObject, out: JSONObject, system: list[str]) -> None:
    fmt = body.get("response_format")
    if fmt is None:
        return
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "json_schema":
        spec = fmt.get("json_schema") if isinstance(fmt, dict) else None
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise UpstreamRejected("response_format.json_schema.schema must be an object")
        out["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
    elif kind == "json_object":
        system.append(JSON_OBJECT_INSTRUCTION)
    elif kind != "text":
        raise UpstreamRejected(f"anthropic cannot honour response_format {kind!r}")


def _thinking(
    body: JSONObject, max_tokens: int | None, tool_choice: JSONObject | None
) -> int | None:
    effort = body.get("reasoning_effort")
    if effort is None or effort == "none":
        return None
    if effort not in THINKING_BUDGETS:
        raise UpstreamRejected(f"unknown reasoning_effort {effort!r}")
    if tool_choice is not None and tool_choice["type"] in ("any", "tool"):
        return None  # forced tool use rules thinking out; the tool choice is explicit
    budget = THINKING_BUDGETS[effort]
    if max_tokens is not None:
        budget = min(budget, max_tokens - 1)
    return budget if budget >= MIN_THINKING_BUDGET else None


def _sampling(body: JSONObject, out: JSONObject, thinking: bool) -> None:
    """temperature / top_p / top_k, within the API's limits."""
    temperature, top_p, top_k = body.get("temperature"), body.get("top_p"), body.get("top_k")
    if isinstance(temperature, int | float) and not isinstance(temperature, bool) and not thinking:
        out["temperature"] = min(max(float(temperature), 0.0), 1.0)
    if isinstance(top_p, int | float) and not isinstance(top_p, bool):
        low = THINKING_MIN_TOP_P if thinking else 0.0
        out["top_p"] = min(max(float(top_p), low), 1.0)
    if isinstance(top_k, int) and not isinstance(top_k, bool) and top_k > 0 and not thinking:
        out["top_k"] = top_k


def encode(
    body: JSONObject,
    model: str,
    *,
    stream: bool,
    default_max_tokens: int,
    sampling: bool = True,
) -> JSONObject:
    """The Anthropic request for ``body`` (never modified) sent to ``model``. ``sampling``
    False leaves out temperature/top_p/top_k (API version 2026-10-21 rejects them)."""
    n = body.get("n")
    if n is not None and n != 1:
        raise UpstreamRejected("anthropic returns one choice per request: n must be 1")
    system, messages = convert(body.get("messages"))
    max_tokens = _max_tokens(body)
    out: JSONObject = {
        "model": model,
        "max_tokens": default_max_tokens if max_tokens is None else max_tokens,
        "messages": messages,
    }
    _response_format(body, out, system)
    if system:
        out["system"] = [{"type": "text", "text": text} for text in system]
    tools = _tools(body)
    tool_choice = _tool_choice(body) if tools else None
    if tools:
        out["tools"] = tools
        if tool_choice is not None:
            out["tool_choice"] = tool_choice
    budget = _thinking(body, max_tokens, tool_choice)
    if budget is not None:
        out["thinking"] = {"type": "enabled", "budget_tokens": budget}
        if max_tokens is None:
            out["max_tokens"] = default_max_tokens + budget
    if sampling:
        _sampling(body, out, budget is not None)
    stops = _stop(body.get("stop"))
    if stops:
        out["stop_sequences"] = stops
    user = body.get("user") or body.get("safety_identifier")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    if stream:
        out["stream"] = True
    return out
