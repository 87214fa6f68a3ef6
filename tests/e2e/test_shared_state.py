"""Two gateway processes (as on two machines) sharing one database and one Redis server:
what one learns about an upstream — a refused key, a full RPM window, an open circuit — the
other acts on, and a revocation on one is refused by the other. A third process that starts
later knows what is still in force."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.e2e.harness import ADMIN_KEY, RunningGateway, start_gateway
from tests.upstreams.openai_wire import Flavor, StandInUpstream, run_in_thread

pytestmark = pytest.mark.services
USER = [{"role": "user", "content": "hello from two replicas"}]
REDIS_DB = 5  # its own database, so its own event channel: other tests' gateways stay apart
NAMES = ("pooled", "limited", "shaky", "steady")


def redis_url() -> str:
    base = os.environ.get("TOKENYARD_TEST_REDIS")
    if not base:
        pytest.fail("TOKENYARD_TEST_REDIS is not set: run the tests through `make test`")
    return base.rsplit("/", 1)[0] + f"/{REDIS_DB}"


@pytest.fixture(scope="module")
def fleet() -> Iterator[dict[str, StandInUpstream]]:
    upstreams, stops = {}, []
    for name in NAMES:
        upstream = StandInUpstream(Flavor.OPENAI, api_key=f"sk-{name}-good")
        _, stop = run_in_thread(upstream)
        upstreams[name] = upstream
        stops.append(stop)
    yield upstreams
    for stop in stops:
        stop()


def config(database_url: str, fleet: dict[str, StandInUpstream]) -> str:
    def provider(name: str, keys: str) -> str:
        return f"""  {name}:
    api: openai
    base_url: {fleet[name].base_url}
    timeout_s: 5
    keys: {keys}"""

    return f"""
database: {database_url}
redis: {redis_url()}
admin_key: {ADMIN_KEY}
health: {{consecutive_failures: 2, open_s: 60, max_open_s: 60}}
providers:
{provider("pooled", "[{key: sk-pooled-good}, {key: sk-pooled-bad}]")}
{provider("limited", "[{key: sk-limited-good, rpm: 4}]")}
{provider("shaky", "[{key: sk-shaky-good}]")}
{provider("steady", "[{key: sk-steady-good}]")}
models:
  pooled:
    deployments: [{{provider: pooled, model: m, price: {{input: 1}}}}]
  limited:
    deployments: [{{provider: limited, model: m, price: {{input: 1}}}}]
  shaky-first:
    deployments:
      - {{provider: shaky, model: m, price: {{input: 1}}}}
      - {{provider: steady, model: m, price: {{input: 1}}}}
"""


@pytest.fixture(scope="module")
def replicas(
    database_url: str, fleet: dict[str, StandInUpstream], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningGateway, RunningGateway, Callable[[], RunningGateway]]]:
    text = config(database_url, fleet)
    for upstream in fleet.values():
        upstream.reset()
    with redis.Redis.from_url(redis_url()) as server:
        server.flushdb()  # what replicas of the other database's run left in force
    directory: Path = tmp_path_factory.mktemp("replicas")
    started = [start_gateway(directory / "one", text), start_gateway(directory / "two", text)]

    def another() -> RunningGateway:
        started.append(start_gateway(directory / f"late{len(started)}", text))
        return started[-1]

    yield started[0], started[1], another
    for gateway in started:
        assert gateway.stop() == 0, gateway.log()


def chat(gateway: RunningGateway, key: str, model: str) -> tuple[int, dict[str, str]]:
    response = gateway.post(
        "/v1/chat/completions", key, json={"model": model, "messages": USER, "max_tokens": 5}
    )
    return response.status_code, dict(response.headers)


def eventually(check: Callable[[], bool], within_s: float = 2.0) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, "not within the deadline"
        time.sleep(0.02)


def bad_key_calls(upstream: StandInUpstream) -> int:
    return sum(r.headers.get("authorization") == "Bearer sk-pooled-bad" for r in upstream.requests)


def test_a_key_refused_on_one_replica_is_left_out_by_the_other(
    replicas: tuple[RunningGateway, RunningGateway, Callable[[], RunningGateway]],
    fleet: dict[str, StandInUpstream],
) -> None:
    one, two, another = replicas
    key = one.new_key()
    for _ in range(50):  # until replica one picks the bad key once (then it retries the good)
        status, headers = chat(one, key, "pooled")
        assert status == 200
        if bad_key_calls(fleet["pooled"]):
            break
    assert bad_key_calls(fleet["pooled"]) == 1
    assert headers["x-tokenyard-attempts"] == "2"

    def refused_on(gateway: RunningGateway) -> bool:
        keys = gateway.admin("GET", "/admin/providers").json()["providers"]
        states = {k["label"]: k["state"] for p in keys if p["name"] == "pooled" for k in p["keys"]}
        return states == {"pooled#0": "ready", "pooled#1": "refused"}

    eventually(lambda: refused_on(two))
    for _ in range(30):
        assert chat(two, key, "pooled")[0] == 200
    assert bad_key_calls(fleet["pooled"]) == 1  # replica two never tried it
    assert refused_on(another())  # nor does a replica that starts later


def test_an_upstream_keys_rpm_is_counted_once_for_all_replicas(
    replicas: tuple[RunningGateway, RunningGateway, Callable[[], RunningGateway]],
    fleet: dict[str, StandInUpstream],
) -> None:
    one, two, _ = replicas
    key = one.new_key()
    answers = [
        gateway.post("/v1/chat/completions", key, json={"model": "limited", "messages": USER})
        for gateway in (one, two) * 4
    ]
    statuses = [a.status_code for a in answers]
    assert statuses.count(200) == 4  # rpm: 4 for the upstream key, across both replicas
    assert len(fleet["limited"].requests) == 4
    refused = [a for a in answers if a.status_code != 200]
    assert {a.status_code for a in refused} == {503}  # none available now, SPEC §4
    assert {a.json()["error"]["code"] for a in refused} == {"upstream_keys_exhausted"}
    assert all(1 <= int(a.headers["Retry-After"]) <= 60 for a in refused)


def test_a_circuit_opened_on_one_replica_is_skipped_by_the_other(
    replicas: tuple[RunningGateway, RunningGateway, Callable[[], RunningGateway]],
    fleet: dict[str, StandInUpstream],
) -> None:
    one, two, another = replicas
    key = one.new_key()
    fleet["shaky"].fail_next(500, times=2)
    for _ in range(2):  # two failures in a row on replica one: its circuit opens
        status, headers = chat(one, key, "shaky-first")
        assert (status, headers["x-tokenyard-provider"]) == (200, "steady")
    assert len(fleet["shaky"].requests) == 2

    def circuit_on(gateway: RunningGateway) -> str:
        deployments = gateway.admin("GET", "/admin/providers").json()["deployments"]
        return next(d["circuit"] for d in deployments if d["provider"] == "shaky")

    eventually(lambda: circuit_on(two) == "open")
    for gateway in (two, one, another()):
        status, headers = chat(gateway, key, "shaky-first")
        assert (status, headers["x-tokenyard-provider"], headers["x-tokenyard-attempts"]) == (
            200,
            "steady",
            "1",
        )
    assert len(fleet["shaky"].requests) == 2  # no replica sent it anything more


def test_a_key_revoked_on_one_replica_is_refused_by_the_other(
    replicas: tuple[RunningGateway, RunningGateway, Callable[[], RunningGateway]],
) -> None:
    one, two, _ = replicas
    account = one.new_account()
    created = one.admin("POST", "/admin/keys", {"account_id": account, "name": "k"}).json()
    assert chat(two, created["key"], "shaky-first")[0] == 200  # cached by replica two
    assert one.admin("DELETE", f"/admin/keys/{created['id']}").status_code == 204
    revoked_at = time.monotonic()
    eventually(lambda: chat(two, created["key"], "shaky-first")[0] == 401, within_s=1.0)
    assert time.monotonic() - revoked_at < 1.0  # not the 10 s cache revalidation
