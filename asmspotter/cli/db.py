"""The ``db`` commands: create or upgrade the database schema."""

from __future__ import annotations

from typing import Annotated

import typer

from asmspotter.cli.app import fail
from asmspotter.errors import AsmspotterError

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="SQLAlchemy URL (default: ASMSPOTTER_DATABASE_URL, else the SQLite file "
        "in the data folder).",
    ),
]
"""The ``--url`` option both commands take."""

db_app = typer.Typer(
    help="The asmspotter database: create or upgrade its schema.", no_args_is_help=True
)


@db_app.command("upgrade")
def db_upgrade(
    url: DatabaseUrl = None,
) -> None:
    """Create or upgrade the store's schema (Alembic migrations); safe to repeat."""
    from asmspotter.settings import get_settings
    from asmspotter.storage.engine import redact_database_url, schema_revision, upgrade_database

    target = url or get_settings().resolved_database_url
    try:
        before = schema_revision(target)
        upgrade_database(target)
        after = schema_revision(target)
    except AsmspotterError as exc:
        raise fail(str(exc)) from exc
    change = "already at" if before == after else f"upgraded from {before or 'empty'} to"
    typer.echo(f"{redact_database_url(target)}: {change} revision {after}")


@db_app.command("init")
def db_init(
    url: DatabaseUrl = None,
) -> None:
    """Create the database, even beside outputs of earlier runs (a new, empty history).

    Runs refuse to recreate a missing SQLite file where earlier outputs remain; this
    command is how a user starts over on purpose. An existing database is left as is.
    """
    from asmspotter.settings import get_settings
    from asmspotter.storage.engine import (
        redact_database_url,
        schema_revision,
        sqlite_database_path,
        upgrade_database,
    )

    target = url or get_settings().resolved_database_url
    path = sqlite_database_path(target)
    try:
        before = schema_revision(target) if path is None or path.exists() else None
        if before is not None:
            typer.echo(
                f"{redact_database_url(target)} already exists at revision {before}; "
                "nothing changed (asmspotter db upgrade brings it to the latest schema)."
            )
            return
        upgrade_database(target)
        after = schema_revision(target)
    except AsmspotterError as exc:
        raise fail(str(exc)) from exc
    typer.echo(f"{redact_database_url(target)}: created, empty, at revision {after}")
