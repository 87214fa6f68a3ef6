"""The self-serve portal in a real browser (Debian's Chromium, headless): sign up, see the
starter credit, create a key, use it with the OpenAI SDK and see it charged. With
TOKENYARD_SCREENSHOTS=1 it saves signup.png and portal-account.png to docs/screenshots/."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Upstreams
from tests.e2e.harness import RunningGateway, start_gateway
from tests.ui.test_browser import browser, database_url, page, shoot, total
from tests.ui.test_portal import portal_config

__all__ = ["browser", "database_url", "page"]  # the browser fixtures, SQLite only


@pytest.fixture(scope="module")
def portal_gateway(
    database_url: str, upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    config = portal_config(database_url, upstreams, "{signup: open}")
    gateway = start_gateway(tmp_path_factory.mktemp("portal-browser"), config)
    yield gateway
    assert gateway.stop() == 0, gateway.log()


def test_sign_up_and_use_a_free_key(
    portal_gateway: RunningGateway, page: object, database_url: str
) -> None:
    base = portal_gateway.base_url
    page.goto(base + "/ui/login")  # type: ignore[attr-defined]
    page.click("text=Sign up")  # type: ignore[attr-defined]
    assert page.url.endswith("/ui/signup")  # type: ignore[attr-defined]
    email, password = f"ada-{secrets.token_hex(3)}@example.com", "a long passphrase"
    page.fill("#email", email)  # type: ignore[attr-defined]
    page.fill("#password", password)  # type: ignore[attr-defined]
    shoot(page, "signup", database_url)
    page.click("button:has-text('Create account')")  # type: ignore[attr-defined]
    assert total(page, "balance") == "5.000000 USD"
    shoot(page, "portal-account", database_url)

    page.click("header nav >> text=Keys")  # type: ignore[attr-defined]
    page.fill("#name", "laptop")  # type: ignore[attr-defined]
    page.click("text=Create key")  # type: ignore[attr-defined]
    key = str(page.text_content("#new-key")).strip()  # type: ignore[attr-defined]
    assert key.startswith("ty-")
    answer = portal_gateway.client(key).chat.completions.create(
        model="gpt-mini", messages=[{"role": "user", "content": "hello from a new developer"}]
    )
    assert answer.choices[0].message.content
    page.click("header nav >> text=Account")  # type: ignore[attr-defined]
    assert total(page, "balance") != "5.000000 USD"
    assert "no payment processor is configured" in page.content()  # type: ignore[attr-defined]

    page.click("text=Sign out")  # type: ignore[attr-defined]
    page.fill("#email", email)  # type: ignore[attr-defined]
    page.fill("#password", password)  # type: ignore[attr-defined]
    page.click("button:has-text('Sign in with password')")  # type: ignore[attr-defined]
    assert page.url.endswith("/ui")  # type: ignore[attr-defined]
    assert email in str(page.content())  # type: ignore[attr-defined]
