"""The request's deadline behaves as ``asyncio.timeout_at`` does, on uvloop (what the gateway
runs on) and on asyncio's own loop: a block past it raises ``TimeoutError``; a block done in
time leaves no timer behind; a cancellation from elsewhere (the client left) stays one, also
when it comes with the deadline; nested deadlines each answer for their own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest
import uvloop

from tokenyard.gateway.deadline import Deadline

T = TypeVar("T")
Runner = Callable[[Coroutine[Any, Any, T]], T]


@pytest.fixture(params=["uvloop", "asyncio"])
def run(request: pytest.FixtureRequest) -> Runner[Any]:
    """Runs a test's body on the loop, failing it rather than hanging past a second."""
    start: Runner[Any] = uvloop.run if request.param == "uvloop" else asyncio.run

    def running(main: Coroutine[Any, Any, T]) -> T:
        result: T = start(asyncio.wait_for(main, 1.0))
        return result

    return running


def after(seconds: float) -> Deadline:
    return Deadline(asyncio.get_running_loop().time() + seconds)


def test_a_block_done_in_time_is_left_alone_afterwards(run: Runner[Any]) -> None:
    async def main() -> tuple[bool, int]:
        deadline = after(0.05)
        with deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # past the deadline: its timer must be gone
        task = asyncio.current_task()
        assert task is not None
        return deadline.expired, task.cancelling()

    assert run(main()) == (False, 0)


def test_a_block_past_its_deadline_raises_timeout_error(run: Runner[Any]) -> None:
    async def main() -> tuple[float, bool, int]:
        deadline = after(0.1)
        start = time.monotonic()
        with pytest.raises(TimeoutError), deadline:
            await asyncio.sleep(5)
        waited = time.monotonic() - start
        await asyncio.sleep(0.01)  # the task goes on, not cancelled
        task = asyncio.current_task()
        assert task is not None
        return waited, deadline.expired, task.cancelling()

    waited, expired, cancelling = run(main())
    assert 0.08 <= waited < 0.5
    assert expired
    assert cancelling == 0


def test_a_cancel_from_elsewhere_stays_a_cancel(run: Runner[Any]) -> None:
    async def main() -> bool:
        deadline = after(5)

        async def keep() -> None:
            with deadline:
                await asyncio.sleep(5)

        task = asyncio.create_task(keep())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return deadline.expired

    assert run(main()) is False


def test_a_cancel_that_comes_with_the_deadline_stays_a_cancel(run: Runner[Any]) -> None:
    """The deadline and the client's leaving both due in one turn of the loop: the task is
    cancelled, as with ``asyncio.timeout``, so that nothing answers a client that left."""

    async def main() -> bool:
        deadline = after(0.01)

        async def keep() -> None:
            with deadline:
                time.sleep(0.05)  # noqa: ASYNC251 - held on purpose: both timers fall due
                await asyncio.sleep(5)

        task = asyncio.create_task(keep())
        asyncio.get_running_loop().call_later(0.02, task.cancel)
        with pytest.raises(asyncio.CancelledError):
            await task
        return deadline.expired

    assert run(main()) is True


def test_nested_deadlines_each_answer_for_their_own(run: Runner[Any]) -> None:
    async def main() -> tuple[bool, bool, bool, bool]:
        outer, inner = after(5), after(0.02)
        with outer:
            with pytest.raises(TimeoutError), inner:
                await asyncio.sleep(5)
            await asyncio.sleep(0.01)  # the outer block goes on
        first = outer.expired, inner.expired
        outer, inner = after(0.02), after(5)
        with pytest.raises(TimeoutError), outer, inner:  # outer's cancel passes through inner
            await asyncio.sleep(5)
        return (*first, outer.expired, inner.expired)

    assert run(main()) == (False, True, True, False)
