"""The request log end to end: real gateway processes on SQLite and PostgreSQL, the official
OpenAI SDK as the client, ``GET /admin/requests`` as the operator reads it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Upstreams, gateway_config
from tests.e2e.harness import ADMIN_KEY, RunningGateway, start_gateway
from tokenyard.store import Database
from tokenyard.store.request_log import RequestRow, SqlRequestLog

USER = [{"role": "user", "content": "hello there gateway"}]
SECRET_PROMPT = "the launch code is tangerine-42"


@dataclass
class Key:
    id: str
    key: str
    prefix: str
    account_id: str


def make_key(gateway: RunningGateway, account_id: str | None = None, **fields: Any) -> Key:
    account_id = account_id or gateway.new_account()
    response = gateway.admin("POST", "/admin/keys", {"account_id": account_id, **fields})
    assert response.status_code == 201, response.text
    body = response.json()
    return Key(body["id"], body["key"], body["prefix"], account_id)


def read_log(gateway: RunningGateway, **query: Any) -> httpx.Response:
    return gateway.http.get(
        "/admin/requests", params=query, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    )


def logged(gateway: RunningGateway, count: int, **query: Any) -> list[dict[str, Any]]:
    """The rows matching ``query``, once there are ``count`` of them (rows are written in
    batches shortly after their responses, and purged in the background)."""
    deadline = time.monotonic() + 10
    while True:
        response = read_log(gateway, limit=500, **query)
        assert response.status_code == 200, response.text
        rows: list[dict[str, Any]] = response.json()["requests"]
        if len(rows) == count or time.monotonic() > deadline:
            assert len(rows) == count, rows
            return rows
        time.sleep(0.05)


def chat(gateway: RunningGateway, key: str, **body: Any) -> httpx.Response:
    return gateway.post(
        "/v1/chat/completions", key, json={"model": "gpt-mini", "messages": USER, **body}
    )


@pytest.fixture(scope="module")
def text_gateway(
    database_url: str, upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    """A second gateway on the same database, with ``logging.prompts: true``."""
    config = gateway_config(database_url, upstreams.urls) + "logging: {prompts: true}\n"
    running = start_gateway(tmp_path_factory.mktemp("text-gateway"), config)
    yield running
    assert running.stop() == 0, running.log()


def test_a_completion_is_logged_with_what_was_charged(gateway: RunningGateway) -> None:
    key = make_key(gateway)
    raw = gateway.client(key.key).chat.completions.with_raw_response.create(
        model="gpt-mini", messages=USER
    )
    completion = raw.parse()
    [row] = logged(gateway, 1, key_id=key.id)
    assert row["id"] == raw.headers["x-tokenyard-request-id"]
    assert (row["account_id"], row["key_id"], row["key_prefix"]) == (
        key.account_id,
        key.id,
        key.prefix,
    )
    assert key.key.startswith(row["key_prefix"]) and key.key not in str(row)
    assert (row["operation"], row["requested_model"], row["model"], row["provider"]) == (
        "chat",
        "gpt-mini",
        "gpt-mini",
        "openai-a",
    )
    assert (row["stream"], row["status"], row["error"]) == (False, 200, None)
    usage = completion.usage
    assert usage is not None
    assert (row["input_tokens"], row["output_tokens"]) == (
        usage.prompt_tokens,
        usage.completion_tokens,
    )
    assert row["cost"] == raw.headers["x-tokenyard-cost"]  # the same decimal string
    assert row["attempts"] == 1 == int(raw.headers["x-tokenyard-attempts"])
    [attempt] = row["attempt_log"]
    assert (attempt["provider"], attempt["model"], attempt["outcome"]) == (
        "openai-a",
        "gpt-4o-mini",
        "ok",
    )
    assert "sk-" not in str(attempt)  # the upstream key's label, never the key
    assert row["latency_ms"] > 0 and row["ttft_ms"] is not None
    assert "prompt" not in row and "completion" not in row  # logging.prompts is off
    started = datetime.fromisoformat(row["started"])
    assert abs(datetime.now(UTC) - started) < timedelta(minutes=1)


def test_a_stream_is_logged_with_its_time_to_first_token(gateway: RunningGateway) -> None:
    key = make_key(gateway)
    stream = gateway.client(key.key).chat.completions.create(
        model="deepseek-chat",
        messages=USER,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    usage = chunks[-1].usage
    assert usage is not None
    [row] = logged(gateway, 1, key_id=key.id)
    assert (row["stream"], row["model"], row["provider"], row["status"]) == (
        True,
        "deepseek-chat",
        "deepseek",
        200,
    )
    assert row["output_tokens"] == usage.completion_tokens
    assert Decimal(row["cost"]) == Decimal(str(usage.model_extra["cost"]))
    spent = gateway.admin("GET", f"/admin/usage?key_id={key.id}").json()["rows"]
    assert row["cost"] == spent[0]["cost"]  # what the ledger charged
    assert 0 < row["ttft_ms"] <= row["latency_ms"]


def test_failover_attempts_and_failures_are_logged(
    gateway: RunningGateway, upstreams: Upstreams
) -> None:
    key = make_key(gateway)
    assert chat(gateway, key.key, model="failover").status_code == 200
    failed = chat(gateway, key.key, model="only-dead")
    assert failed.status_code == 502
    upstreams["flaky"].fail_next(500, times=5)
    broken = chat(gateway, key.key, model="only-flaky")
    rows = logged(gateway, 3, key_id=key.id)
    by_id = {row["id"]: row for row in rows}
    served = next(r for r in rows if r["requested_model"] == "failover")
    assert served["attempts"] == 2 and served["provider"] == "flaky"
    assert [a["outcome"] for a in served["attempt_log"]] == ["failed", "ok"]
    assert served["attempt_log"][0]["provider"] == "dead"
    assert served["attempt_log"][0]["error"] is not None
    dead = by_id[failed.headers["x-tokenyard-request-id"]]
    assert dead["status"] == 502 and dead["cost"] == "0.000000" and dead["model"] is None
    assert dead["error"] == {"type": "upstream_error", "code": "upstream_failed"}
    assert by_id[broken.headers["x-tokenyard-request-id"]]["status"] == broken.status_code
    upstreams.reset()


def test_refusals_402_and_429_are_logged(gateway: RunningGateway) -> None:
    poor = make_key(gateway, gateway.new_account(credit="0.000001"))
    assert chat(gateway, poor.key).status_code == 402
    [refused] = logged(gateway, 1, key_id=poor.id)
    assert refused["status"] == 402
    assert refused["error"] == {"type": "insufficient_quota", "code": "insufficient_quota"}
    assert (refused["requested_model"], refused["attempts"], refused["cost"]) == (
        "gpt-mini",
        0,
        "0.000000",
    )

    limited = make_key(gateway, rpm=1)
    assert [chat(gateway, limited.key).status_code for _ in range(2)] == [200, 429]
    [row] = logged(gateway, 1, key_id=limited.id, status=429)
    assert row["error"] == {"type": "rate_limit_error", "code": "rate_limit_exceeded"}


def test_filters(gateway: RunningGateway) -> None:
    key = make_key(gateway)
    before = datetime.now(UTC)
    assert chat(gateway, key.key).status_code == 200
    assert chat(gateway, key.key, model="deepseek-chat").status_code == 200
    assert chat(gateway, key.key, model="only-dead").status_code == 502
    logged(gateway, 3, key_id=key.id)
    other = make_key(gateway)
    assert chat(gateway, other.key).status_code == 200
    logged(gateway, 1, key_id=other.id)

    def ids(**query: Any) -> list[str | None]:
        response = read_log(gateway, key_id=key.id, **query)
        assert response.status_code == 200, response.text
        return [row["requested_model"] for row in response.json()["requests"]]

    assert ids(model="deepseek-chat") == ["deepseek-chat"]
    assert ids(provider="openai-a") == ["gpt-mini"]
    assert ids(status=502) == ids(error="any") == ids(error="upstream_failed") == ["only-dead"]
    assert sorted(ids(error="none")) == ["deepseek-chat", "gpt-mini"]
    assert ids(error="insufficient_quota") == []
    assert len(ids(since=before.isoformat())) == 3
    assert ids(until=before.isoformat()) == []
    accounts = read_log(gateway, account_id=other.account_id).json()["requests"]
    assert [r["key_id"] for r in accounts] == [other.id]


def test_cursor_paging_sees_every_row_once_newest_first(gateway: RunningGateway) -> None:
    key = make_key(gateway)
    sent = [chat(gateway, key.key).headers["x-tokenyard-request-id"] for _ in range(7)]
    logged(gateway, 7, key_id=key.id)
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        query: dict[str, Any] = {"key_id": key.id, "limit": 3}
        if cursor is not None:
            query["cursor"] = cursor
        page = read_log(gateway, **query).json()
        seen += page["requests"]
        pages += 1
        if pages == 1:  # newer rows arriving meanwhile do not shift the pages
            for _ in range(2):
                chat(gateway, key.key)
            logged(gateway, 9, key_id=key.id)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert [row["id"] for row in seen] == list(reversed(sent))  # no gap, no duplicate
    started = [row["started"] for row in seen]
    assert started == sorted(started, reverse=True)


def test_bad_queries_and_the_admin_key(gateway: RunningGateway) -> None:
    assert read_log(gateway, cursor="not-a-cursor").status_code == 400
    assert read_log(gateway, limit=501).status_code == 400
    assert read_log(gateway, limit=0).status_code == 400
    assert read_log(gateway, status="abc").status_code == 400
    assert gateway.http.get("/admin/requests").status_code == 401
    client_key = gateway.new_key()
    as_client = gateway.http.get(
        "/admin/requests", headers={"Authorization": f"Bearer {client_key}"}
    )
    assert as_client.status_code == 401


def test_text_is_stored_only_when_configured_and_not_opted_out(
    gateway: RunningGateway, text_gateway: RunningGateway
) -> None:
    content = [{"role": "user", "content": SECRET_PROMPT}]
    key = make_key(text_gateway)
    answer = text_gateway.client(key.key).chat.completions.create(
        model="gpt-mini", messages=content
    )
    stream = text_gateway.client(key.key).chat.completions.create(
        model="deepseek-chat", messages=content, stream=True
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    rows = {row["stream"]: row for row in logged(text_gateway, 2, key_id=key.id)}
    assert SECRET_PROMPT in rows[False]["prompt"] and SECRET_PROMPT in rows[True]["prompt"]
    assert rows[False]["completion"] == answer.choices[0].message.content
    assert rows[True]["completion"] == streamed and streamed

    opted_out = make_key(text_gateway, log_prompts=False)
    text_gateway.client(opted_out.key).chat.completions.create(model="gpt-mini", messages=content)
    [row] = logged(text_gateway, 1, key_id=opted_out.id)
    assert "prompt" not in row and "completion" not in row

    # The same key through the gateway without logging.prompts: metadata only.
    gateway.client(key.key).chat.completions.create(model="gpt-mini", messages=content)
    rows = logged(gateway, 3, key_id=key.id)
    assert sum("prompt" in row for row in rows) == 2
    assert SECRET_PROMPT not in text_gateway.log() + gateway.log()  # never in the logs


def test_messages_api_text_is_stored(text_gateway: RunningGateway) -> None:
    key = make_key(text_gateway)
    body = {
        "model": "gpt-mini",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hello messages"}],
    }
    answer = text_gateway.http.post("/v1/messages", json=body, headers={"x-api-key": key.key})
    assert answer.status_code == 200, answer.text
    [row] = logged(text_gateway, 1, key_id=key.id)
    assert row["operation"] == "messages"
    assert "hello messages" in row["prompt"]
    assert row["completion"] == answer.json()["content"][0]["text"]


def test_the_key_opt_out_is_validated(gateway: RunningGateway) -> None:
    account_id = gateway.new_account()
    bad = gateway.admin("POST", "/admin/keys", {"account_id": account_id, "log_prompts": "no"})
    assert bad.status_code == 400
    good = gateway.admin("POST", "/admin/keys", {"account_id": account_id, "log_prompts": False})
    assert good.status_code == 201 and good.json()["log_prompts"] is False


def test_rows_past_the_retention_are_purged(
    database_url: str,
    upstreams: Upstreams,
    gateway: RunningGateway,
    tmp_path: Path,
) -> None:
    now = datetime.now(UTC)
    old = RequestRow(
        id="req_old_" + str(time.time_ns()),
        started=now - timedelta(days=3),
        operation="chat",
        status=200,
    )
    recent = RequestRow(
        id="req_new_" + str(time.time_ns()),
        started=now - timedelta(hours=2),
        operation="chat",
        status=200,
    )

    async def insert() -> None:
        database = Database(database_url)
        try:
            await SqlRequestLog(database.engine).insert([old, recent])
        finally:
            await database.close()

    asyncio.run(insert())
    until = (now - timedelta(hours=1)).isoformat()
    assert {
        r["id"]
        for r in logged(gateway, 2, until=until, since=(now - timedelta(days=4)).isoformat())
    } == {old.id, recent.id}
    config = gateway_config(database_url, upstreams.urls) + "logging: {retention_days: 1}\n"
    purging = start_gateway(tmp_path / "purging", config)  # purges once at start
    try:
        rows = logged(gateway, 1, until=until, since=(now - timedelta(days=4)).isoformat())
        assert [r["id"] for r in rows] == [recent.id]
    finally:
        assert purging.stop() == 0, purging.log()


def test_an_abandoned_stream_is_logged_with_what_it_was_charged(gateway: RunningGateway) -> None:
    """The client hangs up after the first event: the record still carries the charge the
    ledger made for what the upstream produced."""
    key = make_key(gateway)
    with httpx.stream(
        "POST",
        gateway.base_url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key.key}"},
        json={"model": "gpt-mini", "messages": USER, "stream": True},
    ) as response:
        next(response.iter_lines())  # the first event, then hang up
    [row] = logged(gateway, 1, key_id=key.id)
    assert row["stream"] is True and row["model"] == "gpt-mini"
    # Whether the gateway saw the hang-up depends on whether the rest of the stream was
    # still to be written when it came (a short answer may already be in the socket).
    assert row["status"] == 200
    assert row["error"] in (None, {"type": "client_disconnected", "code": None})
    for _ in range(100):
        spent = gateway.admin("GET", f"/admin/usage?key_id={key.id}").json()["rows"]
        if spent:
            break
        time.sleep(0.05)
    assert Decimal(row["cost"]) > 0
    assert row["cost"] == spent[0]["cost"]  # the log says what the ledger charged
