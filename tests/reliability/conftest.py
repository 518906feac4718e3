"""Fault-injection suite: every row of issue 13, reproduced and proven fixed.

Each test injects one fault or bad input into a tiny synthetic AOI (256 x 256 px,
three January dates) and checks that nothing is lost (row counts, site checksums,
the outbox) and nothing is doubled. Flows run against one Prefect test server for
the session. PostgreSQL halves run when ``ASMSPOTTER_TEST_DATABASE_URL`` is set.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from fakes.postgres import fresh_database, postgres_admin_url

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "asmspotter")
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """One temporary Prefect server for the flow tests of this suite."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'asmspotter.db'}"
        return
    admin = postgres_admin_url("the PostgreSQL half of the reliability suite")
    with fresh_database(admin, "asm_rel13") as url:
        yield url
