"""Backfill over January-February: windows in order, resumable, silent unless asked."""

from __future__ import annotations

import datetime as dt

import pytest

from asmspotter.settings import PROJECT_ROOT
from fakes.aois import write_tiny_aoi

DATES = [dt.date(2024, 1, d) for d in (5, 15, 25)] + [dt.date(2024, 2, d) for d in (9, 19, 27)]


@pytest.fixture
def env(tmp_path, monkeypatch):
    aoi_dir = tmp_path / "aois"
    write_tiny_aoi(
        aoi_dir,
        tmp_path / "scenes",
        "past",
        DATES,
        seed=3,
        n_new=1,
        new_from=DATES[3],
        max_cloud_fraction=0.2,
        title="Backfilled forest",
        revisit_days=30,
    )
    monkeypatch.setenv("ASMSPOTTER_AOI_DIR", str(aoi_dir))
    monkeypatch.setenv("ASMSPOTTER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ASMSPOTTER_MODELS_DIR", str(PROJECT_ROOT / "models"))
    return tmp_path / "data"


def test_backfill_runs_windows_in_order_resumes_and_stays_silent(env):
    from asmspotter.monitor import open_store
    from asmspotter.settings import get_settings
    from flows.backfill import backfill

    start = dt.date(2024, 1, 31)
    outbox = get_settings().outbox_dir
    first = backfill("past", start, dt.date(2024, 2, 15))
    assert [(r["window_end"], r["status"]) for r in first] == [("2024-01-31", "completed")]
    assert not outbox.exists() or not any(outbox.iterdir()), "no alerts for the past"

    # Resumed over a longer range, with alerts: the done window is skipped.
    rows = backfill("past", start, dt.date(2024, 3, 5), send_alerts=True)
    assert [(r["window_end"], r["status"]) for r in rows] == [
        ("2024-01-31", "skipped"),
        ("2024-03-01", "completed"),
    ]
    assert outbox.exists() and any(outbox.iterdir()), "--alerts sends for the new window"

    store = open_store(get_settings().resolved_database_url)
    sites = store.sites("past")
    assert len(sites) >= 3
    # Every site's timeline: one observation per window, the last one in March.
    for site in sites:
        windows = [o.window_end for o in store.site_history(site.site_id)]
        assert windows == sorted(windows) and windows[-1] == dt.date(2024, 3, 1)
    assert any(len(store.site_history(s.site_id)) == 2 for s in sites)

    again = backfill("past", start, dt.date(2024, 3, 5))
    assert [r["status"] for r in again] == ["skipped", "skipped"]
