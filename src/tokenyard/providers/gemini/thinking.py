"""``reasoning_effort`` → ``generationConfig.thinkingConfig``.

Wire facts (python-genai ``types.ThinkingConfig`` / ``ThinkingLevel``; providers.md §4.2, §4.6):

* Gemini 2.x models take ``thinkingBudget`` (tokens; 0 disables thinking on Flash models);
  Gemini 3.x models take ``thinkingLevel`` ``MINIMAL|LOW|MEDIUM|HIGH``. The two cannot be
  combined (the API answers 400).
* Budgets per effort are the ones Google's OpenAI-compatible endpoint uses for 2.5 models:
  low 1024, medium 8192, high 24576, none 0 (providers.md §4.6; the numbers are "commonly
  cited", not verified in an official table).
* ``includeThoughts: true`` makes thought summaries come back as parts with ``thought: true``.
  tokenyard asks for them whenever the client set a ``reasoning_effort`` other than ``none``
  (so that ``reasoning_content`` is filled, as it is on the other reasoning families).
* Clients that speak Google's OpenAI-compatible dialect may instead send
  ``{"google": {"thinking_config": {"thinking_budget"|"thinking_level"|"include_thoughts"}}}``
  (``extra_body`` of the OpenAI SDK); that wins over ``reasoning_effort``.

Which style a model takes is decided by its name (``BUDGET_MODEL_PREFIXES``); unknown and
newer models get levels.
"""

from __future__ import annotations

from tokenyard.errors import UpstreamRejected
from tokenyard.wire.json import JSONObject

BUDGET_MODEL_PREFIXES = ("gemini-1", "gemini-2")
_BUDGETS = {"none": 0, "minimal": 1024, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 24576}
_LEVELS = {
    "none": "MINIMAL",
    "minimal": "MINIMAL",
    "low": "LOW",
    "medium": "MEDIUM",
    "high": "HIGH",
    "xhigh": "HIGH",
}


def uses_budget(model: str) -> bool:
    return model.rsplit("/", 1)[-1].startswith(BUDGET_MODEL_PREFIXES)


def _explicit(body: JSONObject) -> JSONObject:
    google = body.get("google")
    raw = google.get("thinking_config") if isinstance(google, dict) else None
    if not isinstance(raw, dict):
        return {}
    config: JSONObject = {}
    budget = raw.get("thinking_budget")
    if isinstance(budget, int) and not isinstance(budget, bool):
        config["thinkingBudget"] = budget
    level = raw.get("thinking_level")
    if isinstance(level, str) and level:
        config["thinkingLevel"] = level.upper()
    include = raw.get("include_thoughts")
    if isinstance(include, bool):
        config["includeThoughts"] = include
    return config


def thinking_config(body: JSONObject, model: str) -> JSONObject:
    config = _explicit(body)
    effort = body.get("reasoning_effort")
    if effort is None or "thinkingBudget" in config or "thinkingLevel" in config:
        return config
    if not isinstance(effort, str) or effort not in _LEVELS:
        raise UpstreamRejected(f"unsupported reasoning_effort {effort!r}")
    if uses_budget(model):
        config["thinkingBudget"] = _BUDGETS[effort]
    else:
        config["thinkingLevel"] = _LEVELS[effort]
    if effort != "none":
        config.setdefault("includeThoughts", True)
    return config
