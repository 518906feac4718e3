"""Tests of asmspotter.storage.Store on SQLite and (when enabled) PostgreSQL.

Geometries are rectangles in UTM 21N (EPSG:32621): a 200 m x 200 m square is 4 ha.
Enable the PostgreSQL half with ``ASMSPOTTER_TEST_DATABASE_URL`` (see conftest.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import geopandas as gpd
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from asmspotter.errors import AsmspotterError
from asmspotter.events import SiteEvent
from asmspotter.scenes import SceneRef
from asmspotter.storage import (
    DatabaseUnavailableError,
    DatabaseURLError,
    RecordNotFoundError,
    StorageError,
    Store,
    alembic_config,
    channel_id_for,
    redact_database_url,
    upgrade_database,
)
from asmspotter.storage.engine import create_database_engine
from asmspotter.storage.schema import Base
from asmspotter.track import TrackingThresholds, track_sites

AOI = "demo"
EPSG = 32621
X0, Y0 = 500_000.0, 500_000.0
EVERYWHERE = box(X0 - 10_000, Y0 - 10_000, X0 + 10_000, Y0 + 10_000)
W1, W2, W3 = dt.date(2024, 1, 30), dt.date(2024, 2, 29), dt.date(2024, 3, 30)
CHANNEL_URL = "mailto://alerts:hunter2@example.org"
CHANNEL_ID = channel_id_for(CHANNEL_URL)
CHANNEL_LABEL = "mailto://alerts:***@example.org"
TABLES = {"aoi", "scene", "run", "site", "observation", "alert_delivery"}


def rect(dx: float, dy: float, width: float, height: float) -> BaseGeometry:
    return box(X0 + dx, Y0 + dy, X0 + dx + width, Y0 + dy + height)


def scene(n: int) -> SceneRef:
    return SceneRef(
        provider="local",
        scene_id=f"S2_{n:03d}",
        acquired=dt.datetime(2024, 1, n, 14, 0, tzinfo=dt.UTC),
        footprint_lonlat=box(-57.1, 4.4, -56.9, 4.6),
        cloud_pct=10.0 * n,
    )


def row_counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return {
                table: connection.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
                for table in sorted(TABLES)
            }
    finally:
        engine.dispose()


def monitor(
    store: Store,
    window_end: dt.date,
    detections: Sequence[BaseGeometry],
    *,
    clear: BaseGeometry = EVERYWHERE,
    scenes: Sequence[SceneRef] = (scene(1), scene(2)),
    levels: Sequence[str] | None = None,
    cuts: Sequence[float] | None = None,
) -> tuple[int, list[SiteEvent]]:
    """What the monitor flow does with the store for one window."""
    store.upsert_aoi(AOI, "Demo AOI", EPSG)
    run_id = store.start_run(AOI, window_end - dt.timedelta(days=29), window_end)
    store.record_scenes(
        AOI, list(scenes), "used", local_paths=[f"/cache/{s.scene_id}" for s in scenes]
    )
    previous = store.previous_completed_run(AOI, window_end)
    frame = gpd.GeoDataFrame(
        {
            "area_ha": [g.area / 1e4 for g in detections],
            "mean_probability": [0.9] * len(detections),
            **(
                {"confidence": list(levels), "verifier_score": [0.8] * len(detections)}
                if levels is not None
                else {}
            ),
            **({"outline_threshold": list(cuts)} if cuts is not None else {}),
        },
        geometry=list(detections),
        crs=f"EPSG:{EPSG}",
    )
    events = track_sites(
        frame,
        store.known_sites(AOI, window_end),
        clear_now=clear,
        clear_before=None if previous is None else previous.clear_geometry,
        window_end=window_end,
        epsg=EPSG,
        new_site_ids=iter(store.next_site_ids(AOI, len(detections), window_end=window_end)),
        thresholds=TrackingThresholds(),
    )
    store.record_events(AOI, run_id, events)
    delivered = store.delivered_event_keys(CHANNEL_ID)
    for e in events:
        key = f"{e.site_id}:{e.kind}:{window_end.isoformat()}"
        if e.is_alertable and key not in delivered:
            store.record_delivery(run_id, e, key, CHANNEL_ID, CHANNEL_LABEL, "delivered")
    store.finish_run(run_id, "completed", n_scenes=len(scenes), clear_wkt=clear)
    return run_id, events


# -- migrations ------------------------------------------------------------------------


def test_migrations_create_every_table_and_are_idempotent(database_url: str):
    upgrade_database(database_url)
    upgrade_database(database_url)  # up to date: nothing to do, no error
    engine = create_engine(database_url)
    try:
        assert TABLES | {"alembic_version"} <= set(inspect(engine).get_table_names())
        with engine.connect() as connection:
            head = ScriptDirectory.from_config(alembic_config()).get_current_head()
            context = MigrationContext.configure(connection)
            assert context.get_current_revision() == head
            # The migrations build exactly what the models describe.
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()
    Store(database_url).close()  # opening an up-to-date database works too
    assert row_counts(database_url) == dict.fromkeys(sorted(TABLES), 0)


def migrate(url: str, revision: str, *, down: bool = False) -> None:
    """Move the database to ``revision`` on the store's own engine (foreign keys on)."""
    engine = create_database_engine(url)
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            (command.downgrade if down else command.upgrade)(config, revision)
    finally:
        engine.dispose()


def test_migration_0008_turns_no_data_failures_into_no_data_runs(database_url: str):
    migrate(database_url, "0007")
    store = Store(database_url, upgrade=False)
    try:
        clear_run, _ = monitor(store, W1, [rect(0, 0, 200, 200)])
        no_data_run = store.start_run(AOI, W2 - dt.timedelta(days=28), W2)
        store.finish_run(no_data_run, "failed", message="no data: 2 scenes, all cloud")
        failed_run = store.start_run(AOI, W3 - dt.timedelta(days=29), W3)
        store.finish_run(failed_run, "failed", message="provider down (no data: said nothing)")
        before = row_counts(database_url)
        migrate(database_url, "0008")
        assert row_counts(database_url) == before  # the rebuilt check dropped no row
        assert [(r.status, r.message) for r in store.runs(AOI)] == [
            ("completed", None),
            ("no_data", "2 scenes, all cloud"),
            ("failed", "provider down (no data: said nothing)"),
        ]
        assert [o.run_id for o in store.site_history("demo-0001")] == [clear_run]
        store.finish_run(failed_run, "no_data", message="no usable scene")
        assert store.run(failed_run).status == "no_data"
        engine = create_engine(database_url)
        try:
            with pytest.raises(IntegrityError), engine.begin() as connection:
                connection.execute(text("UPDATE run SET status = 'lost' WHERE id = :id"), {"id": 1})
        finally:
            engine.dispose()

        migrate(database_url, "0007", down=True)
        assert [(r.status, r.message) for r in store.runs(AOI)][1:] == [
            ("failed", "no data: 2 scenes, all cloud"),
            ("failed", "no data: no usable scene"),
        ]
        engine = create_engine(database_url)
        try:
            with pytest.raises(IntegrityError), engine.begin() as connection:
                connection.execute(
                    text("UPDATE run SET status = 'no_data' WHERE id = :id"), {"id": 1}
                )
        finally:
            engine.dispose()
        assert row_counts(database_url) == before
    finally:
        store.close()


# -- idempotent re-runs ----------------------------------------------------------------


def test_rerunning_a_window_duplicates_nothing(store: Store, database_url: str):
    run_1, events_1 = monitor(store, W1, [rect(0, 0, 200, 200), rect(3000, 0, 200, 200)])
    counts = row_counts(database_url)
    assert counts == {
        "aoi": 1,
        "scene": 2,
        "run": 1,
        "site": 2,
        "observation": 2,
        "alert_delivery": 2,
    }
    run_again, events_again = monitor(store, W1, [rect(0, 0, 200, 200), rect(3000, 0, 200, 200)])
    assert run_again == run_1
    assert row_counts(database_url) == counts
    assert [(e.site_id, e.kind) for e in events_again] == [(e.site_id, e.kind) for e in events_1]
    assert [s.site_id for s in store.sites(AOI)] == ["demo-0001", "demo-0002"]
    run = store.run(run_1)
    assert (run.status, run.attempts) == ("completed", 2)
    deliveries = store.deliveries(run_1)
    assert [(d.event_key, d.status, d.attempts) for d in deliveries] == [
        ("demo-0001:new:2024-01-30", "delivered", 1),
        ("demo-0002:new:2024-01-30", "delivered", 1),
    ]
    # The channel URL (with its password) is never stored.
    assert all(d.channel_id == CHANNEL_ID and "hunter2" not in d.channel_label for d in deliveries)


def test_rerun_with_fewer_detections_removes_the_earlier_attempts_sites(
    store: Store, database_url: str
):
    monitor(store, W1, [rect(0, 0, 200, 200), rect(3000, 0, 200, 200)])
    _, events = monitor(store, W1, [rect(3000, 0, 200, 200)])
    assert [(e.site_id, e.kind) for e in events] == [("demo-0001", "new")]
    assert [s.id for s in store.sites(AOI)] == ["demo-0001"]
    assert store.sites(AOI)[0].geometry.equals(rect(3000, 0, 200, 200))
    assert row_counts(database_url)["observation"] == 1


def test_rerunning_a_later_window_compares_with_the_run_before(store: Store):
    """W1: 4 ha. W2: 6 ha (expanded). Re-running W2 must still see 4 → 6, not 6 → 6."""
    monitor(store, W1, [rect(0, 0, 200, 200)])
    _, first = monitor(store, W2, [rect(0, 0, 200, 300)])
    _, again = monitor(store, W2, [rect(0, 0, 200, 300)])
    assert [(e.kind, e.growth_ha) for e in first] == [("expanded", pytest.approx(2.0))]
    assert [(e.kind, e.growth_ha) for e in again] == [("expanded", pytest.approx(2.0))]
    history = store.site_history("demo-0001")
    assert [(o.window_end, o.kind, o.area_ha) for o in history] == [
        (W1, "new", pytest.approx(4.0)),
        (W2, "expanded", pytest.approx(6.0)),
    ]
    site = store.site("demo-0001")
    assert (site.first_seen, site.last_seen, site.area_ha) == (W1, W2, pytest.approx(6.0))


# -- runs ------------------------------------------------------------------------------


def test_previous_completed_run_semantics(store: Store):
    store.upsert_aoi(AOI, "Demo AOI", EPSG)
    run_1 = store.start_run(AOI, W1 - dt.timedelta(days=29), W1)
    store.finish_run(run_1, "completed", n_scenes=3, clear_wkt=rect(0, 0, 100, 100).wkt)
    run_2 = store.start_run(AOI, W2 - dt.timedelta(days=28), W2)
    store.finish_run(run_2, "failed", message="no scenes")
    run_3 = store.start_run(AOI, W3 - dt.timedelta(days=29), W3)

    previous = store.previous_completed_run(AOI, W3)
    assert previous is not None and previous.id == run_1
    assert previous.clear_geometry is not None and previous.clear_geometry.area == 10_000
    assert previous.n_scenes == 3 and previous.epsg == EPSG
    assert store.previous_completed_run(AOI, W1) is None  # never itself
    assert store.last_successful_run(AOI).id == run_1  # type: ignore[union-attr]
    assert store.last_successful_run("elsewhere") is None

    store.finish_run(run_3, "completed")
    assert store.last_successful_run(AOI).id == run_3  # type: ignore[union-attr]
    assert store.previous_completed_run(AOI, W3).id == run_1  # type: ignore[union-attr]
    # Re-running W1 reuses its row and still has nothing before it.
    assert store.start_run(AOI, W1 - dt.timedelta(days=29), W1) == run_1
    assert store.run(run_1).status == "running"
    assert store.run(run_1).finished_at is None
    assert store.previous_completed_run(AOI, W1) is None
    assert [r.window_end for r in store.runs(AOI)] == [W1, W2, W3]


def test_known_sites_as_of_a_window(store: Store):
    monitor(store, W1, [rect(0, 0, 200, 200)])
    monitor(store, W2, [rect(0, 0, 200, 300), rect(3000, 0, 200, 200)])
    assert store.known_sites(AOI, W1) == []
    (site,) = store.known_sites(AOI, W2)  # the W2 newcomer is not known yet
    assert (site.site_id, site.area_ha, site.first_seen) == ("demo-0001", 4.0, W1)
    known = {k.site_id: k for k in store.known_sites(AOI, W3)}
    assert known["demo-0001"].area_ha == pytest.approx(6.0)
    assert known["demo-0001"].geometry.equals(rect(0, 0, 200, 300))
    assert known["demo-0002"].first_seen == W2


def test_confidence_round_trips_and_confirms_to_highest(store: Store):
    monitor(store, W1, [rect(0, 0, 200, 200)], levels=["high"])
    (site,) = store.known_sites(AOI, W2)
    assert site.last_confidence == "high"
    _, (event,) = monitor(store, W2, [rect(0, 0, 200, 200)], levels=["high"])
    assert event.confidence == "highest"  # high again in the next composite
    history = store.site_history("demo-0001")
    assert [(h.confidence, h.verifier_score) for h in history] == [
        ("high", pytest.approx(0.8)),
        ("highest", pytest.approx(0.8)),
    ]


def test_outline_cut_round_trips_so_a_lower_cut_is_not_growth(store: Store):
    """A site outlined at 0.55, then seen only as a larger candidate cut at 0.25."""
    monitor(store, W1, [rect(0, 0, 200, 200)], cuts=[0.55])
    (site,) = store.known_sites(AOI, W2)
    assert site.outline_threshold == pytest.approx(0.55)
    _, (event,) = monitor(store, W2, [rect(0, 0, 300, 300)], cuts=[0.25])
    assert (event.kind, event.growth_ha) == ("unchanged", None)
    assert [h.outline_threshold for h in store.site_history("demo-0001")] == [
        pytest.approx(0.55),
        pytest.approx(0.25),
    ]
    # At the candidate's cut again, growth is measured.
    _, (event,) = monitor(store, W3, [rect(0, 0, 400, 400)], cuts=[0.25])
    assert event.kind == "expanded" and event.growth_ha == pytest.approx(7.0)


# -- scenes ----------------------------------------------------------------------------


def test_record_scenes_upserts(store: Store):
    store.upsert_aoi(AOI, "Demo AOI", EPSG)
    refs = [scene(1), scene(2), scene(1)]  # a duplicate in one call is fine
    assert store.record_scenes(AOI, refs, "used", local_paths={"S2_001": "/c/1"}) == 2
    store.record_scenes(AOI, [scene(2)], "skipped", reason="HTTP 404")
    store.record_scenes(AOI, [scene(1)], "used")  # no path given: keeps /c/1
    records = {s.scene_id: s for s in store.scenes(AOI)}
    assert len(records) == 2
    assert records["S2_001"].local_path == "/c/1"
    assert (records["S2_002"].status, records["S2_002"].reason) == ("skipped", "HTTP 404")
    assert records["S2_001"].acquired == dt.datetime(2024, 1, 1, 14, tzinfo=dt.UTC)
    with pytest.raises(ValueError, match="one path"):
        store.record_scenes(AOI, refs, "used", local_paths=["/only/one"])
    with pytest.raises(ValueError, match="used, skipped"):
        store.record_scenes(AOI, refs, "maybe")  # type: ignore[arg-type]


def test_unknown_aoi_names_the_fix(store: Store):
    with pytest.raises(RecordNotFoundError, match="upsert_aoi"):
        store.start_run("nowhere", W1, W1)
    with pytest.raises(RecordNotFoundError, match="upsert_aoi"):
        store.record_scenes("nowhere", [scene(1)], "used")


# -- sites -----------------------------------------------------------------------------


def test_next_site_ids_continue_numbering(store: Store):
    assert store.next_site_ids(AOI, 3) == ["demo-0001", "demo-0002", "demo-0003"]
    assert store.next_site_ids(AOI, 0) == []
    monitor(store, W1, [rect(0, 0, 100, 100), rect(3000, 0, 100, 100), rect(6000, 0, 100, 100)])
    assert store.next_site_ids(AOI, 2) == ["demo-0004", "demo-0005"]
    # A re-run of W1 gets W1's own ids back first, then fresh ones.
    assert store.next_site_ids(AOI, 4, window_end=W1) == [
        "demo-0001",
        "demo-0002",
        "demo-0003",
        "demo-0004",
    ]
    # Sites of another AOI whose slug starts the same do not count.
    store.upsert_aoi("demo-x", "Other", EPSG)
    assert store.next_site_ids("demo-x", 1) == ["demo-x-0001"]
    with pytest.raises(ValueError, match="n must be"):
        store.next_site_ids(AOI, -1)


def test_dismissed_sites_stay_known(store: Store):
    monitor(store, W1, [rect(0, 0, 200, 200)])
    store.dismiss_site("demo-0001", "river bank, not a mine")
    site = store.site("demo-0001")
    assert (site.status, site.dismissed_reason) == ("dismissed", "river bank, not a mine")
    assert [k.status for k in store.known_sites(AOI, W2)] == ["dismissed"]
    _, events = monitor(store, W2, [rect(0, 0, 200, 200)])
    assert [(e.site_id, e.kind) for e in events] == [("demo-0001", "unchanged")]
    assert store.site("demo-0001").status == "dismissed"
    assert [s.id for s in store.sites(AOI, status="active")] == []
    with pytest.raises(RecordNotFoundError, match="demo-9999"):
        store.dismiss_site("demo-9999", "typo")


def test_clouded_site_keeps_outline_and_last_seen(store: Store):
    monitor(store, W1, [rect(0, 0, 200, 200)])
    _, events = monitor(store, W2, [], clear=rect(5000, 5000, 100, 100))
    assert [e.kind for e in events] == ["not_seen"]
    site = store.site("demo-0001")
    assert (site.last_seen, site.area_ha) == (W1, pytest.approx(4.0))
    assert site.geometry.equals(rect(0, 0, 200, 200))


def test_record_events_refuses_inconsistent_input(store: Store):
    run_id, events = monitor(store, W1, [rect(0, 0, 200, 200)])
    (event,) = events
    ghost = SiteEvent(**{**event.__dict__, "site_id": "demo-0042", "kind": "unchanged"})
    with pytest.raises(RecordNotFoundError, match="only 'new' events create sites"):
        store.record_events(AOI, run_id, [ghost])
    with pytest.raises(ValueError, match="more than once"):
        store.record_events(AOI, run_id, [event, event])
    with pytest.raises(RecordNotFoundError, match="start_run"):
        store.record_events(AOI, run_id + 100, [event])
    # A "new" event reusing an id first seen in another window is an id collision.
    run_2 = store.start_run(AOI, W2, W2)
    with pytest.raises(StorageError, match="next_site_ids"):
        store.record_events(AOI, run_2, [SiteEvent(**{**event.__dict__, "first_seen": W2})])
    # Failed calls changed nothing.
    assert [o.kind for o in store.site_history("demo-0001")] == ["new"]


# -- deliveries ------------------------------------------------------------------------


def test_deliveries_unique_per_event_and_channel_never_downgraded(store: Store):
    run_id, events = monitor(store, W1, [rect(0, 0, 200, 200)])
    (event,) = events
    key = "demo-0001:new:2024-01-30"
    other = channel_id_for("slack://token-a/token-b/token-c")
    store.record_delivery(run_id, event, key, other, "slack://***", "failed", error="HTTP 500")
    store.record_delivery(run_id, event, key, other, "slack://***", "outbox")
    (row,) = [d for d in store.deliveries(run_id) if d.channel_id == other]
    assert (row.status, row.attempts, row.last_error) == ("outbox", 2, None)
    assert key not in store.delivered_event_keys(other)

    store.record_delivery(run_id, event, key, other, "slack://***", "delivered")
    store.record_delivery(run_id, event, key, other, "slack://***", "failed", error="late")
    (row,) = [d for d in store.deliveries(run_id) if d.channel_id == other]
    assert (row.status, row.attempts, row.last_error) == ("delivered", 4, None)
    assert row.delivered_at is not None and row.delivered_at.tzinfo is not None
    assert store.delivered_event_keys(other) == {key}
    assert store.delivered_event_keys(CHANNEL_ID) == {key}
    assert len(store.deliveries(run_id)) == 2  # one per channel


def test_delivery_refuses_a_raw_channel_url(store: Store):
    run_id, (event,) = monitor(store, W1, [rect(0, 0, 200, 200)])
    with pytest.raises(ValueError, match="sha256") as caught:
        store.record_delivery(run_id, event, "k", CHANNEL_URL, CHANNEL_LABEL, "failed")
    assert "hunter2" not in str(caught.value)


# -- errors ----------------------------------------------------------------------------


def test_unsupported_url_names_the_setting():
    with pytest.raises(DatabaseURLError, match="ASMSPOTTER_DATABASE_URL"):
        Store("not a url")
    with pytest.raises(DatabaseURLError, match="ASMSPOTTER_DATABASE_URL"):
        Store("mysql://u:p@127.0.0.1/db")


def test_unreachable_database_names_url_and_setting_without_password():
    url = "postgresql+psycopg://asm:s3cret@127.0.0.1:1/asmspotter?connect_timeout=2"
    with pytest.raises(DatabaseUnavailableError, match="ASMSPOTTER_DATABASE_URL") as caught:
        Store(url)
    message = str(caught.value)
    assert "127.0.0.1:1/asmspotter" in message
    assert "s3cret" not in message
    assert isinstance(caught.value, AsmspotterError)
    assert isinstance(caught.value, ConnectionError)


def test_redact_database_url():
    assert redact_database_url("postgresql://u:pw@h/db") == "postgresql://u:***@h/db"
    assert redact_database_url("sqlite:///x.sqlite") == "sqlite:///x.sqlite"


# -- reviews (issue 16) ----------------------------------------------------------------


def test_confirm_and_dismiss_are_recorded_as_history_and_flip_the_state(store: Store):
    monitor(store, W1, [rect(0, 0, 200, 200), rect(3000, 0, 300, 300)])
    assert store.site("demo-0001").review_state == "unreviewed"

    dismissed = store.dismiss_site("demo-0001", "river bar", note="sand, <b>dry season</b>")
    assert (dismissed.status, dismissed.review_state) == ("dismissed", "dismissed")
    confirmed = store.confirm_site("demo-0002", "field visit", source="web")
    assert (confirmed.status, confirmed.review_state) == ("active", "confirmed")
    assert [s.id for s in store.confirmed_sites(AOI)] == ["demo-0002"]
    assert [d.site.id for d in store.dismissed_sites(AOI)] == ["demo-0001"]

    # A confirmation lifts the dismissal: the site alerts again and is a positive.
    store.confirm_site("demo-0001", "high-resolution image", source="web")
    site = store.site("demo-0001")
    assert (site.status, site.dismissed_reason, site.review_state) == (
        "active",
        None,
        "confirmed",
    )
    assert store.dismissed_sites(AOI) == []
    reviews = store.site_reviews("demo-0001")
    assert [(r.decision, r.reason, r.source) for r in reviews] == [
        ("dismissed", "river bar", "cli"),
        ("confirmed", "high-resolution image", "web"),
    ]
    assert reviews[0].note == "sand, <b>dry season</b>"  # stored as given; pages escape it
    assert reviews[0].area_ha == pytest.approx(4.0)
    assert reviews[0].reviewed_at.tzinfo is not None


def test_review_refuses_bad_input_and_unknown_sites(store: Store):
    monitor(store, W1, [rect(0, 0, 200, 200)])
    with pytest.raises(ValueError, match="decision"):
        store.review_site("demo-0001", "approved", "looks fine")
    with pytest.raises(ValueError, match="give a reason for confirming"):
        store.confirm_site("demo-0001", "   ")
    with pytest.raises(RecordNotFoundError, match="demo-9999"):
        store.confirm_site("demo-9999", "typo")
    assert store.site_reviews("demo-0001") == []
    assert store.site("demo-0001").review_state == "unreviewed"


def test_latest_observations_deliveries_and_aois(store: Store):
    monitor(store, W1, [rect(0, 0, 200, 200)])
    monitor(store, W2, [rect(0, 0, 300, 300)])
    latest = store.latest_observations(AOI)
    assert {k: (o.kind, o.window_end) for k, o in latest.items()} == {"demo-0001": ("expanded", W2)}
    keys = [d.event_key for d in store.site_deliveries("demo-0001")]
    assert keys == [f"demo-0001:new:{W1}", f"demo-0001:expanded:{W2}"]
    assert [(a.name, a.epsg) for a in store.aois()] == [(AOI, EPSG)]
