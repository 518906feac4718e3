"""The asmspotter store: one object over runs, scenes, sites, reviews and deliveries.

:class:`Store` is the only way the rest of asmspotter touches the database. It is
one facade assembled from one class per family of tables, each in the module named
after what it holds: ``runs`` (AOIs, runs, scenes), ``sites`` (sites and their
observations), ``reviews`` (a person's verdicts), ``deliveries`` (alerts and
digests), ``locks`` (tracking and run locks), all on ``engine.StoreBase`` (engine,
migrations, one transaction per call). Callers see one object with one method per
question; a reader of one family reads one module.

Idempotency lives here: every write is an upsert on a natural key (see
:mod:`asmspotter.storage.schema`), so re-running a flow for the same AOI and window,
or two workers racing on PostgreSQL, never duplicates scenes, sites, observations or
alerts. Methods return the frozen dataclasses of :mod:`asmspotter.storage.records`,
never ORM rows.

Example:
    >>> import datetime as dt
    >>> store = Store("sqlite://")
    >>> store.upsert_aoi("demo", "Demo AOI", 32621)
    >>> run_id = store.start_run("demo", dt.date(2024, 1, 1), dt.date(2024, 1, 30))
    >>> store.next_site_ids("demo", 2)
    ['demo-0001', 'demo-0002']
"""

from __future__ import annotations

from asmspotter.storage.deliveries import DeliveryStore
from asmspotter.storage.locks import StoreLocks
from asmspotter.storage.reviews import ReviewStore
from asmspotter.storage.runs import RunStore
from asmspotter.storage.sites import SiteStore


class Store(RunStore, SiteStore, ReviewStore, DeliveryStore, StoreLocks):
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
