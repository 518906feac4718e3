"""The database under the store: URL, engine, migrations, sessions.

Opens a SQLite file (the default) or a PostgreSQL database by SQLAlchemy URL, brings
the schema up to date with the Alembic migrations in ``migrations/`` (see
:func:`upgrade_database`), and refuses to recreate a lost SQLite file silently
(:func:`check_database_present`). :class:`StoreBase` holds one engine and hands out
one transaction per call; the table modules (``runs``, ``sites``, ``reviews``,
``deliveries``) and ``locks`` build :class:`~asmspotter.storage.store.Store` on it.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, InterfaceError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from asmspotter.storage.errors import (
    DatabaseMissingError,
    DatabaseUnavailableError,
    DatabaseURLError,
    RecordNotFoundError,
)
from asmspotter.storage.schema import AOIRow, Base, RunRow, SiteRow

logger = logging.getLogger(__name__)

DATABASE_URL_SETTING = "ASMSPOTTER_DATABASE_URL"
"""Environment variable (setting) holding the database URL; named in every connection error."""

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
"""The Alembic script directory, shipped as package data."""

# Arbitrary constant key for pg_advisory_xact_lock: serialises schema upgrades when
# several workers open a fresh PostgreSQL database at once ("asm" in ASCII).
_MIGRATION_LOCK_KEY = 0x61736D

# Execution option marking read-only transactions (plain BEGIN on SQLite).
_READ_ONLY_OPTION = "asmspotter_read_only"

# Rows per multi-row INSERT; keeps well under SQLite's bound-parameter limit.
_CHUNK = 500


def redact_database_url(url: str | URL) -> str:
    """Return a database URL with its password replaced by ``***``, safe to log.

    Args:
        url: SQLAlchemy database URL, e.g. ``postgresql+psycopg://u:secret@host/db``.

    Returns:
        The URL with the password hidden; an unparseable URL has any ``:password@``
        part masked.
    """
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def alembic_config(url: str | None = None) -> Config:
    """Build the Alembic configuration in code (there is no ``alembic.ini``).

    Args:
        url: Database URL for Alembic's own engine; None when the caller passes an open
            connection in ``config.attributes["connection"]``.

    Returns:
        A config whose ``script_location`` is the ``migrations`` folder of this package.
    """
    config = Config()
    # configparser interpolates '%', so it is doubled in paths and URLs.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def create_database_engine(url: str) -> Engine:
    """Create the SQLAlchemy engine for a SQLite or PostgreSQL URL.

    SQLite gets its parent directory created, foreign keys enforced, WAL journaling
    (readers never block the writer) and real transactions (``BEGIN`` emitted by
    SQLAlchemy rather than guessed by the ``sqlite3`` module).

    Args:
        url: SQLAlchemy URL, e.g. ``sqlite:///data/asmspotter.sqlite`` or
            ``postgresql+psycopg://user:pw@host:5432/asmspotter``.

    Returns:
        The engine; nothing is connected yet.

    Raises:
        DatabaseURLError: The URL is malformed, its driver is not installed, or it
            names a database other than SQLite or PostgreSQL.
        DatabaseUnavailableError: The SQLite file's directory cannot be created.
    """
    redacted = redact_database_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseURLError(
            f"database URL {redacted!r} cannot be parsed ({exc}); set {DATABASE_URL_SETTING} "
            "to a SQLAlchemy URL such as 'sqlite:///data/asmspotter.sqlite' or "
            "'postgresql+psycopg://user:password@host:5432/asmspotter'."
        ) from exc
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise DatabaseURLError(
            f"database URL {redacted!r} names {backend!r}; asmspotter supports 'sqlite' and "
            f"'postgresql'. Set {DATABASE_URL_SETTING} to one of those."
        )
    kwargs: dict[str, Any] = {}
    if backend == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            parent = Path(database).expanduser().parent
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseUnavailableError(
                    f"cannot create the directory {str(parent)!r} of the SQLite database "
                    f"{redacted!r}: {exc}. Set {DATABASE_URL_SETTING} to a writable path."
                ) from exc
        # Wait up to 30 s for a concurrent writer instead of failing with "locked".
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(parsed, **kwargs)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        hint = " (pip install 'psycopg[binary]')" if backend == "postgresql" else ""
        raise DatabaseURLError(
            f"cannot create a database engine for {redacted!r}: {exc}{hint}. "
            f"Check {DATABASE_URL_SETTING}."
        ) from exc
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    """Enable foreign keys and WAL, and hand transaction control to SQLAlchemy."""
    # https://docs.sqlalchemy.org/en/20/dialects/sqlite.html#serializable-isolation-savepoints-transactional-ddl
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
    finally:
        cursor.close()


def _sqlite_on_begin(connection: Any) -> None:
    """Emit BEGIN ourselves (see :func:`_sqlite_on_connect`).

    Writing transactions take the write lock up front (``BEGIN IMMEDIATE``): a deferred
    transaction that reads and then writes fails at once with "database is locked"
    when another writer got in between, without waiting for the busy timeout.
    """
    read_only = connection.get_execution_options().get(_READ_ONLY_OPTION, False)
    connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def unavailable_error(redacted: str, exc: Exception) -> DatabaseUnavailableError:
    """Build the error for a database that failed under us."""
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = detail[0] if detail else type(exc).__name__
    return DatabaseUnavailableError(
        f"cannot use the asmspotter database at {redacted!r}: {first}. Check that the "
        f"server is running and reachable, or set {DATABASE_URL_SETTING} to another "
        "database URL."
    )


def upgrade_engine(engine: Engine) -> None:
    """Run ``alembic upgrade head`` on ``engine`` in one transaction."""
    redacted = redact_database_url(engine.url)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                )
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except (OperationalError, InterfaceError) as exc:
        raise unavailable_error(redacted, exc) from exc


def upgrade_database(url: str) -> None:
    """Bring the database at ``url`` to the latest schema; safe to call any time.

    Works on an empty database (creates every table) and on an up-to-date one (does
    nothing). :class:`Store` calls it on open.

    Args:
        url: SQLAlchemy database URL.

    Raises:
        DatabaseURLError: The URL is unusable.
        DatabaseUnavailableError: The database cannot be reached.
    """
    with _short_lived_engine(url) as engine:
        upgrade_engine(engine)


def schema_revision(url: str) -> str | None:
    """Return the Alembic revision the database at ``url`` is at (None when empty).

    Args:
        url: SQLAlchemy database URL.

    Raises:
        DatabaseURLError: The URL is unusable.
        DatabaseUnavailableError: The database cannot be reached.
    """
    from alembic.runtime.migration import MigrationContext

    with _short_lived_engine(url) as engine:
        try:
            with engine.connect() as connection:
                return MigrationContext.configure(connection).get_current_revision()
        except (OperationalError, InterfaceError) as exc:
            raise unavailable_error(redact_database_url(url), exc) from exc


@contextmanager
def _short_lived_engine(url: str) -> Iterator[Engine]:
    """An engine for one call on ``url``, its pooled connections closed afterwards."""
    engine = create_database_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


OUTPUT_MARKERS = ("composite.tif", "sites.geojson")
"""Files whose presence in ``<outputs>/<aoi>/<window end>/`` shows that runs happened."""


def sqlite_database_path(url: str) -> Path | None:
    """The file of a SQLite URL; None for PostgreSQL or an in-memory database."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:"):
        return None
    return Path(database).expanduser()


def check_database_present(url: str, outputs_dir: Path) -> None:
    """Refuse to create a new SQLite file silently where earlier runs left outputs.

    A deleted (or moved) database would otherwise be recreated empty on open: every
    site's history is gone and sites already alerted are alerted again as new.
    Starting a new history is a decision the user makes with ``asmspotter db init``.

    Args:
        url: SQLAlchemy URL of the store.
        outputs_dir: The runs' output folder (``<data_dir>/outputs``).

    Raises:
        DatabaseMissingError: the SQLite file does not exist but ``outputs_dir`` holds
            outputs of earlier runs; names both and the two ways out.
    """
    path = sqlite_database_path(url)
    if path is None or path.exists():
        return
    earlier = next(
        (found for marker in OUTPUT_MARKERS for found in sorted(outputs_dir.glob(f"*/*/{marker}"))),
        None,
    )
    if earlier is None:
        return
    raise DatabaseMissingError(
        f"the database {path} does not exist, but {outputs_dir} holds outputs of earlier "
        f"runs (e.g. {earlier}): their site history and alert records would be lost and "
        "every site alerted again as new. Restore the database file (or set "
        f"{DATABASE_URL_SETTING} to where it is), or run `asmspotter db init` to start an "
        "empty history on purpose."
    )


def utcnow() -> dt.datetime:
    """Now, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


def finite_or_none(value: float | None) -> float | None:
    """Store NaN and infinities as NULL ("not measured")."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    """Split a sequence into consecutive chunks of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    """Raise ValueError naming the argument and the valid choices."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}.")


class StoreBase:
    """One engine and its sessions, on which every part of the store is built.

    Takes the database URL and runs the migrations on open unless ``upgrade`` is off;
    :class:`~asmspotter.storage.store.Store` documents both.
    """

    def __init__(self, url: str, *, upgrade: bool = True) -> None:
        self.url = redact_database_url(url)
        """The database URL with its password hidden, safe to log and show."""
        self._engine = create_database_engine(url)
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(
            self._engine.execution_options(**{_READ_ONLY_OPTION: True}), expire_on_commit=False
        )
        if upgrade:
            upgrade_engine(self._engine)
        logger.debug("opened asmspotter store at %s", self.url)

    def close(self) -> None:
        """Close every pooled connection. The store can still be used afterwards."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    @contextmanager
    def _transaction(self, *, read_only: bool = False) -> Iterator[Session]:
        """One session and transaction; commit on success, roll back on error."""
        sessions = self._read_sessions if read_only else self._sessions
        try:
            with sessions.begin() as session:
                yield session
        except (OperationalError, InterfaceError) as exc:
            raise unavailable_error(self.url, exc) from exc

    def _insert(self, model: type[Base]) -> postgresql.Insert | sqlite.Insert:
        """Dialect-specific INSERT that supports ``on_conflict_do_*``."""
        if self._engine.dialect.name == "postgresql":
            return postgresql.insert(model)
        return sqlite.insert(model)

    @staticmethod
    def _require_aoi(session: Session, aoi_name: str) -> AOIRow:
        """Return the AOI row or raise naming the fix."""
        aoi = session.get(AOIRow, aoi_name)
        if aoi is None:
            raise RecordNotFoundError(
                f"AOI {aoi_name!r} is not in the store; call Store.upsert_aoi({aoi_name!r}, "
                "title, epsg) before recording runs, scenes or sites for it."
            )
        return aoi

    def _require_run(self, session: Session, run_id: int) -> RunRow:
        """Return the run row or raise naming the store."""
        run = session.get(RunRow, run_id)
        if run is None:
            raise RecordNotFoundError(f"run {run_id} is not in the store ({self.url}).")
        return run

    def _require_site(self, session: Session, site_id: str, *, for_update: bool = False) -> SiteRow:
        """Return the site row (locked for update when asked) or raise naming the store."""
        site = session.get(SiteRow, site_id, with_for_update=for_update)
        if site is None:
            raise RecordNotFoundError(f"site {site_id!r} is not in the store ({self.url}).")
        return site
