"""The non-model sections of a LiteLLM config: ``litellm_settings``, ``router_settings``,
``general_settings``, ``environment_variables`` — what maps, and why the rest does not.

Every key is either used or named in a warning with its reason, so an operator can see at
a glance what tokenyard will not do for them (callbacks, caching, guardrails, budgets…).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tokenyard.wire.json import JSONObject

_POLICIES = {
    "simple-shuffle": "weighted",
    "latency-based-routing": "fastest",
    "cost-based-routing": "cheapest",
}
_REASONS = {
    "callbacks": "tokenyard logs structured JSON and exports Prometheus metrics and OTel traces",
    "success_callback": "tokenyard logs structured JSON and exports Prometheus metrics",
    "failure_callback": "tokenyard logs structured JSON and exports Prometheus metrics",
    "service_callback": "tokenyard logs structured JSON and exports Prometheus metrics",
    "cache": "tokenyard does not cache responses",
    "cache_params": "tokenyard does not cache responses",
    "guardrails": "tokenyard has no guardrails; put them in front of or behind it",
    "max_budget": "budgets are per account and per key (/admin/keys budget, account credit)",
    "budget_duration": "budgets are per account and per key (/admin/keys budget)",
    "max_end_user_budget": "budgets are per account and per key",
    "drop_params": "tokenyard already translates or drops parameters per vendor",
    "num_retries": "tokenyard fails over across deployments, keys and fallbacks "
    "(routing.max_attempts, default 5)",
    "allowed_fails": "tokenyard's circuit breaker is set under health:",
    "cooldown_time": "tokenyard's circuit breaker is set under health: (open_s)",
    "content_policy_fallbacks": "tokenyard's fallbacks apply to every failure; add by hand",
    "default_fallbacks": "list fallbacks on each model",
    "model_group_alias": "give the model its public name directly",
    "set_verbose": "set logging.level",
    "json_logs": "tokenyard always logs JSON",
    "store_model_in_db": "tokenyard's catalogue lives in the config file",
    "alerting": "use the Prometheus metrics for alerts",
    "proxy_batch_write_at": "tokenyard commits each charge before the answer ends",
}


@dataclass
class Settings:
    top: JSONObject = field(default_factory=dict)  # admin_key, database, redis
    fallbacks: dict[str, list[str]] = field(default_factory=dict)
    policy: str = "weighted"  # for models with several deployments
    timeout_s: float | None = None


def secret(value: object) -> str | None:
    """LiteLLM's ``os.environ/NAME`` as tokenyard's ``${NAME}``; other strings as they are."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        return None
    value = value.strip()
    if value.startswith("os.environ/"):
        return "${" + value.removeprefix("os.environ/") + "}"
    return value


def _section(data: JSONObject, name: str, warnings: list[str]) -> JSONObject:
    value = data.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        warnings.append(f"{name}: not a mapping — ignored")
        return {}
    return value


def _add_fallbacks(
    raw: object, where: str, found: Settings, warnings: list[str], *, context: bool
) -> None:
    items = raw if isinstance(raw, list) else [raw]
    for item in items:
        if not isinstance(item, dict):
            warnings.append(f"{where}: expected a list of {{model: [fallbacks]}} — skipped")
            continue
        for model, names in item.items():
            listed = names if isinstance(names, list) else [names]
            targets = found.fallbacks.setdefault(str(model), [])
            targets += [str(n) for n in listed if str(n) not in targets]
    if context and items:
        warnings.append(
            f"{where}: added to the models' fallbacks — tokenyard tries fallbacks after any "
            "failure of the deployments, not only context-window errors"
        )


def _redis(router: JSONObject) -> str | None:
    url = secret(router.get("redis_url"))
    if url:
        return url
    host = secret(router.get("redis_host"))
    if host is None:
        return None
    port = secret(router.get("redis_port")) or "6379"
    password = secret(router.get("redis_password"))
    auth = f":{password}@" if password else ""
    return f"redis://{auth}{host}:{port}/0"


def _leftovers(section: str, values: JSONObject, used: set[str], warnings: list[str]) -> None:
    for key in values:
        if key not in used:
            reason = _REASONS.get(key, "no tokenyard equivalent")
            warnings.append(f"not mapped: {section}.{key} — {reason}")


def read_settings(data: JSONObject, warnings: list[str]) -> Settings:
    """What the settings sections say in tokenyard terms; warnings for the rest."""
    found = Settings()
    library = _section(data, "litellm_settings", warnings)
    router = _section(data, "router_settings", warnings)
    general = _section(data, "general_settings", warnings)
    for section, values in (("router_settings", router), ("litellm_settings", library)):
        for name in ("fallbacks", "context_window_fallbacks"):
            if name in values:
                where, context = f"{section}.{name}", name != "fallbacks"
                _add_fallbacks(values[name], where, found, warnings, context=context)
    strategy = router.get("routing_strategy")
    if strategy is not None:
        found.policy = _POLICIES.get(str(strategy), "weighted")
        if str(strategy) not in _POLICIES:
            warnings.append(
                f"router_settings.routing_strategy {strategy!r}: no tokenyard equivalent — "
                "models with several deployments use policy weighted"
            )
    timeout = library.get("request_timeout", router.get("timeout"))
    if isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout > 0:
        found.timeout_s = timeout
    redis = _redis(router)
    if redis:
        found.top["redis"] = redis
    _master_key(general, found, warnings)
    _database(general, found, warnings)
    _leftovers(
        "litellm_settings",
        library,
        {"fallbacks", "context_window_fallbacks", "request_timeout"},
        warnings,
    )
    router_used = {"fallbacks", "context_window_fallbacks", "routing_strategy", "timeout"}
    router_used |= {"redis_url", "redis_host", "redis_port", "redis_password"}
    _leftovers("router_settings", router, router_used, warnings)
    _leftovers("general_settings", general, {"master_key", "database_url"}, warnings)
    env = _section(data, "environment_variables", warnings)
    if env:
        warnings.append(
            "not mapped: environment_variables ("
            + ", ".join(sorted(map(str, env)))
            + ") — set them in tokenyard's environment; its config only reads ${NAME}"
        )
    known = {"model_list", "litellm_settings", "router_settings", "general_settings"}
    for key in data:
        if key not in known and key != "environment_variables":
            warnings.append(f"not mapped: {key} — no tokenyard equivalent")
    return found


def _database(general: JSONObject, found: Settings, warnings: list[str]) -> None:
    database = secret(general.get("database_url"))
    if database:
        if database.startswith("postgres://"):
            database = "postgresql://" + database.removeprefix("postgres://")
        found.top["database"] = database
        warnings.append(
            "general_settings.database_url → database: tokenyard creates its own tables there; "
            "a fresh database is cleaner than LiteLLM's"
        )


def _master_key(general: JSONObject, found: Settings, warnings: list[str]) -> None:
    key = secret(general.get("master_key"))
    if key is None:
        warnings.append("no general_settings.master_key: admin_key left unset (admin API closed)")
    elif not key.startswith("${") and len(key) < 8:
        warnings.append(
            "general_settings.master_key is shorter than the 8 characters admin_key needs — "
            "not mapped; set admin_key yourself"
        )
    else:
        found.top["admin_key"] = key
