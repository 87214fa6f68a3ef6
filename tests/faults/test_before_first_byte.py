"""Faults before the first byte reached the client: with no other deployment the client gets
the SPEC status (OpenAI shape, nothing charged); with a second deployment the request fails
over to it and is charged once, for the answer it got. A 429 with Retry-After cools the key
down for that long: the next request fails over without calling it, or gets 503 with
Retry-After when nothing else is left, and the key comes back by itself. After each:
nothing left behind."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.e2e.harness import RunningGateway
from tests.faults.books import assert_books, nano, new_payer
from tests.faults.client import BIG, assert_error_shape, complete, stream
from tests.faults.conftest import StandIns
from tests.faults.probe import Probe
from tests.upstreams.faulty import Fault


@dataclass(frozen=True)
class Case:
    inject: Callable[[StandIns], None]
    status: int
    code: str
    streams: tuple[bool, ...] = (False, True)
    models: tuple[str, str] = ("solo", "pair")  # (no failover, failover)


def fault(kind: Fault) -> Callable[[StandIns], None]:
    return lambda ups: ups.primary.inject(kind)


def status(code: int, retry_after: str | None = None) -> Callable[[StandIns], None]:
    headers = {"Retry-After": retry_after} if retry_after is not None else None
    return lambda ups: ups.primary.fail_next(code, headers=headers)


CASES = {
    "refused": Case(lambda ups: None, 502, "upstream_failed", models=("refused", "refused-pair")),
    "reset-before-headers": Case(fault(Fault("reset_before_headers")), 502, "upstream_failed"),
    "reset-mid-body": Case(fault(Fault("reset_mid_body")), 502, "upstream_failed", (False,)),
    "stall-before-headers": Case(fault(Fault("stall_headers", seconds=2.5)), 504, "upstream_timeout"),
    "malformed-json": Case(fault(Fault("malformed_json")), 502, "upstream_failed", (False,)),
    "not-a-completion": Case(fault(Fault("not_a_completion")), 502, "upstream_failed", (False,)),
    "malformed-first-event": Case(fault(Fault("malformed_sse", at=0)), 502, "upstream_failed", (True,)),
    "oversized-body": Case(fault(Fault("oversized", size=BIG)), 502, "upstream_failed", (False,)),
    "oversized-chunked-body": Case(fault(Fault("oversized", size=BIG, sized=False)), 502, "upstream_failed", (False,)),
    "http-500": Case(status(500), 502, "upstream_failed"),
    "http-502": Case(status(502), 502, "upstream_failed"),
    "http-503": Case(status(503), 502, "upstream_failed"),
    "http-529": Case(status(529), 502, "upstream_failed"),
    "http-429": Case(status(429, retry_after="0"), 502, "upstream_rate_limited"),
}  # fmt: skip
PARAMS = [
    pytest.param(name, is_stream, id=f"{name}-{'stream' if is_stream else 'plain'}")
    for name, case in CASES.items()
    for is_stream in case.streams
]


@pytest.mark.parametrize(("name", "is_stream"), PARAMS)
def test_without_another_deployment_the_client_gets_the_spec_status(
    gateway: RunningGateway, db: str, probe: Probe, fresh: StandIns, name: str, is_stream: bool
) -> None:
    case = CASES[name]
    payer = new_payer(gateway)
    case.inject(fresh)
    if is_stream:
        got = stream(gateway, payer.key, case.models[0])
        status_code, error, headers = got.status, got.error, got.headers
    else:
        response = complete(gateway, payer.key, case.models[0])
        status_code, error, headers = response.status_code, response.json(), response.headers
    assert status_code == case.status, error
    assert error is not None and set(error) == {"error"}
    assert_error_shape(error["error"], "upstream_error", case.code)
    assert headers["x-tokenyard-request-id"].startswith("req_")
    assert_books(db, payer, {})  # nothing delivered, nothing charged, the hold released
    probe.nothing_left_behind()


@pytest.mark.parametrize(("name", "is_stream"), PARAMS)
def test_with_another_deployment_the_request_fails_over(
    gateway: RunningGateway, db: str, probe: Probe, fresh: StandIns, name: str, is_stream: bool
) -> None:
    case = CASES[name]
    payer = new_payer(gateway)
    case.inject(fresh)
    if is_stream:
        got = stream(gateway, payer.key, case.models[1])
        assert got.status == 200, got.error
        assert got.text == "echo: tell me a story"
        assert got.events[-1] == "[DONE]" and got.error_event is None
        headers, cost = got.headers, nano(got.usage["cost"])
    else:
        response = complete(gateway, payer.key, case.models[1])
        assert response.status_code == 200, response.text
        assert response.json()["choices"][0]["message"]["content"] == "echo: tell me a story"
        headers, cost = response.headers, nano(response.headers["x-tokenyard-cost"])
    assert headers["x-tokenyard-provider"] == "backup"
    assert headers["x-tokenyard-attempts"] == "2"
    assert len(fresh.backup.requests) == 1
    assert_books(db, payer, {headers["x-tokenyard-request-id"]: cost})  # once, what it cost
    probe.nothing_left_behind()


# Last in this module: it cools the key of `quick` down, and ends once the key is back.
def test_a_429_with_retry_after_cools_the_key_for_that_long(
    gateway: RunningGateway, db: str, probe: Probe, fresh: StandIns
) -> None:
    payer = new_payer(gateway)
    fresh.primary.fail_next(429, headers={"Retry-After": "2"})
    first = complete(gateway, payer.key, "pair")
    assert first.status_code == 200, first.text
    assert (first.headers["x-tokenyard-provider"], first.headers["x-tokenyard-attempts"]) == (
        "backup",
        "2",
    )
    calls = len(fresh.primary.requests)
    cooled = complete(gateway, payer.key, "pair")  # the cooling key is not even tried
    assert cooled.status_code == 200, cooled.text
    assert (cooled.headers["x-tokenyard-provider"], cooled.headers["x-tokenyard-attempts"]) == (
        "backup",
        "1",
    )
    alone = complete(gateway, payer.key, "solo")  # and nothing else is left: 503
    assert alone.status_code == 503, alone.text
    assert_error_shape(alone.json()["error"], "upstream_error", "upstream_keys_exhausted")
    assert 1 <= int(alone.headers["Retry-After"]) <= 2
    assert len(fresh.primary.requests) == calls
    deadline = time.monotonic() + 10
    while (back := complete(gateway, payer.key, "solo")).status_code == 503:
        assert time.monotonic() < deadline, "the key never came back"
        time.sleep(0.2)
    assert back.status_code == 200, back.text
    assert back.headers["x-tokenyard-provider"] == "quick"
    answered = [first, cooled, back]
    assert_books(
        db,
        payer,
        {
            r.headers["x-tokenyard-request-id"]: nano(r.headers["x-tokenyard-cost"])
            for r in answered
        },
    )
    probe.nothing_left_behind()
