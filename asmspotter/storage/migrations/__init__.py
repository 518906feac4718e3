"""Alembic migrations of the asmspotter database, run in code by ``asmspotter.storage``.

``env.py`` is loaded by Alembic, not imported; ``versions/`` holds one module per
schema revision (``0001_initial.py`` first). After changing ``schema.py``, write the
next revision against an up-to-date scratch database::

    from alembic import command
    from asmspotter.storage import alembic_config, upgrade_database

    upgrade_database("sqlite:///scratch.sqlite")
    command.revision(
        alembic_config("sqlite:///scratch.sqlite"), "describe it", autogenerate=True,
        rev_id="0002",
    )

then review it; ``tests/unit/storage/test_store.py`` checks that the migrations build
exactly what the models describe, on SQLite and PostgreSQL.
"""
