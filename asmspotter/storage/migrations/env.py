"""Alembic environment for the asmspotter database.

Run by :func:`asmspotter.storage.engine.upgrade_database` (no ``alembic.ini``): the
caller puts an open SQLAlchemy ``Connection`` in ``config.attributes["connection"]``;
without one, an engine is made from the ``sqlalchemy.url`` main option. Offline mode
(``--sql``) renders the SQL for the URL's dialect.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from asmspotter.storage.schema import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    """Configure the migration context on an open connection and run the migrations."""
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds tables for it.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit the migration SQL for the configured URL without connecting."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on the caller's connection, or on a fresh engine."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError(
            "asmspotter migrations need a database: pass a connection in "
            "config.attributes['connection'] or set the sqlalchemy.url main option."
        )
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            _configure(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
