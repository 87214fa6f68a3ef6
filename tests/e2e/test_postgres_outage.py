"""PostgreSQL restarted or stalled under load: while it is away (refusing) every request fails
fast with 503 ``service_unavailable`` (OpenAI shape); while it is frozen (neither answering
nor refusing) every request still ends within its timeouts with that 503; when it returns
the same gateway process answers again, and afterwards the books are exact."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Upstreams, gateway_config
from tests.e2e.exact_books import assert_exact
from tests.e2e.harness import RunningGateway, start_gateway
from tests.e2e.private_services import PrivatePostgres

pytestmark = pytest.mark.services

BODY = {"model": "gpt-mini", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
LIVENESS_S = 5.0  # far above a fast failure, far below the client's timeout
STALL_S = 12.0  # longer than STALL_LIVENESS_S: a request waiting for the thaw shows
STALL_LIVENESS_S = 8.0
"""The 5 s hold statement timeout with room for a loaded machine; twice that timeout (a
connection waiting for a stalled server to acknowledge its cancel) or the engine's 60 s
statement timeout fail it."""
CLIENT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Outcome:
    started: float
    ended: float
    status: int  # 0: no HTTP answer
    request_id: str
    cost: str | None
    error: dict[str, object] | None


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    yield server
    server.destroy()


async def _clients(
    gateway: RunningGateway, key: str, stop: threading.Event, out: list[Outcome]
) -> None:
    headers = {"Authorization": f"Bearer {key}"}

    async def one_client(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                response = await client.post("/v1/chat/completions", json=BODY, headers=headers)
            except httpx.HTTPError:
                out.append(Outcome(started, time.monotonic(), 0, "", None, None))
                continue
            body = response.json()
            out.append(
                Outcome(
                    started,
                    time.monotonic(),
                    response.status_code,
                    response.headers.get("x-tokenyard-request-id", ""),
                    response.headers.get("x-tokenyard-cost"),
                    body.get("error") if response.status_code != 200 else None,
                )
            )
            await asyncio.sleep(0.01)

    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=CLIENT_TIMEOUT_S) as client:
        await asyncio.gather(*(one_client(client) for _ in range(6)))


def _wait_for(condition: object, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.05)
    return False


@contextlib.contextmanager
def _gateway(
    postgres: PrivatePostgres, upstreams: Upstreams, tmp_path: Path
) -> Iterator[tuple[RunningGateway, str, str]]:
    """A gateway on the private PostgreSQL, its reaper every half second, and a credited
    account with a key. Once the test is done: a clean exit, no traceback, no error log."""
    config = gateway_config(postgres.url, upstreams.urls).replace(
        "billing: {", "billing: {reaper_interval_s: 0.5, "
    )
    gateway = start_gateway(tmp_path, config)
    try:
        account_id = gateway.new_account(credit="100")
        yield gateway, account_id, gateway.new_key(account_id)
    finally:
        code = gateway.stop()
    assert code == 0, gateway.log()
    log = gateway.log()
    assert "Traceback" not in log
    assert '"level":"error"' not in log  # an outage is expected weather, not a bug


@contextlib.contextmanager
def _under_load(gateway: RunningGateway, key: str) -> Iterator[list[Outcome]]:
    """Clients sending requests until the block ends; it starts once 20 have succeeded."""
    stop = threading.Event()
    outcomes: list[Outcome] = []
    loader = threading.Thread(target=lambda: asyncio.run(_clients(gateway, key, stop, outcomes)))
    loader.start()
    try:
        assert _wait_for(lambda: sum(o.status == 200 for o in outcomes) >= 20, 30)
        yield outcomes
    finally:
        stop.set()
        loader.join()


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_postgres_restart_under_load(
    mode: str, postgres: PrivatePostgres, upstreams: Upstreams, tmp_path: Path
) -> None:
    with _gateway(postgres, upstreams, tmp_path) as (gateway, account_id, key):
        with _under_load(gateway, key) as outcomes:
            cut = time.monotonic()
            postgres.stop(mode)
            down = time.monotonic()
            time.sleep(2)
            up = time.monotonic()
            postgres.start()
            back = time.monotonic()
            recovered = _wait_for(
                lambda: any(o.status == 200 and o.started > back for o in outcomes), 30
            )
            time.sleep(1)  # load goes on after the recovery
        assert recovered, "requests did not succeed again after PostgreSQL returned"
        assert gateway.process.poll() is None  # the same process, never restarted

        during = [o for o in outcomes if down < o.started and o.ended < up]
        assert len(during) >= 10, f"only {len(during)} requests ran during the outage"
        for outcome in during:
            _assert_unavailable(outcome.status, outcome.error)
            assert outcome.ended - outcome.started < LIVENESS_S, outcome  # failed fast
        assert all(o.status in (200, 503) for o in outcomes), {o.status for o in outcomes}
        first_answer = min(o.ended for o in outcomes if o.status == 200 and o.started > back)
        timeline = [(round(o.started - back, 2), o.status) for o in outcomes if o.started > up]
        after = [o for o in outcomes if o.started > first_answer]
        assert after and all(o.status == 200 for o in after), timeline  # recovered for good

        # A charge whose answer was lost is allowed only while the server went away (SPEC
        # §6: only requests in flight at the moment of a crash).
        in_flight = {o.request_id for o in outcomes if o.started <= down and o.ended >= cut}
        _assert_charged_once(postgres.url, account_id, outcomes, in_flight)
    assert gateway.log().count("reaper: database unavailable") == 1  # said once, not every turn


def _assert_unavailable(status: int, error: object) -> None:
    assert status == 503, (status, error)
    assert isinstance(error, dict)
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "server_error"
    assert error["code"] == "service_unavailable"


def test_postgres_stalled_under_load(
    postgres: PrivatePostgres, upstreams: Upstreams, tmp_path: Path
) -> None:
    """Every PostgreSQL process SIGSTOPped for STALL_S: connections neither answer nor
    refuse, so only the gateway's own timeouts can end a request."""
    with _gateway(postgres, upstreams, tmp_path) as (gateway, account_id, key):
        admin: list[tuple[float, httpx.Response]] = []

        def admin_call() -> None:  # an engine (SQLAlchemy) read, not a hold
            started = time.monotonic()
            response = gateway.admin("GET", f"/admin/accounts/{account_id}")
            admin.append((time.monotonic() - started, response))

        with _under_load(gateway, key) as outcomes:
            with postgres.frozen():
                frozen = time.monotonic()
                admin_thread = threading.Thread(target=admin_call)
                admin_thread.start()
                time.sleep(STALL_S)
                thawed = time.monotonic()
            admin_thread.join()
            recovered = _wait_for(
                lambda: any(o.status == 200 and o.started > thawed for o in outcomes), 30
            )
            time.sleep(1)  # load goes on after the recovery
        assert recovered, "requests did not succeed again after PostgreSQL resumed"
        assert gateway.process.poll() is None  # the same process, never restarted

        # Every request ends within the bound, whether it began before or during the stall;
        # each needs the database (its hold), so every one that began and ended while the
        # database was frozen ended with 503 (one already settled at the freeze may answer).
        touched = [o for o in outcomes if o.ended > frozen and o.started < thawed]
        for outcome in touched:
            assert outcome.ended - max(outcome.started, frozen) < STALL_LIVENESS_S, outcome
            assert outcome.status in (200, 503), outcome
        during = [o for o in touched if o.started > frozen and o.ended < thawed]
        assert len(during) >= 6, f"only {len(during)} requests ended during the stall"
        for outcome in during:
            _assert_unavailable(outcome.status, outcome.error)
        first_answer = min(o.ended for o in outcomes if o.status == 200 and o.started > thawed)
        after = [o for o in outcomes if o.started > first_answer]
        assert after and all(o.status == 200 for o in after), [o.status for o in after]

        ((admin_took, admin_response),) = admin
        _assert_unavailable(admin_response.status_code, admin_response.json().get("error"))
        assert admin_took < STALL_LIVENESS_S, admin_took

        in_flight = {o.request_id for o in outcomes if o.started <= frozen <= o.ended}
        _assert_charged_once(postgres.url, account_id, outcomes, in_flight)


def _assert_charged_once(
    url: str, account_id: str, outcomes: list[Outcome], in_flight: set[str]
) -> None:
    """The books are exact; every delivered answer is charged the cost it reported, and a
    charge without a delivered answer belongs to a request in flight at the fault."""
    delivered = {o.request_id: o.cost for o in outcomes if o.status == 200}
    books = assert_exact(url, account_id)
    for request_id, cost in delivered.items():
        assert books.charges.get("req:" + request_id) == _nano(cost), request_id
    for reference in books.charges:
        assert reference[4:] in delivered or reference[4:] in in_flight, reference


def _nano(cost: str | None) -> int:
    assert cost is not None
    whole, _, fraction = cost.partition(".")
    return int(whole) * 10**9 + int((fraction + "0" * 9)[:9])
