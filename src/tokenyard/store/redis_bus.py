"""A Redis channel on which gateway processes tell each other what they learned.

Small, rare events (a key cooled down, a circuit opened or closed, a key revoked) are
published on one pub/sub channel and also written as expiring Redis keys, so that a process
that starts — or reconnects after Redis was away — reads what is still in force. Each event
names the process it came from; a process ignores its own.

Publishing never waits on Redis in the request path: :meth:`RedisBus.publish` hands the
event to a background task. While Redis is unreachable, events are dropped (each process
keeps its own state, as without Redis) and the listener reconnects with a back-off; the
process's :class:`RedisLink` (shared with the rate limiter) says so once, and learns from
the listener when Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from tokenyard.store.redis_link import RedisLink, few_retries

log = logging.getLogger(__name__)

CHANNEL = "ty:events:{db}"
"""Pub/sub channels are global to a Redis server, so the channel names the database: two
deployments on one server in separate databases stay apart, as their keys do."""
STATE_PREFIX = "ty:state:"
RECONNECT_S = (0.1, 0.5, 1.0, 2.0, 5.0)
CLOSE_FLUSH_S = 2.0

Event = dict[str, Any]
Handler = Callable[[Event], None]


class RedisBus:
    def __init__(self, url: str, *, link: RedisLink | None = None):
        self._redis = Redis.from_url(
            url, socket_connect_timeout=1.0, socket_timeout=None, retry=few_retries()
        )
        self.link = link or RedisLink()
        self.channel = CHANNEL.format(db=self._redis.connection_pool.connection_kwargs.get("db", 0))
        self.origin = uuid.uuid4().hex
        self._listener: asyncio.Task[None] | None = None
        self._outbox: asyncio.Queue[tuple[bytes, str | None, float]] = asyncio.Queue()
        self._sender: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    # -- publishing -------------------------------------------------------------------

    def publish(self, event: Event, *, state_key: str | None = None, ttl_s: float = 0.0) -> None:
        """Send ``event`` to every other process; with ``state_key``, also keep it for
        ``ttl_s`` seconds for processes that start later (``ttl_s`` 0 forgets it). Events
        leave in the order they were published."""
        payload = orjson.dumps({**event, "from": self.origin})
        self._outbox.put_nowait((payload, state_key, ttl_s))
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send_all())

    async def _send_all(self) -> None:
        while True:
            payload, state_key, ttl_s = await self._outbox.get()
            try:
                await self._send(payload, state_key, ttl_s)
            finally:
                self._outbox.task_done()

    async def _send(self, payload: bytes, state_key: str | None, ttl_s: float) -> None:
        if not self.link.usable():
            return  # dropped: Redis is away, and the other processes cannot hear it anyway
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.publish(self.channel, payload)
                if state_key is not None:
                    name = STATE_PREFIX + state_key
                    if ttl_s > 0:
                        pipe.set(name, payload, px=max(1, int(ttl_s * 1000)))
                    else:
                        pipe.delete(name)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self.link.failed(exc)
        else:
            self.link.succeeded()

    async def flush(self) -> None:
        """Wait until every event published so far has been sent (or failed to be)."""
        await self._outbox.join()

    # -- listening --------------------------------------------------------------------

    def listen(self, handler: Handler) -> None:
        """Call ``handler`` with every event from other processes, and at each (re)connect
        with every kept state event (with ``ttl_s``: the seconds it has left)."""
        self._listener = asyncio.get_running_loop().create_task(self._listen(handler))

    async def _listen(self, handler: Handler) -> None:
        failures = 0
        while True:
            try:
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self.channel)
                    for event in await self._kept():
                        handler(event)
                    self.link.succeeded()
                    failures = 0
                    self.connected.set()
                    async for message in pubsub.listen():
                        self._deliver(message.get("data"), handler)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self.connected.clear()
                self.link.failed(exc)
                await asyncio.sleep(RECONNECT_S[min(failures, len(RECONNECT_S) - 1)])
                failures += 1

    def _deliver(self, data: object, handler: Handler) -> None:
        if not isinstance(data, bytes):
            return
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            log.warning("ignored a malformed event on the redis channel")
            return
        if isinstance(event, dict) and event.get("from") != self.origin:
            try:
                handler(event)
            except Exception:
                log.exception("an event from another process could not be applied")

    async def _kept(self) -> Iterable[Event]:
        names = [name async for name in self._redis.scan_iter(match=STATE_PREFIX + "*")]
        if not names:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.get(name)
                pipe.pttl(name)
            replies = await pipe.execute()
        events = []
        for payload, ttl_ms in zip(replies[::2], replies[1::2], strict=True):
            if payload is None or ttl_ms is None or ttl_ms <= 0:
                continue
            with contextlib.suppress(orjson.JSONDecodeError):
                event = orjson.loads(payload)
                if isinstance(event, dict) and event.get("from") != self.origin:
                    events.append({**event, "ttl_s": ttl_ms / 1000.0})
        return events

    async def close(self) -> None:
        with contextlib.suppress(TimeoutError):  # Redis away: what is left is dropped
            await asyncio.wait_for(self.flush(), CLOSE_FLUSH_S)
        for task in (self._sender, self._listener):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._redis.aclose()
