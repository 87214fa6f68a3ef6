"""The Redis bus on a real Redis server: events reach the other processes (never their
sender), state is kept for late joiners, malformed payloads and a missing Redis harm nothing."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from redis.asyncio import Redis

from tests.e2e.harness import free_port
from tokenyard.store.redis_bus import RedisBus

pytestmark = pytest.mark.services
DB = 6  # apart from the other tests' databases, and so (see CHANNEL) from their events


def url() -> str:
    base = os.environ.get("TOKENYARD_TEST_REDIS")
    if not base:
        pytest.fail("TOKENYARD_TEST_REDIS is not set: run the tests through `make test`")
    return base.rsplit("/", 1)[0] + f"/{DB}"


async def eventually(check: Callable[[], bool], within_s: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "not within the deadline"
        await asyncio.sleep(0.01)


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


def test_events_reach_the_other_processes_and_never_their_sender() -> None:
    tag = secrets.token_hex(4)

    async def scenario() -> None:
        a, b = RedisBus(url()), RedisBus(url())
        got_a: list[dict[str, Any]] = []
        got_b: list[dict[str, Any]] = []
        a.listen(lambda e: got_a.append(e) if e.get("tag") == tag else None)
        b.listen(lambda e: got_b.append(e) if e.get("tag") == tag else None)
        await asyncio.wait_for(asyncio.gather(a.connected.wait(), b.connected.wait()), 5)
        a.publish({"t": "revoke", "tag": tag})
        await eventually(lambda: len(got_b) == 1)
        assert got_b[0]["t"] == "revoke" and got_b[0]["from"] == a.origin
        await asyncio.sleep(0.1)
        assert got_a == []
        await a.close()
        await b.close()

    run(scenario)


def test_kept_state_reaches_a_process_that_starts_later_with_the_time_it_has_left() -> None:
    tag = secrets.token_hex(4)

    async def scenario() -> None:
        early = RedisBus(url())
        early.publish({"t": "cool", "tag": tag, "s": 30}, state_key=f"cool:{tag}", ttl_s=30)
        early.publish({"t": "cool", "tag": tag, "s": 0.0}, state_key=f"gone:{tag}", ttl_s=30)
        early.publish({"t": "cool", "tag": tag, "s": 0.0}, state_key=f"gone:{tag}", ttl_s=0)
        await early.flush()
        late = RedisBus(url())
        got: list[dict[str, Any]] = []
        late.listen(lambda e: got.append(e) if e.get("tag") == tag else None)
        await asyncio.wait_for(late.connected.wait(), 5)
        assert len(got) == 1  # the deleted one is not kept
        assert got[0]["s"] == 30 and 29 < got[0]["ttl_s"] <= 30
        await early.close()
        await late.close()

    run(scenario)


def test_a_malformed_payload_is_ignored_and_later_events_still_arrive() -> None:
    tag = secrets.token_hex(4)

    async def scenario() -> None:
        bus, sender = RedisBus(url()), RedisBus(url())
        got: list[dict[str, Any]] = []
        bus.listen(lambda e: got.append(e) if e.get("tag") == tag else None)
        await asyncio.wait_for(bus.connected.wait(), 5)
        raw = Redis.from_url(url())
        await raw.publish(bus.channel, b"{not json")
        await raw.publish(bus.channel, b"[1, 2]")
        await raw.aclose()
        sender.publish({"t": "revoke", "tag": tag})
        await eventually(lambda: len(got) == 1)
        await bus.close()
        await sender.close()

    run(scenario)


def test_two_databases_on_one_server_do_not_hear_each_other() -> None:
    tag = secrets.token_hex(4)

    async def scenario() -> None:
        here, elsewhere = RedisBus(url()), RedisBus(url().rsplit("/", 1)[0] + f"/{DB + 1}")
        got: list[dict[str, Any]] = []
        here.listen(lambda e: got.append(e) if e.get("tag") == tag else None)
        await asyncio.wait_for(here.connected.wait(), 5)
        elsewhere.publish({"t": "revoke", "tag": tag})
        await elsewhere.flush()
        await asyncio.sleep(0.2)
        assert got == []
        await here.close()
        await elsewhere.close()

    run(scenario)


def test_without_redis_publishing_is_harmless_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()  # nothing listens there: connections are refused

    async def scenario() -> None:
        bus = RedisBus(f"redis://127.0.0.1:{port}/0")
        bus.listen(lambda _e: None)
        for _ in range(3):
            bus.publish({"t": "revoke"})
        await bus.flush()
        await asyncio.sleep(0.3)  # the listener retries in the background
        assert not bus.connected.is_set()
        await bus.close()

    with caplog.at_level(logging.WARNING, logger="tokenyard.store.redis_bus"):
        run(scenario)
    warnings = [r for r in caplog.records if "redis unreachable" in r.getMessage()]
    assert len(warnings) == 1
