"""Secrets and prompt text never leave the gateway through its logs or its answers.

A real gateway process holds known, unique upstream secrets (one the upstream refuses with
401, one answered with 429, one with 500, one good) and known client keys; requests carry
unique marker strings in their prompts, through every client API path and every error. Then
every line of the gateway's log — at ``info`` and at ``debug`` — the operator endpoints
(``/admin/providers``, ``/admin/usage``, the invoice, ``/openapi.json``; ``/metrics`` and
``/admin/requests`` whenever they answer non-404) and every page of the ``/ui`` dashboard,
signed in as the operator, are searched for every secret and every marker, and every
answer's body and headers for every secret (answers echo the prompt by design, so markers
are not looked for there).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import ADMIN_KEY, RunningGateway, start_gateway
from tests.upstreams.openai_wire import Flavor, StandInUpstream, run_in_thread


def _secret(tag: str) -> str:
    return f"sk-{tag}-" + secrets.token_hex(12)


GOOD, WRONG, REAL, LIMITED, BROKEN = (
    _secret(t) for t in ("good", "wrong", "real", "limited", "broken")
)
UPSTREAM_SECRETS = [GOOD, WRONG, REAL, LIMITED, BROKEN]
"""WRONG is configured for a provider whose upstream expects REAL: it answers 401."""


@dataclass
class Upstreams:
    by_name: dict[str, StandInUpstream]
    urls: dict[str, str]


@pytest.fixture(scope="module")
def secret_upstreams() -> Iterator[Upstreams]:
    keys = {"good": GOOD, "wrong": REAL, "limited": LIMITED, "broken": BROKEN}
    by_name = {name: StandInUpstream(Flavor.OPENAI, api_key=key) for name, key in keys.items()}
    urls: dict[str, str] = {}
    stops: list[Callable[[], None]] = []
    for name, upstream in by_name.items():
        urls[name], stop = run_in_thread(upstream)
        stops.append(stop)
    yield Upstreams(by_name, urls)
    for stop in stops:
        stop()


def _config(database: str, urls: dict[str, str], level: str, prompts: bool) -> str:
    configured = {"good": GOOD, "wrong": WRONG, "limited": LIMITED, "broken": BROKEN}
    providers = "\n".join(
        f"""  {name}:
    api: openai
    base_url: {urls[name]}
    timeout_s: 5
    keys: [{{key: {key}}}]"""
        for name, key in configured.items()
    )
    return f"""
database: {database}
admin_key: {ADMIN_KEY}
logging: {{level: {level}, prompts: {"true" if prompts else "false"}}}
billing: {{currency: USD, markup: 0.10}}
health: {{consecutive_failures: 1000, min_requests: 1000}}
providers:
{providers}
models:
  good-chat:
    deployments:
      - {{provider: good, model: gpt-4o-mini, price: {{input: 1, output: 2}}}}
  refused:
    deployments:
      - {{provider: wrong, model: gpt-4o-mini, price: {{input: 1, output: 2}}}}
  refused-then-good:
    deployments:
      - {{provider: wrong, model: gpt-4o-mini, price: {{input: 1, output: 2}}}}
      - {{provider: good, model: gpt-4o-mini, price: {{input: 1, output: 2}}}}
  limited:
    deployments:
      - {{provider: limited, model: gpt-4o-mini, price: {{input: 1, output: 2}}}}
      - {{provider: good, model: gpt-4o-mini, price: {{input: 1, output: 2}}}}
  broken:
    deployments:
      - {{provider: broken, model: gpt-4o-mini, price: {{input: 1, output: 2}}}}
  tiny-window:
    context_window: 20
    deployments:
      - {{provider: good, model: gpt-4o-mini, price: {{input: 1}}}}
  embed:
    kind: embedding
    deployments:
      - {{provider: good, model: text-embedding-3-small, price: {{input: 0.02}}}}
"""


@dataclass
class Traffic:
    """Everything sent and received, for the searches."""

    gateway: RunningGateway
    prompts_stored: bool  # logging.prompts: the request log shows prompts, by design
    account: str = ""
    client_keys: list[str] = field(default_factory=list)
    markers: list[str] = field(default_factory=list)
    answers: list[httpx.Response] = field(default_factory=list)

    def key_hashes(self) -> list[str]:
        """What the database holds for each client key: a log must not hold it either."""
        return [hashlib.sha256(k.encode()).hexdigest() for k in self.client_keys]

    def marker(self, where: str) -> str:
        marker = f"MARK-{where}-{secrets.token_hex(8)}"
        self.markers.append(marker)
        return marker

    def send(self, path: str, key: str | None, body: object, **headers: str) -> httpx.Response:
        sent = dict(headers)
        if key is not None and "x-api-key" not in sent:
            sent["Authorization"] = f"Bearer {key}"
        response = self.gateway.http.post(path, json=body, headers=sent)
        self.answers.append(response)
        return response

    def chat(self, key: str, model: str, where: str, **extra: object) -> httpx.Response:
        text = f"please answer {self.marker(where)} now"
        body = {"model": model, "messages": [{"role": "user", "content": text}], **extra}
        return self.send("/v1/chat/completions", key, body)

    def new_key(self, account_id: str) -> tuple[str, str]:
        response = self.gateway.admin(
            "POST", "/admin/keys", {"account_id": account_id, "name": "k"}
        )
        assert response.status_code == 201, response.text
        key, key_id = response.json()["key"], response.json()["id"]
        self.client_keys.append(key)
        return key, key_id


def _drive(traffic: Traffic, upstreams: Upstreams) -> None:
    """Every client API path and error that the gateway can meet, each with its marker."""
    gw = traffic.gateway
    account = traffic.account = gw.new_account("secrets")
    key, _ = traffic.new_key(account)

    assert traffic.chat(key, "good-chat", "chat").status_code == 200
    stream = traffic.chat(
        key, "good-chat", "stream", stream=True, stream_options={"include_usage": True}
    )
    assert stream.status_code == 200 and "[DONE]" in stream.text
    embed = traffic.send(
        "/v1/embeddings", key, {"model": "embed", "input": [traffic.marker("embed"), "x"]}
    )
    assert embed.status_code == 200
    for streamed in (False, True):
        text = traffic.marker(f"messages-{streamed}")
        body = {
            "model": "good-chat",
            "max_tokens": 64,
            "stream": streamed,
            "system": traffic.marker("system"),
            "messages": [{"role": "user", "content": text}],
        }
        answer = traffic.send("/v1/messages", None, body, **{"x-api-key": key})
        assert answer.status_code == 200, answer.text

    assert traffic.chat(key, "refused", "upstream-401").status_code >= 500
    assert traffic.chat(key, "refused-then-good", "failover-401").status_code == 200
    # upstreams that, like some real ones, echo the credential and the prompt in errors
    limited_marker, broken_marker = traffic.marker("echo-429"), traffic.marker("echo-500")
    upstreams.by_name["limited"].fail_next(
        429,
        {"error": {"message": f"slow down {LIMITED} {limited_marker}", "type": "rate_limit"}},
        headers={"Retry-After": "1"},
    )
    assert traffic.chat(key, "limited", "upstream-429").status_code == 200
    upstreams.by_name["broken"].fail_next(
        500, {"error": {"message": f"boom {BROKEN} {broken_marker}"}}, times=10
    )
    assert traffic.chat(key, "broken", "upstream-500").status_code >= 500
    stream_500 = traffic.chat(key, "broken", "stream-500", stream=True)
    assert stream_500.status_code >= 500
    upstreams.by_name["broken"].reset()
    assert traffic.chat(key, "tiny-window", "overflow " * 30).status_code == 400

    bad_json = f'{{"model": "good-chat", "messages": "{traffic.marker("badjson")}'
    response = gw.http.post(
        "/v1/chat/completions",
        content=bad_json,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    traffic.answers.append(response)
    assert response.status_code == 400

    wrong_client_key = "ty-" + secrets.token_hex(20)
    traffic.client_keys.append(wrong_client_key)
    assert traffic.chat(wrong_client_key, "good-chat", "wrong-client-key").status_code == 401
    assert traffic.send(
        "/v1/messages",
        None,
        {"model": "good-chat", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]},
        **{"x-api-key": wrong_client_key},
    ).status_code in (401, 403)

    revoked, revoked_id = traffic.new_key(account)
    assert traffic.chat(revoked, "good-chat", "before-revoke").status_code == 200
    assert gw.admin("DELETE", f"/admin/keys/{revoked_id}").status_code == 204
    assert traffic.chat(revoked, "good-chat", "revoked").status_code == 401

    # a client key where the admin key belongs
    refused = gw.http.get("/admin/providers", headers={"Authorization": f"Bearer {key}"})
    traffic.answers.append(refused)
    assert refused.status_code in (401, 403)


def _hits(text: str, needles: list[str]) -> list[str]:
    return [n for n in needles if n in text]


@pytest.fixture(scope="module", params=["info", "debug"])  # debug: prompts stored too
def traffic(
    request: pytest.FixtureRequest,
    secret_upstreams: Upstreams,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Traffic]:
    directory: Path = tmp_path_factory.mktemp(f"secrets-{request.param}")
    debug = request.param == "debug"
    config = _config(
        f"sqlite:///{directory / 'tokenyard.db'}", secret_upstreams.urls, request.param, debug
    )
    gateway = start_gateway(directory, config)
    try:
        traffic = Traffic(gateway, prompts_stored=debug)
        _drive(traffic, secret_upstreams)
        yield traffic
    finally:
        gateway.stop()


def test_answers_hold_no_secret(traffic: Traffic) -> None:
    needles = [*UPSTREAM_SECRETS, ADMIN_KEY]
    for answer in traffic.answers:
        own = answer.request.headers.get("authorization", "") + answer.request.headers.get(
            "x-api-key", ""
        )
        others = [k for k in traffic.client_keys if k not in own]
        headers = "\n".join(f"{k}: {v}" for k, v in answer.headers.items())
        found = _hits(answer.text + "\n" + headers, [*needles, *others])
        assert not found, (answer.request.url, answer.status_code, found, answer.text[:300])
        # the caller's own key is not echoed back either
        assert not _hits(answer.text + headers, [k for k in traffic.client_keys if k in own])


@pytest.mark.parametrize("path", ["/admin/providers", "/metrics", "/admin/requests"])
def test_operator_endpoints_hold_no_secret_and_no_prompt(traffic: Traffic, path: str) -> None:
    """``/metrics`` and ``/admin/requests`` are searched whenever they exist (non-404)."""
    response = traffic.gateway.admin("GET", path)
    if path == "/admin/providers":
        assert response.status_code == 200, response.text
    if response.status_code == 404:
        return  # not built yet: nothing to leak through
    needles = [*UPSTREAM_SECRETS, ADMIN_KEY, *traffic.client_keys, *traffic.key_hashes()]
    if not (path == "/admin/requests" and traffic.prompts_stored):
        needles += traffic.markers
    assert not _hits(response.text, needles), response.text[:500]


@pytest.mark.parametrize(
    "path",
    ["/openapi.json", "/admin/usage?group_by=key", "/admin/accounts/{account}/invoice"],
)
def test_reports_hold_no_secret_and_no_prompt(traffic: Traffic, path: str) -> None:
    response = traffic.gateway.admin("GET", path.format(account=traffic.account))
    assert response.status_code == 200, response.text
    needles = [*UPSTREAM_SECRETS, ADMIN_KEY, *traffic.client_keys, *traffic.key_hashes()]
    assert not _hits(response.text, [*needles, *traffic.markers]), response.text[:500]


def test_the_dashboard_holds_no_secret_and_no_prompt(traffic: Traffic) -> None:
    """Every dashboard page the operator can open, after the traffic above (upstream errors
    that echoed their credential included)."""
    http = httpx.Client(base_url=traffic.gateway.base_url, timeout=30)
    form = http.get("/ui/login")
    token = re.search(r'name="csrf" value="([^"]*)"', form.text)
    assert token is not None
    signed_in = http.post("/ui/login", data={"csrf": token.group(1), "key": ADMIN_KEY})
    assert signed_in.status_code in (200, 303), signed_in.text
    account = traffic.account
    pages = ["/ui", "/ui?range=30d", "/ui/providers", "/ui/accounts", f"/ui/accounts/{account}"]
    pages += [f"/ui/accounts/{account}/keys", f"/ui/accounts/{account}/invoice"]
    pages += [f"/ui/accounts/{account}/invoice.csv", "/ui/requests", "/ui/requests?status=5xx"]
    needles = [*UPSTREAM_SECRETS, ADMIN_KEY, *traffic.client_keys, *traffic.key_hashes()]
    for page in pages:
        response = http.get(page, follow_redirects=False)
        assert response.status_code == 200, (page, response.status_code)
        shown = (
            needles
            if page.startswith("/ui/requests") and traffic.prompts_stored
            else [
                *needles,
                *traffic.markers,
            ]
        )
        assert not _hits(response.text, shown), (page, _hits(response.text, shown))
    http.close()


def test_the_log_holds_no_secret_and_no_prompt(traffic: Traffic) -> None:
    """Last: it stops the gateway, so that shutdown lines are searched too."""
    gateway = traffic.gateway
    for path in ("/admin/providers", "/metrics", "/admin/requests"):
        gateway.admin("GET", path)  # whatever they log when read is searched too
    assert gateway.stop() == 0
    lines = gateway.log().splitlines()
    assert len(lines) > 5  # the log was captured
    needles = [*UPSTREAM_SECRETS, ADMIN_KEY, *traffic.client_keys, *traffic.markers]
    needles += traffic.key_hashes()
    leaks = [(line, _hits(line, needles)) for line in lines if _hits(line, needles)]
    assert not leaks, leaks[:5]
