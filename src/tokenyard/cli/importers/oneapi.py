"""A one-api / new-api channel export (rows of the ``channels`` table as JSON) → providers,
key pools and models of a tokenyard config.

A channel is one endpoint with its keys, so it becomes one provider whose key pool is the
channel's newline-separated ``key``. Every model a channel lists becomes a deployment on that
provider (upstream name from ``model_mapping``); a model listed by several channels is one
public model with several deployments. one-api picks the highest ``priority`` first and
spreads by ``weight`` within it: when a model's channels differ in priority the deployments
are ``ordered`` by it (higher first); when they share one priority the policy is
``weighted`` by the channel weights.

Channel exports carry no prices (one-api keeps ratios elsewhere), so every deployment gets
the placeholder ``price: {input: 0, output: 0}`` and one warning lists every model whose
price must be set before anyone is billed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from tokenyard.cli.importers.emit import Conversion, ImportProblem, slug, unique_name
from tokenyard.cli.importers.oneapi_types import NEW_API, ONE_API, SPARK_VERSIONS, ChannelType
from tokenyard.wire.json import JSONObject

_NEW_API_COLUMNS = frozenset(
    {"tag", "setting", "auto_ban", "status_code_mapping", "other_info", "param_override"}
)
_USED = frozenset(
    {"id", "type", "key", "status", "name", "weight", "priority", "base_url", "models"}
    | {"model_mapping", "group", "other"}
)
_BOOKKEEPING = frozenset(
    {"created_time", "test_time", "response_time", "balance", "balance_updated_time"}
    | {"used_quota", "other_info", "channel_info", "remark"}
)
_REASONS = {
    "auto_ban": "tokenyard's circuit breaker (health:) takes failing upstreams out by itself",
    "test_model": "tokenyard has no channel test; its health checks are the live traffic",
    "status_code_mapping": "tokenyard maps upstream errors to SPEC statuses itself",
    "proxy": "tokenyard calls upstreams directly",
    "tag": "tags only group channels in one-api's UI",
    "openai_organization": "set an OpenAI-Organization header under the provider's headers",
}
_STATUS = {2: "disabled by hand", 3: "disabled automatically"}


@dataclass
class _Channel:
    id: int
    name: str
    kind: ChannelType
    row: JSONObject
    priority: int
    weight: int
    provider: str = ""


def _rows(data: object) -> list[object]:
    if isinstance(data, dict):
        for key in ("channels", "data"):
            inner = data.get(key)
            if isinstance(inner, dict) and isinstance(inner.get("items"), list):
                inner = inner["items"]
            if isinstance(inner, list):
                return inner
    if isinstance(data, list):
        return data
    raise ImportProblem(
        'a channel export is a JSON list of channel rows (or {"data": [...]} as the '
        "/api/channel endpoint answers)"
    )


def _int(value: object, default: int = 0) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return default


def _flavor(rows: list[JSONObject], flavor: str, warnings: list[str]) -> Mapping[int, ChannelType]:
    if flavor == "auto":
        seen = sorted({col for row in rows for col in row if col in _NEW_API_COLUMNS})
        flavor = "new-api" if seen else "one-api"
        if seen:
            warnings.append(
                f"read as a new-api export (it has the columns {', '.join(seen)}); "
                "pass --flavor one-api if it is not — channel type numbers differ"
            )
    return NEW_API if flavor == "new-api" else ONE_API


def _mapping(raw: object, where: str, warnings: list[str]) -> dict[str, str]:
    if raw in (None, "", "{}"):
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            warnings.append(f"{where}: model_mapping is not JSON — ignored")
            return {}
    if not isinstance(raw, dict):
        warnings.append(f"{where}: model_mapping is not a JSON object — ignored")
        return {}
    return {str(k): str(v) for k, v in raw.items() if isinstance(v, str) and v}


def _keys(channel: _Channel) -> list[str]:
    raw = channel.row.get("key")
    keys = [k.strip() for k in raw.splitlines() if k.strip()] if isinstance(raw, str) else []
    if channel.kind.api == "spark":
        # one-api: APPID|APISecret|APIKey; tokenyard: app_id:api_key:api_secret.
        keys = [f"{p[0]}:{p[2]}:{p[1]}" if len(p := k.split("|")) == 3 else k for k in keys]
    return list(dict.fromkeys(keys))


def _base_url(channel: _Channel) -> str | None:
    raw = channel.row.get("base_url")
    base = raw.strip().rstrip("/") if isinstance(raw, str) and raw.strip() else None
    kind = channel.kind
    if base is None:
        return None if kind.default_base is None else kind.default_base + kind.suffix
    if kind.suffix and not base.endswith(kind.suffix):
        base += kind.suffix
    return base


def _provider(channel: _Channel, taken: set[str], warnings: list[str]) -> JSONObject | None:
    where = f"channel {channel.id} ({channel.name})"
    base = _base_url(channel)
    if channel.kind.api == "openai" and base is None:
        warnings.append(f"{where}: type {channel.kind.name} needs a base_url — skipped")
        return None
    provider: JSONObject = {"api": channel.kind.api}
    if base is not None:
        provider["base_url"] = base
    if channel.kind.vendor:
        provider["vendor"] = channel.kind.vendor
    keys = _keys(channel)
    if not keys and channel.kind.vendor != "ollama":
        warnings.append(f"{where}: no key — provider written without keys")
    if keys:
        provider["keys"] = [{"key": key} for key in keys]
    channel.provider = unique_name(slug(channel.name) or channel.kind.name, taken)
    return provider


def _upstream(channel: _Channel, public: str, mapping: dict[str, str]) -> str:
    name = mapping.get(public, public)
    if channel.kind.api == "spark" and name.startswith("SparkDesk"):
        version = name.removeprefix("SparkDesk").lstrip("-")
        other = channel.row.get("other")
        version = version or (other if isinstance(other, str) and other else "v1.1")
        name = SPARK_VERSIONS.get(version, name)
    return name


def _leftovers(rows: list[_Channel], warnings: list[str]) -> None:
    unmapped: dict[str, list[str]] = {}
    for channel in rows:
        for column, value in channel.row.items():
            if column in _USED or column in _BOOKKEEPING:
                continue
            if value in (None, "", 0, False, "{}", "[]", "null") or value == {}:
                continue
            unmapped.setdefault(column, []).append(str(channel.id))
        other = channel.row.get("other")
        if other and channel.kind.api not in ("spark",):
            unmapped.setdefault("other", []).append(str(channel.id))
    for column, ids in unmapped.items():
        reason = _REASONS.get(column, "no tokenyard equivalent")
        if column == "other":
            reason = "API version / region of the channel; tokenyard's adapters choose their own"
        channels_text = ("channel " if len(ids) == 1 else "channels ") + ", ".join(ids)
        warnings.append(f"not mapped: {column} ({channels_text}) — {reason}")
    groups: dict[str, list[str]] = {}
    for channel in rows:
        for group in str(channel.row.get("group") or "default").split(","):
            if group.strip() and group.strip() != "default":
                groups.setdefault(group.strip(), []).append(str(channel.id))
    if groups:
        listed = "; ".join(f"{g}: channels {', '.join(ids)}" for g, ids in groups.items())
        warnings.append(
            f"not mapped: group ({listed}) — tokenyard scopes models per client key "
            "(POST /admin/keys with models)"
        )


def _channels(rows: list[object], flavor: str, warnings: list[str]) -> list[_Channel]:
    dicts = [row for row in rows if isinstance(row, dict)]
    if len(dicts) != len(rows):
        warnings.append(f"{len(rows) - len(dicts)} rows are not JSON objects — skipped")
    table = _flavor(dicts, flavor, warnings)
    channels: list[_Channel] = []
    for row in dicts:
        cid = _int(row.get("id"))
        name = str(row.get("name") or f"channel-{cid}")
        where = f"channel {cid} ({name})"
        status = _int(row.get("status"), 1)
        if status != 1:
            warnings.append(f"{where}: {_STATUS.get(status, f'status {status}')} — skipped")
            continue
        kind = table.get(_int(row.get("type"), -1))
        if kind is None or kind.api is None:
            why = kind.why_not if kind else "unknown channel type"
            label = kind.name if kind else row.get("type")
            warnings.append(f"{where}: type {label} is not supported ({why}) — skipped")
            continue
        priority, weight = _int(row.get("priority")), max(_int(row.get("weight")), 1)
        channels.append(_Channel(cid, name, kind, row, priority, weight))
    return channels


def convert_oneapi(
    data: object, flavor: str = "auto", source: str = "a one-api export"
) -> Conversion:
    """The tokenyard config for a parsed one-api/new-api channel export."""
    warnings: list[str] = []
    channels = _channels(_rows(data), flavor, warnings)
    providers: dict[str, JSONObject] = {}
    deployments: dict[str, list[tuple[_Channel, JSONObject]]] = {}
    for channel in channels:
        where = f"channel {channel.id} ({channel.name})"
        raw_models = channel.row.get("models")
        names = [m.strip() for m in str(raw_models or "").split(",") if m.strip()]
        if not names:
            warnings.append(f"{where}: lists no models — skipped")
            continue
        provider = _provider(channel, set(providers), warnings)
        if provider is None:
            continue
        providers[channel.provider] = provider
        mapping = _mapping(channel.row.get("model_mapping"), where, warnings)
        for public in dict.fromkeys(names):
            deployment: JSONObject = {
                "provider": channel.provider,
                "model": _upstream(channel, public, mapping),
                "price": {"input": "0", "output": "0"},
            }
            deployments.setdefault(public, []).append((channel, deployment))
    if not deployments:
        raise ImportProblem("no enabled channel could be mapped:\n  " + "\n  ".join(warnings))
    models = {public: _model(entries) for public, entries in deployments.items()}
    _leftovers(channels, warnings)
    count = sum(len(p.get("keys", [])) for p in providers.values())
    if count:
        warnings.append(
            f"the output holds {count} upstream keys in plain text, as the export did: keep it "
            "as secret, or replace each with ${NAME} and set NAME in tokenyard's environment"
        )
    warnings.append(
        "PRICES ARE PLACEHOLDERS (input 0, output 0 per 1M tokens): a channel export has no "
        "prices — set them for " + ", ".join(models)
    )
    return Conversion({"providers": providers, "models": models}, warnings, source)


def _model(entries: list[tuple[_Channel, JSONObject]]) -> JSONObject:
    entries.sort(key=lambda e: (-e[0].priority, e[0].id))
    model: JSONObject = {}
    if len(entries) > 1:
        if len({c.priority for c, _ in entries}) > 1:
            model["policy"] = "ordered"
        else:
            model["policy"] = "weighted"
            for channel, deployment in entries:
                if channel.weight > 1:
                    deployment["weight"] = channel.weight
    model["deployments"] = [d for _, d in entries]
    return model
