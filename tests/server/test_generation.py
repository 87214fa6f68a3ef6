"""The generation holder (server/generation.py): a swap is immediate for new requests, and
the old generation's upstreams close only when its last pinned request is done."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from tokenyard.config import parse_config
from tokenyard.gateway.flow import Gateway
from tokenyard.providers.registry import Upstreams
from tokenyard.server.generation import Current, Generation

CONFIG = parse_config("models: {}")


class RecordingUpstreams(Upstreams):
    def __init__(self) -> None:
        super().__init__(providers={}, clients=[])
        self.closed = 0

    async def close(self) -> None:
        self.closed += 1


def _generation(number: int) -> Generation:
    return Generation(number, CONFIG, cast(Gateway, None), {}, RecordingUpstreams())


def _closed(generation: Generation) -> int:
    return cast(Any, generation.upstreams).closed  # type: ignore[no-any-return]


def test_old_upstreams_close_after_the_last_pinned_request() -> None:
    async def scenario() -> None:
        first, second = _generation(1), _generation(2)
        current = Current(first)
        pinned = current.pin()
        current.swap(second)
        assert current.pin() is second
        await asyncio.sleep(0)
        assert _closed(first) == 0  # a request still runs on it
        current.unpin(pinned)
        await asyncio.sleep(0)
        assert _closed(first) == 1
        await current.close()
        assert _closed(second) == 1 and _closed(first) == 1

    asyncio.run(scenario())


def test_an_idle_generation_closes_at_once_and_listeners_hear_the_swap() -> None:
    async def scenario() -> None:
        first, second = _generation(1), _generation(2)
        heard: list[int] = []
        current = Current(first, listeners=[lambda g: heard.append(g.number)])
        current.swap(second)
        await asyncio.sleep(0)
        assert _closed(first) == 1
        assert heard == [2]

    asyncio.run(scenario())
