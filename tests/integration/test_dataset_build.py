"""`dataset build` against the loopback fake STAC API: labels -> chips, masks, manifest.

One generated 512 px Sentinel-2 scene (UTM 21N, top-left (600000, 560000)) is served
as three items: two clear ones (the same pixels on two dates) and one at 95 % cloud.
Its SCL masks a 64 px cloud and a 64 px shadow block (rows 128-191, columns 128-255).
The labels are the scene's own mining mask as polygons, one negative polygon, one
mining point and one polygon far away in Africa, where the catalogue has nothing.
"""

from __future__ import annotations

import csv
import json
import socket
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from shapely.geometry import Point, box
from typer.testing import CliRunner

from asmspotter.cli import app
from asmspotter.detect.model_card import DEFAULT_BANDS, load_card
from asmspotter.detect.real_dataset import (
    MASK_MINING,
    MASK_NEGATIVE,
    MASK_NODATA,
    DatasetBuildConfig,
    build_dataset,
)
from asmspotter.errors import DatasetBuildError
from asmspotter.grid import to_lonlat
from fakes.labelled_stac import (
    mask_polygons_lonlat,
    serve_scene_items,
    write_labelled_scene,
)
from fakes.stac_server import FakeScene, FakeStacApi

SEED = 23
CHIP_PX = 64


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[FakeScene, np.ndarray]:
    fake, mask = write_labelled_scene(tmp_path_factory.mktemp("cogs"), SEED)
    assert mask.sum() > 500, "the seed must give mining to label"
    return fake, mask


@pytest.fixture()
def api(scene: tuple[FakeScene, np.ndarray]):
    fake, _ = scene
    with FakeStacApi(files_dir=fake.files["blue"].parent) as running:
        serve_scene_items(running, fake)
        yield running


def _pixel_box(fake: FakeScene, row0: int, col0: int, row1: int, col1: int):
    """A lon/lat box over pixel rows [row0, row1) and columns [col0, col1), inset 1 m."""
    left, top = fake.left_m + col0 * 10 + 1, fake.top_m - row0 * 10 - 1
    right, bottom = fake.left_m + col1 * 10 - 1, fake.top_m - row1 * 10 + 1
    return to_lonlat(box(left, bottom, right, top), fake.epsg)


@pytest.fixture()
def labels_path(scene: tuple[FakeScene, np.ndarray], tmp_path: Path) -> Path:
    fake, mask = scene
    mining = mask_polygons_lonlat(mask, fake)
    mining["class"] = "mining"
    point = to_lonlat(Point(fake.left_m + 450 * 10 + 5, fake.top_m - 450 * 10 - 5), fake.epsg)
    extra = gpd.GeoDataFrame(
        {"class": ["negative", "mining", "mining"]},
        geometry=[
            _pixel_box(fake, 10, 40, 40, 70),  # 900 px, all in chip 32621-938-874
            point,
            box(20.0, 5.0, 20.01, 5.01),  # Central African Republic: no scene there
        ],
        crs="EPSG:4326",
    )
    path = tmp_path / "labels.geojson"
    gpd.pd.concat([mining, extra], ignore_index=True).to_file(path, driver="GeoJSON")
    return path


def _config(api: FakeStacApi, **options) -> DatasetBuildConfig:
    settings = {
        "stac_url": api.base_url,
        "start": "2024-03-01",
        "end": "2024-03-31",
        "chip_px": CHIP_PX,
        "retry_backoff_s": 0.0,
        "http_tries": 1,
        "labels_licence": "CC BY-SA 4.0",
        "labels_attribution": "Test labellers",
    }
    return DatasetBuildConfig.model_validate({**settings, **options})


def test_build_writes_true_chips_masks_and_manifest(
    api: FakeStacApi, labels_path: Path, scene: tuple[FakeScene, np.ndarray], tmp_path: Path
) -> None:
    fake, truth = scene
    out = tmp_path / "dataset"
    summary = build_dataset(labels_path, out, _config(api))

    written = [r for r in summary.records if r.status == "written"]
    assert len(written) >= 4
    for record in written:
        # Both clear items, never the 95 % cloud one.
        assert record.scene_ids == ("S2A_21NXF_20240310_0_L2A", "S2B_21NXF_20240320_0_L2A")
        assert record.dates == ("2024-03-10", "2024-03-20")
        assert "CC BY-SA 4.0" in record.licence and "Copernicus Sentinel" in record.licence
        assert record.attribution.startswith("Contains modified Copernicus Sentinel data 2024")
        with rasterio.open(out / record.chip_path) as src:
            assert src.count == 6 and src.descriptions == tuple(DEFAULT_BANDS)
            assert (src.width, src.height) == (CHIP_PX, CHIP_PX)
            chip = src.read()
            row = round((fake.top_m - src.transform.f) / 10)
            col = round((src.transform.c - fake.left_m) / 10)
        with rasterio.open(out / record.mask_path) as src:
            mask = src.read(1)
        # Pixels and labels land where they are in the scene: the composite of two
        # copies of one scene is that scene; the mask is the labeller's truth.
        inside = np.zeros((CHIP_PX, CHIP_PX), bool)
        r0, c0 = max(row, 0), max(col, 0)
        r1, c1 = min(row + CHIP_PX, 512), min(col + CHIP_PX, 512)
        inside[r0 - row : r1 - row, c0 - col : c1 - col] = True
        clear = mask != MASK_NODATA
        assert not (clear & ~inside).any(), "pixels outside the scene are no data"
        window = (slice(r0, r1), slice(c0, c1))
        sub = (slice(r0 - row, r1 - row), slice(c0 - col, c1 - col))
        red = fake.reflectance[2][window]
        ok = clear[sub]
        np.testing.assert_allclose(chip[0][sub][ok], red[ok], atol=2e-4)
        ndvi = chip[5][sub][ok]
        nir = fake.reflectance[3][window][ok]
        np.testing.assert_allclose(ndvi, (nir - red[ok]) / (nir + red[ok]), atol=2e-3)
        mining = (mask[sub] == MASK_MINING)[ok]
        expected = (truth[window] & (mask[sub] != MASK_NEGATIVE))[ok]
        if record.chip_id == "32621-944-867":
            # The mining point at pixel (450, 450): a 30 m disc, ~28 pixels more.
            assert not (expected & ~mining).any()
            assert 20 <= int((mining & ~expected).sum()) <= 36
        else:
            assert np.array_equal(mining, expected), record.chip_id
        assert record.mining_px == int((mask == MASK_MINING).sum())

    # The cloud and shadow blocks (rows 128-191, columns 128-255) are never clear.
    # Chip 941-872 (rows 128-191, columns 224-287) is half in the SCL shadow block
    # (rows 128-191, columns 192-255): those pixels are no data in its mask.
    (shadowed,) = [r for r in summary.records if r.chip_id == "32621-941-872"]
    assert shadowed.status == "written" and shadowed.clear_pct == 50.0

    # The negative box and the point are labelled on their chips.
    assert next(r for r in written if r.chip_id == "32621-938-874").negative_px == 900
    point_chip = next(r for r in written if r.chip_id == "32621-944-867")
    assert point_chip.mining_px > 0

    # The area in Africa is listed as skipped, with the reason, not fatal.
    skipped = [r for r in summary.records if r.status == "skipped" and r.epsg == 32634]
    assert skipped and "no scene with <= 30 % cloud in 2024-03-01..2024-03-31" in skipped[0].reason

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["labels_licence"] == "CC BY-SA 4.0"
    assert manifest["counts"]["written"] == len(written)
    assert manifest["bands"] == list(DEFAULT_BANDS)
    with (out / "manifest.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(summary.records)
    assert {row["status"] for row in rows} == {"written", "skipped"}
    assert rows[0]["scene_ids"].count(";") in (0, 1)
    labels = gpd.read_file(out / "labels.geojson")
    assert set(labels["class"]) == {"mining", "negative"}
    assert not (out / ".cache").exists() or not any((out / ".cache").iterdir())


def test_a_second_run_resumes_without_a_request(
    api: FakeStacApi, labels_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "dataset"
    first = build_dataset(labels_path, out, _config(api))
    chip = out / next(r.chip_path for r in first.records if r.status == "written")
    before = chip.stat().st_mtime_ns
    api.clear_log()
    second = build_dataset(labels_path, out, _config(api))
    assert second.count("existing") == first.count("written")
    assert second.count("written") == 0
    assert chip.stat().st_mtime_ns == before
    # Only the two skipped areas (the box in Africa straddles two) are searched
    # again; no pixel moves.
    assert len(api.requests_to("search")) == 2
    assert api.requests_to("file") == []
    existing = next(r for r in second.records if r.status == "existing")
    assert existing.scene_ids == ("S2A_21NXF_20240310_0_L2A", "S2B_21NXF_20240320_0_L2A")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_catalogue_is_a_clear_error(labels_path: Path, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    config = DatasetBuildConfig(
        stac_url=url,
        start="2024-03-01",
        end="2024-03-31",
        chip_px=CHIP_PX,
        http_tries=1,
        retry_backoff_s=0.0,
        timeout_s=5,
    )
    with pytest.raises(
        DatasetBuildError, match=r"STAC API http://127\.0\.0\.1:\d+/v1 failed"
    ) as err:
        build_dataset(labels_path, tmp_path / "dataset", config)
    assert "--stac-url" in str(err.value) and "resumes" in str(err.value)
    manifest = json.loads((tmp_path / "dataset" / "manifest.json").read_text())
    assert manifest["failed_areas"] and manifest["failed_areas"][0].startswith("area-32621-")


def _tiles_gpkg(path: Path, fake: FakeScene, truth: np.ndarray, products: list[str]) -> Path:
    """Annotated tiles as in mining_tiles_test_annotations.gpkg: 256 px tiles of the scene."""
    tiles = gpd.GeoDataFrame(
        {"tile_id": [7, 8], "s2_tile_id": products, "split": ["test", "test"]},
        geometry=[_pixel_box(fake, 0, 0, 256, 256), _pixel_box(fake, 256, 256, 512, 512)],
        crs="EPSG:4326",
    )
    polygons = mask_polygons_lonlat(truth, fake)
    annotated = gpd.GeoDataFrame({"tile_id": [7]}, geometry=[polygons.union_all()], crs="EPSG:4326")
    tiles.to_file(path, layer="tiles", driver="GPKG")
    annotated.to_file(path, layer="polygons_annotated", driver="GPKG")
    return path


def test_tiles_use_their_pinned_product(
    api: FakeStacApi, scene: tuple[FakeScene, np.ndarray], tmp_path: Path
) -> None:
    fake, truth = scene
    gpkg = _tiles_gpkg(
        tmp_path / "tiles.gpkg",
        fake,
        truth,
        # The ESA name of the 20 March item (Earth Search ids it S2B_21NXF_20240320_0_L2A),
        # and a product the catalogue does not have.
        [
            "S2B_MSIL2A_20240320T140529_R067_T21NXF_20240320T190000",
            "S2A_MSIL2A_20230101T140529_R067_T21NXF_20230101T190000",
        ],
    )
    config = _config(api, chip_px=128, start=None, end=None)
    summary = build_dataset(gpkg, tmp_path / "tiles", config)
    tile7 = [r for r in summary.records if r.area_id == "tile-7"]
    assert [r.chip_id for r in tile7] == [
        "tile-7-r00-c00",
        "tile-7-r00-c01",
        "tile-7-r01-c00",
        "tile-7-r01-c01",
    ]
    for record in tile7:
        if record.status == "written":
            assert record.scene_ids == ("S2B_21NXF_20240320_0_L2A",)
            assert record.pinned_product.startswith("S2B_MSIL2A_20240320")
    # Every labelled pixel of the tile, except under the SCL cloud and shadow blocks.
    clear_truth = truth[:256, :256].copy()
    clear_truth[128:192, 128:256] = False
    assert sum(r.mining_px for r in tile7) == int(clear_truth.sum()) > 0
    tile8 = [r for r in summary.records if r.area_id == "tile-8"]
    assert tile8 and all(r.status == "skipped" for r in tile8)
    assert "S2A_MSIL2A_20230101T140529" in tile8[0].reason
    assert "no --start/--end window" in tile8[0].reason


def test_cli_build_then_train_on_the_chips(
    api: FakeStacApi, labels_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recipe end to end: labels -> chips + manifest -> a short training -> a card."""
    monkeypatch.setenv("ASMSPOTTER_MODELS_DIR", str(tmp_path / "models"))
    out = tmp_path / "dataset"
    runner = CliRunner()
    built = runner.invoke(
        app,
        [
            "dataset",
            "build",
            str(labels_path),
            "--out",
            str(out),
            "--stac-url",
            api.base_url,
            "--start",
            "2024-03-01",
            "--end",
            "2024-03-31",
            "--chip-px",
            str(CHIP_PX),
            "--labels-licence",
            "CC BY-SA 4.0",
        ],
    )
    assert built.exit_code == 0, built.output
    assert "chips written" in built.output and "skipped" in built.output
    trained = runner.invoke(
        app,
        [
            "model",
            "train",
            "real-chips",
            "--chips",
            str(out),
            "--patch-px",
            "32",
            "--block-px",
            "32",
            "--train-chips",
            "16",
            "--epochs",
            "1",
            "--device",
            "cpu",
        ],
    )
    assert trained.exit_code == 0, trained.output
    card = load_card(tmp_path / "models" / "real-chips")
    assert str(out / "chips") in card.training.data
    assert card.training.epochs == 1 and card.training.n_test_chips > 0


def test_cli_refuses_bad_window_and_missing_chips(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "dataset",
            "build",
            str(tmp_path / "x.geojson"),
            "--out",
            str(tmp_path),
            "--start",
            "2024-03-31",
            "--end",
            "2024-03-01",
        ],
    )
    assert result.exit_code != 0 and "is after --end" in result.output
    result = runner.invoke(app, ["model", "train", "x", "--chips", str(tmp_path)])
    assert result.exit_code != 0 and "not a built chip dataset" in result.output
