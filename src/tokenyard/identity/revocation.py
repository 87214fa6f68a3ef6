"""How a revocation reaches every process at once.

Each process caches authenticated keys. A revocation bumps an *epoch*; a process that sees
the epoch change drops its whole cache before the next lookup. Within one process the epoch
is an integer; across the ``--workers`` of one machine it lives in shared memory created by
the parent before the workers start. Across machines, with Redis configured, an
:class:`AnnouncedEpoch` also tells every other process, which bumps its own epoch.
"""

from __future__ import annotations

from collections.abc import Callable
from multiprocessing.sharedctypes import Synchronized
from typing import Protocol


class RevocationEpoch(Protocol):
    def value(self) -> int: ...

    def bump(self) -> None: ...


class MemoryEpoch:
    def __init__(self) -> None:
        self._value = 0

    def value(self) -> int:
        return self._value

    def bump(self) -> None:
        self._value += 1


class SharedEpoch:
    """An epoch in shared memory (``multiprocessing.Value('q')``) seen by every worker."""

    def __init__(self, shared: Synchronized[int]):
        self._shared = shared

    def value(self) -> int:
        return self._shared.value

    def bump(self) -> None:
        with self._shared.get_lock():
            self._shared.value += 1


class AnnouncedEpoch:
    """An epoch whose bumps are also announced to other machines (``announce``)."""

    def __init__(self, inner: RevocationEpoch, announce: Callable[[], None]):
        self.inner = inner
        self._announce = announce

    def value(self) -> int:
        return self.inner.value()

    def bump(self) -> None:
        self.inner.bump()
        self._announce()
