"""Database fixtures for the store tests: SQLite in tmp_path, PostgreSQL when enabled.

PostgreSQL tests run only when ``ASMSPOTTER_TEST_DATABASE_URL`` names a server where
the user may create databases, e.g.
``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``; each test gets a fresh
database ``asm_test_<random>``, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from asmspotter.storage import Store

PG_URL_ENV = "ASMSPOTTER_TEST_DATABASE_URL"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """URL of an empty database of each backend."""
    if request.param == "sqlite":
        # A directory that does not exist yet: the store must create it.
        yield f"sqlite:///{tmp_path / 'data' / 'asmspotter.sqlite'}"
        return
    admin_url = os.environ.get(PG_URL_ENV)
    if not admin_url:
        pytest.skip(
            f"PostgreSQL store tests are off: set {PG_URL_ENV}="
            "postgresql+psycopg://postgres@127.0.0.1:5432/postgres (a user allowed to "
            "CREATE DATABASE) to run them."
        )
    name = f"asm_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """An open store on a fresh database of each backend."""
    opened = Store(database_url)
    try:
        yield opened
    finally:
        opened.close()
