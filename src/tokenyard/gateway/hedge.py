"""Hedging: when an attempt is slow to answer, race it against the next one.

The first racer runs alone for ``after_s``; if it has not answered by then (for a stream:
no first chunk yet), a second racer starts beside it. The first *success* wins. A racer that
fails while the other still runs does not end the race; a failure that no other upstream
could fix (the client's own 4xx) does, since the other racer would refuse the same request.
Whatever did not win is cancelled — which closes its upstream connection, telling the
upstream to stop generating — and an answer that arrived too late to win (a tie) is closed
unused. Health and key bookkeeping stay with the racers themselves: a cancelled racer
reports ``release``, never a failure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar, runtime_checkable

from tokenyard.gateway.relay import OpenedStream

R = TypeVar("R")

Racer = asyncio.Task[R | None]
"""A running attempt: its answer, or None when it failed in a way another upstream could fix."""


async def race(
    first: Racer[R],
    after_s: float,
    start_hedge: Callable[[], Racer[R] | None],
    discard: Callable[[R], Awaitable[None]],
) -> R | None:
    """The first answer of ``first`` and, when ``first`` is still silent after ``after_s``,
    of the racer ``start_hedge`` starts (it returns None when nothing is left to start).
    None when every racer failed; raises a racer's error that no other upstream could fix.
    ``discard`` lets go of an answer that lost."""
    racers = [first]
    won: Racer[R] | None = None
    try:
        done, _ = await asyncio.wait([first], timeout=after_s)
        if not done and (hedge := start_hedge()) is not None:
            racers.append(hedge)
        won = await _first_answer(racers)
        return None if won is None else won.result()
    finally:
        await _stop(racers, won, discard)


async def _first_answer(racers: Sequence[Racer[R]]) -> Racer[R] | None:
    """The first racer to answer (in plan order on a tie), or None when all failed."""
    pending = list(racers)
    while pending:
        await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for racer in [r for r in pending if r.done()]:
            pending.remove(racer)
            if racer.result() is not None:  # raises an error no other upstream could fix
                return racer
    return None


async def _stop(
    racers: Sequence[Racer[R]], won: Racer[R] | None, discard: Callable[[R], Awaitable[None]]
) -> None:
    """Cancel the losers still running, wait until they have let go of their upstream, and
    close the answers that lost. When this wait is interrupted (the deadline passed, the
    client left), the winner's answer is closed too: nobody will read it."""
    losers = [r for r in racers if r is not won]
    try:
        running = [r for r in losers if not r.done()]
        for racer in running:
            racer.cancel()
        if running:
            await asyncio.wait(running)
    except BaseException:
        losers = list(racers)
        raise
    finally:
        for racer in losers:
            if racer.done() and not racer.cancelled() and racer.exception() is None:
                answer = racer.result()
                if answer is not None:
                    await discard(answer)


@runtime_checkable
class _Releasable(Protocol):
    def release(self) -> object: ...


async def close_unused(result: object) -> None:
    """Let go of an answer nobody will read: an opened stream is closed (its upstream stops
    generating), a raw response released; complete answers hold nothing open."""
    if isinstance(result, OpenedStream):
        await result.stream.aclose()
    elif isinstance(result, _Releasable):
        result.release()
