"""The hedging race on plain asyncio tasks: who wins, what is cancelled, what is closed —
also on the paths the end-to-end tests cannot time exactly (ties, interruptions)."""

from __future__ import annotations

import asyncio

import pytest

from tokenyard.errors import UpstreamRejected
from tokenyard.gateway.hedge import Racer, race


class Racers:
    """Starts racers and remembers what happened to them."""

    def __init__(self) -> None:
        self.cancelled: list[str] = []
        self.discarded: list[str] = []

    def start(self, name: str, after_s: float, answers: bool = True) -> Racer[str]:
        async def run() -> str | None:
            try:
                await asyncio.sleep(after_s)
            except asyncio.CancelledError:
                self.cancelled.append(name)
                raise
            return name if answers else None

        return asyncio.create_task(run())

    def failing(self, after_s: float) -> Racer[str]:
        async def run() -> str | None:
            await asyncio.sleep(after_s)
            raise UpstreamRejected("bad temperature")

        return asyncio.create_task(run())

    async def discard(self, answer: str) -> None:
        self.discarded.append(answer)


def test_a_fast_first_racer_needs_no_hedge() -> None:
    async def main() -> tuple[str | None, list[str]]:
        racers, started = Racers(), []

        def hedge() -> Racer[str] | None:
            started.append("hedge")
            return racers.start("b", 0.0)

        return await race(racers.start("a", 0.01), 0.2, hedge, racers.discard), started

    assert asyncio.run(main()) == ("a", [])


def test_the_hedge_wins_and_the_slow_racer_is_cancelled() -> None:
    async def main() -> tuple[str | None, Racers]:
        racers = Racers()
        won = await race(
            racers.start("a", 5), 0.01, lambda: racers.start("b", 0.01), racers.discard
        )
        return won, racers

    won, racers = asyncio.run(main())
    assert won == "b"
    assert racers.cancelled == ["a"]
    assert racers.discarded == []


def test_a_failing_racer_leaves_the_race_to_the_other() -> None:
    async def main() -> str | None:
        racers = Racers()
        slow = racers.start("a", 0.1)
        return await race(slow, 0.01, lambda: racers.start("b", 0.0, answers=False), racers.discard)

    assert asyncio.run(main()) == "a"


def test_none_when_every_racer_failed_or_nothing_was_left_to_start() -> None:
    async def main() -> tuple[str | None, str | None]:
        racers = Racers()
        both = await race(
            racers.start("a", 0.05, answers=False),
            0.01,
            lambda: racers.start("b", 0.0, answers=False),
            racers.discard,
        )
        alone = await race(racers.start("c", 0.05), 0.01, lambda: None, racers.discard)
        return both, alone

    assert asyncio.run(main()) == (None, "c")


def test_the_requests_own_error_ends_the_race_and_cancels_the_other() -> None:
    async def main() -> Racers:
        racers = Racers()
        with pytest.raises(UpstreamRejected):
            await race(racers.start("a", 5), 0.01, lambda: racers.failing(0.0), racers.discard)
        return racers

    assert asyncio.run(main()).cancelled == ["a"]


def test_on_a_tie_the_earlier_racer_wins_and_the_other_answer_is_closed() -> None:
    async def main() -> tuple[str | None, Racers]:
        racers, go = Racers(), asyncio.Event()

        async def answer(name: str) -> str | None:
            await go.wait()
            return name

        def hedge() -> Racer[str]:
            asyncio.get_running_loop().call_later(0.01, go.set)  # both answer at once
            return asyncio.create_task(answer("b"))

        return await race(asyncio.create_task(answer("a")), 0.01, hedge, racers.discard), racers

    won, racers = asyncio.run(main())
    assert won == "a"
    assert racers.discarded == ["b"]


def test_an_interrupted_race_cancels_the_racers_and_keeps_no_answer() -> None:
    async def main() -> Racers:
        racers = Racers()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):  # the request's deadline
                await race(racers.start("a", 5), 0.01, lambda: racers.start("b", 5), racers.discard)
        return racers

    assert sorted(asyncio.run(main()).cancelled) == ["a", "b"]


def test_a_winner_nobody_will_read_is_closed_when_the_race_is_interrupted() -> None:
    async def main() -> Racers:
        racers = Racers()

        async def slow_to_let_go() -> str | None:
            try:
                await asyncio.sleep(5)
            except asyncio.CancelledError:
                await asyncio.sleep(0.2)  # closing its upstream takes a while
                raise
            return "b"

        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):  # passes while the loser is being stopped
                await race(
                    racers.start("a", 0.02),
                    0.0,
                    lambda: asyncio.create_task(slow_to_let_go()),
                    racers.discard,
                )
        return racers

    assert asyncio.run(main()).discarded == ["a"]
