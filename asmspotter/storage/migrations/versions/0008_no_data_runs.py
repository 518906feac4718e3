"""No-data runs: ``run.status`` may be ``no_data``.

A window without a usable scene (or whose scenes hold not one clear pixel) was
recorded as ``failed`` with a message starting ``no data:``, because the status
check allowed only running/completed/failed. The check now allows ``no_data``, and
such rows become ``no_data`` with the reason alone as their message.

SQLite cannot alter a CHECK constraint, and rebuilding ``run`` (Alembic's batch
mode) would drop the table under foreign keys that cascade: every observation and
alert delivery of every run would go with it. Loosening a CHECK changes no stored
row, so the table's definition is rewritten in place, the procedure SQLite
documents for it (https://www.sqlite.org/lang_altertable.html#otheralter).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_CHECK = "status IN ('running', 'completed', 'failed')"
NEW_CHECK = "status IN ('running', 'completed', 'failed', 'no_data')"
PREFIX = "no data:"


def upgrade() -> None:
    """Allow ``no_data``; turn ``failed`` rows whose message says "no data:" into it."""
    _replace_status_check(OLD_CHECK, NEW_CHECK)
    op.execute(
        "UPDATE run SET status = 'no_data', "
        f"message = NULLIF(LTRIM(SUBSTR(message, {len(PREFIX) + 1})), '') "
        f"WHERE status = 'failed' AND message LIKE '{PREFIX}%'"
    )


def downgrade() -> None:
    """Record ``no_data`` runs as before (``failed``, "no data: <reason>"); narrow the check."""
    op.execute(
        f"UPDATE run SET status = 'failed', message = '{PREFIX} ' || "
        "COALESCE(message, 'no usable scene') WHERE status = 'no_data'"
    )
    _replace_status_check(NEW_CHECK, OLD_CHECK)


def _replace_status_check(old: str, new: str) -> None:
    """Swap the CHECK on ``run.status`` on either database, keeping its name."""
    connection = op.get_bind()
    if connection.dialect.name == "sqlite":
        _rewrite_sqlite_check(connection, old, new)
        return
    names = [
        str(check["name"])
        for check in sa.inspect(connection).get_check_constraints("run")
        if "status" in check["sqltext"]
    ]
    if len(names) != 1:
        raise RuntimeError(f"expected one CHECK on run.status, found {names or 'none'}.")
    op.drop_constraint(op.f(names[0]), "run", type_="check")
    op.create_check_constraint(op.f(names[0]), "run", new)


def _rewrite_sqlite_check(connection: sa.Connection, old: str, new: str) -> None:
    """Rewrite the CHECK in SQLite's stored definition of ``run`` (no row changes)."""
    sql = connection.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'run'"
    ).scalar_one()
    if sql.count(old) != 1:
        raise RuntimeError(f"the definition of table run does not hold {old!r} once: {sql}")
    version = connection.exec_driver_sql("PRAGMA schema_version").scalar_one()
    connection.exec_driver_sql("PRAGMA writable_schema = ON")
    try:
        connection.exec_driver_sql(
            "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'run'",
            (sql.replace(old, new),),
        )
        # A new schema version makes every connection reread the definitions.
        connection.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    finally:
        connection.exec_driver_sql("PRAGMA writable_schema = OFF")
    problems = connection.exec_driver_sql("PRAGMA integrity_check").scalars().all()
    if problems != ["ok"]:
        raise RuntimeError(f"SQLite integrity check failed after rewriting run: {problems}")
