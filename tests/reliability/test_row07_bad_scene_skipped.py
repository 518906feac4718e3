"""Row 7: one scene without CRS, or a COG with cut tiles, among good scenes.

Before: the whole AOI run failed (``CRSError: CRS is invalid: None``), the error
did not name the file, and the good scenes were not used. Now the bad scene is
skipped with a warning naming the file and the run composites the rest.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest
import rasterio
import rasterio.shutil
from reliability_helpers import JANUARY, WINDOW_END, make_workspace

from asmspotter.providers.local import LocalProvider
from asmspotter.scenes import TimeWindow

ACQUIRED = "2024-01-20T14:00:00Z"


def _copy_scene(source: Path, target: Path, scene_id: str, *, crs: bool = True) -> Path:
    """A copy of a good scene under another id and date (optionally without CRS)."""
    with rasterio.open(source) as src:
        profile = src.profile
        data = src.read()
        scales, offsets = src.scales, src.offsets
    if not crs:
        profile.update(crs=None)
    with rasterio.open(target, "w", **profile) as dst:
        dst.write(data)
        dst.scales, dst.offsets = scales, offsets
        dst.update_tags(ACQUISITION_DATETIME=ACQUIRED, SCENE_ID=scene_id)
    return target


def _cut_cog(source: Path, target: Path) -> Path:
    """A COG (header first) whose last tiles are cut off, as by an interrupted copy."""
    staging = _copy_scene(source, target.with_suffix(".staging.tif"), "CUTCOG")
    rasterio.shutil.copy(staging, target, driver="COG", blocksize=128)
    staging.unlink()
    size = target.stat().st_size
    with target.open("r+b") as handle:
        handle.truncate(int(size * 0.6))
    return target


@pytest.fixture
def bad_scenes(tmp_path, monkeypatch):
    ws = make_workspace(tmp_path, monkeypatch)
    good = sorted(p for p in ws.scenes_dir.glob("*.tif") if "cloudmask" not in p.name)[0]
    no_crs = _copy_scene(good, ws.scenes_dir / "NOCRS_20240120.tif", "NOCRS", crs=False)
    cut = _cut_cog(good, ws.scenes_dir / "CUTCOG_20240120.tif")
    return ws, no_crs, cut


def test_search_skips_a_scene_without_crs_naming_it(bad_scenes, caplog):
    ws, no_crs, _ = bad_scenes
    from asmspotter.aoi import find_aoi

    aoi = find_aoi(ws.aoi_dir, "tiny")
    window = TimeWindow(dt.date(2024, 1, 1), WINDOW_END)
    with caplog.at_level(logging.WARNING, logger="asmspotter.providers.local"):
        refs = LocalProvider(ws.scenes_dir).search(aoi.geometry_lonlat, window)
    assert "NOCRS" not in {r.scene_id for r in refs}
    assert len(refs) == len(JANUARY) + 1, "the good scenes and the cut COG are found"
    assert any(str(no_crs) in r.getMessage() and "no CRS" in r.getMessage() for r in caplog.records)


@pytest.mark.usefixtures("prefect_server")
def test_the_run_uses_the_good_scenes_and_names_the_bad_ones(bad_scenes):
    from asmspotter.monitor import open_store
    from flows.monitor import monitor_aoi

    ws, _, cut = bad_scenes
    summary = monitor_aoi("tiny", WINDOW_END, alerts=False)
    assert len(summary.scenes_used) == len(JANUARY)
    skipped = dict(summary.scenes_skipped)
    assert set(skipped) == {"CUTCOG"}
    assert "cut short" in skipped["CUTCOG"] and str(cut) in skipped["CUTCOG"]
    assert summary.count("new") >= 2
    store = open_store(ws.database_url)
    assert [r.status for r in store.runs("tiny")] == ["completed"]
    recorded = {s.scene_id: (s.status, s.reason) for s in store.scenes("tiny")}
    assert recorded["CUTCOG"][0] == "skipped" and "cut short" in (recorded["CUTCOG"][1] or "")
    assert cut.exists()
