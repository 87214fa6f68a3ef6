"""A provider's keys: chosen by weight among those that can take a request now.

A key is left out while it is cooling down after a 429 (for the upstream's Retry-After,
else an exponential back-off), while its own RPM/TPM window is full, and for ten minutes
(doubling up to six hours) after the upstream refused it as a credential (401/403) —
logged, so an operator sees it; a key fixed upstream comes back by itself. The pool keeps
serving from the other keys.

The RPM/TPM windows are counted by a :class:`~tokenyard.store.limits.KeyLimiter`: in
process, or in Redis so that every gateway process and replica shares them. A cool-down
decided here is announced through ``on_cool`` and one decided elsewhere arrives through
:meth:`KeyPool.cool`; keys are named across processes by a fingerprint of their secret, so
two replicas agree on which key is meant even when their configs list keys in another order.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tokenyard.config import KeyConfig
from tokenyard.errors import UpstreamError
from tokenyard.store.limits import KeyLimiter, MemoryLimiter

log = logging.getLogger(__name__)
BACKOFF_S = 1.0
MAX_BACKOFF_S = 60.0
REFUSED_S = 600.0
MAX_REFUSED_S = 6 * 3600.0
FULL_RECHECK_S = 1.0
"""A key found at its RPM/TPM limit is not asked again for this long (its window may free
up before the limiter's conservative Retry-After)."""


def fingerprint(secret: str) -> str:
    """A stable, non-reversible name for a key that every process derives alike."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


@dataclass(slots=True)
class PooledKey:
    label: str  # "provider#index": safe to log, unlike the secret
    secret: str = field(repr=False)
    weight: int = 1
    rpm: int | None = None
    tpm: int | None = None
    id: str = ""  # the fingerprint: the key's name in shared state
    cool_until: float = 0.0
    full_until: float = 0.0
    backoff_s: float = 0.0
    refused_s: float = 0.0
    refused: bool = False

    @property
    def limited(self) -> bool:
        return self.rpm is not None or self.tpm is not None


class KeysExhausted(UpstreamError):
    """Every key of a provider is cooling down, over its limits or refused."""

    code = "upstream_keys_exhausted"

    def __init__(self, provider: str, retry_after_s: float | None):
        super().__init__(
            f"provider {provider} has no key free right now",
            retryable=True,
            retry_after_s=retry_after_s,
        )


CoolListener = Callable[[str, float, bool], None]
"""Told (key id, seconds, refused) whenever this process cools a key down."""


class KeyPool:
    def __init__(
        self,
        provider: str,
        keys: Sequence[KeyConfig],
        rng: random.Random,
        *,
        clock: Callable[[], float] = time.monotonic,
        windows: KeyLimiter | None = None,
        on_cool: CoolListener | None = None,
    ):
        self.provider = provider
        self.keys = [
            PooledKey(f"{provider}#{i}", k.key, k.weight, k.rpm, k.tpm, fingerprint(k.key))
            for i, k in enumerate(keys)
        ]
        self._by_id = {k.id: k for k in self.keys}
        self._rng = rng
        self._clock = clock
        self._windows = windows or MemoryLimiter()
        self.on_cool = on_cool

    async def choose(self, tokens: int = 0) -> PooledKey | None:
        """A key for the next call (counted in its window), or None when the provider needs
        no credential. Raises KeysExhausted when it has keys but none can take the call."""
        if not self.keys:
            return None
        now = self._clock()
        free = [k for k in self.keys if k.cool_until <= now and k.full_until <= now]
        while free:
            key = free[0] if len(free) == 1 else self._pick(free)
            if not key.limited:
                return key
            wait = await self._windows.admit(f"up:{key.id}", key.rpm, key.tpm, tokens)
            if not wait:
                return key
            key.full_until = now + min(wait, FULL_RECHECK_S)
            free.remove(key)
        waits = [max(k.cool_until, k.full_until) - now for k in self.keys]
        raise KeysExhausted(self.provider, max(0.0, min(waits)) or None)

    def _pick(self, free: list[PooledKey]) -> PooledKey:
        return self._rng.choices(free, weights=[k.weight for k in free])[0]

    def succeeded(self, key: PooledKey | None) -> None:
        if key is not None:
            key.backoff_s = key.refused_s = 0.0
            key.refused = False

    def failed(self, key: PooledKey | None, error: UpstreamError) -> None:
        if key is None:
            return
        status = error.upstream_status
        if status in (401, 403):
            key.refused_s = min(MAX_REFUSED_S, key.refused_s * 2 or REFUSED_S)
            self._cool(key, key.refused_s, refused=True)
            log.warning(
                "upstream key refused: out of the pool",
                extra={"fields": {"key": key.label, "status": status, "seconds": key.refused_s}},
            )
        elif status == 429:
            key.backoff_s = min(MAX_BACKOFF_S, key.backoff_s * 2 or BACKOFF_S)
            pause = error.retry_after_s if error.retry_after_s is not None else key.backoff_s
            self._cool(key, pause, refused=False)
            log.info(
                "upstream key cooling down",
                extra={"fields": {"key": key.label, "seconds": round(pause, 3)}},
            )

    def _cool(self, key: PooledKey, seconds: float, *, refused: bool) -> None:
        key.cool_until = self._clock() + seconds
        key.refused = refused
        if self.on_cool is not None:
            self.on_cool(key.id, seconds, refused)

    def cool(self, key_id: str, seconds: float, *, refused: bool = False) -> bool:
        """Apply a cool-down another process decided. Returns whether the key is ours."""
        key = self._by_id.get(key_id)
        if key is None:
            return False
        until = self._clock() + seconds
        if until > key.cool_until:
            key.cool_until, key.refused = until, refused
        return True

    def status(self) -> list[dict[str, object]]:
        """What an operator may see of each key: never the secret."""
        now = self._clock()
        return [
            {
                "label": k.label,
                "weight": k.weight,
                "rpm": k.rpm,
                "tpm": k.tpm,
                "state": (
                    "refused"
                    if k.cool_until > now and k.refused
                    else "cooling"
                    if k.cool_until > now
                    else "full"
                    if k.full_until > now
                    else "ready"
                ),
                "available_in_s": round(max(0.0, k.cool_until - now, k.full_until - now), 3),
            }
            for k in self.keys
        ]
