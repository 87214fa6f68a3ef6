"""A real gateway process for the dashboard tests, and a small browser-less client that signs
in through the same form a person uses (its CSRF token included)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import gateway_config, upstreams
from tests.e2e.harness import ADMIN_KEY, RunningGateway, start_gateway

__all__ = ["ADMIN_KEY", "upstreams"]

_CSRF = re.compile(r'name="csrf" value="([^"]*)"')


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


class Dashboard:
    """One browser's worth of cookies against /ui."""

    def __init__(self, base_url: str):
        self.http = httpx.Client(base_url=base_url, timeout=30, follow_redirects=False)

    def sign_in(self, key: str) -> httpx.Response:
        form = self.http.get("/ui/login")
        assert form.status_code == 200, form.text
        return self.http.post("/ui/login", data={"csrf": csrf_of(form.text), "key": key})

    def get(self, path: str, **kwargs: object) -> httpx.Response:
        return self.http.get(path, **kwargs)  # type: ignore[arg-type]

    def post_form(self, path: str, data: dict[str, str], *, page: str = "/ui") -> httpx.Response:
        """POST with the CSRF token of the session (read from ``page``)."""
        token = csrf_of(self.http.get(page).text)
        return self.http.post(path, data={"csrf": token, **data})

    def close(self) -> None:
        self.http.close()


@pytest.fixture(scope="module")
def gateway(
    database_url: str, upstreams: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    directory: Path = tmp_path_factory.mktemp("ui-gateway")
    running = start_gateway(directory, gateway_config(database_url, upstreams.urls))  # type: ignore[attr-defined]
    yield running
    assert running.stop() == 0, running.log()


@pytest.fixture
def dashboard(gateway: RunningGateway) -> Iterator[Dashboard]:
    client = Dashboard(gateway.base_url)
    yield client
    client.close()
