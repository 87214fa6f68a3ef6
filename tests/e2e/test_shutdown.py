"""Graceful shutdown on SIGTERM: new connections are refused at once, a stream in flight
runs to its end (or, past ``server.shutdown_timeout_s``, ends with an error event and is
charged for what it delivered), every charge is settled, the request log is written, and
the process exits 0 — with one worker and with two."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web
from sqlalchemy import select

from tests.e2e.exact_books import assert_exact
from tests.e2e.harness import ADMIN_KEY, RunningGateway, start_gateway
from tests.upstreams.background import run_in_thread
from tokenyard.store import Database
from tokenyard.store.tables import requests

WORDS = 6  # content chunks of every answer: three at once, then a pause, then three


class PausingUpstream:
    """An OpenAI-wire upstream whose streams pause half-way for ``pause_s`` seconds."""

    def __init__(self) -> None:
        self.pause_s = 0.0
        self.seen = 0  # chat requests received
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(
            app, handle_signals=False, handler_cancellation=True, shutdown_timeout=1.0
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        return f"http://127.0.0.1:{self._runner.addresses[0][1]}/v1"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.seen += 1
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            data = {
                "id": "chatcmpl-pause",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": body["model"],
                "choices": choices,
                **extra,
            }
            return b"data: " + orjson.dumps(data) + b"\n\n"

        for index in range(WORDS):
            if index == WORDS // 2:
                await asyncio.sleep(self.pause_s)
            delta = {"content": f"w{index} "}
            await response.write(chunk([{"index": 0, "delta": delta, "finish_reason": None}]))
        await response.write(chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}]))
        usage = {"prompt_tokens": 7, "completion_tokens": WORDS, "total_tokens": 7 + WORDS}
        await response.write(chunk([], usage=usage))
        await response.write(b"data: [DONE]\n\n")
        return response


@pytest.fixture(scope="module")
def pausing() -> Iterator[tuple[PausingUpstream, str]]:
    upstream = PausingUpstream()
    url, stop = run_in_thread(upstream, "pausing-upstream")
    yield upstream, str(url)
    stop()


def _config(database: str, upstream_url: str, shutdown_timeout_s: float) -> str:
    return f"""
database: {database}
admin_key: {ADMIN_KEY}
server: {{shutdown_timeout_s: {shutdown_timeout_s}}}
providers:
  pausing:
    api: openai
    base_url: {upstream_url}
    idle_timeout_s: 120
    keys: [{{key: sk-pausing-secret}}]
models:
  slow:
    deployments:
      - {{provider: pausing, model: slow-1, price: {{input: 1, output: 2}}}}
"""


def _refused(base_url: str) -> bool:
    try:
        httpx.get(base_url + "/healthz", timeout=2)
    except httpx.ConnectError:
        return True
    except httpx.HTTPError:
        return False
    return False


def _logged(url: str, request_id: str) -> Any:
    async def read() -> Any:
        db = Database(url)
        try:
            async with db.engine.connect() as conn:
                query = select(requests).where(requests.c.id == request_id)
                return (await conn.execute(query)).one_or_none()
        finally:
            await db.close()

    return asyncio.run(read())


def _stream_through_sigterm(
    gateway: RunningGateway, key: str
) -> tuple[str, list[bytes], bool, int]:
    """Start a stream, SIGTERM the gateway once its first words arrived, check that new
    connections are refused meanwhile; returns the request id, the SSE data lines, whether a
    refusal was seen, and the exit code."""
    body = {
        "model": "slow",
        "max_tokens": 50,
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "hi"}],
    }
    headers = {"Authorization": f"Bearer {key}"}
    lines: list[bytes] = []
    refused = False
    with (
        httpx.Client(base_url=gateway.base_url, timeout=60) as client,
        client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as response,
    ):
        assert response.status_code == 200
        request_id = response.headers["x-tokenyard-request-id"]
        for line in response.iter_lines():
            if not line:
                continue
            lines.append(line.encode())
            if len(lines) == 1:  # mid-stream: the upstream pauses now
                gateway.process.send_signal(signal.SIGTERM)
                deadline = time.monotonic() + 5
                while not refused and time.monotonic() < deadline:
                    refused = _refused(gateway.base_url)
    code = gateway.process.wait(timeout=60)
    return request_id, [line.removeprefix(b"data: ") for line in lines], refused, code


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_lets_a_stream_in_flight_finish(
    workers: int, pausing: tuple[PausingUpstream, str], tmp_path: Path
) -> None:
    upstream, url = pausing
    upstream.pause_s = 1.0
    database = f"sqlite:///{tmp_path / 'db.sqlite'}"
    gateway = start_gateway(tmp_path, _config(database, url, 30), workers=workers)
    try:
        account = gateway.new_account(credit="10")
        key = gateway.new_key(account)
        request_id, data, refused, code = _stream_through_sigterm(gateway, key)
    finally:
        gateway.stop()
    log = gateway.log()
    assert refused, "a new connection was accepted after SIGTERM"
    assert code == 0, log
    assert data[-1] == b"[DONE]"
    chunks = [orjson.loads(d) for d in data[:-1]]
    assert not any("error" in c for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "".join(f"w{i} " for i in range(WORDS))  # every word arrived
    cost = chunks[-1]["usage"]["cost"]
    books = assert_exact(database, account, settle_s=0)  # nothing was left for a reaper
    assert books.charges == {f"req:{request_id}": round(cost * 10**9)}
    row = _logged(database, request_id)
    assert row is not None, "the request log lost the row"
    assert row.status == 200 and row.cost_nano == books.charges[f"req:{request_id}"]
    assert "Traceback" not in log


def test_requests_past_the_deadline_end_with_an_error_and_are_charged_for_what_was_sent(
    pausing: tuple[PausingUpstream, str], tmp_path: Path
) -> None:
    """A stream still running at the deadline ends with an error event and ``[DONE]``; an
    unstreamed request still waiting for its upstream gets 503, and is not charged."""
    upstream, url = pausing
    upstream.pause_s = 60.0  # far beyond the deadline
    database = f"sqlite:///{tmp_path / 'db.sqlite'}"
    gateway = start_gateway(tmp_path, _config(database, url, 1))
    waiting: list[httpx.Response] = []
    try:
        account = gateway.new_account(credit="10")
        key = gateway.new_key(account)
        seen = upstream.seen
        unstreamed = threading.Thread(
            target=lambda: waiting.append(
                gateway.post(
                    "/v1/chat/completions",
                    key,
                    json={"model": "slow", "messages": [{"role": "user", "content": "hi"}]},
                )
            )
        )
        unstreamed.start()
        while upstream.seen == seen:  # it is in flight, waiting for its upstream
            time.sleep(0.02)
        request_id, data, refused, code = _stream_through_sigterm(gateway, key)
        unstreamed.join()
    finally:
        gateway.stop()
        upstream.pause_s = 0.0
    log = gateway.log()
    assert waiting[0].status_code == 503, waiting[0].text
    assert waiting[0].json()["error"]["code"] == "service_unavailable"
    assert refused
    assert code == 0, log
    assert data[-1] == b"[DONE]"
    chunks = [orjson.loads(d) for d in data[:-1]]
    errors = [c["error"] for c in chunks if "error" in c]
    assert len(errors) == 1 and set(errors[0]) == {"message", "type", "param", "code"}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c.get("choices"))
    assert text == "".join(f"w{i} " for i in range(WORDS // 2))  # what came before the cut
    assert errors[0]["code"] == "service_unavailable"
    books = assert_exact(database, account, settle_s=0)
    row = _logged(database, request_id)
    assert row is not None, "the request log lost the row"
    # Charged once, for what was delivered: some output, never the whole answer's.
    assert books.charges == {f"req:{request_id}": row.cost_nano}
    assert row.cost_nano > 0 and 1 <= row.output_tokens <= WORDS // 2
    # The request log (GET /admin/requests reads these rows) says what each client was
    # told: the stream's error event, the unstreamed request's 503 — not a client that left.
    assert (row.status, row.error_type, row.error_code) == (
        200,
        "server_error",
        "service_unavailable",
    )
    waited = _logged(database, waiting[0].headers["x-tokenyard-request-id"])
    assert waited is not None and waited.cost_nano == 0
    assert (waited.status, waited.error_code) == (503, "service_unavailable")
    assert "shutdown deadline reached" in log
