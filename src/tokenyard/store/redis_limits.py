"""Per-key rate windows in Redis, shared by every gateway process and replica.

One Lua script reads both minutes' counters, decides, and counts — atomically, in one
round trip. Counters expire after two windows (two minutes by default). While Redis is
unreachable the windows are counted in process (:class:`MemoryLimiter`); the
:class:`RedisLink` decides when to try Redis again and says so (redis_link.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from tokenyard.store.limits import WINDOW_S, MemoryLimiter, retry_after
from tokenyard.store.redis_link import RedisLink, few_retries

_ADMIT = """
local rpm = tonumber(ARGV[1])
local tpm = tonumber(ARGV[2])
local tokens = tonumber(ARGV[3])
local weight = tonumber(ARGV[4])
local ttl = tonumber(ARGV[5])
local req_now = tonumber(redis.call('GET', KEYS[1]) or '0')
local tok_now = tonumber(redis.call('GET', KEYS[2]) or '0')
local req_before = tonumber(redis.call('GET', KEYS[3]) or '0')
local tok_before = tonumber(redis.call('GET', KEYS[4]) or '0')
if rpm >= 0 and req_before * weight + req_now + 1 > rpm then return 0 end
if tpm >= 0 and tok_before * weight + tok_now + tokens > tpm then return 0 end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('INCRBY', KEYS[2], tokens)
redis.call('EXPIRE', KEYS[2], ttl)
return 1
"""


class RedisLimiter:
    """Falls back to in-process counting while Redis is unreachable."""

    def __init__(
        self,
        url: str,
        clock: Callable[[], float] = time.time,
        *,
        ttl_s: int = 120,
        link: RedisLink | None = None,
    ):
        """``ttl_s``: how long a window's counters live; two windows (the sign-up limiter
        runs on a slowed clock whose window is an hour, identity/portal.py). ``link``: the
        process's view of Redis, shared with its other users (default: one of its own)."""
        self._redis = Redis.from_url(
            url, socket_timeout=1.0, socket_connect_timeout=1.0, retry=few_retries()
        )
        self._script = self._redis.register_script(_ADMIT)
        self._clock = clock
        self._ttl_s = ttl_s
        self._fallback = MemoryLimiter(clock)
        self._link = link or RedisLink()

    @property
    def degraded(self) -> bool:
        return not self._link.up

    async def admit(self, key_id: str, rpm: int | None, tpm: int | None, tokens: int) -> float:
        if rpm is None and tpm is None:
            return 0.0
        minute, elapsed = divmod(self._clock(), WINDOW_S)
        now, before = int(minute), int(minute) - 1
        keys = [
            f"ty:rl:{key_id}:{now}:r",
            f"ty:rl:{key_id}:{now}:t",
            f"ty:rl:{key_id}:{before}:r",
            f"ty:rl:{key_id}:{before}:t",
        ]
        args = [
            -1 if rpm is None else rpm,
            -1 if tpm is None else tpm,
            tokens,
            1 - elapsed / WINDOW_S,
            self._ttl_s,
        ]
        if not self._link.usable():
            return await self._fallback.admit(key_id, rpm, tpm, tokens)
        try:
            admitted = await self._script(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            self._link.failed(exc)
            return await self._fallback.admit(key_id, rpm, tpm, tokens)
        self._link.succeeded()
        return 0.0 if admitted else retry_after(elapsed)

    async def add_tokens(self, key_id: str, tokens: int) -> None:
        name = f"ty:rl:{key_id}:{int(self._clock() // WINDOW_S)}:t"
        if not self._link.usable():
            await self._fallback.add_tokens(key_id, tokens)
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.incrby(name, tokens)
                pipe.expire(name, self._ttl_s)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._link.failed(exc)
            await self._fallback.add_tokens(key_id, tokens)

    async def close(self) -> None:
        await self._redis.aclose()
