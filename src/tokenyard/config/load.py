"""Reading a config file: ``${ENV}`` interpolation, strict validation, cross-references.

Every problem is reported at once, each prefixed with the dotted path of its field, e.g.
``models.deepseek-chat.deployments[0].price.input: must be >= 0``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tokenyard.config.schema import Config, ProviderConfig
from tokenyard.errors import ConfigError

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_PLACEHOLDER = "tokenyardenv7f3a"
_HIDDEN = re.compile(_PLACEHOLDER + r"(\d+)x")
_NEEDS_BASE_URL = frozenset({"openai"})  # the other families default to their vendor's host


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    return parse_config(text, environ)


def parse_config(text: str, environ: Mapping[str, str] | None = None) -> Config:
    # ${NAME} is swapped for a plain placeholder before YAML sees the text (so that
    # `{key: ${KEY}}` in a flow mapping parses), and for its value in the parsed tree (so
    # that a value with YAML syntax in it stays one string).
    names: list[str] = []

    def hide(match: re.Match[str]) -> str:
        names.append(match.group(1))
        return f"{_PLACEHOLDER}{len(names) - 1}x"

    try:
        raw = yaml.safe_load(_ENV_REF.sub(hide, text))
    except yaml.YAMLError as exc:
        raise ConfigError([f"not valid YAML: {exc}"]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(["the config file must be a mapping at the top level"])
    problems: list[str] = []
    env = os.environ if environ is None else environ
    data = _interpolate(raw, names, env, "", problems)
    if problems:
        raise ConfigError(problems)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([_describe(err) for err in exc.errors()]) from None
    problems = cross_reference_problems(config)
    if problems:
        raise ConfigError(problems)
    return config


def _interpolate(
    node: Any, names: list[str], environ: Mapping[str, str], path: str, problems: list[str]
) -> Any:
    if isinstance(node, str):

        def replace(match: re.Match[str]) -> str:
            name = names[int(match.group(1))]
            if name not in environ:
                problems.append(f"{path or '<root>'}: environment variable {name} is not set")
                return ""
            return environ[name]

        return _HIDDEN.sub(replace, node)
    if isinstance(node, dict):
        return {
            k: _interpolate(v, names, environ, _join(path, k), problems) for k, v in node.items()
        }
    if isinstance(node, list):
        return [
            _interpolate(v, names, environ, f"{path}[{i}]", problems) for i, v in enumerate(node)
        ]
    return node


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out = f"{out}[{part}]" if isinstance(part, int) else _join(out, part)
    return out or "<root>"


def _describe(err: Mapping[str, Any]) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        message = "unknown key"
    elif kind == "missing":
        message = "required"
    elif kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        op = {
            "greater_than_equal": ">=",
            "greater_than": ">",
            "less_than_equal": "<=",
            "less_than": "<",
        }[kind]
        bound = next(iter(ctx.values()), "?")
        message = f"must be {op} {bound}"
    elif kind == "literal_error":
        message = f"must be one of {ctx.get('expected', '?')}"
    else:
        message = str(err["msg"]).removeprefix("Value error, ").lower()
    # Drop pydantic's union/function tags from the location, keep the user's field names.
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p and p.endswith("]")))
    return f"{_dotted(loc)}: {message}"


def cross_reference_problems(config: Config) -> list[str]:
    """Everything a field names must exist; money must be convertible."""
    problems: list[str] = []
    currency = config.billing.currency
    for name, provider in config.providers.items():
        problems.extend(_provider_problems(name, provider))
    for name, model in config.models.items():
        where = f"models.{name}"
        for i, dep in enumerate(model.deployments):
            dwhere = f"{where}.deployments[{i}]"
            if dep.provider not in config.providers:
                problems.append(f"{dwhere}.provider: no provider named {dep.provider!r}")
            price_currency = dep.price.currency
            if (
                price_currency
                and price_currency != currency
                and price_currency not in (config.billing.fx)
            ):
                problems.append(
                    f"{dwhere}.price.currency: no billing.fx rate for {price_currency} "
                    f"to {currency}"
                )
        for i, fallback in enumerate(model.fallbacks):
            fwhere = f"{where}.fallbacks[{i}]"
            if fallback == name:
                problems.append(f"{fwhere}: a model cannot fall back to itself")
            elif fallback not in config.models:
                problems.append(f"{fwhere}: no model named {fallback!r}")
            elif config.models[fallback].kind != model.kind:
                problems.append(f"{fwhere}: {fallback!r} is not a {model.kind} model")
        if (
            model.kind == "chat"
            and model.max_output_tokens
            and model.context_window
            and (model.max_output_tokens > model.context_window)
        ):
            problems.append(f"{where}.max_output_tokens: must be <= context_window")
    return problems + _classifier_problems(config)


def _provider_problems(name: str, provider: ProviderConfig) -> list[str]:
    """Settings that only one API family reads are refused on the others, not ignored."""
    problems: list[str] = []
    where = f"providers.{name}"
    if provider.api in _NEEDS_BASE_URL and not provider.base_url:
        problems.append(f"{where}.base_url: required for api {provider.api}")
    if provider.simulator is not None and provider.api != "simulator":
        problems.append(f"{where}.simulator: only for api simulator")
    if "images" in provider.model_fields_set and provider.api != "gemini":
        problems.append(
            f"{where}.images: only for api gemini; provider {name!r} has api "
            f"{provider.api}, which never downloads images"
        )
    return problems


def _classifier_problems(config: Config) -> list[str]:
    classifier = config.routing.classifier
    if classifier is None:
        return []
    where, name = "routing.classifier.embedding_model", classifier.embedding_model
    if name not in config.models:
        return [f"{where}: no model named {name!r}"]
    if config.models[name].kind != "embedding":
        return [f"{where}: {name!r} is not an embedding model"]
    return []
