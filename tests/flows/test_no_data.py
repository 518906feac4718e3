"""A window whose scenes are all cloud is a no-data run, never ``completed`` (issue 13 row 11)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import rasterio

from asmspotter.settings import PROJECT_ROOT
from fakes.aois import write_tiny_aoi

DATES = [dt.date(2024, 1, 5), dt.date(2024, 1, 15)]


def test_all_cloud_window_is_no_data(tmp_path, monkeypatch):
    from asmspotter.monitor import open_store
    from asmspotter.settings import get_settings
    from flows.monitor import monitor_aoi

    series = write_tiny_aoi(tmp_path / "aois", tmp_path / "scenes", "overcast", DATES, seed=5)
    for scene in series.scenes:
        with rasterio.open(scene.cloud_mask_path, "r+") as mask:
            mask.write(np.ones((mask.height, mask.width), np.uint8), 1)
    monkeypatch.setenv("ASMSPOTTER_AOI_DIR", str(tmp_path / "aois"))
    monkeypatch.setenv("ASMSPOTTER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ASMSPOTTER_MODELS_DIR", str(PROJECT_ROOT / "models"))

    summary = monitor_aoi("overcast", dt.date(2024, 1, 31), alerts=False)

    assert len(summary.scenes_used) == 2  # the scenes were there, only cloud
    store = open_store(get_settings().resolved_database_url)
    (run,) = store.runs("overcast")
    # Recorded as no_data with the reason, exactly as a window without any scene.
    assert run.status == "no_data", run.message
    assert (run.message or "").startswith("2 scenes")
    assert "not one clear pixel" in (run.message or "")
    assert store.last_successful_run("overcast") is None
