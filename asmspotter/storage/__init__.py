"""Storage: the asmspotter database (SQLite by default, PostgreSQL by URL).

:class:`Store` records AOIs, runs, scenes, sites, their per-run observations, review
decisions and alert deliveries, with upserts on natural keys so re-runs never
duplicate anything. Its parts live in modules named after what they hold: ``engine``
(URL, engine, migrations), ``records`` (what it returns), ``runs``, ``sites``,
``reviews``, ``deliveries``, ``locks``; the schema is in
:mod:`~asmspotter.storage.schema`, its Alembic migrations in ``migrations/`` run
automatically when a store opens (or via :func:`upgrade_database`). Tracking
(:mod:`asmspotter.track`) is pure and reads/writes through this package.
"""

from asmspotter.storage.deliveries import channel_id_for
from asmspotter.storage.engine import (
    DATABASE_URL_SETTING,
    alembic_config,
    redact_database_url,
    upgrade_database,
)
from asmspotter.storage.errors import (
    DatabaseUnavailableError,
    DatabaseURLError,
    RecordNotFoundError,
    StorageError,
)
from asmspotter.storage.records import (
    AOIRecord,
    DeliveryRecord,
    ObservationRecord,
    RunRecord,
    SceneRecord,
    SiteRecord,
    SiteReview,
)
from asmspotter.storage.store import Store
from asmspotter.track import KnownSite

__all__ = [
    "DATABASE_URL_SETTING",
    "AOIRecord",
    "DatabaseURLError",
    "DatabaseUnavailableError",
    "DeliveryRecord",
    "KnownSite",
    "ObservationRecord",
    "RecordNotFoundError",
    "RunRecord",
    "SceneRecord",
    "SiteRecord",
    "SiteReview",
    "StorageError",
    "Store",
    "alembic_config",
    "channel_id_for",
    "redact_database_url",
    "upgrade_database",
]
