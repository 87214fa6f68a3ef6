"""SIGKILL under load, then a restart: every answer a client received is charged exactly
once (at its own cost, streamed or not), only answers in flight at the kill may be charged
without reaching their client, and no reservation is left behind — on SQLite and on
PostgreSQL (the ``database_url`` fixture runs it on both)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from decimal import Decimal
from pathlib import Path

import httpx

from tests.e2e.conftest import Upstreams, gateway_config
from tests.e2e.exact_books import assert_exact
from tests.e2e.harness import start_gateway
from tests.e2e.ledger_view import read_books

BODY = {"model": "only-flaky", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
STREAM = {**BODY, "stream": True, "stream_options": {"include_usage": True}}
PLAIN_CLIENTS, STREAM_CLIENTS = 12, 4


async def load(
    base_url: str, key: str, stop: threading.Event, delivered: dict[str, Decimal]
) -> None:
    headers = {"Authorization": f"Bearer {key}"}

    async def plain(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            try:
                response = await client.post("/v1/chat/completions", json=BODY, headers=headers)
            except httpx.HTTPError:
                continue
            if response.status_code == 200:
                delivered[response.headers["x-tokenyard-request-id"]] = Decimal(
                    response.headers["x-tokenyard-cost"]
                )

    async def streamed(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            try:
                async with client.stream(
                    "POST", "/v1/chat/completions", headers=headers, json=STREAM
                ) as response:
                    lines = [line async for line in response.aiter_lines() if line]
            except httpx.HTTPError:
                continue
            if lines and lines[-1] == "data: [DONE]":  # the whole answer arrived
                usage = json.loads(lines[-2].removeprefix("data: "))["usage"]
                cost = Decimal(str(usage["cost"]))  # the usage chunk's cost, as sent
                delivered[response.headers["x-tokenyard-request-id"]] = cost

    async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
        await asyncio.gather(
            *(plain(client) for _ in range(PLAIN_CLIENTS)),
            *(streamed(client) for _ in range(STREAM_CLIENTS)),
        )


def test_sigkill_under_load_then_restart(
    database_url: str, upstreams: Upstreams, tmp_path: Path
) -> None:
    config = gateway_config(database_url, upstreams.urls)
    first = start_gateway(tmp_path / "first", config)
    account_id = first.new_account(credit="100")
    key = first.new_key(account_id)
    upstreams.reset()
    for _ in range(5000):
        upstreams["flaky"].stall_next(0.02)  # answers take a while: many are in flight
    stop = threading.Event()
    delivered: dict[str, Decimal] = {}
    loader = threading.Thread(
        target=lambda: asyncio.run(load(first.base_url, key, stop, delivered))
    )
    loader.start()
    time.sleep(1.5)
    first.process.kill()  # SIGKILL: no shutdown, no settlement, no goodbye
    first.process.wait()
    time.sleep(0.3)
    stop.set()
    loader.join()
    upstreams.reset()
    assert len(delivered) > 20

    stranded = read_books(database_url, account_id)
    second = start_gateway(tmp_path / "second", config)  # its reaper runs before it serves
    try:
        books = assert_exact(database_url, account_id, settle_s=0)  # released before serving
        after = second.post("/v1/chat/completions", key, json=BODY)
        assert after.status_code == 200  # and the restarted gateway answers, and charges
        assert (
            "req:" + after.headers["x-tokenyard-request-id"]
            in assert_exact(database_url, account_id).charges
        )
    finally:
        assert second.stop() == 0
    assert stranded.reservations > 0  # the kill left holds behind: the reaper must act
    for request_id, cost in delivered.items():
        charged = books.charges.get("req:" + request_id)
        assert charged is not None, f"{request_id} was delivered but not charged"
        assert charged == int(cost * 10**9)  # the cost the client was told, to the nano
    # A charge without a delivered answer: only requests in flight at the kill, at most
    # one per client connection.
    undelivered = set(books.charges) - {"req:" + r for r in delivered}
    assert len(undelivered) <= PLAIN_CLIENTS + STREAM_CLIENTS, undelivered
