"""Faults of a request in flight, on SQLite and PostgreSQL.

The upstream breaks its stream after the first byte reached the client: no failover (the
client already has part of one answer); the stream ends with an OpenAI-shaped error event,
then the usage chunk and ``[DONE]``; the client's text is a clean prefix of the answer, and
the charge is for what the upstream produced (docs/billing.md: its usage if it sent it,
else the prompt estimate and one token per relayed chunk).

The client hangs up — mid-stream, or while it waits for the answer to begin: the upstream
request is cancelled at once (the stand-in sees the hang-up long before its answer was due:
within a second plus slack of the client leaving); the client pays only for what the
upstream produced. After each: nothing left behind.
"""

from __future__ import annotations

import time

import httpx
import pytest

from tests.e2e.harness import RunningGateway
from tests.faults.books import assert_books, cost_nano, nano, new_payer, usage
from tests.faults.client import BIG, assert_error_shape, body, stream
from tests.faults.conftest import StandIns
from tests.faults.probe import Probe
from tests.upstreams.faulty import WORDS, Fault, FaultyUpstream, Hangup

CASES = {
    "reset-mid-stream": (Fault("reset_mid_body"), "upstream_failed"),
    "stall-mid-stream": (Fault("stall_mid_stream", seconds=2.5), "upstream_timeout"),
    "malformed-event": (Fault("malformed_sse", at=2), "upstream_failed"),
    "no-done": (Fault("no_done"), "upstream_failed"),
    "oversized-event": (Fault("oversized", size=BIG), "upstream_failed"),
}


@pytest.fixture(scope="module")
def db(database_url: str) -> str:
    return database_url


@pytest.mark.parametrize("name", list(CASES))
def test_a_stream_broken_after_the_first_byte_ends_with_an_error_event(
    gateway: RunningGateway, db: str, probe: Probe, fresh: StandIns, name: str
) -> None:
    injected, code = CASES[name]
    payer = new_payer(gateway)
    fresh.primary.inject(injected)
    got = stream(gateway, payer.key, "pair")  # a second deployment it must not move to
    assert got.status == 200
    assert got.headers["x-tokenyard-provider"] == "quick"  # no failover after the first byte
    assert fresh.backup.requests == []
    error = got.error_event
    assert error is not None, got.events
    assert_error_shape(error, "upstream_error", code)
    assert got.events[-1] == "[DONE]"
    assert isinstance(got.events[-3], dict) and "error" in got.events[-3]  # then usage, [DONE]
    words = sum(bool(c["choices"][0]["delta"].get("content")) for c in got.chunks)
    assert got.text == "".join(WORDS[:words])  # a clean prefix: nothing malformed relayed
    reported = got.usage
    assert reported["completion_tokens"] == words
    cost = cost_nano(reported["prompt_tokens"], reported["completion_tokens"])
    assert nano(reported["cost"]) == cost
    assert_books(db, payer, {got.headers["x-tokenyard-request-id"]: cost})
    (row,) = usage(gateway, payer)
    assert (row["group"], row["output_tokens"]) == ("quick", words)
    probe.nothing_left_behind()


STALL_S = 3.0
"""How long the stand-in stalls: its answer is due that long after the client has left,
one second of the requirement plus ample slack for a loaded machine."""


def hangup_seen(upstream: FaultyUpstream) -> Hangup:
    """The stand-in's record of the gateway hanging up, polled for longer than any stall."""
    deadline = time.monotonic() + STALL_S + 5
    while not upstream.hangups and time.monotonic() < deadline:
        time.sleep(0.02)
    assert upstream.hangups, "the upstream request was never cancelled"
    (hangup,) = upstream.hangups
    return hangup


def test_leaving_mid_stream_cancels_the_upstream_and_pays_what_was_relayed(
    gateway: RunningGateway, db: str, probe: Probe, fresh: StandIns
) -> None:
    payer = new_payer(gateway)
    fresh.primary.inject(Fault("stall_mid_stream", seconds=STALL_S))
    headers = {"Authorization": f"Bearer {payer.key}"}
    with (
        httpx.Client(base_url=gateway.base_url, timeout=30) as client,
        client.stream(
            "POST", "/v1/chat/completions", json=body("patient", stream=True), headers=headers
        ) as response,
    ):
        assert response.status_code == 200
        request_id = response.headers["x-tokenyard-request-id"]
        received = 0
        for line in response.iter_lines():
            received += line.startswith("data: ")
            if received == 2:  # the role chunk and the first word: then the upstream stalls
                break
    hangup = hangup_seen(fresh.primary)
    assert hangup.before_due, "the stand-in saw the hang-up only after its answer was due"
    assert fresh.primary.finished == 0
    assert_books(db, payer, {request_id: None})
    (row,) = usage(gateway, payer)
    assert (row["requests"], row["output_tokens"]) == (1, 1)  # one word was relayed
    probe.nothing_left_behind()


@pytest.mark.parametrize("is_stream", [False, True], ids=["plain", "stream"])
def test_leaving_before_the_answer_began_cancels_the_upstream_and_costs_nothing(
    gateway: RunningGateway, db: str, probe: Probe, fresh: StandIns, is_stream: bool
) -> None:
    payer = new_payer(gateway)
    fresh.primary.inject(Fault("stall_headers", seconds=STALL_S))
    timeout = httpx.Timeout(30, read=0.5)  # the client gives up first
    with (
        httpx.Client(base_url=gateway.base_url, timeout=timeout) as client,
        pytest.raises(httpx.ReadTimeout),
    ):
        client.post(
            "/v1/chat/completions",
            json=body("patient", stream=is_stream),
            headers={"Authorization": f"Bearer {payer.key}"},
        )
    hangup = hangup_seen(fresh.primary)
    assert hangup.before_due, "the stand-in saw the hang-up only after its answer was due"
    assert fresh.primary.finished == 0
    assert_books(db, payer, {})  # nothing was produced for anyone: nothing charged
    probe.nothing_left_behind()
