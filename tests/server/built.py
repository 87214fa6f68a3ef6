"""The real application, as ``build_app`` wires it, for tests that look inside it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from tokenyard.config import parse_config
from tokenyard.server.app import build_app
from tokenyard.store import Database


@asynccontextmanager
async def built_app(config_text: str) -> AsyncIterator[web.Application]:
    """The app of ``config_text``, its database migrated, between its start-up and its
    clean-up (everything it built is closed on the way out)."""
    config = parse_config(config_text, environ={})
    database = Database(config.database)
    await database.upgrade()
    await database.close()
    app = await build_app(config)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    try:
        yield app
    finally:
        await runner.cleanup()
