"""Two AOIs monitored at the same time against one PostgreSQL store, then again.

Two small synthetic AOIs (2.56 km squares, three January dates each, different
seeds) run ``monitor_aoi`` for the same window end in two threads released
together, against one fresh PostgreSQL database (created from
``ASMSPOTTER_TEST_DATABASE_URL``; the schema is created by the first run's store,
both runs racing to migrate it). Then the same two runs again. Every row must
belong to exactly one AOI (no interleaving), the second round adds nothing, and
each AOI's alert (a real SMTP server on 127.0.0.1) arrives exactly once.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from asmspotter.settings import PROJECT_ROOT
from fakes.aois import write_tiny_aoi
from fakes.postgres import fresh_database, postgres_admin_url
from fakes.smtp import serve_smtp

DATES = [dt.date(2024, 1, d) for d in (5, 15, 25)]
WINDOW_END = dt.date(2024, 1, 31)
AOIS = {"alpha": (600_000, 560_000, 11), "bravo": (620_000, 580_000, 12)}
"""AOI name -> (UTM 21N x, y of the top-left corner, synthetic seed)."""


@pytest.fixture(scope="module")
def pg_database_url():
    from asmspotter.monitor import open_store

    admin_url = postgres_admin_url("the concurrency test")
    with fresh_database(admin_url, "asm_conc") as url:
        yield url
        open_store.cache_clear()


@pytest.fixture(scope="module")
def smtp_inbox():
    with serve_smtp() as (port, inbox):
        yield inbox, port


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, smtp_inbox):
    _, port = smtp_inbox
    root = tmp_path_factory.mktemp("concurrency")
    aoi_dir = root / "aois"
    for name, (x0, y0, seed) in AOIS.items():
        write_tiny_aoi(
            aoi_dir,
            root / "scenes" / name,
            name,
            DATES,
            seed=seed,
            left_m=x0,
            top_m=y0,
            title=f"Concurrent {name}",
            alert_urls=[
                f"mailto://127.0.0.1:{port}/{name}@example.org?from=asmspotter@example.org"
            ],
        )
    return root, aoi_dir


@pytest.fixture
def env(workspace, pg_database_url, monkeypatch):
    root, aoi_dir = workspace
    monkeypatch.setenv("ASMSPOTTER_AOI_DIR", str(aoi_dir))
    monkeypatch.setenv("ASMSPOTTER_DATA_DIR", str(root / "data"))
    monkeypatch.setenv("ASMSPOTTER_MODELS_DIR", str(PROJECT_ROOT / "models"))
    monkeypatch.setenv("ASMSPOTTER_DATABASE_URL", pg_database_url)
    return pg_database_url


def run_both_at_once():
    """Run monitor_aoi for both AOIs in two threads released by one barrier."""
    from flows.monitor import monitor_aoi

    barrier = threading.Barrier(len(AOIS))

    def one(name):
        barrier.wait()
        return monitor_aoi(name, WINDOW_END)

    with ThreadPoolExecutor(max_workers=len(AOIS)) as pool:
        futures = {name: pool.submit(one, name) for name in AOIS}
        return {name: future.result(timeout=600) for name, future in futures.items()}


def snapshot(url):
    """Every row that matters, keyed so rows of the two AOIs can be told apart."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = {
                table: sorted(tuple(r) for r in conn.execute(sa.text(query)))
                for table, query in {
                    "run": "SELECT id, aoi_name, window_end, status FROM run",
                    "scene": "SELECT provider, scene_id, aoi_name, status FROM scene",
                    "site": "SELECT id, aoi_name, first_seen FROM site",
                    "observation": (
                        "SELECT o.site_id, s.aoi_name, r.aoi_name, o.kind FROM observation o "
                        "JOIN site s ON s.id = o.site_id JOIN run r ON r.id = o.run_id"
                    ),
                    "alert_delivery": (
                        "SELECT d.event_key, d.channel_id, d.status, s.aoi_name, r.aoi_name "
                        "FROM alert_delivery d JOIN site s ON s.id = d.site_id "
                        "JOIN run r ON r.id = d.run_id"
                    ),
                }.items()
            }
    finally:
        engine.dispose()
    return rows


def test_two_aois_at_once_then_again(env, smtp_inbox):
    inbox, _ = smtp_inbox

    first = run_both_at_once()
    rows = snapshot(env)
    for name, summary in first.items():
        assert len(summary.scenes_used) == len(DATES), summary
        assert summary.count("new") >= 2, f"{name}: the static and the growing site"
        assert {e.kind for e in summary.events} == {"new"}
        assert all(e.site_id.startswith(f"{name}-") for e in summary.events)

    assert Counter(aoi for _, aoi, _, status in rows["run"] if status == "completed") == {
        name: 1 for name in AOIS
    }
    assert Counter(aoi for _, _, aoi, _ in rows["scene"]) == {name: len(DATES) for name in AOIS}
    # Sites: ids of each AOI are its own, numbered 1..n without gaps or repeats.
    for name, summary in first.items():
        ids = sorted(site_id for site_id, aoi, _ in rows["site"] if aoi == name)
        assert ids == [f"{name}-{k:04d}" for k in range(1, len(ids) + 1)]
        assert set(ids) == {e.site_id for e in summary.events}
    # No interleaving: every observation and delivery joins a site and a run of one AOI.
    assert all(site_aoi == run_aoi for _, site_aoi, run_aoi, _ in rows["observation"])
    assert all(site_aoi == run_aoi for *_, site_aoi, run_aoi in rows["alert_delivery"])
    assert len(rows["observation"]) == len(rows["site"])
    assert Counter(status for _, _, status, _, _ in rows["alert_delivery"]) == {
        "delivered": len(rows["site"])
    }
    subjects = sorted(message["Subject"] for message in inbox.messages)
    assert len(subjects) == 2, subjects
    assert all(any(f"Concurrent {name}" in s for s in subjects) for name in AOIS), subjects

    second = run_both_at_once()
    assert snapshot(env) == rows, "a repeat adds, loses or moves rows"
    assert len(inbox.messages) == 2, "a repeat sends no alert twice"
    for name in AOIS:
        assert {(e.site_id, e.kind) for e in second[name].events} == {
            (e.site_id, e.kind) for e in first[name].events
        }


def test_tracking_of_one_aoi_is_serialised(env):
    """Two holders of the same AOI's tracking lock never overlap; other AOIs do not wait."""
    from asmspotter.monitor import open_store

    store = open_store(env)
    inside, overlaps = [], []
    guard = threading.Lock()

    def hold(aoi_name):
        with store.tracking_lock(aoi_name):
            with guard:
                overlaps.append(sum(1 for a in inside if a == aoi_name))
                inside.append(aoi_name)
            threading.Event().wait(0.2)
            with guard:
                inside.remove(aoi_name)

    threads = [threading.Thread(target=hold, args=(name,)) for name in ("alpha", "alpha", "bravo")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert overlaps.count(0) == 3, "no two holders of one AOI's lock at once"
