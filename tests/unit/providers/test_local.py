"""The local provider: search by date window and footprint, atomic download into the cache."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from shapely.geometry import box

from asmspotter.errors import ProviderNotConfiguredError, SceneReadError
from asmspotter.grid import AOIGrid, to_lonlat
from asmspotter.providers.local import LocalProvider
from asmspotter.scene_io import write_scene
from asmspotter.scenes import TimeWindow

GRID = AOIGrid(
    epsg=32621, resolution_m=10, left_m=500_000, top_m=560_000, width_px=64, height_px=48
)
AOI_LONLAT = to_lonlat(box(*GRID.bounds), GRID.epsg)


def make_scene(folder, day, *, cloud_rows=0, name=None):
    reflectance = np.full((4, 48, 64), 0.05, dtype=np.float32)
    mask = np.zeros((48, 64), dtype=bool)
    mask[:cloud_rows] = True
    when = dt.datetime(2024, 1, day, 14, tzinfo=dt.UTC)
    return write_scene(
        folder / (name or f"S_{day:02d}.tif"), GRID, reflectance, when, cloud_mask=mask
    )


def test_search_filters_by_window_footprint_and_cloud(tmp_path):
    for day in (3, 10, 20):
        make_scene(tmp_path, day)
    make_scene(tmp_path, 12, cloud_rows=40)  # 40 of 48 rows = 83% cloud
    provider = LocalProvider(tmp_path, max_cloud_pct=50)
    refs = provider.search(AOI_LONLAT, TimeWindow(dt.date(2024, 1, 5), dt.date(2024, 1, 31)))
    assert [r.scene_id for r in refs] == ["S_10", "S_20"]
    assert refs[0].cloud_pct == 0.0
    far_away = box(10, 10, 11, 11)
    assert provider.search(far_away, TimeWindow(dt.date(2024, 1, 1), dt.date(2024, 1, 31))) == []


def test_download_is_idempotent_and_keeps_no_partial_files(tmp_path):
    scenes, cache = tmp_path / "scenes", tmp_path / "cache"
    make_scene(scenes, 3)
    provider = LocalProvider(scenes)
    ref = provider.search(AOI_LONLAT, TimeWindow(dt.date(2024, 1, 1), dt.date(2024, 1, 31)))[0]
    first = provider.download(ref, cache)
    second = provider.download(ref, cache)
    assert first == second
    assert first.reflectance_path == cache / "local" / "S_03" / "reflectance.tif"
    assert first.cloud_mask_path is not None and first.cloud_mask_path.exists()
    assert not list((cache / "local" / "S_03").glob("partial_*"))


def test_eight_bit_scene_is_refused_not_read_as_dark_reflectance(tmp_path):
    import rasterio

    scenes, cache = tmp_path / "scenes", tmp_path / "cache"
    path = make_scene(scenes, 3)
    with rasterio.open(path) as src:
        profile = {**src.profile, "dtype": "uint8", "nodata": None}
        tags = src.tags()
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.full((4, 48, 64), 120, np.uint8))
        dst.update_tags(**tags)
    provider = LocalProvider(scenes)
    (ref,) = provider.search(AOI_LONLAT, TimeWindow(dt.date(2024, 1, 1), dt.date(2024, 1, 31)))
    with pytest.raises(SceneReadError, match=r"S_03.*8-bit values \(uint8\).*uint16 DN"):
        provider.download(ref, cache)


def test_corrupt_geotiff_is_a_clear_error(tmp_path):
    scenes = tmp_path / "scenes"
    path = make_scene(scenes, 3)
    provider = LocalProvider(scenes)
    ref = provider.search(AOI_LONLAT, TimeWindow(dt.date(2024, 1, 1), dt.date(2024, 1, 31)))[0]
    path.write_bytes(b"II*\x00" + b"garbage" * 10)
    with pytest.raises(SceneReadError, match=r"scene S_03: .* is not a readable GeoTIFF"):
        provider.download(ref, tmp_path / "cache")


def test_unreadable_file_is_skipped_by_search(tmp_path):
    make_scene(tmp_path, 3)
    (tmp_path / "broken_20240104.tif").write_bytes(b"not a tiff")
    refs = LocalProvider(tmp_path).search(
        AOI_LONLAT, TimeWindow(dt.date(2024, 1, 1), dt.date(2024, 1, 31))
    )
    assert [r.scene_id for r in refs] == ["S_03"]


def test_missing_folder_says_what_to_set(tmp_path):
    with pytest.raises(ProviderNotConfiguredError, match=r"set sources\[\]\.path"):
        LocalProvider(tmp_path / "nope").search(
            AOI_LONLAT, TimeWindow(dt.date(2024, 1, 1), dt.date(2024, 1, 2))
        )
