"""A provider's keys: chosen by weight among those that can take a request now.

A key is left out while it is cooling down after a 429 (for the upstream's Retry-After,
else an exponential back-off), while its own RPM/TPM window is full, and for ten minutes
(doubling up to six hours) after the upstream refused it as a credential (401/403) —
logged, so an operator sees it; a key fixed upstream comes back by itself. The pool keeps
serving from the other keys. (Windows and cool-offs are per process; sharing them
through Redis is the next step of issue 5.)
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tokenyard.config import KeyConfig
from tokenyard.errors import UpstreamError

log = logging.getLogger(__name__)
WINDOW_S = 60.0
BACKOFF_S = 1.0
MAX_BACKOFF_S = 60.0
REFUSED_S = 600.0
MAX_REFUSED_S = 6 * 3600.0


@dataclass(slots=True)
class PooledKey:
    label: str  # "provider#index": safe to log, unlike the secret
    secret: str = field(repr=False)
    weight: int = 1
    rpm: int | None = None
    tpm: int | None = None
    cool_until: float = 0.0
    backoff_s: float = 0.0
    refused_s: float = 0.0
    window: list[tuple[float, int]] = field(default_factory=list)  # (time, tokens)

    def room(self, now: float, tokens: int) -> bool:
        self.window = [(t, n) for t, n in self.window if now - t < WINDOW_S]
        if self.rpm is not None and len(self.window) + 1 > self.rpm:
            return False
        return self.tpm is None or sum(n for _, n in self.window) + tokens <= self.tpm


class KeysExhausted(UpstreamError):
    """Every key of a provider is cooling down, over its limits or refused."""

    code = "upstream_keys_exhausted"

    def __init__(self, provider: str, retry_after_s: float | None):
        super().__init__(
            f"provider {provider} has no key free right now",
            retryable=True,
            retry_after_s=retry_after_s,
        )


class KeyPool:
    def __init__(
        self,
        provider: str,
        keys: Sequence[KeyConfig],
        rng: random.Random,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.provider = provider
        self.keys = [
            PooledKey(f"{provider}#{i}", k.key, k.weight, k.rpm, k.tpm) for i, k in enumerate(keys)
        ]
        self._rng = rng
        self._clock = clock

    def choose(self, tokens: int = 0) -> PooledKey | None:
        """A key for the next call (counted in its window), or None when the provider needs
        no credential. Raises KeysExhausted when it has keys but none can take the call."""
        if not self.keys:
            return None
        now = self._clock()
        free = [k for k in self.keys if k.cool_until <= now and k.room(now, tokens)]
        if not free:
            waits = [k.cool_until - now for k in self.keys if k.cool_until > now]
            raise KeysExhausted(self.provider, min(waits) if waits else None)
        key = (
            free[0]
            if len(free) == 1
            else self._rng.choices(free, weights=[k.weight for k in free])[0]
        )
        if key.rpm is not None or key.tpm is not None:
            key.window.append((now, tokens))
        return key

    def succeeded(self, key: PooledKey | None) -> None:
        if key is not None:
            key.backoff_s = key.refused_s = 0.0

    def failed(self, key: PooledKey | None, error: UpstreamError) -> None:
        if key is None:
            return
        status = error.upstream_status
        if status in (401, 403):
            key.refused_s = min(MAX_REFUSED_S, key.refused_s * 2 or REFUSED_S)
            key.cool_until = self._clock() + key.refused_s
            log.warning(
                "upstream key refused: out of the pool",
                extra={"fields": {"key": key.label, "status": status, "seconds": key.refused_s}},
            )
        elif status == 429:
            key.backoff_s = min(MAX_BACKOFF_S, key.backoff_s * 2 or BACKOFF_S)
            pause = error.retry_after_s if error.retry_after_s is not None else key.backoff_s
            key.cool_until = self._clock() + pause
            log.info(
                "upstream key cooling down",
                extra={"fields": {"key": key.label, "seconds": round(pause, 3)}},
            )
