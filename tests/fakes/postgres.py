"""Fresh PostgreSQL databases for tests, from the URL in ``ASMSPOTTER_TEST_DATABASE_URL``.

Tests that need PostgreSQL ask :func:`postgres_admin_url` for the server: without
the variable they skip with a message saying how to enable them, except under CI
(``CI`` set), where a missing variable is a failure, because CI must run them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

PG_URL_ENV = "ASMSPOTTER_TEST_DATABASE_URL"
"""Variable holding the URL of a PostgreSQL user allowed to CREATE DATABASE."""


def postgres_admin_url(what: str) -> str:
    """The admin URL; skip ``what`` (or fail it under CI) when the variable is unset."""
    import pytest

    url = os.environ.get(PG_URL_ENV)
    if url:
        return url
    message = (
        f"PostgreSQL is needed for {what}: set {PG_URL_ENV}=postgresql+psycopg://postgres@"
        "127.0.0.1:5432/postgres (a user allowed to CREATE DATABASE) to run it."
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def fresh_database(admin_url: str, prefix: str) -> Iterator[str]:
    """Create an empty database, yield its URL, drop it afterwards (even if in use)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
