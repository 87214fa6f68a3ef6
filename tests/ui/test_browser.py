"""The dashboard in a real browser (Debian's Chromium, headless, driven by Playwright): sign
in, create a key, use it with the OpenAI SDK, see the request and the spend, see no other
tenant, sign out. With TOKENYARD_SCREENSHOTS=1 it saves each page to docs/screenshots/."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import ADMIN_KEY, RunningGateway

playwright = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """SQLite only here: Playwright's sync API keeps an event loop running in this thread,
    which the PostgreSQL fixture's asyncio.run cannot share (test_http.py covers both)."""
    return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'tokenyard.db'}"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/test installs it (apt-get install chromium)")
    with playwright.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: object, database_url: str) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})  # type: ignore[attr-defined]
    tab = context.new_page()
    tab.set_default_timeout(15000)
    yield tab
    context.close()


def shoot(page: object, name: str, database_url: str) -> None:
    if os.environ.get("TOKENYARD_SCREENSHOTS") == "1" and database_url.startswith("sqlite"):
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]


def sign_in(page: object, base: str, key: str) -> None:
    page.goto(base + "/ui/login")  # type: ignore[attr-defined]
    page.fill("#key", key)  # type: ignore[attr-defined]
    page.click("button[type=submit]")  # type: ignore[attr-defined]


def total(page: object, name: str) -> str:
    return str(page.text_content(f'[data-total="{name}"]')).strip()  # type: ignore[attr-defined]


def test_operator_journey(gateway: RunningGateway, page: object, database_url: str) -> None:
    base = gateway.base_url
    page.goto(base + "/ui")  # type: ignore[attr-defined]
    assert page.url.endswith("/ui/login")  # type: ignore[attr-defined]
    shoot(page, "login", database_url)
    sign_in(page, base, "not-the-admin-key")
    assert "not valid" in page.text_content(".error")  # type: ignore[attr-defined]

    account = gateway.new_account("Browser Co", credit="50")
    sign_in(page, base, ADMIN_KEY)
    page.goto(f"{base}/ui?account={account}")  # type: ignore[attr-defined]
    spend_before = total(page, "Spend")

    page.goto(f"{base}/ui/accounts/{account}/keys")  # type: ignore[attr-defined]
    page.fill("#name", "from the browser")  # type: ignore[attr-defined]
    page.click("text=Create key")  # type: ignore[attr-defined]
    key = str(page.text_content("#new-key")).strip()  # type: ignore[attr-defined]
    assert key.startswith("ty-")
    shoot(page, "keys", database_url)
    page.goto(f"{base}/ui/accounts/{account}/keys")  # type: ignore[attr-defined]
    assert key not in page.content() and key[:11] in page.content()  # type: ignore[attr-defined]

    answer = gateway.client(key).chat.completions.create(
        model="gpt-mini", messages=[{"role": "user", "content": "hello from the browser test"}]
    )
    assert answer.choices[0].message.content

    page.goto(f"{base}/ui?account={account}")  # type: ignore[attr-defined]
    assert total(page, "Spend") != spend_before
    assert page.locator("svg.chart rect.bar").count() >= 1  # type: ignore[attr-defined]

    deadline = time.monotonic() + 10  # the request log is written after the response
    while True:
        page.goto(f"{base}/ui/requests?account={account}")  # type: ignore[attr-defined]
        if page.locator("table.log tbody tr", has_text="gpt-mini").count():  # type: ignore[attr-defined]
            break
        assert time.monotonic() < deadline, "the request never reached the request log"
        time.sleep(0.3)
    assert key[:11] in page.content()  # type: ignore[attr-defined]

    _tour(page, base, account, database_url)

    page.click("text=Sign out")  # type: ignore[attr-defined]
    assert page.url.endswith("/ui/login")  # type: ignore[attr-defined]
    page.goto(base + "/ui/accounts")  # type: ignore[attr-defined]
    assert page.url.endswith("/ui/login")  # type: ignore[attr-defined]


def _tour(page: object, base: str, account: str, database_url: str) -> None:
    """Every operator page renders; each is photographed for the README."""
    shoot(page, "requests", database_url)
    page.goto(f"{base}/ui?account={account}")  # type: ignore[attr-defined]
    shoot(page, "overview", database_url)
    page.goto(f"{base}/ui/providers")  # type: ignore[attr-defined]
    assert page.locator("text=Deployments").count()  # type: ignore[attr-defined]
    shoot(page, "providers", database_url)
    page.goto(f"{base}/ui/accounts")  # type: ignore[attr-defined]
    assert page.locator("text=Browser Co").count()  # type: ignore[attr-defined]
    shoot(page, "accounts", database_url)
    page.goto(f"{base}/ui/accounts/{account}")  # type: ignore[attr-defined]
    page.fill("#amount", "2.5")  # type: ignore[attr-defined]
    page.click("button:has-text('Credit')")  # type: ignore[attr-defined]
    assert "52.5" in total(page, "balance") or "Credited" in page.content()  # type: ignore[attr-defined]
    shoot(page, "account", database_url)
    page.goto(f"{base}/ui/accounts/{account}/invoice")  # type: ignore[attr-defined]
    assert page.locator("td", has_text="gpt-mini").count()  # type: ignore[attr-defined]
    shoot(page, "invoice", database_url)


def test_client_sees_only_its_account(gateway: RunningGateway, page: object) -> None:
    base = gateway.base_url
    mine, theirs = gateway.new_account("Mine Ltd"), gateway.new_account("Theirs Inc")
    my_key, their_key = gateway.new_key(mine), gateway.new_key(theirs)
    gateway.client(their_key).chat.completions.create(
        model="gpt-mini", messages=[{"role": "user", "content": "theirs"}]
    )
    sign_in(page, base, my_key)
    assert page.url.endswith("/ui")  # type: ignore[attr-defined]
    nav = str(page.text_content("header nav"))  # type: ignore[attr-defined]
    assert "Providers" not in nav and "Accounts" not in nav
    for path in ("/ui/accounts", "/ui/requests", f"/ui/accounts/{mine}/keys"):
        page.goto(base + path)  # type: ignore[attr-defined]
        content = page.content()  # type: ignore[attr-defined]
        assert (
            theirs not in content and "Theirs Inc" not in content and their_key[:11] not in content
        )
    response = page.goto(f"{base}/ui/accounts/{theirs}")  # type: ignore[attr-defined]
    assert response.status == 404
    response = page.goto(f"{base}/ui/providers")  # type: ignore[attr-defined]
    assert response.status == 403
    refused = page.request.post(  # type: ignore[attr-defined]
        f"{base}/ui/accounts/{mine}/keys", form={"name": "no token"}
    )
    assert refused.status == 403
