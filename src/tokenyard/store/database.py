"""The engine: SQLite (WAL) by default, PostgreSQL through the same code."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DisconnectionError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tokenyard.errors import ServiceUnavailable
from tokenyard.store.holds import HoldStore
from tokenyard.store.postgres_holds import PostgresHolds
from tokenyard.store.sqlite_holds import SqliteHolds
from tokenyard.store.sqlite_writer import SqliteWriter, configure

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

_MIGRATIONS = Path(__file__).parent / "migrations"
CONNECT_TIMEOUT_S = 5.0
"""How long opening a PostgreSQL connection may take: a server that is down or unreachable
fails a request within this instead of asyncpg's default minute."""
COMMAND_TIMEOUT_S = 60.0
"""The longest a statement through the engine may run (reports, purges, migrations); a
stalled server frees the waiting request or job after it. The hot-path money operations
have their own, shorter bound (postgres_holds.py)."""
PING_TIMEOUT_S = 2.0
"""How long the check of a pooled PostgreSQL connection before each use may take: a server
that stalled while the connection sat in the pool fails the request after it (503)."""


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
    configure(cursor.execute, busy_ms=10_000)
    cursor.close()


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


class Database:
    def __init__(self, url: str):
        self.url = async_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        self._writer: SqliteWriter | None = None
        # JSON columns (the request log's attempts) are encoded by orjson: a tenth of the
        # standard library's time, and read back by either.
        options: dict[str, Any] = {"json_serializer": _json_text}
        if not self.is_sqlite:
            options.update(
                pool_size=10,
                max_overflow=20,
                connect_args={"timeout": CONNECT_TIMEOUT_S, "command_timeout": COMMAND_TIMEOUT_S},
            )
        self.engine: AsyncEngine = create_async_engine(self.url, **options)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            event.listen(self.engine.sync_engine, "do_connect", _connect)
            event.listen(self.engine.sync_engine, "checkout", _pinger(self.engine.dialect))

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

    def sqlite_writer(self) -> SqliteWriter | None:
        """The process's group-committing writer of this SQLite file (sqlite_writer.py),
        shared by the holds and the request log; None for PostgreSQL or an in-memory
        database."""
        if not self.is_sqlite:
            return None
        if self._writer is None:
            path = self.url.split(":///", 1)[1]
            if not path or path == ":memory:":
                return None
            self._writer = SqliteWriter(path)
        return self._writer

    def hold_store(self) -> HoldStore:
        """The hot-path money operations for this database (see holds.py)."""
        if self.is_sqlite:
            writer = self.sqlite_writer()
            if writer is None:
                raise ServiceUnavailable("an in-memory SQLite database cannot hold money")
            return SqliteHolds(writer)
        return PostgresHolds("postgresql://" + self.url.split("://", 1)[1])

    async def close(self) -> None:
        if self._writer is not None:
            await self._writer.close()
        await self.engine.dispose()


def _connect(dialect: Dialect, _record: Any, cargs: Any, cparams: Any) -> Any:
    """Open a connection, as SQLAlchemy would. A refused or timed-out connect leaves asyncpg
    as a bare OSError (TimeoutError is one), which SQLAlchemy passes through unwrapped; make
    it the driver's OperationalError, so that it arrives as the SQLAlchemyError every store
    already turns into ServiceUnavailable: a 503, never a 500 or a dead background task."""
    try:
        return dialect.connect(*cargs, **cparams)
    except OSError as exc:
        failure = dialect.loaded_dbapi.OperationalError
        raise failure(f"cannot connect: {type(exc).__name__}") from exc


def _pinger(dialect: Dialect) -> Callable[[Any, Any, Any], None]:
    """SQLAlchemy's ``pool_pre_ping``, with a bound of its own: that ping waits as long as
    any statement (COMMAND_TIMEOUT_S), so a stalled server held every request for a minute.
    A connection that died with a restarted server is replaced before use, so the first
    requests after it returns do not fail on it; one that does not answer within
    PING_TIMEOUT_S fails the request as the driver's OperationalError (a 503) and is
    dropped."""

    def ping(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        try:
            dbapi_connection.run_async(lambda conn: conn.fetchrow(";", timeout=PING_TIMEOUT_S))
        except TimeoutError as exc:
            failure = dialect.loaded_dbapi.OperationalError
            raise failure("the database does not answer") from exc
        except Exception as exc:  # closed, reset, refused: the connection is gone
            raise DisconnectionError(f"connection lost: {type(exc).__name__}") from exc

    return ping


def migrations(connection: Connection) -> AlembicConfig:
    """Alembic's configuration for our migrations, run on ``connection`` (migrations/env.py
    takes it from there)."""
    from alembic.config import Config  # loaded only to migrate: it costs a fifth of a second

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    from alembic import command

    command.upgrade(migrations(connection), "head")
