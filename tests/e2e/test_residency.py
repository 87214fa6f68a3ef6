"""Data residency (issue 5): regions set on a key or an account through the admin API,
which a request's ``routing.regions`` can narrow but never widen — on every route a key can
reach an upstream by, with the official OpenAI SDK as the client.

The shared config puts ``openai-a`` in ``us`` and ``flaky`` in ``eu``; ``cheapest-first``
has one deployment on each (the us one cheaper), ``gpt-mini`` and ``embed-small`` are us
only."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.e2e.conftest import Upstreams, gateway_config
from tests.e2e.harness import RunningGateway, start_gateway

USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]
EU_MODELS = {"failover", "with-fallback", "only-flaky", "large-window", "cheapest-first"}


def served_by(gateway: RunningGateway, key: str, model: str, **extra: Any) -> str:
    """The provider that answered a chat completion of ``model`` for ``key``."""
    raw = gateway.client(key, max_retries=0).chat.completions.with_raw_response.create(
        model=model, messages=USER, **extra
    )
    assert raw.parse().choices[0].message.content
    provider: str = raw.headers["x-tokenyard-provider"]
    return provider


def account(gateway: RunningGateway, **fields: Any) -> str:
    response = gateway.admin("POST", "/admin/accounts", {"name": "resident", **fields})
    assert response.status_code == 201, response.text
    account_id: str = response.json()["id"]
    gateway.credit(account_id, "100")
    return account_id


def test_an_eu_key_is_served_only_in_the_eu(gateway: RunningGateway, upstreams: Upstreams) -> None:
    free, eu = gateway.new_key(), gateway.new_key(regions=["eu"])
    assert served_by(gateway, free, "cheapest-first") == "openai-a"  # the cheaper, in us
    upstreams.reset()
    assert served_by(gateway, eu, "cheapest-first") == "flaky"
    assert served_by(gateway, eu, "with-fallback") == "flaky"
    assert not upstreams["openai-a"].requests  # not even as a fallback
    stream = gateway.client(eu, max_retries=0).chat.completions.create(
        model="cheapest-first", messages=USER, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert not upstreams["openai-a"].requests
    with pytest.raises(openai.APIStatusError) as caught:
        gateway.client(eu, max_retries=0).chat.completions.create(model="gpt-mini", messages=USER)
    assert caught.value.status_code == 503
    error: Any = caught.value.body  # the SDK hands over the "error" object
    assert error["code"] == "no_upstream_available" and "allowed regions" in error["message"]


def test_a_request_can_narrow_but_not_widen_its_residency(gateway: RunningGateway) -> None:
    eu = gateway.new_key(regions=["eu"])
    with pytest.raises(openai.BadRequestError) as caught:
        gateway.client(eu, max_retries=0).chat.completions.create(
            model="cheapest-first", messages=USER, extra_body={"routing": {"regions": ["us"]}}
        )
    error: Any = caught.value.body
    assert error["param"] == "routing.regions" and "allowed regions: eu" in error["message"]
    wider = {"routing": {"regions": ["us", "eu"]}}
    assert served_by(gateway, eu, "cheapest-first", extra_body=wider) == "flaky"
    both = gateway.new_key(regions=["eu", "us"])
    narrower = {"routing": {"regions": ["eu"]}}
    assert served_by(gateway, both, "cheapest-first") == "openai-a"
    assert served_by(gateway, both, "cheapest-first", extra_body=narrower) == "flaky"


def test_an_accounts_residency_applies_to_all_its_keys(gateway: RunningGateway) -> None:
    account_id = account(gateway, regions=["eu"])
    read = gateway.admin("GET", f"/admin/accounts/{account_id}").json()
    assert read["regions"] == ["eu"]
    plain = gateway.new_key(account_id)
    wider = gateway.new_key(account_id, regions=["eu", "us"])  # the account still binds it
    assert served_by(gateway, plain, "cheapest-first") == "flaky"
    assert served_by(gateway, wider, "cheapest-first") == "flaky"
    mine = gateway.http.get("/v1/account", headers={"Authorization": f"Bearer {wider}"}).json()
    assert mine["key"]["regions"] == ["eu"]  # what actually applies
    disjoint = gateway.admin(
        "POST", "/admin/keys", {"account_id": account_id, "name": "us", "regions": ["us"]}
    )
    assert disjoint.status_code == 400 and disjoint.json()["error"]["param"] == "regions"


def test_auto_and_route_honour_residency(gateway: RunningGateway) -> None:
    eu = gateway.new_key(regions=["eu"])
    raw = gateway.client(eu, max_retries=0).chat.completions.with_raw_response.create(
        model="auto", messages=USER
    )
    assert raw.headers["x-tokenyard-provider"] == "flaky"
    assert raw.headers["x-tokenyard-model"] in EU_MODELS
    ranking = gateway.post("/v1/route", eu, json={"model": "auto", "messages": USER}).json()
    assert ranking["candidates"] and {c["model"] for c in ranking["candidates"]} <= EU_MODELS
    assert "region" in ranking["rejected"]["gpt-mini"]
    widened = gateway.post(
        "/v1/route", eu, json={"model": "auto", "messages": USER, "routing": {"regions": ["us"]}}
    )
    assert widened.status_code == 400
    assert widened.json()["error"]["param"] == "routing.regions"


def test_messages_and_embeddings_honour_residency(
    gateway: RunningGateway, upstreams: Upstreams
) -> None:
    eu = gateway.new_key(regions=["eu"])
    upstreams.reset()
    message = gateway.post(
        "/v1/messages",
        eu,
        json={"model": "cheapest-first", "max_tokens": 50, "messages": USER},
    )
    assert message.status_code == 200, message.text
    assert message.headers["x-tokenyard-provider"] == "flaky"
    assert not upstreams["openai-a"].requests
    with pytest.raises(openai.APIStatusError) as caught:
        gateway.client(eu, max_retries=0).embeddings.create(model="embed-small", input="x")
    assert caught.value.status_code == 503  # its only deployment is in us
    free = gateway.new_key()
    assert gateway.client(free, max_retries=0).embeddings.create(model="embed-small", input="x")


def test_a_patch_takes_effect_at_once(gateway: RunningGateway) -> None:
    """Keys are cached for a while after authentication; a residency change reaches them
    at once (it clears the caches as a revocation does), not after the revalidation."""
    account_id = account(gateway)
    key = gateway.new_key(account_id)
    assert served_by(gateway, key, "cheapest-first") == "openai-a"  # cached from now on
    path = f"/admin/accounts/{account_id}"
    patched = gateway.admin("PATCH", path, {"regions": ["eu"]})
    assert patched.status_code == 200, patched.text
    assert patched.json()["regions"] == ["eu"] and patched.json()["id"] == account_id
    assert served_by(gateway, key, "cheapest-first") == "flaky"
    assert gateway.admin("GET", path).json()["regions"] == ["eu"]
    lifted = gateway.admin("PATCH", path, {"regions": None})
    assert lifted.status_code == 200 and lifted.json()["regions"] is None
    assert served_by(gateway, key, "cheapest-first") == "openai-a"


@pytest.fixture(scope="module")
def workers(
    database_url: str, upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    directory: Path = tmp_path_factory.mktemp("resident-workers")
    running = start_gateway(directory, gateway_config(database_url, upstreams.urls), workers=2)
    yield running
    assert running.stop() == 0, running.log()


def test_a_patch_reaches_every_worker_at_once(workers: RunningGateway) -> None:
    def provider(key: str) -> str:
        # A new connection each time, so the kernel spreads requests over the workers.
        with httpx.Client(base_url=workers.base_url, timeout=10) as client:
            response = client.post(
                "/v1/chat/completions",
                headers={"Authorization": f"Bearer {key}"},
                json={"model": "cheapest-first", "messages": USER},
            )
        assert response.status_code == 200, response.text
        name: str = response.headers["x-tokenyard-provider"]
        return name

    account_id = account(workers)
    key = workers.new_key(account_id)
    assert [provider(key) for _ in range(20)] == ["openai-a"] * 20  # warm in both caches
    patched = workers.admin("PATCH", f"/admin/accounts/{account_id}", {"regions": ["eu"]})
    assert patched.status_code == 200, patched.text
    assert [provider(key) for _ in range(20)] == ["flaky"] * 20


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"regions": []},
        {"regions": "eu"},
        {"regions": ["eu", ""]},
        {"regions": ["eu", 3]},
        {"regions": ["mars"]},  # no deployment is there: surely a typo
    ],
)
def test_bad_residency_settings_are_refused(gateway: RunningGateway, body: Any) -> None:
    account_id = account(gateway)
    patched = gateway.admin("PATCH", f"/admin/accounts/{account_id}", body)
    assert patched.status_code == 400, patched.text
    assert patched.json()["error"] | {"message": ""} == {
        "message": "",
        "type": "invalid_request_error",
        "param": "regions",
        "code": None,
    }
    if body:
        created = gateway.admin("POST", "/admin/accounts", {"name": "x", **body})
        keyed = gateway.admin("POST", "/admin/keys", {"account_id": account_id, **body})
        assert created.status_code == keyed.status_code == 400
        assert created.json()["error"]["param"] == keyed.json()["error"]["param"] == "regions"


def test_patch_changes_only_regions(gateway: RunningGateway) -> None:
    account_id = account(gateway)
    path = f"/admin/accounts/{account_id}"
    response = gateway.admin("PATCH", path, {"regions": ["eu"], "markup": "0.5"})
    assert response.status_code == 400 and response.json()["error"]["param"] == "markup"
    assert gateway.admin("GET", path).json()["regions"] is None  # nothing was changed


def test_patching_an_unknown_account_is_a_404(gateway: RunningGateway) -> None:
    response = gateway.admin("PATCH", "/admin/accounts/acct_nope", {"regions": ["eu"]})
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"


def cli(gateway: RunningGateway, *args: str) -> subprocess.CompletedProcess[str]:
    """The operator CLI against the running gateway's own config and database."""
    config = gateway.log_path.parent / "tokenyard.yaml"
    return subprocess.run(
        [sys.executable, "-m", "tokenyard.cli.main", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_operator_cli_sets_residency(gateway: RunningGateway) -> None:
    created = cli(gateway, "accounts", "create", "Resident", "--regions", "eu")
    assert created.returncode == 0, created.stderr
    account_id = json.loads(created.stdout)["id"]
    assert json.loads(created.stdout)["regions"] == ["eu"]
    gateway.credit(account_id, "10")
    issued = cli(gateway, "keys", "create", account_id, "--regions", "us,eu")
    assert issued.returncode == 0, issued.stderr
    assert served_by(gateway, json.loads(issued.stdout)["key"], "cheapest-first") == "flaky"
    refused = cli(gateway, "keys", "create", account_id, "--regions", "us")
    assert refused.returncode == 1 and "no region in common" in refused.stderr
    shown = json.loads(cli(gateway, "accounts", "show", account_id).stdout)
    assert shown["regions"] == ["eu"] and [k["regions"] for k in shown["keys"]] == [["eu", "us"]]
    lifted = cli(gateway, "accounts", "set-regions", account_id, "none")
    assert lifted.returncode == 0, lifted.stderr
    assert json.loads(lifted.stdout) == {"id": account_id, "regions": None}


def test_models_lists_only_what_the_residency_lets_the_key_use(gateway: RunningGateway) -> None:
    eu = gateway.client(gateway.new_key(regions=["eu"]), max_retries=0)
    listed = {m.id for m in eu.models.list()}
    assert listed == EU_MODELS
    assert eu.models.retrieve("cheapest-first").id == "cheapest-first"
    with pytest.raises(openai.NotFoundError):
        eu.models.retrieve("gpt-mini")  # us only
    everything = {m.id for m in gateway.client(gateway.new_key()).models.list()}
    assert everything > EU_MODELS and "gpt-mini" in everything
