"""Accounts, keys, scopes and revocation through the admin API (SPEC §5), and the model
list a key sees (SPEC §3)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.e2e.harness import RunningGateway

USER = [{"role": "user", "content": "hi"}]


def test_accounts_are_created_and_read(gateway: RunningGateway) -> None:
    created = gateway.admin("POST", "/admin/accounts", {"name": "acme"})
    assert created.status_code == 201
    body = created.json()
    assert body["name"] == "acme" and body["balance"] == "0.000000"
    read = gateway.admin("GET", f"/admin/accounts/{body['id']}")
    assert read.json() == {
        "id": body["id"],
        "name": "acme",
        "balance": "0.000000",
        "reserved": "0.000000",
        "markup": None,
        "regions": None,
        "disabled": False,
    }
    assert gateway.admin("GET", "/admin/accounts/acct_nope").status_code == 404


def test_admin_routes_refuse_missing_wrong_and_client_keys(gateway: RunningGateway) -> None:
    client_key = gateway.new_key()
    for headers in (
        {},
        {"Authorization": "Bearer wrong-admin-key"},
        {"Authorization": f"Bearer {client_key}"},
    ):
        response = gateway.http.post("/admin/accounts", json={"name": "x"}, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "authentication_error"


def test_keys_are_shown_once_and_stored_hashed(gateway: RunningGateway) -> None:
    account = gateway.new_account()
    response = gateway.admin(
        "POST",
        "/admin/keys",
        {"account_id": account, "name": "ci", "rpm": 60, "budget": "5.5", "models": ["gpt-mini"]},
    )
    assert response.status_code == 201
    body = response.json()
    assert re.fullmatch(r"ty-[A-Za-z0-9_-]{43}", body["key"])
    assert body["prefix"] == body["key"][:11]
    assert body["id"].startswith("key_")
    assert (body["rpm"], body["budget"], body["models"]) == (60, "5.500000", ["gpt-mini"])


@pytest.mark.parametrize(
    ("fields", "status", "param"),
    [
        ({}, 400, "account_id"),
        ({"account_id": "acct_missing"}, 404, "account_id"),
        ({"models": ["no-such-model"]}, 400, "models"),
        ({"models": "gpt-mini"}, 400, "models"),
        ({"rpm": 0}, 400, "rpm"),
        ({"tpm": "many"}, 400, "tpm"),
        ({"budget": "lots"}, 400, "budget"),
        ({"budget": "-1"}, 400, "budget"),
        ({"expires_at": "tomorrow"}, 400, "expires_at"),
    ],
)
def test_key_creation_validates_its_fields(
    gateway: RunningGateway, fields: dict[str, Any], status: int, param: str
) -> None:
    body = {"account_id": gateway.new_account(), **fields} if "account_id" not in fields else fields
    if not fields:
        body = {}
    response = gateway.admin("POST", "/admin/keys", body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["param"] == param


def test_revocation_takes_effect_at_once(gateway: RunningGateway) -> None:
    account = gateway.new_account()
    created = gateway.admin("POST", "/admin/keys", {"account_id": account}).json()
    client = gateway.client(created["key"], max_retries=0)
    client.chat.completions.create(model="gpt-mini", messages=USER)  # warm in the cache
    assert gateway.admin("DELETE", f"/admin/keys/{created['id']}").status_code == 204
    response = gateway.post(
        "/v1/chat/completions", created["key"], json={"model": "gpt-mini", "messages": USER}
    )
    assert response.status_code == 401
    assert gateway.admin("DELETE", f"/admin/keys/{created['id']}").status_code == 404


def test_model_list_shows_only_what_the_key_may_use(gateway: RunningGateway) -> None:
    scoped = gateway.client(gateway.new_key(models=["gpt-mini", "embed-small"]))
    assert sorted(m.id for m in scoped.models.list()) == ["embed-small", "gpt-mini"]
    assert scoped.models.retrieve("gpt-mini").id == "gpt-mini"
    response = gateway.http.get(
        "/v1/models/kimi", headers={"Authorization": f"Bearer {scoped.api_key}"}
    )
    assert response.status_code == 404
    everything = gateway.client(gateway.new_key())
    ids = {m.id for m in everything.models.list()}
    assert {"gpt-mini", "kimi", "embed-small", "deepseek-chat"} <= ids
    entry = everything.models.retrieve("gpt-mini")
    assert entry.object == "model" and entry.owned_by == "tokenyard"
    assert (entry.model_extra or {})["context_window"] == 4096


def test_health_and_readiness(gateway: RunningGateway) -> None:
    assert gateway.http.get("/healthz").json() == {"status": "ok"}
    assert gateway.http.get("/readyz").json() == {"status": "ready"}
