"""Two tenants on one gateway: client keys never open an admin path, and every answer about
an account — /v1/account, top-ups, the admin's usage, request log and invoices filtered by
account or key — holds that tenant's data and no one else's.

The admin paths are not listed here but read from the gateway's own /openapi.json, which
tests/server/test_openapi.py keeps equal to the registered routes: a new admin route is
swept by this test without anyone remembering to add it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import ADMIN_KEY, RunningGateway, start_gateway
from tests.payments.standins import StripeStandIn, run_in_thread


@dataclass
class Key:
    id: str
    secret: str


@dataclass
class Tenant:
    account: str
    keys: list[Key]


@dataclass
class Setup:
    gateway: RunningGateway
    stripe: StripeStandIn
    a: Tenant
    b: Tenant


def _tenant(gateway: RunningGateway, name: str, first_key_models: list[str] | None) -> Tenant:
    account = gateway.new_account(name, credit="100")
    keys = []
    for models in (first_key_models, None):
        fields: dict[str, Any] = {"account_id": account, "name": f"{name}-key"}
        if models is not None:
            fields["models"] = models
        created = gateway.admin("POST", "/admin/keys", fields)
        assert created.status_code == 201, created.text
        keys.append(Key(created.json()["id"], created.json()["key"]))
    return Tenant(account, keys)


def chat(gateway: RunningGateway, key: Key, model: str) -> None:
    body = {"model": model, "messages": [{"role": "user", "content": "hello"}]}
    answer = gateway.post("/v1/chat/completions", key.secret, json=body)
    assert answer.status_code == 200, answer.text


@pytest.fixture(scope="module")
def setup(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    stripe = StripeStandIn("sk_test_tenants")
    _, stop = run_in_thread(stripe)
    config = f"""
database: {database_url}
admin_key: {ADMIN_KEY}
billing: {{currency: USD, markup: 0.10}}
payments:
  success_url: https://example.com/paid
  cancel_url: https://example.com/cancelled
  stripe: {{secret_key: sk_test_tenants, webhook_secret: whsec_t, api_base: {stripe.base_url}}}
providers:
  sim: {{api: simulator, simulator: {{ttft_ms: 0, tokens_per_s: 100000, max_output_tokens: 5}}}}
models:
  alpha: {{deployments: [{{provider: sim, model: a, price: {{input: 1, output: 1}}}}]}}
  beta: {{deployments: [{{provider: sim, model: b, price: {{input: 2, output: 2}}}}]}}
"""
    directory: Path = tmp_path_factory.mktemp("tenants")
    gateway = start_gateway(directory, config)
    a = _tenant(gateway, "tenant-a", ["alpha"])
    b = _tenant(gateway, "tenant-b", None)
    for key, model in ((a.keys[0], "alpha"), (a.keys[0], "alpha"), (a.keys[1], "alpha")):
        chat(gateway, key, model)
    for key, model in ((b.keys[0], "beta"), (b.keys[0], "beta"), (b.keys[1], "alpha")):
        chat(gateway, key, model)
    chat(gateway, b.keys[0], "beta")
    yield Setup(gateway, stripe, a, b)
    assert gateway.stop() == 0, gateway.log()
    stop()


def admin_json(gateway: RunningGateway, path: str) -> Any:
    answer = gateway.admin("GET", path)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_client_keys_are_refused_on_every_admin_path(setup: Setup) -> None:
    gateway, a, b = setup.gateway, setup.a, setup.b
    document = gateway.http.get("/openapi.json").json()
    operations = [
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
        and (path.startswith("/admin/") or path == "/metrics")
    ]
    assert len(operations) >= 14  # the SPEC's admin API, invites, disable, reload, metrics
    body = {"name": "x", "account_id": b.account, "amount": "50", "reference": "steal"}
    before = admin_json(gateway, f"/admin/accounts/{b.account}")
    for method, path in operations:
        target = path.replace(
            "{id}", b.keys[0].id if path.startswith("/admin/keys/") else b.account
        )
        for key in (a.keys[0].secret, b.keys[0].secret, "", ADMIN_KEY[:-1]):
            for header in ("Authorization", "x-api-key"):
                value = f"Bearer {key}" if header == "Authorization" else key
                answer = gateway.http.request(
                    method,
                    target,
                    json=body if method in ("POST", "PATCH") else None,
                    headers={header: value} if key else {},
                )
                assert answer.status_code == 401, (method, target, answer.text)
                assert answer.json()["error"]["type"] == "authentication_error"
    after = admin_json(gateway, f"/admin/accounts/{b.account}")
    assert after == before  # no credit, no disable, nothing changed
    chat(gateway, b.keys[0], "beta")  # B's key was not revoked
    chat(gateway, a.keys[0], "alpha")


def test_account_shows_the_callers_own_tenant_only(setup: Setup) -> None:
    gateway = setup.gateway
    month = time.strftime("%Y-%m", time.gmtime())
    for tenant, other in ((setup.a, setup.b), (setup.b, setup.a)):
        for key in tenant.keys:
            for query in ("", f"?account_id={other.account}&key_id={other.keys[0].id}"):
                answer = gateway.http.get(
                    "/v1/account" + query, headers={"Authorization": f"Bearer {key.secret}"}
                )
                assert answer.status_code == 200, answer.text
                mine = answer.json()
                assert mine["account_id"] == tenant.account
                assert mine["key"]["id"] == key.id
                account = admin_json(gateway, f"/admin/accounts/{tenant.account}")
                assert mine["balance"] == account["balance"]
                statement = admin_json(
                    gateway, f"/admin/accounts/{tenant.account}/invoice?month={month}"
                )
                assert Decimal(mine["spent_this_month"]) == Decimal(statement["total"])
                assert other.account not in answer.text
                assert all(k.id not in answer.text for k in other.keys)
    models = gateway.http.get(
        "/v1/models", headers={"Authorization": f"Bearer {setup.a.keys[0].secret}"}
    ).json()
    assert [m["id"] for m in models["data"]] == ["alpha"]


def test_a_top_up_is_for_the_callers_account(setup: Setup) -> None:
    answer = setup.gateway.post(
        "/v1/account/topups",
        setup.a.keys[1].secret,
        json={"amount": "5.00", "processor": "stripe", "account_id": setup.b.account},
    )
    assert answer.status_code == 201, answer.text
    form = setup.stripe.requests[-1].body
    assert form["metadata[account_id]"] == setup.a.account
    assert form["client_reference_id"] == setup.a.account


def _logged(gateway: RunningGateway, query: str, expected: int) -> list[dict[str, Any]]:
    """The request log entries for ``query``, once the log writer has stored them."""
    deadline = time.monotonic() + 20
    while True:
        entries: list[dict[str, Any]] = admin_json(gateway, f"/admin/requests?{query}")["requests"]
        if len(entries) >= expected or time.monotonic() > deadline:
            return entries
        time.sleep(0.1)


def test_admin_filters_keep_tenants_apart(setup: Setup) -> None:
    gateway, a, b = setup.gateway, setup.a, setup.b
    usage_a = admin_json(gateway, f"/admin/usage?account_id={a.account}&group_by=key")["rows"]
    assert {row["group"] for row in usage_a} <= {k.id for k in a.keys}
    assert sum(row["requests"] for row in usage_a) >= 3
    crossed = f"/admin/usage?account_id={a.account}&key_id={b.keys[0].id}"
    assert admin_json(gateway, crossed)["rows"] == []
    by_model = admin_json(gateway, f"/admin/usage?account_id={a.account}")["rows"]
    assert {row["group"] for row in by_model} == {"alpha"}  # B's beta traffic is not here

    entries_a = _logged(gateway, f"account_id={a.account}&status=200", 3)
    assert len(entries_a) >= 3
    assert {e["account_id"] for e in entries_a} == {a.account}
    assert {e["key_id"] for e in entries_a} <= {k.id for k in a.keys}
    only_key = _logged(gateway, f"key_id={b.keys[1].id}", 1)
    assert [e["key_id"] for e in only_key] == [b.keys[1].id]
    assert (
        admin_json(gateway, f"/admin/requests?account_id={a.account}&key_id={b.keys[0].id}")[
            "requests"
        ]
        == []
    )

    month = time.strftime("%Y-%m", time.gmtime())
    invoice_a = admin_json(gateway, f"/admin/accounts/{a.account}/invoice?month={month}")
    invoice_b = admin_json(gateway, f"/admin/accounts/{b.account}/invoice?month={month}")
    assert invoice_a["account_id"] == a.account
    assert [line["model"] for line in invoice_a["lines"]] == ["alpha"]
    assert sorted(line["model"] for line in invoice_b["lines"]) == ["alpha", "beta"]
    cost_a = sum(Decimal(row["cost"]) for row in by_model)
    assert Decimal(invoice_a["total"]) == cost_a
    csv_a = gateway.admin("GET", f"/admin/accounts/{a.account}/invoice?format=csv").text
    assert b.account not in csv_a and "beta" not in csv_a
