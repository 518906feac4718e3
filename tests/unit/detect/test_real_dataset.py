"""Planning a real-chip dataset: pinned product ids, label areas, chip ids, options."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import geopandas as gpd
import pytest
from pydantic import ValidationError
from shapely.geometry import Point, box

from asmspotter.detect.labels import LabelPolygon, LabelReadError, load_labels
from asmspotter.detect.real_dataset import (
    DatasetBuildConfig,
    find_pinned,
    load_label_set,
    plan_label_areas,
    product_date,
    product_key,
)
from asmspotter.grid import to_crs, to_lonlat
from asmspotter.scenes import SceneRef

PC_ID = "S2B_MSIL2A_20190527T144739_R139_T19LDD_20201006T190926"


def test_product_key_is_one_acquisition_in_every_catalogue() -> None:
    key = ("S2B", "20190527", "19LDD")
    assert product_key(PC_ID) == key
    assert product_key(PC_ID + ".SAFE") == key
    assert product_key("S2B_MSIL2A_20190527T144739_N0500_R139_T19LDD_20230101T000000") == key
    assert product_key("S2B_19LDD_20190527_0_L2A") == key
    assert product_key("S2A_19LDD_20190527_0_L2A") != key
    assert product_key("LC08_L2SP_001002_20190527") is None
    assert product_date(PC_ID) == dt.date(2019, 5, 27)


def _ref(scene_id: str) -> SceneRef:
    return SceneRef(
        "sentinel-2-stac", scene_id, dt.datetime(2019, 5, 27, tzinfo=dt.UTC), box(0, 0, 1, 1)
    )


def test_find_pinned_prefers_the_exact_id_then_the_same_acquisition() -> None:
    others = [_ref("S2B_19LDC_20190527_0_L2A"), _ref("S2B_19LDD_20190527_0_L2A")]
    assert find_pinned(others, PC_ID).scene_id == "S2B_19LDD_20190527_0_L2A"
    assert find_pinned([*others, _ref(PC_ID)], PC_ID).scene_id == PC_ID
    assert find_pinned(others[:1], PC_ID) is None


def _label(geometry, negative: bool = False) -> LabelPolygon:
    return LabelPolygon(geometry, "EPSG:4326", None, negative)


def test_chip_cells_are_aligned_and_shared_by_neighbouring_labels() -> None:
    config = DatasetBuildConfig(chip_px=64, area_chips=2)
    # Two small polygons in one 640 m cell of UTM 21N, and one 3 cells east.
    inside = to_lonlat(box(600_050, 555_000, 600_100, 555_050), 32621)
    beside = to_lonlat(box(600_200, 555_100, 600_250, 555_150), 32621)
    east = to_lonlat(box(602_000, 555_000, 602_050, 555_050), 32621)
    areas = plan_label_areas([_label(inside), _label(beside), _label(east)], config)
    chips = [c.chip_id for a in areas for c in a.chips]
    assert chips == ["32621-937-867", "32621-940-867"]
    assert [a.area_id for a in areas] == ["area-32621-468-433", "area-32621-470-433"]
    first = areas[0]
    assert (first.grid.left_m, first.grid.top_m) == (937 * 640, 868 * 640)
    assert first.grid.shape == (64, 64)
    # The same labels give the same chips on every run.
    assert plan_label_areas([_label(east), _label(inside)], config)[0] == first


def test_a_label_across_cells_gets_every_cell_on_one_area_grid() -> None:
    config = DatasetBuildConfig(chip_px=64, area_chips=8)
    wide = to_lonlat(box(599_700, 554_900, 601_000, 555_600), 32621)  # 3 x 2 cells
    (area,) = plan_label_areas([_label(wide)], config)
    assert len(area.chips) == 6
    assert area.grid.shape == (128, 192)
    top_left = area.chips[0]
    assert (top_left.chip_id, top_left.row_px, top_left.col_px) == ("32621-937-868", 0, 0)
    bottom_right = area.chips[-1]
    assert (bottom_right.chip_id, bottom_right.row_px, bottom_right.col_px) == (
        "32621-939-867",
        64,
        128,
    )


def test_points_become_discs_of_the_radius(tmp_path: Path) -> None:
    lonlat = to_lonlat(Point(600_000, 555_000), 32621)
    path = tmp_path / "points.geojson"
    gpd.GeoDataFrame(
        {"label": ["mining", "not_mining"]}, geometry=[lonlat, lonlat], crs="EPSG:4326"
    ).to_file(path, driver="GeoJSON")
    labels = load_labels(path, point_radius_m=50.0)
    assert [lab.negative for lab in labels] == [False, True]
    disc = to_crs(labels[0].geometry, 32621)
    assert disc.area == pytest.approx(3.1416 * 50**2, rel=0.02)
    with pytest.raises(LabelReadError, match="no Polygon"):
        load_labels(path)


def test_geopackage_layer_and_tiles(tmp_path: Path) -> None:
    path = tmp_path / "labels.gpkg"
    tile = to_lonlat(box(600_000, 554_880, 602_560, 557_440), 32621)  # 256 px
    gpd.GeoDataFrame(
        {"tile_id": [3], "s2_tile_id": [PC_ID]}, geometry=[tile], crs="EPSG:4326"
    ).to_file(path, layer="tiles", driver="GPKG")
    gpd.GeoDataFrame({"tile_id": [3]}, geometry=[tile.buffer(-0.001)], crs="EPSG:4326").to_file(
        path, layer="polygons_annotated", driver="GPKG"
    )
    label_set = load_label_set(path, DatasetBuildConfig(chip_px=128))
    (area,) = label_set.areas
    assert area.area_id == "tile-3" and area.pinned_product == PC_ID
    assert [c.chip_id for c in area.chips][:2] == ["tile-3-r00-c00", "tile-3-r00-c01"]
    assert len(area.chips) == 4 and len(label_set.labels) == 1
    # Without a tiles layer, --layer picks the polygons: free labels, aligned cells.
    free = tmp_path / "free.gpkg"
    gpd.GeoDataFrame(geometry=[tile], crs="EPSG:4326").to_file(free, layer="mines", driver="GPKG")
    assert load_label_set(free, DatasetBuildConfig(chip_px=128, layer="mines")).areas
    with pytest.raises(LabelReadError, match="layer 'nope'"):
        load_label_set(free, DatasetBuildConfig(layer="nope"))


def test_window_must_be_whole_and_ordered() -> None:
    with pytest.raises(ValidationError, match="both --start and --end"):
        DatasetBuildConfig(start="2024-01-01")
    with pytest.raises(ValidationError, match="is after --end"):
        DatasetBuildConfig(start="2024-02-01", end="2024-01-01")
    assert DatasetBuildConfig().window is None
