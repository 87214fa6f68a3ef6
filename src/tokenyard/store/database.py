"""The engine: SQLite (WAL) by default, PostgreSQL through the same code."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tokenyard.errors import ServiceUnavailable
from tokenyard.store.holds import HoldStore
from tokenyard.store.postgres_holds import PostgresHolds
from tokenyard.store.sqlite_holds import SqliteHolds

_MIGRATIONS = Path(__file__).parent / "migrations"


def async_url(url: str) -> str:
    """Map the config's plain URLs to the async drivers."""
    for plain, driver in (
        ("sqlite://", "sqlite+aiosqlite://"),
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    def __init__(self, url: str):
        self.url = async_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        options: dict[str, Any] = {"pool_pre_ping": not self.is_sqlite}
        if not self.is_sqlite:
            options.update(pool_size=10, max_overflow=20)
        self.engine: AsyncEngine = create_async_engine(self.url, **options)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)

    async def upgrade(self) -> None:
        """Apply every migration (Alembic) up to the newest."""
        try:
            async with self.engine.begin() as conn:
                await conn.run_sync(_upgrade)
        except (SQLAlchemyError, OSError) as exc:
            raise ServiceUnavailable(f"database unavailable: {type(exc).__name__}") from None

    async def ping(self, timeout_s: float = 2.0) -> bool:
        try:
            async with asyncio.timeout(timeout_s), self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError, TimeoutError):
            return False
        return True

    def hold_store(self) -> HoldStore:
        """The hot-path money operations for this database (see holds.py)."""
        if self.is_sqlite:
            path = self.url.split(":///", 1)[1]
            if not path or path == ":memory:":
                raise ServiceUnavailable("an in-memory SQLite database cannot hold money")
            return SqliteHolds(path)
        return PostgresHolds("postgresql://" + self.url.split("://", 1)[1])

    async def close(self) -> None:
        await self.engine.dispose()


def _upgrade(connection: Connection) -> None:
    from alembic import command  # loaded only to migrate: it costs a fifth of a second
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")
