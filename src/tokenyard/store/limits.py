"""Per-key request and token rates (``rpm``, ``tpm``): 429 with ``Retry-After`` when over.

The window is a sliding minute approximated by two fixed minutes: the current count plus
the previous minute's, weighted by how much of it still overlaps the window. It is exact
at minute boundaries, never lets more than the limit through in any aligned minute, and
costs O(1) per request. One interface, two backends: in-process (one gateway process)
and Redis (every process and replica shares the counts).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Protocol

WINDOW_S = 60


class KeyLimiter(Protocol):
    async def admit(self, key_id: str, rpm: int | None, tpm: int | None, tokens: int) -> float:
        """Count one request of ``tokens`` against the key's limits. Returns 0 when admitted,
        else the seconds to wait (nothing is counted then)."""
        ...

    async def add_tokens(self, key_id: str, tokens: int) -> None:
        """Count tokens used after admission (the answer's output) in the current minute."""
        ...

    async def close(self) -> None: ...


def window_estimate(previous: int, current: int, elapsed_s: float) -> float:
    return previous * (1 - elapsed_s / WINDOW_S) + current


def retry_after(elapsed_s: float) -> float:
    return max(1.0, math.ceil(WINDOW_S - elapsed_s))


class MemoryLimiter:
    def __init__(self, clock: Callable[[], float] = time.time):
        self._clock = clock
        # key id → (minute, requests this minute, tokens this minute, requests last, tokens last)
        self._windows: dict[str, tuple[int, int, int, int, int]] = {}

    async def admit(self, key_id: str, rpm: int | None, tpm: int | None, tokens: int) -> float:
        if rpm is None and tpm is None:
            return 0.0
        now = self._clock()
        minute, elapsed = divmod(now, WINDOW_S)
        current = int(minute)
        window = self._windows.get(key_id)
        if window is None or window[0] < current - 1:
            requests, used, previous_requests, previous_used = 0, 0, 0, 0
        elif window[0] == current - 1:
            requests, used, previous_requests, previous_used = 0, 0, window[1], window[2]
        else:
            _, requests, used, previous_requests, previous_used = window
        if (
            rpm is not None and window_estimate(previous_requests, requests + 1, elapsed) > rpm
        ) or (tpm is not None and window_estimate(previous_used, used + tokens, elapsed) > tpm):
            return retry_after(elapsed)
        self._windows[key_id] = (
            current,
            requests + 1,
            used + tokens,
            previous_requests,
            previous_used,
        )
        return 0.0

    async def add_tokens(self, key_id: str, tokens: int) -> None:
        window = self._windows.get(key_id)
        if window is not None and window[0] == int(self._clock() // WINDOW_S):
            minute, requests, used, previous_requests, previous_used = window
            self._windows[key_id] = (
                minute,
                requests,
                used + tokens,
                previous_requests,
                previous_used,
            )

    async def close(self) -> None:
        return None
