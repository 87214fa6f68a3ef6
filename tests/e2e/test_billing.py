"""Money end to end (SPEC §5, §6): holds, exact charges, 402s, budgets, credits, usage,
invoices and /v1/account, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import time
from decimal import Decimal
from typing import Any

import httpx

from tests.e2e.conftest import Upstreams
from tests.e2e.harness import RunningGateway

USER = [{"role": "user", "content": "hello there gateway"}]


def account(gateway: RunningGateway, account_id: str) -> dict[str, Any]:
    response = gateway.admin("GET", f"/admin/accounts/{account_id}")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def key_usage(
    gateway: RunningGateway, key_id: str, group_by: str = "model"
) -> list[dict[str, Any]]:
    response = gateway.admin("GET", f"/admin/usage?key_id={key_id}&group_by={group_by}")
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()["rows"]
    return rows


def new_key(gateway: RunningGateway, account_id: str, **fields: Any) -> tuple[str, str]:
    created = gateway.admin("POST", "/admin/keys", {"account_id": account_id, **fields}).json()
    return created["id"], created["key"]


def test_each_answer_is_charged_exactly_what_it_reported(gateway: RunningGateway) -> None:
    account_id = gateway.new_account(credit="2")
    key_id, key = new_key(gateway, account_id)
    costs = []
    for _ in range(3):
        response = gateway.post(
            "/v1/chat/completions", key, json={"model": "gpt-mini", "messages": USER}
        )
        assert response.status_code == 200
        costs.append(Decimal(response.headers["x-tokenyard-cost"]))
        assert Decimal(str(response.json()["usage"]["cost"])) == costs[-1]
    after = account(gateway, account_id)
    assert Decimal(after["balance"]) == Decimal(2) - sum(costs)
    assert after["reserved"] == "0.000000"
    (row,) = key_usage(gateway, key_id)
    assert row["requests"] == 3
    assert Decimal(row["cost"]) == sum(costs)


def test_streams_are_charged_before_done_and_match_their_usage_chunk(
    gateway: RunningGateway,
) -> None:
    account_id = gateway.new_account(credit="1")
    key_id, key = new_key(gateway, account_id)
    chunks = list(
        gateway.client(key).chat.completions.create(
            model="gpt-mini", messages=USER, stream=True, stream_options={"include_usage": True}
        )
    )
    usage = chunks[-1].usage
    assert usage is not None
    (row,) = key_usage(gateway, key_id)
    assert Decimal(row["cost"]) == Decimal(str(usage.model_extra["cost"]))
    assert row["output_tokens"] == usage.completion_tokens
    assert account(gateway, account_id)["reserved"] == "0.000000"


def test_a_wallet_that_cannot_cover_the_worst_case_gets_402(
    gateway: RunningGateway, upstreams: Upstreams
) -> None:
    account_id = gateway.new_account(credit="0.000001")
    _, key = new_key(gateway, account_id)
    before = len(upstreams["openai-a"].requests)
    response = gateway.post(
        "/v1/chat/completions", key, json={"model": "gpt-mini", "messages": USER}
    )
    assert response.status_code == 402
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("insufficient_quota", "insufficient_quota")
    assert "account balance" in error["message"]
    assert len(upstreams["openai-a"].requests) == before  # nothing was sent upstream
    body = account(gateway, account_id)
    assert (body["balance"], body["reserved"]) == ("0.000001", "0.000000")


def test_the_hold_is_sized_by_max_tokens(gateway: RunningGateway) -> None:
    # 0.0002 covers a few hundred output tokens at 0.66/1M, not the default 4096.
    account_id = gateway.new_account(credit="0.0002")
    _, key = new_key(gateway, account_id)
    body = {"model": "gpt-mini", "messages": USER}
    assert gateway.post("/v1/chat/completions", key, json=body).status_code == 402
    assert (
        gateway.post("/v1/chat/completions", key, json={**body, "max_tokens": 100}).status_code
        == 200
    )


def test_key_budgets_are_enforced_and_reported(gateway: RunningGateway) -> None:
    account_id = gateway.new_account(credit="10")
    _, tight = new_key(gateway, account_id, budget="0.0000001")
    response = gateway.post(
        "/v1/chat/completions",
        tight,
        json={"model": "gpt-mini", "messages": USER, "max_tokens": 10},
    )
    assert response.status_code == 402
    assert "key's budget" in response.json()["error"]["message"]
    _, roomy = new_key(gateway, account_id, budget="0.01", rpm=100)
    response = gateway.post(
        "/v1/chat/completions",
        roomy,
        json={"model": "gpt-mini", "messages": USER, "max_tokens": 10},
    )
    assert response.status_code == 200
    me = gateway.http.get("/v1/account", headers={"Authorization": f"Bearer {roomy}"}).json()
    cost = Decimal(response.headers["x-tokenyard-cost"])
    assert Decimal(me["key"]["spent"]) == cost
    assert me["key"]["budget"] == "0.010000"
    assert me["key"]["reserved"] == "0.000000"
    assert me["key"]["rpm"] == 100
    assert Decimal(me["balance"]) == Decimal(10) - cost
    assert Decimal(me["spent_this_month"]) == cost
    assert me["currency"] == "USD"
    assert me["account_id"] == account_id


def test_v1_account_needs_a_client_key(gateway: RunningGateway) -> None:
    assert gateway.http.get("/v1/account").status_code == 401


def test_credits_are_idempotent_by_reference(gateway: RunningGateway) -> None:
    account_id = gateway.new_account(credit=None)
    path = f"/admin/accounts/{account_id}/credits"
    first = gateway.admin("POST", path, {"amount": "12.5", "reference": "invoice-77"})
    assert (first.status_code, first.json()) == (201, {"balance": "12.500000", "applied": True})
    again = gateway.admin("POST", path, {"amount": "12.5", "reference": "invoice-77"})
    assert (again.status_code, again.json()) == (200, {"balance": "12.500000", "applied": False})
    down = gateway.admin("POST", path, {"amount": "-2.5", "reference": "goodwill-fix"})
    assert down.json()["balance"] == "10.000000"
    other = gateway.new_account(credit=None)
    clash = gateway.admin(
        "POST", f"/admin/accounts/{other}/credits", {"amount": "1", "reference": "invoice-77"}
    )
    assert clash.status_code == 400
    assert account(gateway, other)["balance"] == "0.000000"
    for bad in (
        {"amount": "abc", "reference": "x"},
        {"amount": 5, "reference": "x"},
        {"amount": "0", "reference": "x"},
        {"amount": "1"},
        {"amount": "0.0000000001", "reference": "x"},
    ):
        assert gateway.admin("POST", path, bad).status_code == 400
    assert (
        gateway.admin(
            "POST", "/admin/accounts/acct_none/credits", {"amount": "1", "reference": "y"}
        ).status_code
        == 404
    )
    assert account(gateway, account_id)["balance"] == "10.000000"


def test_a_failed_request_costs_nothing_and_releases_its_hold(
    gateway: RunningGateway, upstreams: Upstreams
) -> None:
    account_id = gateway.new_account(credit="1")
    key_id, key = new_key(gateway, account_id)
    upstreams["flaky"].fail_next(500)
    response = gateway.post(
        "/v1/chat/completions", key, json={"model": "only-flaky", "messages": USER}
    )
    assert response.status_code == 502
    body = account(gateway, account_id)
    assert (body["balance"], body["reserved"]) == ("1.000000", "0.000000")
    assert key_usage(gateway, key_id) == []


def test_an_abandoned_stream_is_charged_once_and_its_hold_released(
    gateway: RunningGateway,
) -> None:
    account_id = gateway.new_account(credit="1")
    key_id, key = new_key(gateway, account_id)
    with httpx.stream(
        "POST",
        gateway.base_url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "gpt-mini", "messages": USER, "stream": True},
    ) as response:
        next(response.iter_lines())  # read the first event, then hang up
    for _ in range(100):
        rows = key_usage(gateway, key_id)
        if rows and account(gateway, account_id)["reserved"] == "0.000000":
            break
        time.sleep(0.05)
    (row,) = rows
    assert row["requests"] == 1
    assert Decimal(row["cost"]) > 0
    assert account(gateway, account_id)["reserved"] == "0.000000"


def test_an_account_markup_overrides_the_global_one(gateway: RunningGateway) -> None:
    created = gateway.admin("POST", "/admin/accounts", {"name": "vip", "markup": "0.5"}).json()
    assert created["markup"] == "0.5"
    gateway.credit(created["id"], "1")
    _, key = new_key(gateway, created["id"])
    response = gateway.post(
        "/v1/chat/completions", key, json={"model": "gpt-mini", "messages": USER}
    )
    usage = response.json()["usage"]
    provider = (
        Decimal(usage["prompt_tokens"]) * Decimal("0.15")
        + Decimal(usage["completion_tokens"]) * Decimal("0.60")
    ) / Decimal(1_000_000)
    assert Decimal(response.headers["x-tokenyard-cost"]) == (provider * Decimal("1.5")).quantize(
        Decimal("0.000000001")
    )
    assert (
        gateway.admin("POST", "/admin/accounts", {"name": "x", "markup": "-1"}).status_code == 400
    )


def test_usage_groups_and_invoices(gateway: RunningGateway) -> None:
    account_id = gateway.new_account(name="Acme <Labs>", credit="5")
    key_id, key = new_key(gateway, account_id)
    client = gateway.client(key)
    for model in ("gpt-mini", "gpt-mini", "deepseek-chat"):
        client.chat.completions.create(model=model, messages=USER)
    client.embeddings.create(model="embed-small", input="hello")
    by_model = {r["group"]: r for r in key_usage(gateway, key_id, "model")}
    assert {m: r["requests"] for m, r in by_model.items()} == {
        "gpt-mini": 2,
        "deepseek-chat": 1,
        "embed-small": 1,
    }
    total = sum(Decimal(r["cost"]) for r in by_model.values())
    for group_by in ("day", "key", "provider"):
        rows = key_usage(gateway, key_id, group_by)
        assert sum(Decimal(r["cost"]) for r in rows) == total
        assert sum(r["requests"] for r in rows) == 4
    assert {r["group"] for r in key_usage(gateway, key_id, "provider")} == {"openai-a", "deepseek"}
    assert [r["group"] for r in key_usage(gateway, key_id, "key")] == [key_id]
    assert gateway.admin("GET", "/admin/usage?group_by=colour").status_code == 400
    assert gateway.admin("GET", "/admin/usage?since=yesterday").status_code == 400
    future = gateway.admin("GET", f"/admin/usage?key_id={key_id}&since=2999-01-01").json()
    assert future["rows"] == []

    month = key_usage(gateway, key_id, "day")[0]["group"][:7]
    path = f"/admin/accounts/{account_id}/invoice?month={month}"
    statement = gateway.admin("GET", path).json()
    assert statement["month"] == month and statement["currency"] == "USD"
    assert {line["model"] for line in statement["lines"]} == set(by_model)
    assert Decimal(statement["total"]) == total
    for line in statement["lines"]:
        assert Decimal(line["provider_cost"]) + Decimal(line["markup"]) == Decimal(line["total"])
    assert Decimal(statement["credits"]) == Decimal(5)
    text = gateway.admin("GET", path + "&format=csv").text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[-1]["model"] == "TOTAL" and Decimal(rows[-1]["total"]) == total
    page = gateway.admin("GET", path + "&format=html")
    assert page.headers["content-type"].startswith("text/html")
    assert "Acme &lt;Labs&gt;" in page.text and "<Labs>" not in page.text
    assert gateway.admin("GET", path.replace(month, "2026-13")).status_code == 400
    assert gateway.admin("GET", path + "&format=pdf").status_code == 400
    assert gateway.admin("GET", "/admin/accounts/acct_x/invoice").status_code == 404


def test_key_rpm_is_answered_with_429_and_retry_after(gateway: RunningGateway) -> None:
    key = gateway.new_key(rpm=2)
    body = {"model": "gpt-mini", "messages": USER}
    assert [gateway.post("/v1/chat/completions", key, json=body).status_code for _ in range(2)] == [
        200,
        200,
    ]
    limited = gateway.post("/v1/chat/completions", key, json=body)
    assert limited.status_code == 429
    error = limited.json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
