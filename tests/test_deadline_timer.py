"""One loop timer per connection, re-pointed (src/tokenyard/deadline_timer.py)."""

from __future__ import annotations

import asyncio

from tokenyard.deadline_timer import DeadlineTimer


def fired_at(moves: list[tuple[float, float | None]], wait_s: float) -> list[float]:
    """Sets (or, with None, clears) the timer's deadline at each ``(after_s, deadline_s)``
    from the start; the times ``expire`` was called, from the start."""

    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        start, fired = loop.time(), []
        timer = DeadlineTimer(loop, lambda: fired.append(loop.time() - start))
        for after_s, deadline_s in moves:
            await asyncio.sleep(max(0.0, start + after_s - loop.time()))
            if deadline_s is None:
                timer.clear()
            else:
                timer.set(start + deadline_s)
        await asyncio.sleep(max(0.0, start + wait_s - loop.time()))
        assert not timer.pending
        return fired

    return asyncio.run(main())


def test_a_deadline_moved_later_fires_once_at_the_later_time() -> None:
    [fired] = fired_at([(0.0, 0.05), (0.02, 0.15)], wait_s=0.3)
    assert fired >= 0.15  # not at 0.05, where the loop timer was first set


def test_an_earlier_deadline_does_not_wait_for_the_pending_timer() -> None:
    [fired] = fired_at([(0.0, 0.3), (0.02, 0.05)], wait_s=0.4)
    assert 0.05 <= fired < 0.3


def test_a_cleared_deadline_lapses() -> None:
    assert fired_at([(0.0, 0.05), (0.01, None)], wait_s=0.15) == []


def test_stop_leaves_no_timer() -> None:
    async def main() -> bool:
        timer = DeadlineTimer(asyncio.get_running_loop(), lambda: None)
        timer.set(asyncio.get_running_loop().time() + 60)
        pending = timer.pending
        timer.stop()
        return pending and not timer.pending and timer.deadline is None

    assert asyncio.run(main())
