"""One loop timer for a series of deadlines, re-pointed instead of made and cancelled.

Our server times each request head on a kept-alive client connection, and our upstream
client times each response head on a pooled upstream connection, and each wait for more of
a response's body (transport/response.py, the idle timeout). A ``loop.call_at`` made
and cancelled per request cost ~0.6 % of a request each (docs/benchmarks.md, session 10).
A :class:`DeadlineTimer` moves a deadline attribute instead: a loop timer is only made when
none is pending or the pending one would fire too late; one that fires before the deadline
(which was moved later) sets itself again for the rest, and one that finds no deadline does
nothing. A pending timer thus outlives its deadline by up to one timeout, holding its
owner (a connection, or a response until it is released); :meth:`stop` cancels it when the
owner is done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class DeadlineTimer:
    """Calls ``expire`` once the loop's clock passes the deadline :meth:`set` last gave,
    unless :meth:`clear` or :meth:`stop` came first."""

    __slots__ = ("_expire", "_handle", "_loop", "_pending_at", "deadline")

    def __init__(self, loop: asyncio.AbstractEventLoop, expire: Callable[[], None]):
        self._loop = loop
        self._expire = expire
        self._handle: asyncio.TimerHandle | None = None
        self._pending_at = 0.0
        self.deadline: float | None = None
        """When ``expire`` is due, on the loop's clock; None when nothing is timed."""

    @property
    def pending(self) -> bool:
        """A loop timer is set (it may find nothing to do when it fires)."""
        return self._handle is not None

    def set(self, deadline: float) -> None:
        self.deadline = deadline
        if self._handle is not None and deadline < self._pending_at:
            self._handle.cancel()  # it would fire too late
            self._handle = None
        if self._handle is None:
            self._pending_at = deadline
            self._handle = self._loop.call_at(deadline, self._fired)

    def clear(self) -> None:
        """Nothing is timed now; a pending timer stays, and lapses when it fires."""
        self.deadline = None

    def stop(self) -> None:
        """Nothing is timed, and no timer is left behind to hold the connection."""
        self.deadline = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fired(self) -> None:
        self._handle = None
        deadline = self.deadline
        if deadline is None:
            return
        if self._loop.time() < deadline:  # moved later meanwhile (or the clock rounded)
            self._pending_at = deadline
            self._handle = self._loop.call_at(deadline, self._fired)
            return
        self.deadline = None
        self._expire()
