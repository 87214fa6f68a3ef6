"""The self-serve portal over plain HTTP against real gateway processes: sign-up (off, open,
by invite), the starter credit, password sign-in, a portal user's own keys used with the
OpenAI SDK, top-ups, the per-address limit, disabling an account, tenant isolation — and
that no password ever reaches the log."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
from sqlalchemy import func, select

from tests.e2e.conftest import Upstreams, gateway_config
from tests.e2e.harness import ADMIN_KEY, RunningGateway, start_gateway
from tests.payments.standins import CoinbaseStandIn, run_in_thread
from tests.ui.conftest import Dashboard, csrf_of
from tokenyard.store import Database
from tokenyard.store.tables import accounts, users

PASSWORD = "correct horse battery"
CREDIT = "5.000000"


def portal_config(database_url: str, upstreams: Upstreams, portal: str, extra: str = "") -> str:
    text = gateway_config(database_url, upstreams.urls)
    billing = "billing: {currency: USD, markup: 0.10, fx: {CNY: 0.14}}"
    assert billing in text
    text = text.replace(
        billing, "billing: {currency: USD, markup: 0.10, fx: {CNY: 0.14}, signup_credit: '5'}"
    )
    return text + f"\nportal: {portal}\n" + extra


@dataclass
class Open:
    gateway: RunningGateway
    coinbase: CoinbaseStandIn


@pytest.fixture(scope="module")
def open_portal(
    database_url: str, upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Open]:
    coinbase = CoinbaseStandIn("cb-key")
    _, stop = run_in_thread(coinbase)
    payments = f"""
payments:
  success_url: https://example.com/paid
  cancel_url: https://example.com/cancelled
  coinbase: {{api_key: cb-key, webhook_secret: cb-secret, api_base: {coinbase.base_url}}}
"""
    config = portal_config(
        database_url,
        upstreams,
        "{signup: open, signups_per_hour: 3, client_ip_header: X-Forwarded-For}",
        payments,
    )
    gateway = start_gateway(tmp_path_factory.mktemp("portal-open"), config)
    yield Open(gateway, coinbase)
    assert gateway.stop() == 0, gateway.log()
    stop()


@pytest.fixture(scope="module")
def invite_portal(
    database_url: str, upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    config = portal_config(
        database_url, upstreams, "{signup: invite, client_ip_header: X-Forwarded-For}"
    )
    gateway = start_gateway(tmp_path_factory.mktemp("portal-invite"), config)
    yield gateway
    assert gateway.stop() == 0, gateway.log()


class Browser(Dashboard):
    """A browser from one client address (X-Forwarded-For, trusted by the open portal)."""

    def __init__(self, base_url: str, address: str | None = None):
        super().__init__(base_url)
        self.http.headers["X-Forwarded-For"] = address or f"10.9.{_octet()}.{_octet()}"

    def sign_up(self, email: str, password: str = PASSWORD, invite: str = "") -> httpx.Response:
        form = self.http.get("/ui/signup")
        assert form.status_code == 200, form.text
        data = {"csrf": csrf_of(form.text), "email": email, "password": password}
        if invite:
            data["invite"] = invite
        return self.http.post("/ui/signup", data=data)

    def password_sign_in(self, email: str, password: str = PASSWORD) -> httpx.Response:
        form = self.http.get("/ui/login")
        data = {"csrf": csrf_of(form.text), "email": email, "password": password}
        return self.http.post("/ui/login", data=data)

    def account_id(self) -> str:
        page = self.get("/ui/accounts")
        assert page.status_code == 303, page.text
        return page.headers["location"].rsplit("/", 1)[1]

    def new_key(self, account_id: str) -> str:
        page = self.post_form(f"/ui/accounts/{account_id}/keys", {"name": "mine"})
        assert page.status_code == 200, page.text
        return page.text.split('<code id="new-key">')[1].split("<")[0]


def _octet() -> int:
    return secrets.randbelow(250) + 1


def _email() -> str:
    return f"dev-{secrets.token_hex(4)}@example.com"


@pytest.fixture
def browser(open_portal: Open) -> Iterator[Browser]:
    client = Browser(open_portal.gateway.base_url)
    yield client
    client.close()


def _balance(gateway: RunningGateway, account_id: str) -> str:
    value: str = gateway.admin("GET", f"/admin/accounts/{account_id}").json()["balance"]
    return value


def test_signup_off_is_404(gateway: RunningGateway) -> None:
    ui = Dashboard(gateway.base_url)
    assert ui.get("/ui/signup").status_code == 404
    assert ui.http.post("/ui/signup", data={"email": "a@b.co"}).status_code == 404
    assert "/ui/signup" not in ui.get("/ui/login").text
    ui.close()


def test_open_signup_credits_once_and_signs_in(open_portal: Open, browser: Browser) -> None:
    gateway = open_portal.gateway
    email = _email()
    form = browser.get("/ui/signup")
    assert "5.000000 USD" in form.text  # the starter credit is announced
    response = browser.sign_up(email.upper())  # stored lower-cased
    assert response.status_code == 303, response.text
    account_id = response.headers["location"].rsplit("/", 1)[1]
    page = browser.get(f"/ui/accounts/{account_id}")
    assert page.status_code == 200 and CREDIT in page.text and email in page.text
    assert _balance(gateway, account_id) == CREDIT

    browser.http.post("/ui/logout", data={"csrf": csrf_of(page.text)})
    assert browser.get("/ui").status_code == 303
    for wrong in ("correct horse battery!", ""):
        refused = browser.password_sign_in(email, wrong)
        assert refused.status_code == 401 and "do not match" in refused.text
        assert "ty_session=" not in refused.headers.get("set-cookie", "")
    unknown = browser.password_sign_in(_email())
    assert unknown.status_code == 401 and "do not match" in unknown.text
    assert browser.password_sign_in(email.title()).status_code == 303
    assert browser.account_id() == account_id
    assert _balance(gateway, account_id) == CREDIT  # signing in again credits nothing


def test_a_user_key_is_paid_from_the_credit(open_portal: Open, browser: Browser) -> None:
    gateway = open_portal.gateway
    browser.sign_up(_email())
    account_id = browser.account_id()
    key = browser.new_key(account_id)
    assert key.startswith("ty-")
    answer = gateway.client(key).chat.completions.with_raw_response.create(
        model="gpt-mini", messages=[{"role": "user", "content": "hello from the portal"}]
    )
    cost = answer.headers["x-tokenyard-cost"]
    assert answer.parse().choices[0].message.content and float(cost) > 0
    balance = _balance(gateway, account_id)
    assert balance != CREDIT and float(balance) == pytest.approx(5 - float(cost))
    keys = browser.get(f"/ui/accounts/{account_id}/keys").text
    assert key[:11] in keys and key not in keys  # shown once


def test_bad_sign_ups_are_refused(open_portal: Open, browser: Browser) -> None:
    email = _email()
    assert browser.sign_up(email).status_code == 303
    other = Browser(open_portal.gateway.base_url)
    again = other.sign_up(email.upper(), "another password 1")
    assert again.status_code == 400 and "exists" in again.text
    short = other.sign_up(_email(), "short")
    assert short.status_code == 400 and "at least 10" in short.text
    bad = other.sign_up("not-an-address", PASSWORD)
    assert bad.status_code == 400 and "e-mail" in bad.text
    form = other.http.get("/ui/signup")
    forged = other.http.post(
        "/ui/signup", data={"csrf": "forged", "email": _email(), "password": PASSWORD}
    )
    assert form.status_code == 200 and forged.status_code == 403
    other.close()


def test_sign_ups_are_limited_per_address(open_portal: Open) -> None:
    address = f"10.77.{_octet()}.{_octet()}"
    browsers = [Browser(open_portal.gateway.base_url, address) for _ in range(4)]
    for b in browsers[:3]:
        assert b.sign_up(_email()).status_code == 303
    limited = browsers[3].sign_up(_email())
    assert limited.status_code == 429 and "too many sign-ups" in limited.text
    assert int(limited.headers["retry-after"]) > 0
    elsewhere = Browser(open_portal.gateway.base_url)  # another address is not affected
    assert elsewhere.sign_up(_email()).status_code == 303
    for b in [*browsers, elsewhere]:
        b.close()


def test_passwords_never_reach_the_log(open_portal: Open, browser: Browser) -> None:
    secret = "pw-" + secrets.token_hex(12)
    email = _email()
    assert browser.sign_up(email, secret).status_code == 303
    browser.http.cookies.clear()
    assert browser.password_sign_in(email, secret + "x").status_code == 401
    assert browser.password_sign_in(email, secret).status_code == 303
    log = open_portal.gateway.log()
    assert '"msg":"listening"' in log  # the log of this very process
    assert secret not in log and secret + "x" not in log


def test_top_up_through_a_processor(open_portal: Open, browser: Browser) -> None:
    browser.sign_up(_email())
    account_id = browser.account_id()
    page = browser.get(f"/ui/accounts/{account_id}")
    assert "Top up" in page.text and 'name="amount"' in page.text
    started = browser.post_form(
        f"/ui/accounts/{account_id}/topups", {"amount": "10.00"}, page=f"/ui/accounts/{account_id}"
    )
    assert started.status_code == 200, started.text
    assert 'href="https://commerce.coinbase.com/charges/' in started.text
    assert open_portal.coinbase.requests[-1].body["metadata"]["account_id"] == account_id
    bad = browser.post_form(f"/ui/accounts/{account_id}/topups", {"amount": "1.234"})
    assert bad.status_code == 400 and "at most 2 decimals" in bad.text


def test_no_processor_says_so(invite_portal: RunningGateway) -> None:
    ui = Dashboard(invite_portal.base_url)
    key = invite_portal.new_key(invite_portal.new_account("no-pay"))
    ui.sign_in(key)
    account_id = ui.get("/ui/accounts").headers["location"].rsplit("/", 1)[1]
    assert "no payment processor is configured" in ui.get(f"/ui/accounts/{account_id}").text
    ui.close()


def test_disabling_an_account_ends_everything_at_once(open_portal: Open, browser: Browser) -> None:
    gateway = open_portal.gateway
    email = _email()
    browser.sign_up(email)
    account_id = browser.account_id()
    key = browser.new_key(account_id)
    client = gateway.client(key, max_retries=0)
    client.chat.completions.create(model="gpt-mini", messages=[{"role": "user", "content": "hi"}])

    assert gateway.http.post(f"/admin/accounts/{account_id}/disable").status_code == 401
    response = gateway.admin("POST", f"/admin/accounts/{account_id}/disable")
    assert response.status_code == 200 and response.json()["revoked_keys"] == 1
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(
            model="gpt-mini", messages=[{"role": "user", "content": "hi"}]
        )
    assert browser.get(f"/ui/accounts/{account_id}").status_code == 303  # session ended
    refused = browser.password_sign_in(email)
    assert refused.status_code == 403 and "disabled" in refused.text
    assert gateway.admin("POST", "/admin/accounts/acct_nope/disable").status_code == 404
    assert gateway.admin("GET", f"/admin/accounts/{account_id}").json()["disabled"] is True
    no_key = gateway.admin("POST", "/admin/keys", {"account_id": account_id, "name": "again"})
    assert no_key.status_code == 400 and "disabled" in no_key.json()["error"]["message"]


def test_the_operator_disables_from_the_dashboard(open_portal: Open) -> None:
    gateway = open_portal.gateway
    account_id = gateway.new_account("to disable")
    key = gateway.new_key(account_id)
    operator = Dashboard(gateway.base_url)
    operator.sign_in(ADMIN_KEY)
    page = operator.get(f"/ui/accounts/{account_id}").text
    assert "Disable account" in page
    done = operator.post_form(f"/ui/accounts/{account_id}/disable", {})
    assert done.status_code == 200 and "1 key(s) revoked" in done.text
    assert 'data-state="disabled"' in done.text and "Disable account" not in done.text
    assert gateway.post("/v1/chat/completions", key, json={}).status_code == 401
    operator.close()


def test_a_user_never_sees_another_account(open_portal: Open) -> None:
    gateway = open_portal.gateway
    mine, theirs = Browser(gateway.base_url), Browser(gateway.base_url)
    their_email = _email()
    mine.sign_up(_email())
    theirs.sign_up(their_email)
    my_account, their_account = mine.account_id(), theirs.account_id()
    their_key = theirs.new_key(their_account)
    gateway.client(their_key).chat.completions.create(
        model="gpt-mini", messages=[{"role": "user", "content": "theirs"}]
    )
    for path in ("", "/keys", "/invoice", "/invoice.csv"):
        assert mine.get(f"/ui/accounts/{their_account}{path}").status_code == 404
    for path in ("/ui", "/ui/requests", f"/ui/accounts/{my_account}", "/ui/requests?account="):
        text = mine.get(path + (their_account if path.endswith("=") else "")).text
        assert their_account not in text and their_email not in text
        assert their_key[:11] not in text
    assert mine.post_form(f"/ui/accounts/{their_account}/keys", {"name": "x"}).status_code == 404
    assert mine.post_form(f"/ui/accounts/{their_account}/disable", {}).status_code == 403
    assert mine.post_form("/ui/invites", {}).status_code == 403
    assert mine.get("/ui/providers").status_code == 403
    mine.close()
    theirs.close()


def test_invite_codes_are_single_use(invite_portal: RunningGateway) -> None:
    gateway = invite_portal
    ui = Browser(gateway.base_url)
    form = ui.get("/ui/signup")
    assert form.status_code == 200 and 'name="invite"' in form.text
    missing = ui.sign_up(_email())
    assert missing.status_code == 400 and "invite code is required" in missing.text
    wrong = ui.sign_up(_email(), invite="inv-made-up")
    assert wrong.status_code == 403 and "not valid" in wrong.text

    assert gateway.http.post("/admin/invites").status_code == 401
    created = gateway.admin("POST", "/admin/invites")
    assert created.status_code == 201
    code = created.json()["code"]
    assert ui.sign_up(_email(), invite=code).status_code == 303
    account_id = ui.account_id()
    assert _balance(gateway, account_id) == CREDIT

    again = Browser(gateway.base_url)
    used = again.sign_up(_email(), invite=code)
    assert used.status_code == 403 and "used already" in used.text
    again.close()
    ui.close()


def test_the_operator_creates_invites_on_the_dashboard(invite_portal: RunningGateway) -> None:
    operator = Dashboard(invite_portal.base_url)
    operator.sign_in(ADMIN_KEY)
    assert "Create invite code" in operator.get("/ui/accounts").text
    page = operator.post_form("/ui/invites", {})
    assert page.status_code == 200
    code = page.text.split('<code id="invite-code">')[1].split("<")[0]
    assert code.startswith("inv-")
    newcomer = Browser(invite_portal.base_url)
    taken = newcomer.sign_up(_email(), invite=code)
    assert taken.status_code == 303
    operator.close()
    newcomer.close()


def test_a_taken_address_does_not_burn_the_invite(invite_portal: RunningGateway) -> None:
    gateway = invite_portal
    email = _email()
    first = Browser(gateway.base_url)
    code = gateway.admin("POST", "/admin/invites").json()["code"]
    assert first.sign_up(email, invite=code).status_code == 303
    code = gateway.admin("POST", "/admin/invites").json()["code"]
    second = Browser(gateway.base_url)
    assert second.sign_up(email, invite=code).status_code == 400
    assert second.sign_up(_email(), invite=code).status_code == 303
    first.close()
    second.close()


def _rows_for(database_url: str, email: str) -> int:
    """Users and accounts the sign-up of ``email`` left in the database."""

    async def count() -> int:
        db = Database(database_url)
        try:
            async with db.engine.connect() as conn:
                found = 0
                for table, column in ((users, users.c.email), (accounts, accounts.c.name)):
                    query = select(func.count()).select_from(table).where(column == email)
                    found += int(await conn.scalar(query) or 0)
                return found
        finally:
            await db.close()

    return asyncio.run(count())


def test_a_signup_credit_no_account_can_hold_fails_the_signup_cleanly(
    database_url: str, upstreams: Upstreams, tmp_path: Path
) -> None:
    """A starter credit past the ledger's 64-bit nano-units (was a 500): the sign-up is
    refused with a message saying why, and no user or account is left behind."""
    config = portal_config(database_url, upstreams, "{signup: open}").replace(
        "signup_credit: '5'",
        "signup_credit: '9223372036.854775808'",  # one nano-unit too many
    )
    gateway = start_gateway(tmp_path, config)
    client = Dashboard(gateway.base_url)
    try:
        form = client.get("/ui/signup")
        email = _email()
        data = {"csrf": csrf_of(form.text), "email": email, "password": PASSWORD}
        refused = client.http.post("/ui/signup", data=data)
        assert refused.status_code == 503, refused.text
        assert "more than an account can hold" in refused.text
        assert "ty_session=" not in refused.headers.get("set-cookie", "")
        login = client.get("/ui/login")
        signin = {"csrf": csrf_of(login.text), "email": email, "password": PASSWORD}
        assert client.http.post("/ui/login", data=signin).status_code == 401
        assert _rows_for(database_url, email) == 0
    finally:
        client.close()
        assert gateway.stop() == 0, gateway.log()
