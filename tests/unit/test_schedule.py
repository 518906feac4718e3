"""Revisit windows and due dates."""

from __future__ import annotations

import datetime as dt

from asmspotter.aoi import ScheduleConfig
from asmspotter.schedule import is_due, resolve_window

SCHEDULE = ScheduleConfig(revisit_days=5, window_days=30, start_date=dt.date(2024, 1, 1))


def test_window_is_window_days_long_ending_on_end_date():
    window = resolve_window(SCHEDULE, dt.date(2024, 3, 1))
    assert window.end == dt.date(2024, 3, 1)
    assert (window.end - window.start).days + 1 == 30


def test_window_never_starts_before_start_date():
    window = resolve_window(SCHEDULE, dt.date(2024, 1, 10))
    assert window.start == dt.date(2024, 1, 1)


def test_due_after_revisit_days():
    last = dt.date(2024, 2, 1)
    assert not is_due(SCHEDULE, last, dt.date(2024, 2, 5))
    assert is_due(SCHEDULE, last, dt.date(2024, 2, 6))
    assert is_due(SCHEDULE, None, dt.date(2024, 2, 6))
    assert not is_due(SCHEDULE, None, dt.date(2023, 12, 31))
