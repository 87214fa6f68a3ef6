"""``tokenyard db upgrade`` on both databases: idempotent, and it creates the schema."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from tokenyard.store.database import async_url


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
