"""Storage: the asmspotter database (SQLite by default, PostgreSQL by URL).

:class:`Store` records AOIs, runs, scenes, sites, their per-run observations and alert
deliveries, with upserts on natural keys so re-runs never duplicate anything. The
schema is in :mod:`~asmspotter.storage.schema`; its Alembic migrations in
``migrations/`` run automatically when a store opens (or via :func:`upgrade_database`).
Tracking (:mod:`asmspotter.track`) is pure and reads/writes through this package.
"""

from asmspotter.storage.store import (
    DATABASE_URL_SETTING,
    AOIRecord,
    DatabaseUnavailableError,
    DatabaseURLError,
    DeliveryRecord,
    ObservationRecord,
    RecordNotFoundError,
    RunRecord,
    SceneRecord,
    SiteRecord,
    SiteReview,
    StorageError,
    Store,
    alembic_config,
    channel_id_for,
    redact_database_url,
    upgrade_database,
)
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
