"""Row 4: a backfill over windows before ones already monitored reuses their sites.

Before: ``asmspotter backfill demo --start 2024-01-31 --end 2024-02-29`` after the
demo tracked the same two new mines twice (demo-0007 = demo-0005): the backfill's
windows end before the demo's second window, whose new sites it did not know.
"""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from reliability_helpers import make_workspace, snapshot

pytestmark = pytest.mark.usefixtures("prefect_server")

DATES = [dt.date(2024, 1, d) for d in (5, 15, 25)] + [
    dt.date(2024, 2, d) for d in (3, 8, 13, 19, 27)
]
DEMO_ENDS = (dt.date(2024, 1, 31), dt.date(2024, 2, 29))
"""The demo's two windows, as ``asmspotter demo`` runs them."""


def test_backfill_after_the_demo_tracks_each_mine_once(tmp_path, monkeypatch):
    from asmspotter.monitor import open_store
    from flows.backfill import backfill
    from flows.monitor import monitor_aoi

    ws = make_workspace(
        tmp_path,
        monkeypatch,
        dates=DATES,
        n_new=1,
        new_from=dt.date(2024, 2, 3),
        revisit_days=20,
        max_cloud_fraction=0.05,
    )
    # The demo's second window is what makes the backfill's window "behind" it (the
    # first window, already done, would be skipped by the backfill anyway).
    monitor_aoi("tiny", DEMO_ENDS[1], alerts=False)
    store = open_store(ws.database_url)
    demo_sites = {site.site_id: site for site in store.sites("tiny")}
    late = [s for s in demo_sites.values() if s.first_seen == DEMO_ENDS[1]]
    assert late, "the second window finds the mine that appeared in February"
    before = snapshot(ws.database_url)

    rows = backfill("tiny", dt.date(2024, 2, 20), DEMO_ENDS[1])
    assert [(r["window_end"], r["status"]) for r in rows] == [("2024-02-20", "completed")]

    after = {site.site_id: site for site in store.sites("tiny")}
    assert set(after) == set(demo_sites), "the backfill created no second id for a mine"
    for a, b in itertools.combinations(after.values(), 2):
        assert not a.geometry.intersects(b.geometry), f"{a.site_id} and {b.site_id} overlap"
    # The February mine was adopted: first seen moved back to a backfilled window.
    assert any(after[s.site_id].first_seen < DEMO_ENDS[1] for s in late)
    counts = snapshot(ws.database_url).counts
    assert counts["site"] == before.counts["site"]
    assert counts["run"] == before.counts["run"] + 1
    # Every site has one observation per window it was tracked in, none doubled.
    for site_id in after:
        windows = [o.window_end for o in store.site_history(site_id)]
        assert len(windows) == len(set(windows))
