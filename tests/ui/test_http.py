"""The dashboard over plain HTTP against a real gateway: sign-in, CSRF, tenant isolation,
credits, keys, and that no page shows an upstream secret."""

from __future__ import annotations

from tests.e2e.harness import ADMIN_KEY, RunningGateway
from tests.ui.conftest import Dashboard, csrf_of


def test_pages_need_a_session(gateway: RunningGateway, dashboard: Dashboard) -> None:
    for path in ("/ui", "/ui/providers", "/ui/accounts", "/ui/requests"):
        response = dashboard.get(path)
        assert response.status_code == 303 and response.headers["location"] == "/ui/login"
    assert dashboard.http.post("/ui/logout").status_code == 303


def test_admin_sign_in_sets_a_strict_cookie(dashboard: Dashboard) -> None:
    response = dashboard.sign_in(ADMIN_KEY)
    assert response.status_code == 303
    cookie = next(v for v in response.headers.get_list("set-cookie") if "ty_session=" in v)
    for attribute in ("HttpOnly", "SameSite=Strict", "Path=/ui"):
        assert attribute in cookie
    assert "Secure" not in cookie  # plain http here; https (or X-Forwarded-Proto) adds it
    page = dashboard.get("/ui")
    assert page.status_code == 200 and "Overview" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


def test_secure_cookie_behind_https_proxy(gateway: RunningGateway) -> None:
    ui = Dashboard(gateway.base_url)
    form = ui.http.get("/ui/login")
    response = ui.http.post(
        "/ui/login",
        data={"csrf": csrf_of(form.text), "key": ADMIN_KEY},
        headers={"X-Forwarded-Proto": "https"},
    )
    assert "Secure" in next(v for v in response.headers.get_list("set-cookie") if "ty_session" in v)


def test_wrong_keys_are_refused(gateway: RunningGateway, dashboard: Dashboard) -> None:
    for key in ("wrong", ADMIN_KEY + "x", "ty-not-a-real-key", ""):
        response = dashboard.sign_in(key)
        assert response.status_code == 401, key
        assert "not valid" in response.text
        assert "ty_session=" not in response.headers.get("set-cookie", "")


def test_sign_in_without_the_form_token_is_refused(dashboard: Dashboard) -> None:
    dashboard.get("/ui/login")
    response = dashboard.http.post("/ui/login", data={"key": ADMIN_KEY, "csrf": "forged"})
    assert response.status_code == 403
    assert dashboard.get("/ui").status_code == 303  # not signed in


def test_post_without_csrf_is_refused(gateway: RunningGateway, dashboard: Dashboard) -> None:
    account = gateway.new_account("csrf", credit="5")
    dashboard.sign_in(ADMIN_KEY)
    for data in ({}, {"csrf": "nope"}):
        response = dashboard.http.post(
            f"/ui/accounts/{account}/credits", data={**data, "amount": "100"}
        )
        assert response.status_code == 403
        response = dashboard.http.post(f"/ui/accounts/{account}/keys", data={**data, "name": "x"})
        assert response.status_code == 403
    balance = gateway.admin("GET", f"/admin/accounts/{account}").json()["balance"]
    assert balance == "5.000000"


def test_credit_is_idempotent_per_form(gateway: RunningGateway, dashboard: Dashboard) -> None:
    account = gateway.new_account("credit", credit=None)
    dashboard.sign_in(ADMIN_KEY)
    page = dashboard.get(f"/ui/accounts/{account}").text
    reference = page.split('name="reference" value="')[1].split('"')[0]
    data = {"csrf": csrf_of(page), "amount": "12.5", "reference": reference}
    first = dashboard.http.post(f"/ui/accounts/{account}/credits", data=data)
    again = dashboard.http.post(f"/ui/accounts/{account}/credits", data=data)
    assert first.status_code == 200 and "Credited." in first.text
    assert "already applied" in again.text
    assert gateway.admin("GET", f"/admin/accounts/{account}").json()["balance"] == "12.500000"
    bad = dashboard.http.post(f"/ui/accounts/{account}/credits", data={**data, "amount": "1e999x"})
    assert bad.status_code == 400
    full = gateway.new_account("full", credit="9223372036.854775807")  # the most it holds
    page = dashboard.get(f"/ui/accounts/{full}").text
    one_more = {"csrf": csrf_of(page), "amount": "1", "reference": "one-more"}
    too_much = dashboard.http.post(f"/ui/accounts/{full}/credits", data=one_more)
    assert too_much.status_code == 400
    assert "beyond what the ledger can hold" in too_much.text
    assert (
        gateway.admin("GET", f"/admin/accounts/{full}").json()["balance"] == "9223372036.854775807"
    )


def test_client_session_sees_only_its_account(
    gateway: RunningGateway, dashboard: Dashboard
) -> None:
    mine = gateway.new_account("tenant-mine")
    theirs = gateway.new_account("tenant-theirs")
    my_key = gateway.new_key(mine)
    their_key = gateway.new_key(theirs)
    assert dashboard.sign_in(my_key).status_code == 303
    assert dashboard.get("/ui/accounts").headers["location"] == f"/ui/accounts/{mine}"
    assert dashboard.get(f"/ui/accounts/{mine}").status_code == 200
    keys = dashboard.get(f"/ui/accounts/{mine}/keys").text
    assert my_key[:11] in keys and their_key[:11] not in keys
    for path in (
        f"/ui/accounts/{theirs}",
        f"/ui/accounts/{theirs}/keys",
        f"/ui/accounts/{theirs}/invoice",
        f"/ui/accounts/{theirs}/invoice.csv",
        f"/ui?account={theirs}",
    ):
        response = dashboard.get(path)
        assert response.status_code in (200, 404), path
        assert "tenant-theirs" not in response.text and theirs not in response.text, path
    assert dashboard.get("/ui/providers").status_code == 403
    their_key_id = next(
        line.split("/keys/")[1].split("/")[0]
        for line in _admin_keys_page(gateway, theirs).splitlines()
        if "/revoke" in line
    )
    revoke = dashboard.post_form(f"/ui/accounts/{theirs}/keys/{their_key_id}/revoke", {})
    assert revoke.status_code == 404
    revoke = dashboard.post_form(f"/ui/accounts/{mine}/keys/{their_key_id}/revoke", {})
    assert revoke.status_code == 404
    assert gateway.client(their_key).models.list().data  # still works
    credit = dashboard.post_form(f"/ui/accounts/{mine}/credits", {"amount": "100"})
    assert credit.status_code == 403  # only the operator credits


def _admin_keys_page(gateway: RunningGateway, account: str) -> str:
    admin = Dashboard(gateway.base_url)
    admin.sign_in(ADMIN_KEY)
    try:
        return admin.get(f"/ui/accounts/{account}/keys").text
    finally:
        admin.close()


def test_revoking_the_sign_in_key_ends_the_session(
    gateway: RunningGateway, dashboard: Dashboard
) -> None:
    account = gateway.new_account("self-revoke")
    key = gateway.new_key(account)
    dashboard.sign_in(key)
    page = dashboard.get(f"/ui/accounts/{account}/keys").text
    key_id = page.split("/keys/")[1].split("/")[0]
    response = dashboard.post_form(
        f"/ui/accounts/{account}/keys/{key_id}/revoke", {}, page=f"/ui/accounts/{account}"
    )
    assert response.status_code == 303
    assert dashboard.get("/ui").status_code == 303  # signed out: the key is gone
    assert gateway.post("/v1/chat/completions", key, json={}).status_code == 401


def test_sign_out(dashboard: Dashboard) -> None:
    dashboard.sign_in(ADMIN_KEY)
    assert dashboard.get("/ui").status_code == 200
    response = dashboard.post_form("/ui/logout", {})
    assert response.status_code == 303 and response.headers["location"] == "/ui/login"
    assert dashboard.get("/ui").status_code == 303


def test_pages_render_and_show_no_secrets(gateway: RunningGateway, dashboard: Dashboard) -> None:
    account = gateway.new_account("pages")
    dashboard.sign_in(ADMIN_KEY)
    for path in (
        "/ui",
        "/ui?range=30d",
        "/ui/providers",
        "/ui/accounts",
        f"/ui/accounts/{account}",
        f"/ui/accounts/{account}/keys",
        f"/ui/accounts/{account}/invoice",
        "/ui/requests",
        "/ui/requests?status=5xx&model=gpt-mini&since=2020-01-01",
    ):
        response = dashboard.get(path)
        assert response.status_code == 200, (path, response.text)
        assert "-secret" not in response.text  # upstream keys are sk-<name>-secret
    assert dashboard.get("/ui/requests?status=7xx").status_code == 400
    assert dashboard.get("/ui/accounts/acct_nope").status_code == 404
    assert dashboard.get(f"/ui/accounts/{account}/invoice?month=2026-13").status_code == 400
    css = dashboard.get("/ui/static/ui.css")
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]


def test_key_created_in_the_dashboard_is_shown_once(
    gateway: RunningGateway, dashboard: Dashboard
) -> None:
    account = gateway.new_account("once")
    dashboard.sign_in(ADMIN_KEY)
    created = dashboard.post_form(f"/ui/accounts/{account}/keys", {"name": "web"})
    assert created.status_code == 200
    key = created.text.split('<code id="new-key">')[1].split("<")[0]
    assert key.startswith("ty-")
    assert gateway.client(key).models.list().data
    again = dashboard.get(f"/ui/accounts/{account}/keys").text
    assert key not in again and key[:11] in again
