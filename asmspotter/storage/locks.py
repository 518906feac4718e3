"""Locks held through the store: one tracking AOI run, one run per AOI window.

PostgreSQL locks are session-level advisory locks on a dedicated connection (they
hold across machines and die with the process); SQLite serves one machine, so its
tracking lock is a lock per process and its run lock an ``flock`` on a file beside
the database.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import InterfaceError, OperationalError

from asmspotter.errors import RunInProgressError
from asmspotter.storage.engine import StoreBase, unavailable_error

# Namespace of the per-AOI tracking locks (pg_advisory_lock keys; see StoreLocks.tracking_lock).
_TRACKING_LOCK_PREFIX = "asmspotter-track:"

# SQLite has no advisory locks: tracking of one AOI is serialised per process instead.
_SQLITE_TRACKING_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_SQLITE_TRACKING_LOCKS_GUARD = threading.Lock()

# Namespace of the per-(AOI, window) run locks (see StoreLocks.run_lock).
_RUN_LOCK_PREFIX = "asmspotter-run:"

# In-memory SQLite databases have no file to lock beside: their run locks are per process.
_MEMORY_RUN_LOCKS: dict[tuple[str, str], threading.Lock] = {}

# How often a waiting run asks again for a run lock held elsewhere, seconds.
_RUN_LOCK_POLL_S = 0.25


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


class StoreLocks(StoreBase):
    """The tracking lock and the run lock of :class:`~asmspotter.storage.store.Store`."""

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
            raise unavailable_error(self.url, exc) from exc
        try:
            yield
        finally:
            _release_advisory_lock(connection, key, held=True)

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
            raise unavailable_error(self.url, exc) from exc
        try:
            yield acquired
        finally:
            _release_advisory_lock(connection, key, held=acquired)


def _release_advisory_lock(connection: Connection, key: int, *, held: bool) -> None:
    """Unlock ``key`` if ``held`` and close the lock's dedicated connection.

    If unlocking fails the connection is invalidated rather than pooled, so that
    PostgreSQL ends the session and frees the lock with it.
    """
    try:
        if held:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            connection.commit()
    except Exception:
        connection.invalidate()
        raise
    finally:
        connection.close()
