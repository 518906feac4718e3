"""Which AOIs monitor_all runs: due, waiting, disabled, invalid."""

from __future__ import annotations

import datetime as dt
import shutil

from asmspotter.monitor import open_store, plan_monitoring
from asmspotter.settings import PROJECT_ROOT, get_settings


def test_plan_splits_due_waiting_disabled_and_invalid(tmp_path, monkeypatch):
    for name in ("demo", "guyana-mazaruni"):
        shutil.copy(PROJECT_ROOT / "aoi_definitions" / f"{name}.yaml", tmp_path)
    for name in (
        "guyana-mazaruni.geojson",
        "guyana-mazaruni-known-mining-2024.geojson",
        "demo-protected-areas.geojson",
    ):
        shutil.copy(PROJECT_ROOT / "aoi_definitions" / name, tmp_path)
    (tmp_path / "broken.yaml").write_text("name: [\n")
    monkeypatch.setenv("ASMSPOTTER_AOI_DIR", str(tmp_path))

    plan = plan_monitoring(dt.date(2024, 2, 1))
    assert plan.due == ["demo"]
    assert plan.disabled == ["guyana-mazaruni"]
    assert list(plan.invalid) == [str(tmp_path / "broken.yaml")]

    store = open_store(get_settings().resolved_database_url)
    store.upsert_aoi("demo", "Demo", 32621)
    run_id = store.start_run("demo", dt.date(2024, 1, 2), dt.date(2024, 1, 31))
    store.finish_run(run_id, "completed", n_scenes=3)
    plan = plan_monitoring(dt.date(2024, 2, 3))
    assert plan.due == [] and plan.waiting == {"demo": dt.date(2024, 2, 5)}
    assert plan_monitoring(dt.date(2024, 2, 5)).due == ["demo"]
