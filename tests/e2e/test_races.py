"""Concurrent requests can never spend more than the wallet holds — one process on SQLite
or PostgreSQL, and two gateway processes sharing PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Upstreams, gateway_config
from tests.e2e.harness import RunningGateway, start_gateway
from tests.e2e.ledger_view import read_books

# The worst case of one request to only-flaky (input 1, output 2 per 1M, markup 10 %) with
# max_tokens 1000: (prompt estimate 9 + 1000 × 2) / 1e6 × 1.1 ≈ 0.0022. The wallet holds
# three and a half of those, and every answer is slow, so the 64 requests overlap.
WALLET = "0.0077"
BODY = {
    "model": "only-flaky",
    "max_tokens": 1000,
    "messages": [{"role": "user", "content": "race me"}],
}


@pytest.fixture(scope="module")
def second(
    database_url: str,
    upstreams: Upstreams,
    gateway: RunningGateway,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningGateway | None]:
    """A second gateway process on the same database (PostgreSQL only: on SQLite the two
    would be one machine, which --workers already covers)."""
    if database_url.startswith("sqlite"):
        yield None
        return
    directory: Path = tmp_path_factory.mktemp("second")
    running = start_gateway(directory, gateway_config(database_url, upstreams.urls))
    yield running
    running.stop()


async def fire(urls: list[str], key: str, count: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=30) as client:
        return await asyncio.gather(
            *(
                client.post(
                    urls[i % len(urls)] + "/v1/chat/completions",
                    json=BODY,
                    headers={"Authorization": f"Bearer {key}"},
                )
                for i in range(count)
            )
        )


def test_64_concurrent_requests_never_overdraw(
    gateway: RunningGateway,
    second: RunningGateway | None,
    upstreams: Upstreams,
    database_url: str,
) -> None:
    account_id = gateway.new_account(credit=WALLET)
    key = gateway.new_key(account_id)
    upstreams.reset()
    for _ in range(64):
        upstreams["flaky"].stall_next(0.3)
    urls = [gateway.base_url] + ([second.base_url] if second else [])
    responses = asyncio.run(fire(urls, key, 64))
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 402}
    ok = [r for r in responses if r.status_code == 200]
    assert 1 <= len(ok) < 64
    assert statuses.count(402) >= 1
    books = read_books(database_url, account_id)
    assert books.balance >= 0
    assert books.reserved == 0
    assert books.credits == int(Decimal(WALLET) * 10**9)
    assert books.balance == books.credits - sum(books.charges.values())
    assert sorted(books.charges) == sorted("req:" + r.headers["x-tokenyard-request-id"] for r in ok)
    for response in ok:
        charged = books.charges["req:" + response.headers["x-tokenyard-request-id"]]
        assert charged == int(Decimal(response.headers["x-tokenyard-cost"]) * 10**9)
    # 402s never reached the upstream.
    assert len(upstreams["flaky"].requests) == len(ok)
    while upstreams["flaky"]._pop(upstreams["flaky"]._stalls) is not None:
        pass
