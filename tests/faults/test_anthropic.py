"""The Anthropic wire family under faults: a 529 overloaded_error fails over, else is a 503
with the upstream's Retry-After; its SSE ``event: error`` after the first byte ends the
stream with an error event, without failover — translated for /v1/chat/completions, relayed
as is on the /v1/messages pass-through, where a stream that breaks off without one gets an
``event: error`` of the gateway's. Books exact and nothing left behind after each."""

from __future__ import annotations

import json

import httpx

from tests.e2e.harness import RunningGateway
from tests.faults.books import Payer, assert_books, cost_nano, nano, new_payer
from tests.faults.client import assert_error_shape, complete, stream
from tests.faults.conftest import StandIns
from tests.faults.probe import Probe


def messages_stream(gateway: RunningGateway, payer: Payer) -> tuple[str, list[tuple[str, dict]]]:
    """(request id, [(event name, data)]) of a streamed /v1/messages answer."""
    body = {
        "model": "claude-solo",
        "max_tokens": 64,
        "stream": True,
        "messages": [{"role": "user", "content": "tell me a story"}],
    }
    headers = {"x-api-key": payer.key, "anthropic-version": "2023-06-01"}
    with httpx.Client(base_url=gateway.base_url, timeout=30) as client:
        response = client.post("/v1/messages", json=body, headers=headers)
    assert response.status_code == 200, response.text
    events, name = [], ""
    for line in response.text.splitlines():
        if line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: "):
            events.append((name, json.loads(line[len("data: ") :])))
    return response.headers["x-tokenyard-request-id"], events


def test_anthropic_overloaded_fails_over_else_is_503(
    gateway: RunningGateway, db: str, probe: Probe, fresh: StandIns
) -> None:
    payer = new_payer(gateway)
    fresh.claude.fail_next(529, headers={"retry-after": "3"})
    moved = complete(gateway, payer.key, "claude-pair")
    assert moved.status_code == 200, moved.text
    assert moved.headers["x-tokenyard-provider"] == "backup"
    fresh.claude.fail_next(529, headers={"retry-after": "3"})
    alone = complete(gateway, payer.key, "claude-solo")
    assert alone.status_code == 503, alone.text
    assert_error_shape(alone.json()["error"], "upstream_error", "upstream_failed")
    assert "overloaded" in alone.json()["error"]["message"]
    assert alone.headers["Retry-After"] == "3"
    request_id = moved.headers["x-tokenyard-request-id"]
    assert_books(db, payer, {request_id: nano(moved.headers["x-tokenyard-cost"])})
    probe.nothing_left_behind()


def test_anthropic_error_event_mid_stream_ends_the_stream_without_failover(
    gateway: RunningGateway, db: str, probe: Probe, fresh: StandIns
) -> None:
    payer = new_payer(gateway)
    fresh.claude.error_stream_next(after_events=4, kind="overloaded_error")
    got = stream(gateway, payer.key, "claude-pair")
    assert got.status == 200
    assert got.headers["x-tokenyard-provider"] == "claude"  # no failover after the first byte
    assert fresh.backup.requests == []
    error = got.error_event
    assert error is not None, got.events
    assert_error_shape(error, "upstream_error", "upstream_failed")
    assert "overloaded" in error["message"]
    assert got.events[-1] == "[DONE]"
    assert got.text == "echo:"  # what came before the error, and nothing after it
    reported = got.usage  # what the upstream said it produced (message_start's usage)
    cost = cost_nano(reported["prompt_tokens"], reported["completion_tokens"])
    assert nano(reported["cost"]) == cost
    assert_books(db, payer, {got.headers["x-tokenyard-request-id"]: cost})
    probe.nothing_left_behind()


def test_a_passthrough_stream_that_breaks_off_ends_with_an_error_event(
    gateway: RunningGateway, db: str, probe: Probe, fresh: StandIns
) -> None:
    payer = new_payer(gateway)
    fresh.claude.break_stream_next(after_events=5)  # then the connection ends: no message_stop
    request_id, events = messages_stream(gateway, payer)
    names = [name for name, _ in events]
    assert "message_stop" not in names
    assert names[-1] == "error" and names.count("error") == 1
    error = events[-1][1]
    assert error["type"] == "error" and error["error"]["type"] == "api_error"
    assert "sk-ant-faults-secret" not in json.dumps(events)
    assert_books(db, payer, {request_id: None})  # what the upstream said it produced
    probe.nothing_left_behind()


def test_a_passthrough_error_event_is_relayed_once(
    gateway: RunningGateway, db: str, probe: Probe, fresh: StandIns
) -> None:
    payer = new_payer(gateway)
    fresh.claude.error_stream_next(after_events=4, kind="overloaded_error")
    request_id, events = messages_stream(gateway, payer)
    assert [name for name, _ in events][-1] == "error"
    assert [name for name, _ in events].count("error") == 1  # the upstream's own, as is
    assert events[-1][1]["error"]["type"] == "overloaded_error"
    assert_books(db, payer, {request_id: None})
    probe.nothing_left_behind()
