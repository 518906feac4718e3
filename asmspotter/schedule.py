"""Revisit windows: which dates a run composites, and when an AOI is due again.

A run with end date E composites acquisitions in [E - window_days + 1, E]. An AOI
is due when it has never completed a run, or when ``revisit_days`` have passed
since the end of its last completed window.
"""

from __future__ import annotations

import datetime as dt

from asmspotter.aoi import ScheduleConfig
from asmspotter.scenes import TimeWindow


def today_utc() -> dt.date:
    """Today's date in UTC (the scheduler's clock)."""
    return dt.datetime.now(dt.UTC).date()


def resolve_window(schedule: ScheduleConfig, end_date: dt.date | None = None) -> TimeWindow:
    """The composite window ending on ``end_date`` (default: today, UTC).

    The window never starts before the AOI's ``start_date``.
    """
    end = end_date or today_utc()
    start = max(schedule.start_date, end - dt.timedelta(days=schedule.window_days - 1))
    if start > end:
        start = end
    return TimeWindow(start=start, end=end)


def is_due(
    schedule: ScheduleConfig, last_window_end: dt.date | None, today: dt.date | None = None
) -> bool:
    """True if the AOI should run today.

    Args:
        schedule: The AOI's schedule.
        last_window_end: End of the last completed window, None if never run.
        today: The date to decide for (default: today, UTC).
    """
    today = today or today_utc()
    if today < schedule.start_date:
        return False
    if last_window_end is None:
        return True
    return (today - last_window_end).days >= schedule.revisit_days
