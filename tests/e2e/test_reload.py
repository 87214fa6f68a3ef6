"""Config hot reload (issue 7): SIGHUP and ``POST /admin/reload`` swap in a new config file
without a restart; a bad file changes nothing and says why; a stream that began before the
reload ends on the config it began with; with ``--workers N`` every worker reloads."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Upstreams, gateway_config
from tests.e2e.harness import RunningGateway, start_gateway

USER = [{"role": "user", "content": "hello there"}]


def _model(name: str, provider: str, price: str = "{input: 1, output: 1}") -> str:
    return f"""  {name}:
    deployments:
      - {{provider: {provider}, model: gpt-4o-mini, price: {price}}}
"""


class Reloadable:
    """A running gateway and the config file it was started with."""

    def __init__(self, gateway: RunningGateway, base: str) -> None:
        self.gateway = gateway
        self.base = base
        self.path = gateway.log_path.parent / "tokenyard.yaml"

    def write(self, extra: str = "", *, text: str | None = None) -> None:
        self.path.write_text(text if text is not None else self.base + extra)

    def reload(self) -> httpx.Response:
        return self.gateway.admin("POST", "/admin/reload")


@pytest.fixture(scope="module")
def served(
    database_url: str, upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Reloadable]:
    base = gateway_config(database_url, upstreams.urls) + _model("switch", "openai-a")
    running = start_gateway(tmp_path_factory.mktemp("reload"), base)
    yield Reloadable(running, base)
    assert running.stop() == 0, running.log()


@pytest.fixture(autouse=True)
def _original(served: Reloadable) -> Iterator[None]:
    """Every test starts and ends on the original file."""
    served.write()
    assert served.reload().status_code == 200
    yield
    served.write()
    served.reload()


def _eventually(check: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "the reload did not take effect"
        time.sleep(0.05)


def test_sighup_serves_a_model_added_to_the_file(served: Reloadable) -> None:
    client = served.gateway.client(served.gateway.new_key(), max_retries=0)
    assert "added" not in {m.id for m in client.models.list()}
    served.write(_model("added", "openai-a"))
    served.gateway.process.send_signal(signal.SIGHUP)
    _eventually(lambda: "added" in {m.id for m in client.models.list()})
    answer = client.chat.completions.create(model="added", messages=USER)  # type: ignore[arg-type]
    assert answer.choices[0].message.content
    assert '"msg":"config reloaded"' in served.gateway.log()
    assert '"models_added":["added"]' in served.gateway.log()


def test_a_new_price_is_charged_to_new_requests(served: Reloadable) -> None:
    client = served.gateway.client(served.gateway.new_key(), max_retries=0)

    def cost() -> Decimal:
        raw = client.chat.completions.with_raw_response.create(model="switch", messages=USER)  # type: ignore[arg-type]
        return Decimal(raw.headers["x-tokenyard-cost"])

    before = cost()
    served.path.write_text(
        served.base.replace(_model("switch", "openai-a"), "")
        + _model("switch", "openai-a", "{input: 2, output: 2}")
    )
    answer = served.reload()
    assert answer.status_code == 200, answer.text
    assert answer.json()["changes"] == {"models_changed": ["switch"]}
    assert cost() == before * 2


BAD_FILES = {
    "yaml": (lambda base: base + "  broken: [\n", "not valid YAML"),
    "unknown key": (
        lambda base: base + "  typo:\n    deploymentz: []\n",
        "models.typo.deploymentz: unknown key",
    ),
    "missing env": (
        lambda base: base + _model("secret", "${TOKENYARD_TEST_UNSET_VARIABLE}"),
        "environment variable TOKENYARD_TEST_UNSET_VARIABLE is not set",
    ),
    "database": (
        lambda base: base.replace("database: ", "database: sqlite:///elsewhere.db\n# was: ", 1),
        "database: changing it needs a restart",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_file_changes_nothing_and_says_why(served: Reloadable, case: str) -> None:
    make, reason = BAD_FILES[case]
    client = served.gateway.client(served.gateway.new_key(), max_retries=0)
    served.write(text=make(served.base) + _model("not-yet", "openai-a"))
    answer = served.reload()
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert reason in error["message"]
    assert "config reload refused" in served.gateway.log()
    assert reason.split(":")[0] in served.gateway.log()
    assert "not-yet" not in {m.id for m in client.models.list()}
    assert client.chat.completions.create(model="switch", messages=USER).choices  # type: ignore[arg-type]


def test_a_stream_begun_before_a_reload_ends_on_the_old_config(
    served: Reloadable, upstreams: Upstreams
) -> None:
    client = served.gateway.client(served.gateway.new_key(), max_retries=0, timeout=15)
    old = upstreams["openai-a"]
    seen = len(old.requests)
    old.stall_stream_next(1.5)  # headers at once, the first chunk only after the reload

    def stream() -> tuple[str, str]:
        raw = client.chat.completions.with_raw_response.create(
            model="switch",
            messages=USER,  # type: ignore[arg-type]
            stream=True,
        )
        text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
        return raw.headers["x-tokenyard-provider"], text

    with ThreadPoolExecutor(1) as pool:
        begun = pool.submit(stream)
        _eventually(lambda: len(old.requests) > seen)
        served.path.write_text(
            served.base.replace(_model("switch", "openai-a"), _model("switch", "deepseek"))
        )
        assert served.reload().status_code == 200
        raw = client.chat.completions.with_raw_response.create(model="switch", messages=USER)  # type: ignore[arg-type]
        assert raw.headers["x-tokenyard-provider"] == "deepseek"
        provider, text = begun.result(timeout=20)
    assert provider == "openai-a"
    assert text


def test_reload_needs_the_admin_key(served: Reloadable) -> None:
    answer = served.gateway.http.post("/admin/reload")
    assert answer.status_code == 401
    answer = served.gateway.post("/admin/reload", served.gateway.new_key())
    assert answer.status_code == 401


def test_an_unchanged_file_is_a_no_op(served: Reloadable) -> None:
    first = served.reload().json()
    again = served.reload().json()
    assert again["generation"] == first["generation"]
    assert again["changes"] == {}


def test_sighup_to_the_parent_reloads_every_worker(
    database_url: str, upstreams: Upstreams, tmp_path: Path
) -> None:
    base = gateway_config(database_url, upstreams.urls)
    running = start_gateway(tmp_path, base, workers=2)
    try:
        key = running.new_key()

        def chat() -> int:
            with httpx.Client(base_url=running.base_url, timeout=10) as fresh:
                return fresh.post(
                    "/v1/chat/completions",
                    headers={"Authorization": f"Bearer {key}"},
                    json={"model": "added", "messages": USER},
                ).status_code

        assert chat() == 404
        (tmp_path / "tokenyard.yaml").write_text(base + _model("added", "openai-a"))
        os.kill(running.process.pid, signal.SIGHUP)
        _eventually(lambda: running.log().count('"msg":"config reloaded"') == 2)
        assert [chat() for _ in range(20)] == [200] * 20
    finally:
        assert running.stop() == 0, running.log()


def test_admin_reload_with_workers_reaches_every_worker(
    database_url: str, upstreams: Upstreams, tmp_path: Path
) -> None:
    base = gateway_config(database_url, upstreams.urls)
    running = start_gateway(tmp_path, base, workers=2)
    try:
        key = running.new_key()
        (tmp_path / "tokenyard.yaml").write_text(base + _model("added", "openai-a"))
        answer = running.admin("POST", "/admin/reload")
        assert answer.status_code == 200, answer.text
        assert answer.json()["processes"] == 2
        _eventually(lambda: running.log().count('"msg":"config reloaded"') == 2)

        def chat() -> int:
            with httpx.Client(base_url=running.base_url, timeout=10) as fresh:
                return fresh.post(
                    "/v1/chat/completions",
                    headers={"Authorization": f"Bearer {key}"},
                    json={"model": "added", "messages": USER},
                ).status_code

        assert [chat() for _ in range(20)] == [200] * 20
    finally:
        assert running.stop() == 0, running.log()
