"""The asmspotter store: runs, scenes, sites, observations and alert deliveries.

:class:`Store` is the only way the rest of asmspotter touches the database. It opens
a SQLite file (the default) or a PostgreSQL database by SQLAlchemy URL, brings the
schema up to date with the Alembic migrations in ``migrations/`` (see
:func:`upgrade_database`), and returns frozen dataclasses, never ORM rows.

Idempotency lives here: every write is an upsert on a natural key (see
:mod:`asmspotter.storage.schema`), so re-running a flow for the same AOI and window,
or two workers racing on PostgreSQL, never duplicates scenes, sites, observations or
alerts. Tracking (:mod:`asmspotter.track`) reads :meth:`Store.known_sites` and
:meth:`Store.previous_completed_run` and produces the events :meth:`Store.record_events`
stores; alerting (:mod:`asmspotter.alerts`) uses the delivery methods.

Example:
    >>> import datetime as dt
    >>> store = Store("sqlite://")
    >>> store.upsert_aoi("demo", "Demo AOI", 32621)
    >>> run_id = store.start_run("demo", dt.date(2024, 1, 1), dt.date(2024, 1, 30))
    >>> store.next_site_ids("demo", 2)
    ['demo-0001', 'demo-0002']
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import logging
import math
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from alembic import command
from alembic.config import Config
from shapely import wkt as shapely_wkt
from shapely.errors import ShapelyError
from shapely.geometry.base import BaseGeometry
from sqlalchemy import (
    ColumnElement,
    Engine,
    and_,
    case,
    create_engine,
    delete,
    event,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, InterfaceError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from asmspotter.errors import AsmspotterError, RunInProgressError
from asmspotter.events import CONFIDENCE_LEVELS, SiteEvent
from asmspotter.scenes import SceneRef
from asmspotter.storage.schema import (
    DELIVERY_STATUSES,
    REVIEW_DECISIONS,
    RUN_STATUSES,
    SCENE_STATUSES,
    AlertDeliveryRow,
    AOIRow,
    Base,
    DigestDeliveryRow,
    ObservationRow,
    RunRow,
    SceneRow,
    SiteReviewRow,
    SiteRow,
)
from asmspotter.track import KnownSite

logger = logging.getLogger(__name__)

DATABASE_URL_SETTING = "ASMSPOTTER_DATABASE_URL"
"""Environment variable (setting) holding the database URL; named in every connection error."""

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
"""The Alembic script directory, shipped as package data."""

# Arbitrary constant key for pg_advisory_xact_lock: serialises schema upgrades when
# several workers open a fresh PostgreSQL database at once ("asm" in ASCII).
_MIGRATION_LOCK_KEY = 0x61736D

# Namespace of the per-AOI tracking locks (pg_advisory_lock keys; see Store.tracking_lock).
_TRACKING_LOCK_PREFIX = "asmspotter-track:"

# SQLite has no advisory locks: tracking of one AOI is serialised per process instead.
_SQLITE_TRACKING_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_SQLITE_TRACKING_LOCKS_GUARD = threading.Lock()

# Namespace of the per-(AOI, window) run locks (see Store.run_lock).
_RUN_LOCK_PREFIX = "asmspotter-run:"

# In-memory SQLite databases have no file to lock beside: their run locks are per process.
_MEMORY_RUN_LOCKS: dict[tuple[str, str], threading.Lock] = {}

# How often a waiting run asks again for a run lock held elsewhere, seconds.
_RUN_LOCK_POLL_S = 0.25

# Execution option marking read-only transactions (plain BEGIN on SQLite).
_READ_ONLY_OPTION = "asmspotter_read_only"

# Rows per multi-row INSERT; keeps well under SQLite's bound-parameter limit.
_CHUNK = 500

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")

RunStatus = Literal["running", "completed", "failed"]
SceneStatus = Literal["used", "skipped"]
DeliveryStatus = Literal["delivered", "failed", "outbox"]


class StorageError(AsmspotterError):
    """The store was asked something it cannot do (unknown run, id collision, ...)."""


class DatabaseURLError(StorageError, ValueError):
    """The database URL cannot be parsed or names an unsupported database."""


class DatabaseUnavailableError(StorageError, ConnectionError):
    """The database cannot be reached or opened."""


class DatabaseMissingError(StorageError, FileNotFoundError):
    """The SQLite file is gone while the outputs of earlier runs remain: history lost."""


class RecordNotFoundError(StorageError, LookupError):
    """A run or site id is not in the store."""


@dataclass(frozen=True)
class RunRecord:
    """One monitoring run of one AOI and window.

    Attributes:
        id: Run id (database key).
        aoi_name: AOI slug.
        window_start: First day of the composite window.
        window_end: Last day of the composite window.
        status: ``running``, ``completed`` or ``failed``.
        attempts: How many times the run was started.
        started_at: Start of the latest attempt (UTC).
        finished_at: End of the latest attempt (UTC), None while running.
        n_scenes: Scenes in the composite, if finished.
        composite_path: Composite COG path.
        probability_path: Probability COG path.
        sites_path: Detected-sites GeoJSON path.
        clear_wkt: Clear-observation footprint (>= 1 clear look), WKT in the AOI CRS.
        epsg: EPSG code of ``clear_wkt``.
        message: Error or summary message.
    """

    id: int
    aoi_name: str
    window_start: dt.date
    window_end: dt.date
    status: str
    attempts: int
    started_at: dt.datetime
    finished_at: dt.datetime | None
    n_scenes: int | None
    composite_path: str | None
    probability_path: str | None
    sites_path: str | None
    clear_wkt: str | None
    epsg: int | None
    message: str | None

    @property
    def clear_geometry(self) -> BaseGeometry | None:
        """The clear-observation footprint as a shapely geometry, None if not recorded."""
        return None if self.clear_wkt is None else shapely_wkt.loads(self.clear_wkt)


@dataclass(frozen=True)
class SceneRecord:
    """A scene recorded for an AOI.

    Attributes:
        provider: Provider name.
        scene_id: The provider's scene id.
        aoi_name: AOI slug.
        acquired: Acquisition time (UTC).
        cloud_pct: Scene cloud cover in percent, if known.
        status: ``used`` or ``skipped``.
        reason: Why it was skipped.
        local_path: Where it lies on disk, if downloaded.
    """

    provider: str
    scene_id: str
    aoi_name: str
    acquired: dt.datetime
    cloud_pct: float | None
    status: str
    reason: str | None
    local_path: str | None


@dataclass(frozen=True)
class SiteRecord:
    """A mining site with its latest state.

    Attributes:
        site_id: Persistent site id, e.g. ``demo-0003`` (also as ``id``).
        aoi_name: AOI slug.
        first_seen: Window end of the run that first detected it.
        last_seen: Window end of the latest run that detected it.
        status: ``active`` or ``dismissed``.
        dismissed_reason: Why it was dismissed.
        geometry_wkt: Latest outline, WKT in the AOI CRS (metres).
        epsg: EPSG code of ``geometry_wkt``.
        area_ha: Latest mapped area in hectares.
        centroid_lon: Centroid longitude (EPSG:4326).
        centroid_lat: Centroid latitude (EPSG:4326).
        confirmed_at: When a person confirmed it as a mine (UTC); None if not confirmed.
    """

    site_id: str
    aoi_name: str
    first_seen: dt.date
    last_seen: dt.date
    status: str
    dismissed_reason: str | None
    geometry_wkt: str
    epsg: int
    area_ha: float
    centroid_lon: float
    centroid_lat: float
    confirmed_at: dt.datetime | None = None

    @property
    def review_state(self) -> str:
        """``dismissed``, ``confirmed`` or ``unreviewed``: what a person decided last."""
        if self.status == "dismissed":
            return "dismissed"
        return "confirmed" if self.confirmed_at is not None else "unreviewed"

    @property
    def id(self) -> str:
        """The site id (the table's primary key), same as ``site_id``."""
        return self.site_id

    @property
    def geometry(self) -> BaseGeometry:
        """The latest outline as a shapely geometry in EPSG:``epsg``."""
        return shapely_wkt.loads(self.geometry_wkt)


@dataclass(frozen=True)
class ObservationRecord:
    """One recorded event of one site in one run (a row of a site's history).

    Attributes:
        site_id: Site id.
        run_id: Run id.
        window_end: Window end of the run.
        kind: Event kind (see :data:`asmspotter.events.EventKind`).
        area_ha: Mapped area in hectares (last known for ``not_seen``).
        previous_area_ha: Area at the previous observation.
        growth_ha: Growth measured where both composites were clear, hectares.
        growth_pct: Growth in percent of the comparable previous area.
        mean_probability: Mean model probability inside the outline.
        clear_observations: Clear observations behind the outline.
        verifier_score: The verifier's score of the surroundings (None: not scored).
        confidence: Confidence level; None for observations recorded before levels.
        geometry_wkt: Outline, WKT in the AOI CRS.
        epsg: EPSG code of ``geometry_wkt``.
        centroid_lon: Centroid longitude (EPSG:4326).
        centroid_lat: Centroid latitude (EPSG:4326).
    """

    site_id: str
    run_id: int
    window_end: dt.date
    kind: str
    area_ha: float
    previous_area_ha: float | None
    growth_ha: float | None
    growth_pct: float | None
    mean_probability: float | None
    clear_observations: int
    geometry_wkt: str
    epsg: int
    centroid_lon: float
    centroid_lat: float
    verifier_score: float | None = None
    confidence: str | None = None


@dataclass(frozen=True)
class DeliveryRecord:
    """The delivery state of one event on one channel.

    Attributes:
        id: Delivery id (database key).
        run_id: Run whose event this is.
        site_id: Site id.
        kind: Event kind.
        event_key: Stable event key, e.g. ``demo-0003:expanded:2024-03-01``.
        channel_id: sha256 hex digest of the channel URL.
        channel_label: Channel URL with secrets redacted.
        status: ``delivered``, ``failed`` or ``outbox``.
        attempts: Attempts so far.
        last_error: Error of the latest failed attempt.
        delivered_at: When delivery succeeded (UTC).
    """

    id: int
    run_id: int
    site_id: str
    kind: str
    event_key: str
    channel_id: str
    channel_label: str
    status: str
    attempts: int
    last_error: str | None
    delivered_at: dt.datetime | None


def channel_id_for(channel_url: str) -> str:
    """Return the key under which deliveries to a channel are stored.

    The URL may hold credentials, so the store keeps only its sha256 digest.

    Args:
        channel_url: The apprise URL of the channel, secrets expanded.

    Returns:
        64 lowercase hex characters.
    """
    return hashlib.sha256(channel_url.encode("utf-8")).hexdigest()


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


def _unavailable(redacted: str, exc: Exception) -> DatabaseUnavailableError:
    """Build the error for a database that failed under us."""
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = detail[0] if detail else type(exc).__name__
    return DatabaseUnavailableError(
        f"cannot use the asmspotter database at {redacted!r}: {first}. Check that the "
        f"server is running and reachable, or set {DATABASE_URL_SETTING} to another "
        "database URL."
    )


def _upgrade(engine: Engine) -> None:
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
        raise _unavailable(redacted, exc) from exc


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
    engine = create_database_engine(url)
    try:
        _upgrade(engine)
    finally:
        engine.dispose()


def schema_revision(url: str) -> str | None:
    """Return the Alembic revision the database at ``url`` is at (None when empty).

    Args:
        url: SQLAlchemy database URL.

    Raises:
        DatabaseURLError: The URL is unusable.
        DatabaseUnavailableError: The database cannot be reached.
    """
    from alembic.runtime.migration import MigrationContext

    engine = create_database_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except (OperationalError, InterfaceError) as exc:
        raise _unavailable(redact_database_url(url), exc) from exc
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


def _tracking_lock_key(aoi_name: str) -> int:
    """A stable signed 64-bit advisory-lock key for tracking ``aoi_name``."""
    return _advisory_key(f"{_TRACKING_LOCK_PREFIX}{aoi_name}")


def _advisory_key(name: str) -> int:
    """A stable signed 64-bit ``pg_advisory_lock`` key for ``name``."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _sqlite_lock_dir(engine: Engine) -> Path | None:
    """The folder of run-lock files beside a SQLite file; None for an in-memory database."""
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = Path(database).expanduser()
    return path.with_name(f"{path.name}.locks")


def _run_in_progress(aoi_name: str, window_end: dt.date, where: str) -> RunInProgressError:
    """The error a second run of one AOI window gets, naming the run and the way out."""
    return RunInProgressError(
        f"AOI {aoi_name}: the window ending {window_end} is already being run by another "
        f"process ({where}); this run did not start and changed nothing. Wait for that run "
        "to finish (its result stays), or set ASMSPOTTER_RUN_LOCK_WAIT_S to a number of "
        "seconds to wait for it."
    )


def _utcnow() -> dt.datetime:
    """Now, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


def _as_utc(value: dt.datetime) -> dt.datetime:
    """Attach UTC to naive datetimes (SQLite returns them naive); convert aware ones."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _as_utc_or_none(value: dt.datetime | None) -> dt.datetime | None:
    """:func:`_as_utc` that passes None through."""
    return None if value is None else _as_utc(value)


def _finite_or_none(value: float | None) -> float | None:
    """Store NaN and infinities as NULL ("not measured")."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    """Split a sequence into consecutive chunks of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    """Raise ValueError naming the argument and the valid choices."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}.")


def _run_record(row: RunRow) -> RunRecord:
    """Copy a run row into its dataclass."""
    return RunRecord(
        id=row.id,
        aoi_name=row.aoi_name,
        window_start=row.window_start,
        window_end=row.window_end,
        status=row.status,
        attempts=row.attempts,
        started_at=_as_utc(row.started_at),
        finished_at=_as_utc_or_none(row.finished_at),
        n_scenes=row.n_scenes,
        composite_path=row.composite_path,
        probability_path=row.probability_path,
        sites_path=row.sites_path,
        clear_wkt=row.clear_wkt,
        epsg=row.epsg,
        message=row.message,
    )


def _attempt_updates(
    row: type[AlertDeliveryRow] | type[DigestDeliveryRow], excluded: Any
) -> dict[str, Any]:
    """Upsert values for one more delivery attempt: count it, never downgrade a delivery.

    A row already ``delivered`` keeps its status, time and (empty) error whatever a
    later attempt reports; otherwise the new attempt's values win.
    """
    was_delivered = row.status == "delivered"
    return {
        "status": case((was_delivered, "delivered"), else_=excluded.status),
        "attempts": row.attempts + 1,
        "last_error": case((was_delivered, row.last_error), else_=excluded.last_error),
        "delivered_at": case((was_delivered, row.delivered_at), else_=excluded.delivered_at),
    }


def _observation_record(obs: ObservationRow, window_end: dt.date) -> ObservationRecord:
    """Copy an observation row, with its run's window end, into its dataclass."""
    return ObservationRecord(
        site_id=obs.site_id,
        run_id=obs.run_id,
        window_end=window_end,
        kind=obs.kind,
        area_ha=obs.area_ha,
        previous_area_ha=obs.previous_area_ha,
        growth_ha=obs.growth_ha,
        growth_pct=obs.growth_pct,
        mean_probability=obs.mean_probability,
        clear_observations=obs.clear_observations,
        geometry_wkt=obs.geometry_wkt,
        epsg=obs.epsg,
        centroid_lon=obs.centroid_lon,
        centroid_lat=obs.centroid_lat,
        verifier_score=obs.verifier_score,
        confidence=obs.confidence,
    )


def _site_record(row: SiteRow) -> SiteRecord:
    """Copy a site row into its dataclass."""
    return SiteRecord(
        site_id=row.id,
        aoi_name=row.aoi_name,
        first_seen=row.first_seen,
        last_seen=row.last_seen,
        status=row.status,
        dismissed_reason=row.dismissed_reason,
        geometry_wkt=row.geometry_wkt,
        epsg=row.epsg,
        area_ha=row.area_ha,
        centroid_lon=row.centroid_lon,
        centroid_lat=row.centroid_lat,
        confirmed_at=_as_utc_or_none(row.confirmed_at),
    )


def _delivery_record(row: AlertDeliveryRow) -> DeliveryRecord:
    """Copy a delivery row into its dataclass."""
    return DeliveryRecord(
        id=row.id,
        run_id=row.run_id,
        site_id=row.site_id,
        kind=row.kind,
        event_key=row.event_key,
        channel_id=row.channel_id,
        channel_label=row.channel_label,
        status=row.status,
        attempts=row.attempts,
        last_error=row.last_error,
        delivered_at=_as_utc_or_none(row.delivered_at),
    )


def _is_detected() -> ColumnElement[bool]:
    """SQL condition: the observation saw the site (not hidden, not vanished)."""
    return or_(
        ObservationRow.kind.in_(("new", "expanded", "unchanged")),
        and_(ObservationRow.kind == "shrunk", ObservationRow.area_ha > 0),
    )


class Store:
    """The asmspotter database: one object per process, one transaction per method.

    Opening a store runs the migrations (``alembic upgrade head``), so a fresh SQLite
    file or empty PostgreSQL database is ready to use.

    Args:
        url: SQLAlchemy URL (usually the ``ASMSPOTTER_DATABASE_URL`` setting).
        upgrade: Run the migrations on open; turn off only when another process
            manages the schema.

    Raises:
        DatabaseURLError: The URL is unusable.
        DatabaseUnavailableError: The database cannot be reached.
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
            _upgrade(self._engine)
        logger.debug("opened asmspotter store at %s", self.url)

    # -- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        """Close every pooled connection. The store can still be used afterwards."""
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    @contextmanager
    def _transaction(self, *, read_only: bool = False) -> Iterator[Session]:
        """One session and transaction; commit on success, roll back on error."""
        sessions = self._read_sessions if read_only else self._sessions
        try:
            with sessions.begin() as session:
                yield session
        except (OperationalError, InterfaceError) as exc:
            raise _unavailable(self.url, exc) from exc

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

    @contextmanager
    def tracking_lock(self, aoi_name: str) -> Iterator[None]:
        """Hold the AOI's tracking lock: one run per AOI tracks at a time.

        Site ids are handed out by :meth:`next_site_ids` from the highest stored id and
        written by :meth:`record_events` in a later transaction. Two runs of the same
        AOI tracking at once (a backfill beside the schedule, two workers) would both
        hand out ``<aoi>-0007`` and merge two sites into one. Wrap the read of known
        sites, the id hand-out and :meth:`record_events` in this lock. Runs of
        different AOIs never wait for each other.

        On PostgreSQL this is a session-level ``pg_advisory_lock`` on a dedicated
        connection, so it holds across processes and machines; on SQLite it is a lock
        per process (SQLite stores serve one machine).

        Args:
            aoi_name: AOI slug.

        Raises:
            DatabaseUnavailableError: The database cannot be reached.
        """
        if self._engine.dialect.name != "postgresql":
            with _SQLITE_TRACKING_LOCKS_GUARD:
                lock = _SQLITE_TRACKING_LOCKS.setdefault((self.url, aoi_name), threading.Lock())
            with lock:
                yield
            return
        key = _tracking_lock_key(aoi_name)
        try:
            connection = self._engine.connect()
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            connection.commit()
        except (OperationalError, InterfaceError) as exc:
            raise _unavailable(self.url, exc) from exc
        try:
            yield
        finally:
            try:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                connection.commit()
            except Exception:
                # Drop the session rather than pool it: PostgreSQL then frees the lock.
                connection.invalidate()
                raise
            finally:
                connection.close()

    @contextmanager
    def run_lock(
        self, aoi_name: str, window_end: dt.date, *, wait_s: float = 0.0
    ) -> Iterator[None]:
        """Hold the lock of one AOI window for a whole run: one run per AOI and window.

        Two processes running the same AOI and window at once would share the run row
        (one's ``failed`` overwriting the other's ``completed``) and the run folder.
        The second caller waits up to ``wait_s`` and is then refused with
        :class:`~asmspotter.errors.RunInProgressError` before it touches anything.
        Runs of other windows or AOIs never wait. A process that dies releases the
        lock with it.

        On PostgreSQL this is a session-level ``pg_try_advisory_lock`` on a dedicated
        connection (across machines); on SQLite an exclusive ``flock`` on a file in
        ``<database>.locks/`` beside the database (SQLite serves one machine); an
        in-memory database locks per process.

        Args:
            aoi_name: AOI slug.
            window_end: Last day of the run's window.
            wait_s: Seconds to wait for a run holding the lock; 0 refuses at once.

        Raises:
            RunInProgressError: Another run of this AOI window held the lock throughout.
            DatabaseUnavailableError: The database cannot be reached.
        """
        name = f"{aoi_name}@{window_end.isoformat()}"
        deadline = time.monotonic() + max(0.0, wait_s)
        if self._engine.dialect.name == "postgresql":
            with self._advisory_run_lock(name, deadline) as acquired:
                if not acquired:
                    raise _run_in_progress(aoi_name, window_end, f"lock held in {self.url}")
                yield
            return
        lock_dir = _sqlite_lock_dir(self._engine)
        if lock_dir is None:
            with _SQLITE_TRACKING_LOCKS_GUARD:
                lock = _MEMORY_RUN_LOCKS.setdefault((self.url, name), threading.Lock())
            acquired = lock.acquire(timeout=wait_s) if wait_s > 0 else lock.acquire(False)
            if not acquired:
                raise _run_in_progress(aoi_name, window_end, "same process")
            try:
                yield
            finally:
                lock.release()
            return
        lock_dir.mkdir(parents=True, exist_ok=True)
        lock_path = lock_dir / f"{name}.lock"
        with lock_path.open("a+") as handle:
            while True:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise _run_in_progress(
                            aoi_name, window_end, f"lock file {lock_path}"
                        ) from None
                    time.sleep(_RUN_LOCK_POLL_S)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    @contextmanager
    def _advisory_run_lock(self, name: str, deadline: float) -> Iterator[bool]:
        """Try a session-level advisory lock until ``deadline``; yield whether it is held."""
        key = _advisory_key(f"{_RUN_LOCK_PREFIX}{name}")
        try:
            connection = self._engine.connect()
            while True:
                acquired = bool(
                    connection.execute(
                        text("SELECT pg_try_advisory_lock(:key)"), {"key": key}
                    ).scalar_one()
                )
                connection.commit()
                if acquired or time.monotonic() >= deadline:
                    break
                time.sleep(_RUN_LOCK_POLL_S)
        except (OperationalError, InterfaceError) as exc:
            raise _unavailable(self.url, exc) from exc
        try:
            yield acquired
        finally:
            try:
                if acquired:
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                    connection.commit()
            except Exception:
                # Drop the session rather than pool it: PostgreSQL then frees the lock.
                connection.invalidate()
                raise
            finally:
                connection.close()

    # -- AOIs and runs ---------------------------------------------------------------

    def upsert_aoi(self, name: str, title: str, epsg: int) -> None:
        """Create or update an AOI.

        Args:
            name: AOI slug (the YAML file stem).
            title: Human-readable title.
            epsg: EPSG code of the AOI grid's projected CRS.

        Raises:
            ValueError: ``name`` is empty or ``epsg`` is not positive.
        """
        if not name:
            raise ValueError("name must be the AOI slug, got an empty string.")
        if epsg <= 0:
            raise ValueError(f"epsg must be a positive EPSG code, got {epsg}.")
        stmt = self._insert(AOIRow).values(
            name=name, title=title, epsg=int(epsg), updated_at=_utcnow()
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["name"],
            set_={
                "title": stmt.excluded.title,
                "epsg": stmt.excluded.epsg,
                "updated_at": stmt.excluded.updated_at,
            },
        )
        with self._transaction() as session:
            session.execute(stmt)

    def start_run(self, aoi_name: str, window_start: dt.date, window_end: dt.date) -> int:
        """Start (or restart) the run of an AOI for a window.

        Re-running the same AOI and ``window_end`` reuses the row: status goes back to
        ``running``, ``attempts`` grows by one and ``finished_at``/``message`` clear.

        Args:
            aoi_name: AOI slug; the AOI must be stored (:meth:`upsert_aoi`).
            window_start: First day of the composite window.
            window_end: Last day of the composite window.

        Returns:
            The run id, the same on every attempt.

        Raises:
            ValueError: ``window_start`` is after ``window_end``.
            RecordNotFoundError: The AOI is not stored.
        """
        if window_start > window_end:
            raise ValueError(
                f"window_start {window_start} is after window_end {window_end}; "
                "give the window's first day, then its last."
            )
        stmt = self._insert(RunRow).values(
            aoi_name=aoi_name,
            window_start=window_start,
            window_end=window_end,
            status="running",
            attempts=1,
            started_at=_utcnow(),
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["aoi_name", "window_end"],
            set_={
                "window_start": stmt.excluded.window_start,
                "status": "running",
                "attempts": RunRow.attempts + 1,
                "started_at": stmt.excluded.started_at,
                "finished_at": None,
                "message": None,
            },
        )
        with self._transaction() as session:
            self._require_aoi(session, aoi_name)
            run_id = int(session.execute(stmt.returning(RunRow.id)).scalar_one())
            session.execute(
                update(AOIRow)
                .where(AOIRow.name == aoi_name)
                .values(run_attempts=AOIRow.run_attempts + 1)
            )
        logger.info("run %d of %s for %s..%s started", run_id, aoi_name, window_start, window_end)
        return run_id

    def finish_run(
        self,
        run_id: int,
        status: RunStatus | str,
        *,
        n_scenes: int | None = None,
        composite_path: Path | str | None = None,
        probability_path: Path | str | None = None,
        sites_path: Path | str | None = None,
        clear_wkt: BaseGeometry | str | None = None,
        message: str | None = None,
    ) -> None:
        """Record the outcome of a run's latest attempt.

        Args:
            run_id: Id from :meth:`start_run`.
            status: ``completed`` or ``failed`` (``running`` is allowed but unusual).
            n_scenes: Scenes in the composite.
            composite_path: Composite COG.
            probability_path: Probability COG.
            sites_path: Detected-sites GeoJSON.
            clear_wkt: Clear-observation footprint of the composite (pixels with at
                least one clear observation) in the AOI CRS, as WKT or a geometry.
                The next run measures growth only inside it.
            message: Error or summary text.

        Raises:
            ValueError: ``status`` is unknown or ``clear_wkt`` is not valid WKT.
            RecordNotFoundError: No run has this id.
        """
        _check_choice("status", status, RUN_STATUSES)
        if isinstance(clear_wkt, BaseGeometry):
            clear_text: str | None = clear_wkt.wkt
        elif clear_wkt is not None:
            try:
                shapely_wkt.loads(clear_wkt)
            except ShapelyError as exc:
                raise ValueError(
                    f"clear_wkt of run {run_id} is not valid WKT ({exc}); pass the clear "
                    "footprint as a shapely geometry or its .wkt."
                ) from exc
            clear_text = clear_wkt
        else:
            clear_text = None
        with self._transaction() as session:
            run = session.get(RunRow, run_id)
            if run is None:
                raise RecordNotFoundError(f"run {run_id} is not in the store ({self.url}).")
            aoi = session.get(AOIRow, run.aoi_name)
            run.status = status
            run.finished_at = _utcnow()
            run.n_scenes = n_scenes
            run.composite_path = None if composite_path is None else str(composite_path)
            run.probability_path = None if probability_path is None else str(probability_path)
            run.sites_path = None if sites_path is None else str(sites_path)
            run.clear_wkt = clear_text
            run.epsg = None if aoi is None else aoi.epsg
            run.message = message
        logger.info("run %d finished: %s", run_id, status)

    def run(self, run_id: int) -> RunRecord:
        """Return one run.

        Raises:
            RecordNotFoundError: No run has this id.
        """
        with self._transaction(read_only=True) as session:
            row = session.get(RunRow, run_id)
            if row is None:
                raise RecordNotFoundError(f"run {run_id} is not in the store ({self.url}).")
            return _run_record(row)

    def runs(self, aoi_name: str) -> list[RunRecord]:
        """Return every run of an AOI, oldest window first."""
        with self._transaction(read_only=True) as session:
            rows = session.scalars(
                select(RunRow).where(RunRow.aoi_name == aoi_name).order_by(RunRow.window_end)
            )
            return [_run_record(row) for row in rows]

    def last_successful_run(self, aoi_name: str) -> RunRecord | None:
        """Return the completed run of an AOI with the latest window end, or None."""
        return self._latest_completed(aoi_name, None)

    def previous_completed_run(self, aoi_name: str, before: dt.date) -> RunRecord | None:
        """Return the prior detections to diff a window against.

        Args:
            aoi_name: AOI slug.
            before: Window end of the run being made; only runs whose window ends
                strictly earlier count, so re-running a window never compares it with
                itself.

        Returns:
            The latest completed run with ``window_end < before``, or None.
        """
        return self._latest_completed(aoi_name, before)

    def _latest_completed(self, aoi_name: str, before: dt.date | None) -> RunRecord | None:
        """Latest completed run of an AOI, optionally ending before a date."""
        stmt = select(RunRow).where(RunRow.aoi_name == aoi_name, RunRow.status == "completed")
        if before is not None:
            stmt = stmt.where(RunRow.window_end < before)
        stmt = stmt.order_by(RunRow.window_end.desc()).limit(1)
        with self._transaction(read_only=True) as session:
            row = session.scalars(stmt).first()
            return None if row is None else _run_record(row)

    # -- scenes ----------------------------------------------------------------------

    def record_scenes(
        self,
        aoi_name: str,
        refs: Sequence[SceneRef],
        status: SceneStatus | str,
        reason: str | None = None,
        local_paths: Sequence[Path | str | None] | Mapping[str, Path | str] | None = None,
    ) -> int:
        """Record scenes found for an AOI, used or skipped; re-recording updates them.

        Args:
            aoi_name: AOI slug; the AOI must be stored.
            refs: The scenes.
            status: ``used`` or ``skipped``.
            reason: Why they were skipped (one reason for all ``refs``).
            local_paths: Download locations, either one per ref in the same order or a
                mapping from scene id; a missing path keeps the one already stored.

        Returns:
            The number of distinct scenes written.

        Raises:
            ValueError: ``status`` is unknown or ``local_paths`` has the wrong length.
            RecordNotFoundError: The AOI is not stored.
        """
        _check_choice("status", status, SCENE_STATUSES)
        if local_paths is None:
            paths: list[Path | str | None] = [None] * len(refs)
        elif isinstance(local_paths, Mapping):
            paths = [local_paths.get(ref.scene_id) for ref in refs]
        else:
            if len(local_paths) != len(refs):
                raise ValueError(
                    f"local_paths has {len(local_paths)} entries for {len(refs)} scenes; "
                    "give one path (or None) per ref, or a mapping scene_id -> path."
                )
            paths = list(local_paths)
        # One row per natural key: PostgreSQL refuses to upsert the same row twice in
        # one statement.
        values: dict[tuple[str, str], dict[str, Any]] = {}
        for ref, path in zip(refs, paths, strict=True):
            values[(ref.provider, ref.scene_id)] = {
                "provider": ref.provider,
                "scene_id": ref.scene_id,
                "aoi_name": aoi_name,
                "acquired": _as_utc(ref.acquired),
                "cloud_pct": _finite_or_none(ref.cloud_pct),
                "status": status,
                "reason": reason,
                "local_path": None if path is None else str(path),
            }
        rows = list(values.values())
        with self._transaction() as session:
            self._require_aoi(session, aoi_name)
            for chunk in _chunks(rows):
                stmt = self._insert(SceneRow).values(list(chunk))
                stmt = stmt.on_conflict_do_update(
                    index_elements=["provider", "scene_id", "aoi_name"],
                    set_={
                        "acquired": stmt.excluded.acquired,
                        "cloud_pct": stmt.excluded.cloud_pct,
                        "status": stmt.excluded.status,
                        "reason": stmt.excluded.reason,
                        "local_path": func.coalesce(stmt.excluded.local_path, SceneRow.local_path),
                    },
                )
                session.execute(stmt)
        logger.info("recorded %d %s scene(s) for %s", len(rows), status, aoi_name)
        return len(rows)

    def scenes(self, aoi_name: str) -> list[SceneRecord]:
        """Return the scenes recorded for an AOI, by acquisition time."""
        with self._transaction(read_only=True) as session:
            rows = session.scalars(
                select(SceneRow)
                .where(SceneRow.aoi_name == aoi_name)
                .order_by(SceneRow.acquired, SceneRow.provider, SceneRow.scene_id)
            )
            return [
                SceneRecord(
                    provider=row.provider,
                    scene_id=row.scene_id,
                    aoi_name=row.aoi_name,
                    acquired=_as_utc(row.acquired),
                    cloud_pct=row.cloud_pct,
                    status=row.status,
                    reason=row.reason,
                    local_path=row.local_path,
                )
                for row in rows
            ]

    # -- sites -----------------------------------------------------------------------

    def next_site_ids(
        self, aoi_name: str, n: int, *, window_end: dt.date | None = None
    ) -> list[str]:
        """Return ``n`` ids for new sites: ``<aoi>-0001``, … after the highest existing.

        Pass the run's ``window_end`` when tracking: the ids of sites first seen in that
        same window (left by an earlier attempt of the run) are handed out first, in
        order, so a re-run that finds the same detections gives them the same ids and
        :meth:`record_events` overwrites rather than duplicates.

        Ids are not reserved: call this inside :meth:`tracking_lock` together with
        :meth:`record_events`, so two runs of the same AOI never hand out the same id.

        Args:
            aoi_name: AOI slug.
            n: How many ids.
            window_end: Window end of the run that will use them, to reuse its ids.

        Returns:
            ``n`` ids, zero-padded to 4 digits (more digits past 9999).

        Raises:
            ValueError: ``n`` is negative.
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}.")
        pattern = re.compile(rf"^{re.escape(aoi_name)}-(\d+)$")
        with self._transaction(read_only=True) as session:
            rows = session.execute(
                select(SiteRow.id, SiteRow.first_seen).where(SiteRow.aoi_name == aoi_name)
            ).all()
        highest = 0
        reusable: list[tuple[int, str]] = []
        for site_id, first_seen in rows:
            match = pattern.match(site_id)
            if match is None:
                continue
            number = int(match.group(1))
            highest = max(highest, number)
            if window_end is not None and first_seen == window_end:
                reusable.append((number, site_id))
        ids = [site_id for _, site_id in sorted(reusable)][:n]
        ids += [f"{aoi_name}-{highest + k:04d}" for k in range(1, n - len(ids) + 1)]
        return ids

    def known_sites(self, aoi_name: str, as_of: dt.date) -> list[KnownSite]:
        """Return the sites a run for window end ``as_of`` must match against.

        Args:
            aoi_name: AOI slug.
            as_of: Window end of the run being tracked.

        Returns:
            Sites first seen before ``as_of`` (dismissed ones too), each with the
            outline, area and confidence level of its latest observation in a run whose window ended
            before ``as_of``, ordered by id.
        """
        ranked = (
            select(
                ObservationRow.site_id,
                ObservationRow.geometry_wkt,
                ObservationRow.area_ha,
                ObservationRow.confidence,
                func.row_number()
                .over(partition_by=ObservationRow.site_id, order_by=RunRow.window_end.desc())
                .label("rank"),
            )
            .join(RunRow, RunRow.id == ObservationRow.run_id)
            .where(RunRow.aoi_name == aoi_name, RunRow.window_end < as_of)
            .subquery()
        )
        stmt = (
            select(
                SiteRow.id,
                SiteRow.first_seen,
                SiteRow.status,
                SiteRow.geometry_wkt,
                SiteRow.area_ha,
                ranked.c.geometry_wkt,
                ranked.c.area_ha,
                ranked.c.confidence,
            )
            .outerjoin(ranked, and_(ranked.c.site_id == SiteRow.id, ranked.c.rank == 1))
            .where(SiteRow.aoi_name == aoi_name, SiteRow.first_seen < as_of)
            .order_by(SiteRow.id)
        )
        with self._transaction(read_only=True) as session:
            rows = session.execute(stmt).all()
        known = []
        for site_id, first_seen, status, site_wkt, site_area, obs_wkt, obs_area, level in rows:
            known.append(
                KnownSite(
                    site_id=site_id,
                    geometry=shapely_wkt.loads(obs_wkt if obs_wkt is not None else site_wkt),
                    area_ha=float(obs_area if obs_area is not None else site_area),
                    first_seen=first_seen,
                    status=status,
                    last_confidence=level if level in CONFIDENCE_LEVELS else None,
                )
            )
        return known

    def later_sites(self, aoi_name: str, after: dt.date) -> list[KnownSite]:
        """Return the sites first seen in a window ending after ``after``, by id.

        A backfill tracking an earlier window matches its new detections against them
        (:func:`asmspotter.track.assign_new_site_ids`), so a mine keeps one id.

        Args:
            aoi_name: AOI slug.
            after: Window end of the run being tracked.

        Returns:
            Each site with its latest outline (AOI CRS) and area.
        """
        stmt = (
            select(SiteRow)
            .where(SiteRow.aoi_name == aoi_name, SiteRow.first_seen > after)
            .order_by(SiteRow.id)
        )
        with self._transaction(read_only=True) as session:
            rows = session.scalars(stmt).all()
            return [
                KnownSite(
                    site_id=row.id,
                    geometry=shapely_wkt.loads(row.geometry_wkt),
                    area_ha=float(row.area_ha),
                    first_seen=row.first_seen,
                    status=row.status,
                )
                for row in rows
            ]

    def record_events(self, aoi_name: str, run_id: int, events: Sequence[SiteEvent]) -> None:
        """Record the tracking events of a run: create/update sites, write observations.

        Idempotent: the run's earlier observations are replaced, sites created by an
        earlier attempt of the same run and absent now are removed, and each touched
        site's summary (latest outline, area, centroid, first/last seen) is recomputed
        from its observations, so recording runs out of order is safe too.

        Args:
            aoi_name: AOI slug.
            run_id: Id from :meth:`start_run` for this AOI.
            events: One event per site (from :func:`asmspotter.track.track_sites`).

        Raises:
            ValueError: Two events name the same site.
            RecordNotFoundError: The run, or the site of a non-``new`` event, is unknown.
            StorageError: A ``new`` event reuses the id of a site of another AOI or of an
                earlier window (ids must come from :meth:`next_site_ids`, or be a site
                of :meth:`later_sites`, which a backfill adopts).
        """
        ids = [e.site_id for e in events]
        if len(set(ids)) != len(ids):
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"events name these sites more than once: {', '.join(dupes)}.")
        with self._transaction() as session:
            run = session.get(RunRow, run_id)
            if run is None or run.aoi_name != aoi_name:
                raise RecordNotFoundError(
                    f"run {run_id} of AOI {aoi_name!r} is not in the store; use the id "
                    "returned by Store.start_run for this AOI."
                )
            aoi = self._require_aoi(session, aoi_name)
            window_end = run.window_end

            touched = set(ids)
            touched.update(
                session.scalars(
                    select(ObservationRow.site_id).where(ObservationRow.run_id == run_id)
                )
            )
            session.execute(delete(ObservationRow).where(ObservationRow.run_id == run_id))

            existing: dict[str, SiteRow] = {}
            for chunk in _chunks(ids):
                for site_row in session.scalars(select(SiteRow).where(SiteRow.id.in_(chunk))):
                    existing[site_row.id] = site_row
            new_sites: list[dict[str, Any]] = []
            for e in events:
                row = existing.get(e.site_id)
                if row is None:
                    if e.kind != "new":
                        raise RecordNotFoundError(
                            f"event {e.kind!r} names site {e.site_id!r}, which is not in the "
                            "store; only 'new' events create sites."
                        )
                    new_sites.append(self._site_values(aoi_name, aoi.epsg, e, window_end))
                elif row.aoi_name != aoi_name or (e.kind == "new" and row.first_seen < window_end):
                    raise StorageError(
                        f"new site id {e.site_id!r} already belongs to a site of AOI "
                        f"{row.aoi_name!r} first seen {row.first_seen}; take ids for new "
                        "sites from Store.next_site_ids and track one run per AOI at a time."
                    )
            for chunk in _chunks(new_sites):
                stmt = self._insert(SiteRow).values(list(chunk))
                session.execute(stmt.on_conflict_do_nothing(index_elements=["id"]))

            observations = [
                {
                    "site_id": e.site_id,
                    "run_id": run_id,
                    "kind": e.kind,
                    "area_ha": float(e.area_ha),
                    "previous_area_ha": _finite_or_none(e.previous_area_ha),
                    "growth_ha": _finite_or_none(e.growth_ha),
                    "growth_pct": _finite_or_none(e.growth_pct),
                    "mean_probability": _finite_or_none(e.mean_probability),
                    "verifier_score": _finite_or_none(e.verifier_score),
                    "confidence": e.confidence,
                    "clear_observations": int(e.clear_observations),
                    "geometry_wkt": e.geometry.wkt,
                    "epsg": aoi.epsg,
                    "centroid_lon": float(e.centroid_lon),
                    "centroid_lat": float(e.centroid_lat),
                }
                for e in events
            ]
            for chunk in _chunks(observations):
                stmt = self._insert(ObservationRow).values(list(chunk))
                columns = [c for c in observations[0] if c not in ("site_id", "run_id")]
                session.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["site_id", "run_id"],
                        set_={c: stmt.excluded[c] for c in columns},
                    )
                )

            # Sites an earlier attempt of this run created and this attempt did not.
            orphans = select(ObservationRow.id).where(ObservationRow.site_id == SiteRow.id)
            removed = session.execute(
                delete(SiteRow)
                .where(
                    SiteRow.aoi_name == aoi_name,
                    SiteRow.first_seen == window_end,
                    ~orphans.exists(),
                )
                .returning(SiteRow.id)
            ).all()
            touched.difference_update(site_id for (site_id,) in removed)
            self._refresh_sites(session, sorted(touched))
        logger.info(
            "recorded %d event(s) for run %d of %s%s",
            len(events),
            run_id,
            aoi_name,
            f"; removed {len(removed)} site(s) of an earlier attempt" if removed else "",
        )

    @staticmethod
    def _site_values(aoi_name: str, epsg: int, e: SiteEvent, window_end: dt.date) -> dict[str, Any]:
        """Column values of a site created by a ``new`` event."""
        return {
            "id": e.site_id,
            "aoi_name": aoi_name,
            "first_seen": window_end,
            "last_seen": window_end,
            "status": "active",
            "geometry_wkt": e.geometry.wkt,
            "epsg": epsg,
            "area_ha": float(e.area_ha),
            "centroid_lon": float(e.centroid_lon),
            "centroid_lat": float(e.centroid_lat),
        }

    @staticmethod
    def _refresh_sites(session: Session, site_ids: Sequence[str]) -> None:
        """Recompute the denormalised summary of sites from their observations."""
        for chunk in _chunks(site_ids):
            ranked = (
                select(
                    ObservationRow.site_id,
                    ObservationRow.geometry_wkt,
                    ObservationRow.epsg,
                    ObservationRow.area_ha,
                    ObservationRow.centroid_lon,
                    ObservationRow.centroid_lat,
                    func.row_number()
                    .over(partition_by=ObservationRow.site_id, order_by=RunRow.window_end.desc())
                    .label("rank"),
                )
                .join(RunRow, RunRow.id == ObservationRow.run_id)
                .where(ObservationRow.site_id.in_(chunk))
                .subquery()
            )
            latest = {
                row.site_id: row
                for row in session.execute(select(ranked).where(ranked.c.rank == 1))
            }
            spans = {
                site_id: (first, last)
                for site_id, first, last in session.execute(
                    select(
                        ObservationRow.site_id,
                        func.min(RunRow.window_end),
                        func.max(case((_is_detected(), RunRow.window_end), else_=None)),
                    )
                    .join(RunRow, RunRow.id == ObservationRow.run_id)
                    .where(ObservationRow.site_id.in_(chunk))
                    .group_by(ObservationRow.site_id)
                )
            }
            for site in session.scalars(select(SiteRow).where(SiteRow.id.in_(chunk))):
                obs = latest.get(site.id)
                if obs is None:
                    continue
                first, last = spans[site.id]
                site.geometry_wkt = obs.geometry_wkt
                site.epsg = obs.epsg
                site.area_ha = obs.area_ha
                site.centroid_lon = obs.centroid_lon
                site.centroid_lat = obs.centroid_lat
                site.first_seen = first
                site.last_seen = last if last is not None else first

    def sites(self, aoi_name: str, *, status: str | None = None) -> list[SiteRecord]:
        """Return the sites of an AOI by id, optionally only ``active`` or ``dismissed``."""
        stmt = select(SiteRow).where(SiteRow.aoi_name == aoi_name)
        if status is not None:
            stmt = stmt.where(SiteRow.status == status)
        with self._transaction(read_only=True) as session:
            return [_site_record(row) for row in session.scalars(stmt.order_by(SiteRow.id))]

    def site(self, site_id: str) -> SiteRecord:
        """Return one site.

        Raises:
            RecordNotFoundError: No site has this id.
        """
        with self._transaction(read_only=True) as session:
            row = session.get(SiteRow, site_id)
            if row is None:
                raise RecordNotFoundError(f"site {site_id!r} is not in the store ({self.url}).")
            return _site_record(row)

    def site_history(self, site_id: str) -> list[ObservationRecord]:
        """Return every observation of a site, oldest window first.

        Raises:
            RecordNotFoundError: No site has this id.
        """
        stmt = (
            select(ObservationRow, RunRow.window_end)
            .join(RunRow, RunRow.id == ObservationRow.run_id)
            .where(ObservationRow.site_id == site_id)
            .order_by(RunRow.window_end)
        )
        with self._transaction(read_only=True) as session:
            if session.get(SiteRow, site_id) is None:
                raise RecordNotFoundError(f"site {site_id!r} is not in the store ({self.url}).")
            return [
                _observation_record(obs, window_end) for obs, window_end in session.execute(stmt)
            ]

    def dismiss_site(
        self, site_id: str, reason: str, *, note: str | None = None, source: str = "cli"
    ) -> SiteRecord:
        """Mark a site as dismissed (e.g. a false positive); it keeps being tracked.

        Its alerts stop until it outgrows its area at dismissal (see
        ``asmspotter.alerts.dispatch``); it becomes a training negative.

        Args:
            site_id: Site id.
            reason: Why, for the record (``river bar``, ``town``, ...).
            note: Optional comment.
            source: Where the decision was made (``cli`` or ``web``).

        Returns:
            The site as it is now.

        Raises:
            ValueError: ``reason`` is empty.
            RecordNotFoundError: No site has this id.
        """
        return self.review_site(site_id, "dismissed", reason, note=note, source=source)

    def confirm_site(
        self, site_id: str, reason: str, *, note: str | None = None, source: str = "cli"
    ) -> SiteRecord:
        """Mark a site as a confirmed mine; it stays active and becomes a training positive.

        A confirmation lifts an earlier dismissal, so the site alerts again.

        Args:
            site_id: Site id.
            reason: What settled it (``field visit``, ``high-resolution image``, ...).
            note: Optional comment.
            source: Where the decision was made (``cli`` or ``web``).

        Returns:
            The site as it is now.

        Raises:
            ValueError: ``reason`` is empty.
            RecordNotFoundError: No site has this id.
        """
        return self.review_site(site_id, "confirmed", reason, note=note, source=source)

    def review_site(
        self,
        site_id: str,
        decision: str,
        reason: str,
        *,
        note: str | None = None,
        source: str = "cli",
    ) -> SiteRecord:
        """Record a person's decision on a site and set its state to match.

        Args:
            site_id: Site id.
            decision: ``confirmed`` or ``dismissed``.
            reason: Why; must not be empty.
            note: Optional comment.
            source: Where the decision was made (``cli`` or ``web``).

        Returns:
            The site as it is now.

        Raises:
            ValueError: ``decision`` is unknown or ``reason`` is empty.
            RecordNotFoundError: No site has this id.
        """
        _check_choice("decision", decision, REVIEW_DECISIONS)
        reason = reason.strip()
        if not reason:
            raise ValueError(
                f"give a reason for {'dismissing' if decision == 'dismissed' else 'confirming'} "
                f"site {site_id!r}."
            )
        note = note.strip() if note and note.strip() else None
        now = _utcnow()
        with self._transaction() as session:
            row = session.get(SiteRow, site_id, with_for_update=True)
            if row is None:
                raise RecordNotFoundError(f"site {site_id!r} is not in the store ({self.url}).")
            if decision == "dismissed":
                row.status = "dismissed"
                row.dismissed_reason = reason
                row.dismissed_at = now
                row.dismissed_area_ha = row.area_ha
                row.confirmed_at = None
            else:
                row.status = "active"
                row.dismissed_reason = None
                row.dismissed_at = None
                row.dismissed_area_ha = None
                row.confirmed_at = now
            session.add(
                SiteReviewRow(
                    site_id=site_id,
                    decision=decision,
                    reason=reason,
                    note=note,
                    area_ha=row.area_ha,
                    source=source,
                    reviewed_at=now,
                )
            )
            session.flush()
            record = _site_record(row)
        logger.info("site %s %s (%s): %s", site_id, decision, source, reason)
        return record

    def site_reviews(self, site_id: str) -> list[SiteReview]:
        """Return every review decision on a site, oldest first."""
        stmt = (
            select(SiteReviewRow).where(SiteReviewRow.site_id == site_id).order_by(SiteReviewRow.id)
        )
        with self._transaction(read_only=True) as session:
            return [
                SiteReview(
                    site_id=row.site_id,
                    decision=row.decision,
                    reason=row.reason,
                    note=row.note,
                    area_ha=row.area_ha,
                    source=row.source,
                    reviewed_at=_as_utc(row.reviewed_at),
                )
                for row in session.scalars(stmt)
            ]

    def confirmed_sites(self, aoi_name: str | None = None) -> list[SiteRecord]:
        """Return the sites a person confirmed as mines (of one AOI, or all), by id."""
        stmt = select(SiteRow).where(SiteRow.status == "active", SiteRow.confirmed_at.is_not(None))
        if aoi_name is not None:
            stmt = stmt.where(SiteRow.aoi_name == aoi_name)
        with self._transaction(read_only=True) as session:
            return [_site_record(row) for row in session.scalars(stmt.order_by(SiteRow.id))]

    def latest_observations(self, aoi_name: str) -> dict[str, ObservationRecord]:
        """Return each site's latest observation (last event, confidence), by site id."""
        ranked = (
            select(
                ObservationRow.id,
                RunRow.window_end,
                func.row_number()
                .over(partition_by=ObservationRow.site_id, order_by=RunRow.window_end.desc())
                .label("rank"),
            )
            .join(RunRow, RunRow.id == ObservationRow.run_id)
            .where(RunRow.aoi_name == aoi_name)
            .subquery()
        )
        stmt = select(ObservationRow, ranked.c.window_end).join(
            ranked, and_(ranked.c.id == ObservationRow.id, ranked.c.rank == 1)
        )
        with self._transaction(read_only=True) as session:
            return {
                obs.site_id: _observation_record(obs, window_end)
                for obs, window_end in session.execute(stmt)
            }

    def site_deliveries(self, site_id: str) -> list[DeliveryRecord]:
        """Return every alert delivery of a site's events, in recording order."""
        with self._transaction(read_only=True) as session:
            rows = session.scalars(
                select(AlertDeliveryRow)
                .where(AlertDeliveryRow.site_id == site_id)
                .order_by(AlertDeliveryRow.id)
            )
            return [_delivery_record(row) for row in rows]

    def aois(self) -> list[AOIRecord]:
        """Return every AOI the store knows, by name."""
        with self._transaction(read_only=True) as session:
            return [
                AOIRecord(name=row.name, title=row.title, epsg=row.epsg)
                for row in session.scalars(select(AOIRow).order_by(AOIRow.name))
            ]

    # -- alert deliveries ------------------------------------------------------------

    def delivered_event_keys(self, channel_id: str) -> set[str]:
        """Return the event keys already delivered to a channel (never send them again)."""
        with self._transaction(read_only=True) as session:
            return set(
                session.scalars(
                    select(AlertDeliveryRow.event_key).where(
                        AlertDeliveryRow.channel_id == channel_id,
                        AlertDeliveryRow.status == "delivered",
                    )
                )
            )

    def record_delivery(
        self,
        run_id: int,
        event: SiteEvent,
        event_key: str,
        channel_id: str,
        channel_label: str,
        status: DeliveryStatus | str,
        error: str | None = None,
    ) -> None:
        """Record an attempt to deliver one event to one channel.

        Upsert on ``(event_key, channel_id)``: ``attempts`` grows by one each call, and
        a ``delivered`` row stays delivered (with its time) whatever is recorded later.

        Args:
            run_id: Run whose event it is.
            event: The event.
            event_key: Stable key of the event, e.g. ``demo-0003:expanded:2024-03-01``.
            channel_id: :func:`channel_id_for` of the channel URL (never the URL).
            channel_label: The channel URL with secrets redacted.
            status: ``delivered``, ``failed`` or ``outbox``.
            error: Error message of a failed attempt.

        Raises:
            ValueError: ``status`` is unknown or ``channel_id`` is not a sha256 hex digest.
        """
        _check_choice("status", status, DELIVERY_STATUSES)
        if not _SHA256_HEX.match(channel_id):
            # Never echo the value: it may be a URL holding credentials.
            raise ValueError(
                f"channel_id must be the sha256 hex digest of the channel URL (64 lowercase "
                f"hex characters, see channel_id_for); got a {len(channel_id)}-character value."
            )
        now = _utcnow()
        delivered = status == "delivered"
        stmt = self._insert(AlertDeliveryRow).values(
            run_id=run_id,
            site_id=event.site_id,
            kind=event.kind,
            event_key=event_key,
            channel_id=channel_id,
            channel_label=channel_label,
            status=status,
            attempts=1,
            last_error=None if delivered else error,
            delivered_at=now if delivered else None,
            last_attempt_at=now,
            aoi_run_attempts=(
                select(AOIRow.run_attempts)
                .join(RunRow, RunRow.aoi_name == AOIRow.name)
                .where(RunRow.id == run_id)
                .scalar_subquery()
            ),
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["event_key", "channel_id"],
            set_={
                **_attempt_updates(AlertDeliveryRow, stmt.excluded),
                "channel_label": stmt.excluded.channel_label,
                "last_attempt_at": stmt.excluded.last_attempt_at,
                "aoi_run_attempts": stmt.excluded.aoi_run_attempts,
            },
        )
        with self._transaction() as session:
            session.execute(stmt)

    def deliveries(self, run_id: int) -> list[DeliveryRecord]:
        """Return the deliveries recorded for a run's events, in recording order."""
        with self._transaction(read_only=True) as session:
            rows = session.scalars(
                select(AlertDeliveryRow)
                .where(AlertDeliveryRow.run_id == run_id)
                .order_by(AlertDeliveryRow.id)
            )
            return [_delivery_record(row) for row in rows]

    # -- alert retries, dismissals, histories (issue 5) --------------------------------

    def run_attempts(self, aoi_name: str) -> int:
        """Run attempts of the AOI so far, re-runs included (the alert retry clock)."""
        with self._transaction(read_only=True) as session:
            return int(
                session.scalar(select(AOIRow.run_attempts).where(AOIRow.name == aoi_name)) or 0
            )

    def attempted_event_keys(self, channel_id: str) -> set[str]:
        """Event keys with any delivery record (delivered, failed, outbox) on a channel."""
        with self._transaction(read_only=True) as session:
            return set(
                session.scalars(
                    select(AlertDeliveryRow.event_key).where(
                        AlertDeliveryRow.channel_id == channel_id
                    )
                )
            )

    def failed_deliveries_elsewhere(
        self, aoi_name: str, channel_ids: Sequence[str]
    ) -> list[FailedDelivery]:
        """Failed deliveries of an AOI on channels it no longer has (e.g. a fixed URL).

        A channel's identity is a hash of its URL, so correcting a broken URL makes a
        new channel: what failed on the old one is handed to the current channels.

        Args:
            aoi_name: AOI slug.
            channel_ids: The AOI's current channel ids.
        """
        return self._failed_deliveries(
            aoi_name, AlertDeliveryRow.channel_id.not_in(list(channel_ids))
        )

    def failed_deliveries(self, aoi_name: str, channel_id: str) -> list[FailedDelivery]:
        """Return an AOI's events whose delivery to a channel failed and is not yet done.

        Each comes with the observation it alerted (to re-render it) and the time of
        its latest attempt (for backoff). Oldest window first.

        Args:
            aoi_name: AOI slug.
            channel_id: :func:`channel_id_for` of the channel URL.
        """
        return self._failed_deliveries(aoi_name, AlertDeliveryRow.channel_id == channel_id)

    def _failed_deliveries(
        self, aoi_name: str, channel_filter: ColumnElement[bool]
    ) -> list[FailedDelivery]:
        """Failed deliveries of an AOI on the channels ``channel_filter`` selects."""
        stmt = (
            select(AlertDeliveryRow, ObservationRow, RunRow.window_end)
            .join(RunRow, RunRow.id == AlertDeliveryRow.run_id)
            .join(
                ObservationRow,
                and_(
                    ObservationRow.run_id == AlertDeliveryRow.run_id,
                    ObservationRow.site_id == AlertDeliveryRow.site_id,
                ),
            )
            .where(
                RunRow.aoi_name == aoi_name,
                channel_filter,
                AlertDeliveryRow.status == "failed",
            )
            .order_by(RunRow.window_end, AlertDeliveryRow.id)
        )
        with self._transaction(read_only=True) as session:
            return [
                FailedDelivery(
                    delivery=_delivery_record(row),
                    observation=_observation_record(obs, window_end),
                    last_attempt_at=_as_utc_or_none(row.last_attempt_at),
                    aoi_run_attempts=row.aoi_run_attempts,
                )
                for row, obs, window_end in session.execute(stmt)
            ]

    def runs_started_since(self, aoi_name: str, since: dt.datetime) -> int:
        """Count the AOI's runs whose latest attempt started after ``since`` (UTC)."""
        with self._transaction(read_only=True) as session:
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(RunRow)
                    .where(RunRow.aoi_name == aoi_name, RunRow.started_at > since)
                )
                or 0
            )

    def dismissed_sites(self, aoi_name: str | None = None) -> list[DismissedSite]:
        """Return dismissed sites (of one AOI, or all) with when and at what area."""
        stmt = select(SiteRow).where(SiteRow.status == "dismissed")
        if aoi_name is not None:
            stmt = stmt.where(SiteRow.aoi_name == aoi_name)
        with self._transaction(read_only=True) as session:
            return [
                DismissedSite(
                    site=_site_record(row),
                    dismissed_at=_as_utc_or_none(row.dismissed_at),
                    dismissed_area_ha=row.dismissed_area_ha,
                )
                for row in session.scalars(stmt.order_by(SiteRow.id))
            ]

    def area_histories(self, aoi_name: str) -> dict[str, list[tuple[dt.date, str, float]]]:
        """Return every site's (window end, event kind, area ha) per run, oldest first."""
        stmt = (
            select(
                ObservationRow.site_id,
                RunRow.window_end,
                ObservationRow.kind,
                ObservationRow.area_ha,
            )
            .join(RunRow, RunRow.id == ObservationRow.run_id)
            .where(RunRow.aoi_name == aoi_name)
            .order_by(ObservationRow.site_id, RunRow.window_end)
        )
        histories: dict[str, list[tuple[dt.date, str, float]]] = {}
        with self._transaction(read_only=True) as session:
            for site_id, window_end, kind, area_ha in session.execute(stmt):
                histories.setdefault(site_id, []).append((window_end, kind, float(area_ha)))
        return histories

    def is_digest_delivered(self, digest_key: str, channel_id: str) -> bool:
        """True if the digest ``digest_key`` already reached the channel ``channel_id``."""
        stmt = select(DigestDeliveryRow.status).where(
            DigestDeliveryRow.digest_key == digest_key,
            DigestDeliveryRow.channel_id == channel_id,
        )
        with self._transaction(read_only=True) as session:
            return session.scalar(stmt) == "delivered"

    def record_digest(
        self,
        aoi_name: str,
        digest_key: str,
        channel_id: str,
        channel_label: str,
        status: DeliveryStatus | str,
        error: str | None = None,
    ) -> None:
        """Record an attempt to send a weekly digest; ``delivered`` is never downgraded.

        Args:
            aoi_name: AOI the digest summarises.
            digest_key: ``<aoi>:digest:<ISO year>-W<ISO week>``.
            channel_id: :func:`channel_id_for` of the channel URL (never the URL).
            channel_label: The channel URL with secrets redacted.
            status: ``delivered`` or ``failed``.
            error: Error message of a failed attempt.
        """
        _check_choice("status", status, DELIVERY_STATUSES)
        delivered = status == "delivered"
        now = _utcnow()
        stmt = self._insert(DigestDeliveryRow).values(
            aoi_name=aoi_name,
            digest_key=digest_key,
            channel_id=channel_id,
            channel_label=channel_label,
            status=status,
            attempts=1,
            last_error=None if delivered else error,
            delivered_at=now if delivered else None,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["digest_key", "channel_id"],
            set_=_attempt_updates(DigestDeliveryRow, stmt.excluded),
        )
        with self._transaction() as session:
            self._require_aoi(session, aoi_name)
            session.execute(stmt)


@dataclass(frozen=True)
class FailedDelivery:
    """A failed (event, channel) delivery to retry, with what it alerted.

    Attributes:
        delivery: The delivery row (attempts, last error, event key).
        observation: The observation of the alerted event (to re-render it).
        last_attempt_at: When it was last tried (UTC); None for rows from before 0002.
        aoi_run_attempts: The AOI's run attempts at that try; None before 0005.
    """

    delivery: DeliveryRecord
    observation: ObservationRecord
    last_attempt_at: dt.datetime | None
    aoi_run_attempts: int | None = None


@dataclass(frozen=True)
class DismissedSite:
    """A site a person dismissed as a false positive.

    Attributes:
        site: The site's latest state.
        dismissed_at: When it was dismissed (UTC); None if dismissed before migration 0002.
        dismissed_area_ha: Its area when dismissed; None if unknown.
    """

    site: SiteRecord
    dismissed_at: dt.datetime | None
    dismissed_area_ha: float | None


@dataclass(frozen=True)
class SiteReview:
    """One review decision on a site.

    Attributes:
        site_id: Site id.
        decision: ``confirmed`` or ``dismissed``.
        reason: Why (a look-alike for dismissals, the evidence for confirmations).
        note: Free-text comment, if any.
        area_ha: The site's area when reviewed.
        source: ``web`` or ``cli``.
        reviewed_at: When (UTC).
    """

    site_id: str
    decision: str
    reason: str
    note: str | None
    area_ha: float
    source: str
    reviewed_at: dt.datetime


@dataclass(frozen=True)
class AOIRecord:
    """An AOI as the store knows it (the YAML holds the rest).

    Attributes:
        name: AOI slug.
        title: Human-readable title.
        epsg: EPSG code of its grid's projected CRS.
    """

    name: str
    title: str
    epsg: int
