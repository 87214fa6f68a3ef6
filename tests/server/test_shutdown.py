"""The drain's count of requests in flight (server/shutdown.py), without a server."""

from __future__ import annotations

import asyncio

from tokenyard.errors import ServiceUnavailable
from tokenyard.server.shutdown import Drain


async def _no_end(error: ServiceUnavailable) -> None:
    raise AssertionError("no request is ended here")


def test_the_drain_waits_for_requests_that_began_after_an_idle_spell() -> None:
    async def scenario() -> None:
        drain = Drain()
        assert await drain.guard(asyncio.sleep(0, "one"), begun=lambda: False, end=_no_end) == "one"
        assert drain.in_flight == 0  # idle again
        gate = asyncio.Event()
        running = [
            asyncio.create_task(drain.guard(gate.wait(), begun=lambda: False, end=_no_end))
            for _ in range(2)
        ]
        await asyncio.sleep(0)
        assert drain.in_flight == 2
        draining = asyncio.create_task(drain.drain(5.0))
        await asyncio.sleep(0.01)
        assert not draining.done()  # the two are still running
        gate.set()
        await asyncio.wait_for(draining, 1.0)
        assert drain.in_flight == 0
        assert all(task.result() is True for task in running)

    asyncio.run(scenario())
