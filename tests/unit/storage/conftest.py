"""Database fixtures for the store tests: SQLite in tmp_path, PostgreSQL when enabled.

PostgreSQL tests run only when ``ASMSPOTTER_TEST_DATABASE_URL`` names a server where
the user may create databases, e.g.
``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``; each test gets a fresh
database ``asm_test_<random>``, dropped afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from asmspotter.storage import Store
from fakes.postgres import fresh_database, postgres_admin_url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """URL of an empty database of each backend."""
    if request.param == "sqlite":
        # A directory that does not exist yet: the store must create it.
        yield f"sqlite:///{tmp_path / 'data' / 'asmspotter.sqlite'}"
        return
    with fresh_database(postgres_admin_url("the PostgreSQL store tests"), "asm_test") as url:
        yield url


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """An open store on a fresh database of each backend."""
    opened = Store(database_url)
    try:
        yield opened
    finally:
        opened.close()
