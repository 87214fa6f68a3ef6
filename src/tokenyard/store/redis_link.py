"""Whether this process reaches Redis: one view, shared by everything that uses it.

Redis carries what processes share (rate windows, key cool-downs, circuits, revocations);
none of it is needed to answer a request. So when a call to Redis fails, its user falls
back to in-process state at once, and — a circuit breaker — nobody calls Redis again for
``retry_after_s`` but one trial call, so that a dead or hung Redis costs one failed call per
interval, not one per request. Each change is logged once and reported to ``on_change``
(the ``tokenyard_redis_up`` gauge).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from redis import exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5.0


def few_retries() -> Retry:
    """redis-py retries a failed call ten times with back-off by default (seconds per call);
    a fallback is right there, so fail at once and let the link decide. One immediate retry
    on a broken connection stays: after a Redis restart each pooled connection is dead, and
    a fresh one must not count as Redis being away (a timeout is not retried)."""
    return Retry(NoBackoff(), 1, supported_errors=(exceptions.ConnectionError,))


class RedisLink:
    def __init__(
        self,
        *,
        retry_after_s: float = RETRY_AFTER_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.up = True
        self.on_change: Callable[[bool], None] | None = None
        self._retry_after_s = retry_after_s
        self._clock = clock
        self._retry_at = 0.0

    def usable(self) -> bool:
        """Whether to call Redis now: it is up, or it is down and a trial call is due (then
        the next trial is one interval away, whatever this one's outcome)."""
        if self.up:
            return True
        now = self._clock()
        if now < self._retry_at:
            return False
        self._retry_at = now + self._retry_after_s
        return True

    def failed(self, error: BaseException) -> None:
        self._retry_at = self._clock() + self._retry_after_s
        if self.up:
            self.up = False
            log.warning(
                "redis unreachable: rate limits are counted per process and state is not "
                "shared until it returns",
                extra={"fields": {"error": type(error).__name__}},
            )
            self._changed()

    def succeeded(self) -> None:
        if not self.up:
            self.up = True
            log.warning("redis reachable again: rate limits and state are shared")
            self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self.up)
