"""The app tells the SQLite writer when a request is alone in flight (server/app.py), so
that its hold and charge commit at once instead of waiting a loop turn for others to join
(store/sqlite_writer.py). With two in flight they share commits again."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from tests.server.built import built_app
from tokenyard.errors import ServiceUnavailable
from tokenyard.server.shutdown import DRAIN
from tokenyard.server.state import DATABASE


def config_text(directory: Path) -> str:
    return f"""
database: sqlite:///{directory / "alone.db"}
providers:
  p: {{api: openai, base_url: "http://127.0.0.1:9/v1", keys: [{{key: sk-alone}}]}}
models:
  m:
    deployments: [{{provider: p, model: x, price: {{input: 1}}}}]
"""


async def never_ends(_error: ServiceUnavailable) -> None:
    raise AssertionError("nothing is shut down here")


async def scenario(directory: Path) -> list[bool]:
    async with built_app(config_text(directory)) as app:
        return await in_flight(app)


async def in_flight(app: web.Application) -> list[bool]:
    """What the writer is told with nothing, one, two, then nothing in flight."""
    writer = app[DATABASE].sqlite_writer()
    assert writer is not None
    drain = app[DRAIN]
    seen = [writer.alone()]
    answered = asyncio.Event()

    def request() -> asyncio.Task[bool]:
        return asyncio.create_task(drain.guard(answered.wait(), begun=bool, end=never_ends))

    first = request()
    await asyncio.sleep(0)
    seen.append(writer.alone())  # one request in flight: alone
    second = request()
    await asyncio.sleep(0)
    seen.append(writer.alone())  # two: their operations share a turn's commit
    answered.set()
    await asyncio.gather(first, second)
    seen.append(writer.alone())
    return seen


def test_the_writer_commits_at_once_only_while_one_request_is_in_flight(tmp_path: Path) -> None:
    assert asyncio.run(scenario(tmp_path)) == [True, True, False, True]
