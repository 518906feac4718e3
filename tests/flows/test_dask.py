"""``monitor_all`` on a Dask ``LocalCluster`` (two worker processes) finds what the default run finds.

Two small synthetic AOIs (2.56 km squares, three January dates) are monitored twice
for the same day: once with the defaults (AOIs fanned out on threads, local threaded
dask), once with ``ASMSPOTTER_DASK_SCHEDULER`` pointing at a ``LocalCluster`` (AOIs
fanned out with prefect-dask's ``DaskTaskRunner``, composite chunks and inference on
the cluster's workers), each into its own data folder and SQLite store. The sites
(ids, areas) must be the same.
"""

from __future__ import annotations

import datetime as dt

import pytest

from asmspotter.settings import PROJECT_ROOT
from fakes.aois import write_tiny_aoi

pytestmark = pytest.mark.slow

DATES = [dt.date(2024, 1, d) for d in (5, 15, 25)]
TODAY = dt.date(2024, 1, 31)
AOIS = {"delta": (600_000, 560_000, 21), "echo": (640_000, 600_000, 22)}


@pytest.fixture(scope="module")
def aoi_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("dask")
    folder = root / "aois"
    for name, (x0, y0, seed) in AOIS.items():
        write_tiny_aoi(
            folder,
            root / "scenes" / name,
            name,
            DATES,
            seed=seed,
            left_m=x0,
            top_m=y0,
            title=f"Dask {name}",
        )
    return folder


def sites_after_monitor_all(monkeypatch, aoi_dir, data_dir):
    from asmspotter.monitor import open_store
    from asmspotter.settings import get_settings
    from flows.monitor import monitor_all

    monkeypatch.setenv("ASMSPOTTER_AOI_DIR", str(aoi_dir))
    monkeypatch.setenv("ASMSPOTTER_DATA_DIR", str(data_dir))
    monkeypatch.setenv("ASMSPOTTER_MODELS_DIR", str(PROJECT_ROOT / "models"))
    state = monitor_all(TODAY, return_state=True)
    rows = state.result(raise_on_failure=False)
    assert state.is_completed(), rows
    assert sorted(row["status"] for row in rows) == ["✓ completed"] * len(AOIS), rows
    store = open_store(get_settings().resolved_database_url)
    return {name: [(s.site_id, round(s.area_ha, 2)) for s in store.sites(name)] for name in AOIS}


def test_monitor_all_on_a_local_cluster_matches_the_default_run(monkeypatch, aoi_dir, tmp_path):
    from distributed import LocalCluster

    default = sites_after_monitor_all(monkeypatch, aoi_dir, tmp_path / "default")
    assert all(len(sites) >= 2 for sites in default.values()), default

    # Workers inherit the environment when they start: settings first, then the cluster.
    monkeypatch.setenv("ASMSPOTTER_DATA_DIR", str(tmp_path / "cluster"))
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        monkeypatch.setenv("ASMSPOTTER_DASK_SCHEDULER", cluster.scheduler_address)
        on_cluster = sites_after_monitor_all(monkeypatch, aoi_dir, tmp_path / "cluster")
        workers = cluster.scheduler_info["workers"]
        assert len(workers) == 2
    assert on_cluster == default
