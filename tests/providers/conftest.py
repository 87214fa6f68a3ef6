"""Fixtures shared by the provider tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import uvloop

from tests.roundtrip.fixtures import bench

__all__ = ["any_loop", "bench"]


@pytest.fixture(params=["uvloop", "asyncio"])
def any_loop(request: pytest.FixtureRequest) -> Iterator[str]:
    """Runs the test's ``asyncio.run`` on uvloop (what the gateway runs on) and on asyncio's
    own loop: the two differ in what a protocol sees (a uvloop ``create_connection`` has no
    happy eyeballs, for one), and the upstream client is a protocol."""
    policy = asyncio.get_event_loop_policy()
    if request.param == "uvloop":
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        yield request.param
    finally:
        asyncio.set_event_loop_policy(policy)
