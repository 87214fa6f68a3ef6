"""What a reload may change (server/reload.py) and what it reports, decided on configs alone."""

from __future__ import annotations

from tokenyard.config import parse_config
from tokenyard.server.reload import restart_problems, summary

BASE = """
database: sqlite:///a.db
admin_key: admin-key-123456
billing: {currency: USD, markup: 0.1}
providers:
  p: {api: openai, base_url: "http://127.0.0.1:9/v1", keys: [{key: sk-1}]}
models:
  m:
    deployments: [{provider: p, model: x, price: {input: 1}}]
"""


def test_models_providers_and_markup_reload() -> None:
    new = parse_config(
        BASE.replace("markup: 0.1", "markup: 0.2").replace("input: 1}", "input: 2}")
        + "  n:\n    deployments: [{provider: p, model: y, price: {input: 1}}]\n"
    )
    old = parse_config(BASE)
    assert restart_problems(old, new) == []
    assert summary(old, new) == {
        "models_added": ["n"],
        "models_changed": ["m"],
        "changed": ["billing"],
    }


def test_restart_only_fields_are_named() -> None:
    new = parse_config(
        BASE.replace("sqlite:///a.db", "sqlite:///b.db")
        .replace("admin-key-123456", "admin-key-654321")
        .replace("currency: USD", "currency: EUR")
        + "server: {max_body_bytes: 2048}\n"
    )
    assert restart_problems(parse_config(BASE), new) == [
        "database: changing it needs a restart",
        "admin_key: changing it needs a restart",
        "server: changing it needs a restart",
        "billing.currency: changing it needs a restart",
    ]


def test_the_same_file_changes_nothing() -> None:
    assert summary(parse_config(BASE), parse_config(BASE)) == {}
