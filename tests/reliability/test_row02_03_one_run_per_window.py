"""Rows 2-3: two processes run the same AOI and window at once.

Before: both wrote the same temporary files in the run folder, a completed run was
flipped to ``failed`` and ``composite.tif`` was left unreadable (PostgreSQL), or
one of the two failed each round (SQLite). Now the store's run lock lets one run
and refuses the other before it touches the run record or the folder.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import rasterio
from reliability_helpers import WINDOW_END, make_workspace, snapshot

from asmspotter.errors import RunInProgressError
from asmspotter.storage import Store

pytestmark = pytest.mark.usefixtures("prefect_server")


def _hold_lock(url: str, locked: multiprocessing.synchronize.Event) -> None:
    """Child process: hold the run lock of tiny/2024-01-31 until killed."""
    store = Store(url)
    with store.run_lock("tiny", WINDOW_END):
        locked.set()
        threading.Event().wait(60)


def test_a_second_process_is_refused_and_a_killed_holder_frees_the_lock(database_url):
    store = Store(database_url)
    context = multiprocessing.get_context("fork")
    locked = context.Event()
    holder = context.Process(target=_hold_lock, args=(database_url, locked))
    holder.start()
    try:
        assert locked.wait(60), "the child never took the lock"
        refused = pytest.raises(RunInProgressError, match=r"tiny: the window ending 2024-01-31")
        with refused, store.run_lock("tiny", WINDOW_END):
            pass
        # Other windows and AOIs do not wait.
        with store.run_lock("tiny", dt.date(2024, 2, 29)), store.run_lock("other", WINDOW_END):
            pass
        # Waiting: refused only after the wait, and only while the holder lives.
        started = dt.datetime.now()
        with pytest.raises(RunInProgressError), store.run_lock("tiny", WINDOW_END, wait_s=0.6):
            pass
        assert (dt.datetime.now() - started).total_seconds() >= 0.5
    finally:
        holder.kill()
        holder.join(30)
    with store.run_lock("tiny", WINDOW_END, wait_s=10):
        pass
    store.close()


def _two_runs_at_once():
    from flows.monitor import monitor_aoi

    barrier = threading.Barrier(2)

    def one():
        barrier.wait()
        return monitor_aoi("tiny", WINDOW_END, alerts=False)

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(one) for _ in range(2)]
        outcomes = []
        for future in futures:
            try:
                outcomes.append(future.result(timeout=300))
            except RunInProgressError as exc:
                outcomes.append(exc)
    return outcomes


def test_two_runs_of_one_window_never_spoil_each_other(tmp_path, monkeypatch, database_url):
    from asmspotter.monitor import open_store

    ws = make_workspace(tmp_path, monkeypatch, database_url)
    outcomes = _two_runs_at_once()
    refused = [o for o in outcomes if isinstance(o, RunInProgressError)]
    done = [o for o in outcomes if not isinstance(o, Exception)]
    # Either the runs overlapped (one refused, clearly) or the second started after
    # the first finished (both complete, idempotent); never a failure.
    assert len(done) + len(refused) == 2 and done, outcomes
    for exc in refused:
        assert "already being run by another process" in str(exc)
    runs = open_store(ws.database_url).runs("tiny")
    assert [(r.window_end, r.status) for r in runs] == [(WINDOW_END, "completed")]
    assert runs[0].attempts == len(done), "a refused run never touched the run record"
    composite = ws.data_dir / "outputs" / "tiny" / WINDOW_END.isoformat() / "composite.tif"
    with rasterio.open(composite) as src:
        assert src.read(1).shape == (src.height, src.width)
    leftovers = [p.name for p in composite.parent.iterdir() if p.name.startswith("partial_")]
    assert leftovers == []
    rows = snapshot(ws.database_url)
    assert rows.counts["run"] == 1 and rows.counts["site"] >= 2
    assert rows.counts["observation"] == rows.counts["site"], "one observation per site"
