"""``tokenyard db upgrade`` on both databases: idempotent, and it creates the schema."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from tokenyard.store.database import async_url, migrations


def tables(url: str) -> set[str]:
    async def read() -> set[str]:
        engine = create_async_engine(async_url(url))
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
        await engine.dispose()
        return names

    return asyncio.run(read())


def test_db_upgrade_creates_the_schema_and_is_idempotent(database_url: str, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"database: {database_url}\n")
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, "-m", "tokenyard.cli.main", "db", "upgrade", "--config", str(config)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == "database is up to date\n"
    assert {"accounts", "api_keys", "alembic_version"} <= tables(database_url)


def test_db_upgrade_says_when_the_database_is_unreachable(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("database: postgresql://nobody:x@127.0.0.1:9/none\n")
    result = subprocess.run(
        [sys.executable, "-m", "tokenyard.cli.main", "db", "upgrade", "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 3
    assert result.stderr.startswith("tokenyard: database unavailable")


def migrate(path: Path, verb: str, revision: str) -> None:
    """``alembic upgrade|downgrade REVISION`` on a SQLite file, as ``tokenyard db upgrade``
    runs it (its connection handed to the migrations' environment)."""
    from alembic import command
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        getattr(command, verb)(migrations(connection), revision)
    engine.dispose()


def sqlite_schema(path: Path) -> tuple[str, set[str], list[tuple[object, ...]]]:
    """The reservations table's CREATE statement, its indexes, and its rows."""
    conn = sqlite3.connect(path)
    try:
        (create,) = conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'reservations'"
        ).fetchone()
        indexes = {
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'reservations'"
            )
        }
        rows = conn.execute("SELECT * FROM reservations ORDER BY id").fetchall()
        return create, indexes, rows
    finally:
        conn.close()


def test_sqlite_reservations_become_one_btree_and_keep_the_holds_in_flight(
    tmp_path: Path,
) -> None:
    """0007: on SQLite the reservations are a WITHOUT ROWID table with no owner index (one
    B-tree for the hot path's insert and delete); holds in flight during the upgrade (or a
    downgrade) are kept, and the downgrade gives the rowid table and its index back."""
    path = tmp_path / "t.db"
    migrate(path, "upgrade", "0006")
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO accounts (id, name, balance_nano, reserved_nano, created_at) "
        "VALUES ('acct_1', 'a', 100, 30, '2026-11-26 00:00:00')"
    )
    held = [
        ("req_1", "acct_1", None, 10, "host:1:a", "2026-11-26 00:00:01"),
        ("req_2", "acct_1", "key_1", 20, "host:2:b", "2026-11-26 00:00:02"),
    ]
    conn.executemany("INSERT INTO reservations VALUES (?, ?, ?, ?, ?, ?)", held)
    conn.commit()
    conn.close()
    create, indexes, rows = sqlite_schema(path)
    assert "WITHOUT ROWID" not in create
    assert "ix_reservations_owner" in indexes

    migrate(path, "upgrade", "head")
    create, indexes, rows = sqlite_schema(path)
    assert create.rstrip().endswith("WITHOUT ROWID")
    assert indexes == set()  # its key is the table itself
    assert rows == held
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA foreign_keys=ON")
    with pytest.raises(sqlite3.IntegrityError):  # still refers to its account
        conn.execute("INSERT INTO reservations VALUES ('r', 'nobody', NULL, 1, 'o', 'now')")
    conn.close()

    migrate(path, "downgrade", "0006")
    create, indexes, rows = sqlite_schema(path)
    assert "WITHOUT ROWID" not in create
    assert "ix_reservations_owner" in indexes
    assert rows == held
