"""Row 6: a failing alert URL, then fixed.

Before: the failed "new" events stayed ``failed`` and were never resent (a fixed
URL is a new channel), the run still exited 0, and re-runs of a window did not
advance the retry clock. Now the run exits non-zero (its flow run is Failed, its
results stored), the next run of any window resends to the fixed channel exactly
once, and every run attempt, re-runs included, ticks the backoff.
"""

from __future__ import annotations

import datetime as dt

import pytest
from reliability_helpers import WINDOW_END, make_workspace, snapshot
from typer.testing import CliRunner

from asmspotter.alerts.dispatch import backoff_runs
from asmspotter.cli import app
from fakes.smtp import free_port, serve_smtp

LATER_WINDOW = dt.date(2024, 2, 10)
"""A later window that still sees two January scenes: its sites are unchanged."""


def _mailto(port: int) -> str:
    return f"mailto://127.0.0.1:{port}/ops@example.org?from=asmspotter@example.org&cto=2&rto=2"


@pytest.mark.usefixtures("prefect_server")
def test_failed_alerts_fail_the_run_and_reach_the_fixed_url_once(tmp_path, monkeypatch):
    from asmspotter.monitor import open_store

    broken = _mailto(free_port())
    ws = make_workspace(tmp_path, monkeypatch, alert_urls=[broken])
    runner = CliRunner()

    result = runner.invoke(app, ["run", "tiny", "--end", WINDOW_END.isoformat()])
    assert result.exit_code == 1, result.output
    assert "every alert failed" in result.output
    store = open_store(ws.database_url)
    (run,) = store.runs("tiny")
    assert run.status == "completed", "stored results stay; only the flow run fails"
    failed = store.deliveries(run.id)
    assert failed and {d.status for d in failed} == {"failed"}
    keys = {d.event_key for d in failed}

    with serve_smtp() as (port, inbox):
        yaml_path = ws.aoi_dir / "tiny.yaml"
        yaml_path.write_text(yaml_path.read_text().replace(broken, _mailto(port)))
        result = runner.invoke(app, ["run", "tiny", "--end", LATER_WINDOW.isoformat()])
        assert result.exit_code == 0, result.output
        assert len(inbox.messages) == 1, "the failed alerts went out, in one message"
        body = inbox.messages[0].get_body(("plain",)).get_content()
        assert all(key.split(":")[0] in body for key in keys)
        # The next dispatch (any window) resends nothing: the fixed channel has them.
        before = snapshot(ws.database_url)
        outcomes = _dispatch_again(ws, store)
        assert [o.status for o in outcomes] == ["nothing-new"]
        assert len(inbox.messages) == 1
    after = snapshot(ws.database_url)
    assert after.counts == before.counts and after.sites_sha256 == before.sites_sha256
    delivered = {
        d.event_key
        for r in store.runs("tiny")
        for d in store.deliveries(r.id)
        if d.status == "delivered"
    }
    assert delivered == keys


def _dispatch_again(ws, store):
    """Dispatch a later run's (unchanged, so unalerted) events to the AOI's channels."""
    from asmspotter.alerts.dispatch import dispatch_alerts
    from asmspotter.aoi import find_aoi

    aoi = find_aoi(ws.aoi_dir, "tiny")
    run_id = store.start_run("tiny", LATER_WINDOW - dt.timedelta(days=29), LATER_WINDOW)
    return dispatch_alerts(
        store,
        aoi,
        run_id,
        LATER_WINDOW - dt.timedelta(days=29),
        LATER_WINDOW,
        [],
        epsg=32621,
        alert_dir=ws.root / "alerts",
        outbox_dir=ws.data_dir / "outbox",
    )


def test_reruns_of_one_window_advance_the_retry_clock(tmp_path):
    from shapely.geometry import box

    from asmspotter.events import SiteEvent
    from asmspotter.storage import Store
    from asmspotter.storage.deliveries import channel_id_for

    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.upsert_aoi("tiny", "Tiny", 32621)
    run_id = store.start_run("tiny", dt.date(2024, 1, 1), WINDOW_END)
    event = SiteEvent(
        site_id="tiny-0001",
        kind="new",
        geometry=box(0, 0, 100, 100),
        area_ha=1.0,
        previous_area_ha=None,
        growth_ha=None,
        growth_pct=None,
        mean_probability=0.9,
        centroid_lon=-55.0,
        centroid_lat=5.0,
        first_seen=WINDOW_END,
        clear_observations=3,
    )
    store.record_events("tiny", run_id, [event])
    channel = channel_id_for("mailto://broken")
    for attempt in (1, 2, 3):
        store.record_delivery(run_id, event, "k", channel, "mailto://…", "failed", error="down")
        (item,) = store.failed_deliveries("tiny", channel)
        assert item.delivery.attempts == attempt
        at_try = item.aoi_run_attempts
        # Only re-runs of the same window: each one counts.
        for _ in range(backoff_runs(attempt)):
            store.start_run("tiny", dt.date(2024, 1, 1), WINDOW_END)
        assert store.run_attempts("tiny") - at_try == backoff_runs(attempt)
    assert len(store.runs("tiny")) == 1
    store.close()
