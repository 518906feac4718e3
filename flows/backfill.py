"""Backfill: run ``monitor_aoi`` over a historical date range, one revisit window at a time.

Windows end every ``schedule.revisit_days`` from the range's start to its end, and
run in order (tracking compares each window with the one before). Resumable: a
window whose run is already completed in the store is skipped. Alerts for the past
are off unless asked (``asmspotter backfill AOI --start --end --alerts``); every
site's full timeline is stored either way.
"""

from __future__ import annotations

import datetime as dt

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from asmspotter.monitor import completed_window_ends, find_backfill_windows
from flows.logs import send_project_logs_to_prefect
from flows.monitor import monitor_aoi

# A worker loads this file by path (prefect.yaml's entrypoint), not as `flows.<name>`,
# so `flows/__init__` never runs there: attach the project's run-log handler here too.
send_project_logs_to_prefect()


def backfill_run_name() -> str:
    """Flow run name ``backfill-<aoi>/<start>..<end>``."""
    p = flow_run.parameters
    return f"backfill-{p['aoi_name']}/{p['start']}..{p['end']}"


@flow(name="backfill", flow_run_name=backfill_run_name, validate_parameters=True)
def backfill(
    aoi_name: str, start: dt.date, end: dt.date, send_alerts: bool = False
) -> list[dict[str, str]]:
    """Monitor every revisit window of ``aoi_name`` ending in ``start..end``, in order.

    Args:
        aoi_name: AOI slug.
        start: First window end of the range.
        end: Last day of the range (the last window ends on or before it).
        send_alerts: Also alert for these past windows (default: store only).

    Returns:
        One row per window: ``window_end``, ``status`` (completed, skipped, no data,
        failed) and ``detail``. A failed window stops the backfill (later windows
        depend on it); re-running resumes there.
    """
    logger = get_run_logger()
    windows = find_backfill_windows(aoi_name, start, end)
    done = completed_window_ends(aoi_name)
    rows: list[dict[str, str]] = []
    for window_end in windows:
        if window_end in done:
            rows.append({"window_end": str(window_end), "status": "skipped", "detail": "done"})
            continue
        summary = monitor_aoi(aoi_name, window_end, alerts=send_alerts)
        status = "completed" if summary.composite_path else "no data"
        detail = f"{len(summary.scenes_used)} scenes, {summary.count('new')} new"
        rows.append({"window_end": str(window_end), "status": status, "detail": detail})
    logger.info("backfill of %s: %d windows, %d already done", aoi_name, len(windows), len(done))
    return rows
