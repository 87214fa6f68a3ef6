"""Per-key RPM/TPM windows, in process and in a real Redis, with the same expectations."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable

import pytest

from tokenyard.store.limits import KeyLimiter, MemoryLimiter
from tokenyard.store.redis_limits import RedisLimiter


def redis_url() -> str:
    url = os.environ.get("TOKENYARD_TEST_REDIS")
    if not url:
        pytest.fail("TOKENYARD_TEST_REDIS is not set: run the tests through `make test`")
    return url


def limiter(kind: str, clock: Callable[[], float]) -> KeyLimiter:
    return MemoryLimiter(clock) if kind == "memory" else RedisLimiter(redis_url(), clock)


BACKENDS = ["memory", pytest.param("redis", marks=pytest.mark.services)]


@pytest.mark.parametrize("kind", BACKENDS)
def test_requests_per_minute(kind: str) -> None:
    now = [600_000.0]  # the start of a minute
    key = "key_" + secrets.token_hex(4)

    async def scenario() -> None:
        lim = limiter(kind, lambda: now[0])
        assert [await lim.admit(key, 3, None, 1) for _ in range(3)] == [0, 0, 0]
        assert await lim.admit(key, 3, None, 1) == 60  # the rest of this minute
        now[0] += 30
        assert await lim.admit(key, 3, None, 1) == 30
        now[0] += 30  # a new minute: the old one still weighs 100 %
        assert await lim.admit(key, 3, None, 1) > 0
        now[0] += 40  # two thirds through: 3 × 1/3 = 1 still counted
        assert await lim.admit(key, 3, None, 1) == 0
        assert await lim.admit(key, 3, None, 1) == 0
        assert await lim.admit(key, 3, None, 1) > 0
        assert await lim.admit("other" + key, 3, None, 1) == 0  # keys are separate
        await lim.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("kind", BACKENDS)
def test_tokens_per_minute_count_admitted_and_added_tokens(kind: str) -> None:
    now = [1_200_000.0]
    key = "key_" + secrets.token_hex(4)

    async def scenario() -> None:
        lim = limiter(kind, lambda: now[0])
        assert await lim.admit(key, None, 100, 60) == 0
        assert await lim.admit(key, None, 100, 60) > 0  # 120 > 100: refused, not counted
        assert await lim.admit(key, None, 100, 30) == 0  # 90
        await lim.add_tokens(key, 20)  # the answers' output: 110
        assert await lim.admit(key, None, 100, 1) > 0
        assert await lim.admit(key, None, None, 10**9) == 0  # no limits: always admitted
        await lim.close()

    asyncio.run(scenario())


def test_redis_down_degrades_to_counting_in_process() -> None:
    async def scenario() -> None:
        lim = RedisLimiter("redis://127.0.0.1:9/0")
        assert await lim.admit("k", 1, None, 1) == 0
        assert lim.degraded
        assert await lim.admit("k", 1, None, 1) > 0  # still limited, per process
        await lim.close()

    asyncio.run(scenario())
