"""Fixtures shared by every test directory: the databases the gateway runs on."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import postgres_database


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)]
)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A fresh, empty database: an SQLite file, or a new database on the PostgreSQL server
    that the test command starts (its URL in TOKENYARD_TEST_PG)."""
    if request.param == "sqlite":
        directory: Path = tmp_path_factory.mktemp("sqlite")
        yield f"sqlite:///{directory / 'tokenyard.db'}"
        return
    admin_url = os.environ.get("TOKENYARD_TEST_PG")
    if not admin_url:
        pytest.fail(
            "TOKENYARD_TEST_PG is not set: run the tests through `make test`, which starts "
            "PostgreSQL, or deselect them with -m 'not services'"
        )
    url, drop = postgres_database(admin_url)
    yield url
    drop()
