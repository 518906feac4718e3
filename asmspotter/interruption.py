"""What an interrupted process must not leave behind: run records stuck at ``running``.

A run's record is opened by :func:`asmspotter.monitor.prepare_run` and closed by
:func:`asmspotter.monitor.finish_run`; in between this module remembers it. When the
process is interrupted (Ctrl-C), :func:`mark_open_runs_interrupted` closes every
record still open as ``failed`` with the reason, straight through the store (no
Prefect call, which may be what hangs), so the history says what happened and the
next run of the window starts a new attempt. The run lock needs no such step: it
belongs to the process (a ``flock`` or a PostgreSQL session) and dies with it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

logger = logging.getLogger(__name__)

INTERRUPTED_MESSAGE = "interrupted (Ctrl-C / SIGINT) before the run finished"
"""The reason recorded on a run whose process was interrupted."""


@dataclass(frozen=True)
class OpenRun:
    """A run record opened by this process and not closed yet.

    Attributes:
        run_id: The store's run id.
        database_url: The store it lives in.
        label: ``<aoi> <window end>``, for messages.
    """

    run_id: int
    database_url: str
    label: str


_open_runs: dict[int, OpenRun] = {}
_interrupted: list[OpenRun] = []
_lock = threading.Lock()


def remember_open_run(run: OpenRun) -> None:
    """Note that ``run``'s record is open (status ``running``) in this process."""
    with _lock:
        _open_runs[run.run_id] = run


def forget_open_run(run_id: int) -> None:
    """Note that run ``run_id``'s record was closed."""
    with _lock:
        _open_runs.pop(run_id, None)


def open_runs() -> list[OpenRun]:
    """The run records this process opened and has not closed, oldest first."""
    with _lock:
        return list(_open_runs.values())


def mark_open_runs_interrupted(message: str = INTERRUPTED_MESSAGE) -> list[OpenRun]:
    """Close every open run record as ``failed`` with ``message``; return those runs.

    A record that cannot be written (database gone) is logged and left; the others
    are still closed.
    """
    from asmspotter.storage import Store

    closed = []
    for run in open_runs():
        try:
            with Store(run.database_url) as store:
                store.finish_run(run.run_id, "failed", message=message)
        except Exception as exc:  # the process is stopping: report, never raise
            logger.error(
                "could not record run %d (%s) as interrupted: %s", run.run_id, run.label, exc
            )
            continue
        forget_open_run(run.run_id)
        closed.append(run)
    with _lock:
        _interrupted.extend(closed)
    return closed


def interrupted_runs() -> list[OpenRun]:
    """Every run this process recorded as interrupted (for the CLI's last line)."""
    with _lock:
        return list(_interrupted)
