"""A LiteLLM proxy ``config.yaml`` → a tokenyard config.

LiteLLM lists *deployments* (``model_list``: a public ``model_name`` plus the
``litellm_params`` of one upstream call); tokenyard separates *providers* (an endpoint and
its key pool) from *models* (a public name and its deployments). Entries with the same
public name, endpoint and upstream model but different keys become one provider's key pool
(LiteLLM load-balances them; tokenyard's pool does the same, per key limits included);
entries on different endpoints become several deployments of one model. Providers with the
same endpoint and the same key set are shared between models.

Facts taken from LiteLLM's docs (proxy/configs, proxy/custom_pricing, proxy/reliability):
``os.environ/NAME`` secrets, ``rpm``/``tpm`` in ``litellm_params`` or beside them,
``fallbacks``/``context_window_fallbacks`` as a list of ``{model: [fallbacks]}`` in
``router_settings`` or ``litellm_settings``, per-token costs in ``model_info`` or
``litellm_params``, ``general_settings.master_key`` / ``database_url``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from tokenyard.cli.importers.emit import (
    Conversion,
    ImportProblem,
    per_million,
    slug,
    unique_name,
)
from tokenyard.cli.importers.litellm_settings import read_settings, secret
from tokenyard.wire.json import JSONObject


@dataclass(frozen=True)
class Route:
    """How one LiteLLM provider prefix reaches its upstream in tokenyard terms."""

    api: str
    default_base: str | None  # None: the wire family's own default host
    vendor: str | None = None
    key_env: str | None = None  # what LiteLLM reads when an entry names no api_key
    base_suffix: str = ""  # what tokenyard's base_url has after LiteLLM's api_base
    needs_base: bool = False


ROUTES: Mapping[str, Route] = {
    "openai": Route("openai", "https://api.openai.com/v1", key_env="OPENAI_API_KEY"),
    "anthropic": Route("anthropic", None, key_env="ANTHROPIC_API_KEY"),
    "gemini": Route("gemini", None, key_env="GEMINI_API_KEY"),
    "deepseek": Route("openai", "https://api.deepseek.com/v1", key_env="DEEPSEEK_API_KEY"),
    "moonshot": Route("openai", "https://api.moonshot.ai/v1", key_env="MOONSHOT_API_KEY"),
    "mistral": Route("openai", "https://api.mistral.ai/v1", key_env="MISTRAL_API_KEY"),
    "dashscope": Route(
        "openai",
        "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
        key_env="DASHSCOPE_API_KEY",
    ),
    "groq": Route("openai", "https://api.groq.com/openai/v1", key_env="GROQ_API_KEY"),
    "openrouter": Route("openai", "https://openrouter.ai/api/v1", key_env="OPENROUTER_API_KEY"),
    "xai": Route("openai", "https://api.x.ai/v1", key_env="XAI_API_KEY"),
    "together_ai": Route("openai", "https://api.together.xyz/v1", key_env="TOGETHERAI_API_KEY"),
    # Azure OpenAI's v1 API takes the OpenAI wire at {resource}/openai/v1 with the key as a
    # bearer token and the deployment name as the model; no api-version is needed.
    "azure": Route(
        "openai", None, key_env="AZURE_API_KEY", base_suffix="/openai/v1", needs_base=True
    ),
    "ollama": Route("openai", "http://localhost:11434/v1", vendor="ollama", base_suffix="/v1"),
    "ollama_chat": Route("openai", "http://localhost:11434/v1", vendor="ollama", base_suffix="/v1"),
    "hosted_vllm": Route("openai", None, vendor="vllm", needs_base=True),
}

# LiteLLM also accepts bare names (``gpt-4o``) and infers the provider from them.
_BARE_PREFIXES = (
    ("gpt-", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("chatgpt-", "openai"),
    ("text-embedding-", "openai"),
    ("claude-", "anthropic"),
    ("gemini-", "gemini"),
    ("deepseek-", "deepseek"),
)

_PARAMS_USED = frozenset(
    {
        "model",
        "api_key",
        "api_base",
        "rpm",
        "tpm",
        "weight",
        "order",
        "timeout",
        "extra_headers",
        "input_cost_per_token",
        "output_cost_per_token",
        "cache_read_input_token_cost",
    }
)
_PARAM_REASONS = {
    "api_version": "Azure is reached through its v1 API, which has no api-version",
    "temperature": "per-request defaults are the client's to send",
    "max_tokens": "per-request defaults are the client's to send",
    "stream_timeout": "tokenyard bounds streams by providers' first_byte_timeout_s/idle_timeout_s",
    "max_retries": "tokenyard retries by failing over (routing.max_attempts)",
    "input_cost_per_second": "tokenyard prices tokens only",
    "organization": "set the OpenAI-Organization header under the provider's headers",
}
_INFO_USED = frozenset(
    {
        "mode",
        "max_tokens",
        "max_input_tokens",
        "max_output_tokens",
        "input_cost_per_token",
        "output_cost_per_token",
        "cache_read_input_token_cost",
        "supports_function_calling",
        "supports_vision",
        "supports_response_schema",
        "supports_reasoning",
    }
)
_CAPABILITY_FLAGS = (
    ("supports_function_calling", "tools"),
    ("supports_response_schema", "json_mode"),
    ("supports_vision", "vision"),
    ("supports_reasoning", "reasoning"),
)


def _positive_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value >= 1:
        return value
    if isinstance(value, float) and value >= 1 and value.is_integer():
        return int(value)
    return None


@dataclass
class Entry:
    """One ``model_list`` entry, resolved to an endpoint."""

    where: str
    public: str
    route: Route
    upstream: str
    base_url: str | None
    key: str | None
    params: JSONObject
    info: JSONObject
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def endpoint(self) -> tuple[str, str | None, str | None, tuple[tuple[str, str], ...]]:
        return (self.route.api, self.base_url, self.route.vendor, self.headers)


@dataclass
class _Builder:
    warnings: list[str]
    providers: dict[str, JSONObject] = field(default_factory=dict)
    by_identity: dict[object, str] = field(default_factory=dict)
    key_limits: dict[tuple[str, str], tuple[int | None, int | None]] = field(default_factory=dict)
    unmapped: dict[str, list[str]] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    placeholders: list[str] = field(default_factory=list)

    def skip(self, path: str, where: str, reason: str) -> None:
        self.unmapped.setdefault(path, []).append(where)
        self.reasons.setdefault(path, reason)


def _route(model: str) -> tuple[str, str, Route | None]:
    """(prefix, upstream model, route) of ``litellm_params.model``."""
    prefix, _, upstream = model.partition("/")
    if not upstream:
        upstream = model
        prefix = next((p for start, p in _BARE_PREFIXES if model.startswith(start)), "")
    return prefix, upstream, ROUTES.get(prefix)


def _base_url(route: Route, api_base: object) -> str | None:
    base = secret(api_base)
    if base is None:
        return route.default_base
    base = base.rstrip("/")
    if route.api == "anthropic":
        base = base.removesuffix("/v1/messages").removesuffix("/v1")
    if route.base_suffix and not base.endswith(route.base_suffix):
        base += route.base_suffix
    return base


def _report_unused(entry: Entry, raw: JSONObject, out: _Builder) -> None:
    for name in raw:
        if name not in ("model_name", "litellm_params", "model_info", "rpm", "tpm"):
            out.skip(f"model_list[*].{name}", entry.where, "no tokenyard equivalent")
    for name in raw["litellm_params"]:
        if name not in _PARAMS_USED:
            reason = _PARAM_REASONS.get(name, "no tokenyard equivalent")
            out.skip(f"litellm_params.{name}", entry.where, reason)
    for name in entry.info:
        if name not in _INFO_USED:
            out.skip(f"model_info.{name}", entry.where, "metadata tokenyard does not use")


def _resolve(index: int, raw: object, out: _Builder) -> Entry | None:
    """One ``model_list`` entry resolved to an endpoint, or None (with a warning)."""
    where = f"model_list[{index}]"
    params = raw.get("litellm_params") if isinstance(raw, dict) else None
    public = raw.get("model_name") if isinstance(raw, dict) else None
    model = params.get("model") if isinstance(params, dict) else None
    if not isinstance(public, str) or not public or not isinstance(model, str) or not model:
        out.warnings.append(f"{where}: needs model_name and litellm_params.model — skipped")
        return None
    assert isinstance(raw, dict)
    assert isinstance(params, dict)
    where = f"{where} ({public})"
    prefix, upstream, route = _route(model)
    if route is None:
        known = ", ".join(sorted(ROUTES))
        out.warnings.append(
            f"{where}: provider {prefix or model!r} of model {model!r} has no tokenyard "
            f"wire family (supported prefixes: {known}) — entry skipped"
        )
        return None
    if route.needs_base and secret(params.get("api_base")) is None:
        out.warnings.append(f"{where}: {prefix}/ needs litellm_params.api_base — skipped")
        return None
    key = secret(params.get("api_key"))
    if key is None and route.key_env:
        key = "${" + route.key_env + "}"
        out.skip(
            "litellm_params.api_key (absent)",
            where,
            f"LiteLLM then reads the provider's default variable; used ${{{route.key_env}}}",
        )
    headers = params.get("extra_headers")
    info = raw.get("model_info")
    entry = Entry(
        where,
        public,
        route,
        upstream,
        _base_url(route, params.get("api_base")),
        key,
        dict(params),
        dict(info) if isinstance(info, dict) else {},
    )
    if isinstance(headers, dict):
        entry.headers = tuple(sorted((str(k), secret(v) or "") for k, v in headers.items()))
    for name in ("rpm", "tpm"):  # LiteLLM accepts them beside litellm_params too
        if name in raw and name not in entry.params:
            entry.params[name] = raw[name]
    _report_unused(entry, raw, out)
    return entry


def _provider(group: list[Entry], out: _Builder) -> str:
    """The provider serving ``group`` (same public model, endpoint and upstream model),
    created on first use; its key pool is the group's keys."""
    first = group[0]
    keys = tuple(dict.fromkeys(e.key for e in group if e.key is not None))
    identity = (first.endpoint, frozenset(keys))
    name = out.by_identity.get(identity)
    if name is None:
        name = unique_name(_route_name(first), set(out.providers))
        out.by_identity[identity] = name
        provider: JSONObject = {"api": first.route.api}
        if first.base_url is not None:
            provider["base_url"] = first.base_url
        if first.route.vendor is not None:
            provider["vendor"] = first.route.vendor
        if first.headers:
            provider["headers"] = dict(first.headers)
        if keys:
            provider["keys"] = [{"key": key} for key in keys]
        out.providers[name] = provider
    _add_timeout_and_limits(name, group, out)
    return name


def _route_name(entry: Entry) -> str:
    """The LiteLLM prefix (``openai``, ``azure``…), or for an OpenAI-compatible server at
    its own address the name in its host (``api.together.xyz`` → ``together``)."""
    prefix = next((p for p, r in ROUTES.items() if r is entry.route), "provider")
    base = entry.base_url or ""
    if entry.route.api == "openai" and base != entry.route.default_base and "${" not in base:
        labels = [x for x in (urlsplit(base).hostname or "").split(".") if x]
        while labels and labels[0] in ("api", "www"):
            labels = labels[1:]
        if len(labels) >= 2 and not labels[-1].isdigit() and prefix == "openai":
            return slug(labels[0]) or prefix
    return {"hosted_vllm": "vllm", "ollama_chat": "ollama"}.get(prefix, prefix)


def _add_timeout_and_limits(name: str, group: list[Entry], out: _Builder) -> None:
    provider = out.providers[name]
    for entry in group:
        timeout = entry.params.get("timeout")
        if _positive_int(timeout) and (timeout or 0) > provider.get("timeout_s", 0):
            provider["timeout_s"] = timeout
        rpm, tpm = _positive_int(entry.params.get("rpm")), _positive_int(entry.params.get("tpm"))
        if rpm is None and tpm is None:
            continue
        if entry.key is None:
            out.skip("litellm_params.rpm/tpm", entry.where, "tokenyard limits keys; no key here")
            continue
        seen = out.key_limits.setdefault((name, entry.key), (rpm, tpm))
        if seen != (rpm, tpm):
            out.warnings.append(
                f"{entry.where}: rpm/tpm {rpm}/{tpm} differ from {seen[0]}/{seen[1]} set for "
                f"the same key of provider {name}; tokenyard limits per key — kept the first"
            )
            continue
        for spec in provider.get("keys", []):
            if spec["key"] == entry.key:
                spec.update({k: v for k, v in (("rpm", rpm), ("tpm", tpm)) if v is not None})


def _price(entry: Entry) -> JSONObject | None:
    def cost(name: str) -> str | None:
        value = entry.params.get(name, entry.info.get(name))
        return None if value is None else per_million(value)

    prices = {
        "input": cost("input_cost_per_token"),
        "output": cost("output_cost_per_token"),
        "cached_input": cost("cache_read_input_token_cost"),
    }
    if prices["input"] is None:
        return None
    return {k: v for k, v in prices.items() if v is not None}


def _model_info(info: JSONObject) -> JSONObject:
    """Model-level fields from ``model_info``: LiteLLM's ``max_tokens`` is its legacy name
    for the output limit, ``max_input_tokens`` the context window."""
    model: JSONObject = {}
    if info.get("mode") == "embedding":
        model["kind"] = "embedding"
    window = _positive_int(info.get("max_input_tokens"))
    output = _positive_int(info.get("max_output_tokens", info.get("max_tokens")))
    if window:
        model["context_window"] = window
    if output and (window is None or output <= window):
        model["max_output_tokens"] = output
    capabilities = [cap for flag, cap in _CAPABILITY_FLAGS if info.get(flag) is True]
    if capabilities:
        model["capabilities"] = capabilities
    return model


def _model(public: str, groups: list[list[Entry]], out: _Builder, strategy: str) -> JSONObject:
    info: JSONObject = {}
    for group in groups:
        for entry in group:
            for k, v in entry.info.items():
                info.setdefault(k, v)
    model = _model_info(info)
    deployments: list[tuple[object, JSONObject]] = []
    for group in groups:
        first = group[0]
        price = _price(first)
        if price is None:
            price = {"input": "0", "output": "0"}
            out.placeholders.append(public)
        deployment: JSONObject = {
            "provider": _provider(group, out),
            "model": first.upstream,
            "price": price,
        }
        weight = _positive_int(first.params.get("weight"))
        if weight and weight > 1:
            deployment["weight"] = weight
        deployments.append((first.params.get("order"), deployment))
    if len(deployments) > 1:
        orders = [o for o, _ in deployments if _positive_int(o)]
        if orders:
            model["policy"] = "ordered"
            deployments.sort(key=lambda d: _positive_int(d[0]) or 10**9)
        else:
            model["policy"] = strategy
    model["deployments"] = [d for _, d in deployments]
    return model


def convert_litellm(data: object, source: str = "LiteLLM config") -> Conversion:
    """The tokenyard config for a parsed LiteLLM ``config.yaml``."""
    if not isinstance(data, dict):
        raise ImportProblem("a LiteLLM config is a YAML mapping with a model_list")
    entries_raw = data.get("model_list")
    if not isinstance(entries_raw, list) or not entries_raw:
        raise ImportProblem("no model_list: a LiteLLM config lists its models under model_list")
    out = _Builder(warnings=[])
    entries = [e for i, raw in enumerate(entries_raw) if (e := _resolve(i, raw, out))]
    if not entries:
        raise ImportProblem(
            "no entry of model_list could be mapped:\n  " + "\n  ".join(out.warnings)
        )
    found = read_settings(data, out.warnings)
    groups: dict[str, dict[object, list[Entry]]] = {}
    for entry in entries:
        groups.setdefault(entry.public, {}).setdefault((entry.endpoint, entry.upstream), []).append(
            entry
        )
    models = {
        public: _model(public, list(by_endpoint.values()), out, found.policy)
        for public, by_endpoint in groups.items()
    }
    if found.timeout_s is not None:
        for provider in out.providers.values():
            provider.setdefault("timeout_s", found.timeout_s)
    for public, names in found.fallbacks.items():
        _attach_fallbacks(public, names, models, out.warnings)
    for path, places in out.unmapped.items():
        shown = ", ".join(dict.fromkeys(places))
        out.warnings.append(f"not mapped: {path} (in {shown}) — {out.reasons[path]}")
    if out.placeholders:
        out.warnings.append(
            "PRICES ARE PLACEHOLDERS (input 0, output 0 per 1M tokens) where the entry had no "
            "input_cost_per_token (LiteLLM used its own price map) — set them for "
            + ", ".join(dict.fromkeys(out.placeholders))
        )
    config: JSONObject = {**found.top, "providers": out.providers, "models": models}
    return Conversion(config, out.warnings, source)


def _attach_fallbacks(
    public: str, names: list[str], models: dict[str, JSONObject], warnings: list[str]
) -> None:
    model = models.get(public)
    if model is None:
        warnings.append(f"fallbacks of {public!r}: no such model was imported — dropped")
        return
    kept: list[str] = list(model.get("fallbacks", []))
    for name in names:
        other = models.get(name)
        if other is None or name == public:
            warnings.append(f"fallbacks of {public!r}: {name!r} is not another model — dropped")
        elif other.get("kind", "chat") != model.get("kind", "chat"):
            warnings.append(f"fallbacks of {public!r}: {name!r} is of another kind — dropped")
        elif name not in kept:
            kept.append(name)
    if kept:
        model["fallbacks"] = kept
