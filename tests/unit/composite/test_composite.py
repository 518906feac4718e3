"""Compositing: cloud masking, per-pixel median, indices and clear-observation counts."""

from __future__ import annotations

import datetime as dt
import warnings

import numpy as np
import pytest
import rasterio
from shapely.geometry import box

from asmspotter.composite.composite import COMPOSITE_BANDS, composite_scenes
from asmspotter.composite.indices import ndvi, ndwi
from asmspotter.errors import NoScenesError, SceneReadError
from asmspotter.grid import AOIGrid
from asmspotter.scene_io import write_scene
from asmspotter.scenes import LocalScene, SceneRef

GRID = AOIGrid(
    epsg=32621, resolution_m=10, left_m=500_000, top_m=560_000, width_px=40, height_px=30
)
FOREST = np.array([0.02, 0.045, 0.025, 0.30], dtype=np.float32)  # blue, green, red, nir


def scene(tmp_path, index, reflectance, cloud_mask):
    path = write_scene(
        tmp_path / f"s{index}.tif",
        GRID,
        reflectance,
        dt.datetime(2024, 1, 1 + index, tzinfo=dt.UTC),
        cloud_mask=cloud_mask,
    )
    ref = SceneRef(
        "local", f"s{index}", dt.datetime(2024, 1, 1 + index, tzinfo=dt.UTC), box(0, 0, 1, 1)
    )
    return LocalScene(ref, path, path.with_name(f"s{index}.cloudmask.tif"))


def test_median_ignores_clouds_and_counts_clear_observations(tmp_path):
    """Three looks at forest; a bright cloud covers the left half in look 0, the top rows in look 1.

    The median of the clear looks is the forest everywhere, and the clear count is 3 minus
    the number of looks a pixel was cloudy in.
    """
    base = np.broadcast_to(FOREST[:, None, None], (4, 30, 40)).copy()
    cloudy = base.copy()
    cloudy[:, :, :20] = 0.6
    mask0 = np.zeros((30, 40), bool)
    mask0[:, :20] = True
    cloudy1 = base.copy()
    cloudy1[:, :10, :] = 0.7
    mask1 = np.zeros((30, 40), bool)
    mask1[:10] = True
    scenes = [
        scene(tmp_path, 0, cloudy, mask0),
        scene(tmp_path, 1, cloudy1, mask1),
        scene(tmp_path, 2, base, np.zeros((30, 40), bool)),
    ]
    result = composite_scenes(scenes, GRID, tmp_path / "out" / "composite.tif")
    with rasterio.open(result.path) as src:
        assert src.descriptions == COMPOSITE_BANDS
        assert src.crs.to_epsg() == 32621 and src.transform == GRID.transform
        data = {name: src.read(i + 1) for i, name in enumerate(COMPOSITE_BANDS)}
    for i, name in enumerate(("blue", "green", "red", "nir")):
        np.testing.assert_allclose(data[name], FOREST[i], atol=1e-4)
    assert data["valid"][0, 0] == 1  # cloudy in looks 0 and 1
    assert data["valid"][20, 5] == 2  # cloudy in look 0
    assert data["valid"][0, 30] == 2  # cloudy in look 1
    assert data["valid"][20, 30] == 3
    expected_ndvi = (0.30 - 0.025) / (0.30 + 0.025)
    np.testing.assert_allclose(data["ndvi"], expected_ndvi, atol=1e-3)
    assert result.clear_fraction == 1.0
    assert result.clear_footprint.area == pytest.approx(400 * 300)


def test_never_clear_pixels_are_nan_with_zero_count(tmp_path):
    base = np.broadcast_to(FOREST[:, None, None], (4, 30, 40)).copy()
    mask = np.zeros((30, 40), bool)
    mask[:, :10] = True  # 10 of 40 columns always cloudy
    scenes = [scene(tmp_path, i, base, mask) for i in range(2)]
    result = composite_scenes(scenes, GRID, tmp_path / "composite.tif")
    with rasterio.open(result.path) as src:
        red = src.read(3)
        valid = src.read(7)
    assert np.isnan(red[:, :10]).all() and not np.isnan(red[:, 10:]).any()
    assert (valid[:, :10] == 0).all()
    assert result.clear_fraction == pytest.approx(0.75)
    assert result.clear_footprint.area == pytest.approx(300 * 300)


def test_clear_statistics_come_from_the_chunks_and_match_the_whole_image(tmp_path):
    """A ragged cloud astride the border of two 1,024 px chunks: one footprint, as if whole."""
    from asmspotter.composite.composite import clear_footprint_from_valid

    wide = AOIGrid(
        epsg=32621, resolution_m=10, left_m=500_000, top_m=560_000, width_px=1100, height_px=60
    )
    base = np.broadcast_to(FOREST[:, None, None], (4, 60, 1100)).copy()
    mask = np.zeros((60, 1100), bool)
    for row in range(10, 50):  # a staircase edge, which simplifying smooths
        mask[row, 990 : 1000 + row] = True
    path = write_scene(
        tmp_path / "s0.tif", wide, base, dt.datetime(2024, 1, 1, tzinfo=dt.UTC), cloud_mask=mask
    )
    ref = SceneRef("local", "s0", dt.datetime(2024, 1, 1, tzinfo=dt.UTC), box(0, 0, 1, 1))
    local = LocalScene(ref, path, path.with_name("s0.cloudmask.tif"))
    result = composite_scenes([local], wide, tmp_path / "c.tif")
    assert result.clear_fraction == pytest.approx(1 - mask.sum() / mask.size)
    with rasterio.open(result.path) as src:
        whole = clear_footprint_from_valid(src.read(7), wide)
    assert result.clear_footprint.geom_type == "Polygon"  # joined across the border
    # Simplifying depends on where the ring starts: the same to within a pixel or two.
    assert result.clear_footprint.symmetric_difference(whole).area <= 2 * 100
    assert result.clear_footprint.hausdorff_distance(whole) <= 10


def test_median_clear_counts_answer_each_geometry_in_its_own_place(tmp_path):
    """Looks 0 and 1 are cloudy on the left half and the top rows: counts 1, 2 and 3."""
    from shapely.geometry import Polygon

    from asmspotter.monitor import median_clear_counts

    base = np.broadcast_to(FOREST[:, None, None], (4, 30, 40)).copy()
    left = np.zeros((30, 40), bool)
    left[:, :20] = True
    top = np.zeros((30, 40), bool)
    top[:10] = True
    scenes = [scene(tmp_path, 0, base, left), scene(tmp_path, 1, base, top)]
    scenes.append(scene(tmp_path, 2, base, np.zeros((30, 40), bool)))
    result = composite_scenes(scenes, GRID, tmp_path / "composite.tif")
    x0, y0 = 500_000, 560_000
    geometries = [
        box(x0 + 300, y0 - 300, x0 + 400, y0 - 200),  # bottom right: clear 3 times
        box(x0 + 200, y0 - 100, x0 + 300, y0),  # top right: 2
        box(x0, y0 - 100, x0 + 100, y0),  # top left: 1
        Polygon(),
        box(x0 + 50, y0 - 250, x0 + 150, y0 - 150),  # bottom left: 2
        box(x0 - 900, y0 + 100, x0 - 800, y0 + 200),  # outside the composite: 0
    ]
    assert median_clear_counts(result.path, geometries) == [3, 2, 1, 0, 2, 0]
    assert median_clear_counts(tmp_path / "absent.tif", [Polygon()]) == [0]  # nothing to read


def test_a_failed_write_is_named_and_keeps_the_previous_composite(tmp_path, monkeypatch):
    from asmspotter.cog import ChunkedCogWriter
    from asmspotter.composite.composite import build_composite_stack, write_composite
    from asmspotter.errors import OutputWriteError

    base = np.broadcast_to(FOREST[:, None, None], (4, 30, 40)).copy()
    stack = build_composite_stack([scene(tmp_path, 0, base, np.zeros((30, 40), bool))], GRID)
    out = tmp_path / "out"
    out.mkdir()
    (out / "composite.tif").write_bytes(b"the previous composite")

    def disk_full(self, chunk, row0, col0):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ChunkedCogWriter, "write_chunk", disk_full)
    with pytest.raises(OutputWriteError, match=r"cannot write .*composite.tif: .*No space"):
        write_composite(stack, out / "composite.tif")
    assert sorted(p.name for p in out.iterdir()) == ["composite.tif"]  # temporaries removed
    assert (out / "composite.tif").read_bytes() == b"the previous composite"


def test_scene_with_wrong_band_count_is_named(tmp_path):
    path = tmp_path / "bad.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=40,
        height=30,
        count=3,
        dtype="uint16",
        crs="EPSG:32621",
        transform=GRID.transform,
    ) as dst:
        dst.write(np.ones((3, 30, 40), np.uint16))
    ref = SceneRef("local", "bad", dt.datetime(2024, 1, 1, tzinfo=dt.UTC), box(0, 0, 1, 1))
    with pytest.raises(SceneReadError, match=r"scene bad: .* has 3 bands, expected 4"):
        composite_scenes([LocalScene(ref, path, None)], GRID, tmp_path / "c.tif")


def test_no_scenes_is_an_error(tmp_path):
    with pytest.raises(NoScenesError):
        composite_scenes([], GRID, tmp_path / "c.tif")


def test_indices_on_known_values():
    green, red, nir = np.float32(0.1), np.float32(0.05), np.float32(0.3)
    assert ndwi(green, nir) == pytest.approx(-0.5)
    assert ndvi(red, nir) == pytest.approx(0.25 / 0.35)
    assert ndwi(np.zeros(2), np.zeros(2)).tolist() == [0.0, 0.0]


@pytest.mark.parametrize("n_dates", [1, 2, 3, 4, 7])
def test_nanmedian_over_dates_equals_numpy(n_dates: int) -> None:
    from asmspotter.composite.median import nanmedian_of_dates

    rng = np.random.default_rng(n_dates)
    values = rng.random((3, 40, 50, n_dates), dtype=np.float32)
    values[rng.random(values.shape) < 0.35] = np.nan
    values[0, 0, 0, :] = np.nan  # never clear
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = np.nanmedian(values, axis=-1)
    result = nanmedian_of_dates(values, axis=-1)
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, expected, rtol=1e-6, equal_nan=True)
    assert np.isnan(result[0, 0, 0])


@pytest.mark.parametrize("n_dates", [1, 4, 6, 9])
def test_fused_composite_equals_the_stepwise_recipe_bit_for_bit(tmp_path, n_dates: int) -> None:
    """The one-pass block composite gives what mask -> scale -> median -> indices give.

    The reference reads every scene whole with rasterio, masks clouds and nodata, takes
    the one-sort median and the indices, and counts clear looks: bit for bit, NaN included.
    """
    from asmspotter.composite.composite import build_composite_dataset
    from asmspotter.composite.median import nanmedian_of_dates

    rng = np.random.default_rng(n_dates)
    scenes = []
    for i in range(n_dates):
        reflectance = rng.uniform(0.01, 0.5, (4, 30, 40)).astype(np.float32)
        reflectance[:, rng.random((30, 40)) < 0.1] = np.nan  # outside the footprint
        clouds = rng.random((30, 40)) < 0.4
        clouds[:3, :3] = True  # never clear
        scenes.append(scene(tmp_path, i, reflectance, clouds))
    looks = []
    for s in scenes:
        with rasterio.open(s.reflectance_path) as src, rasterio.open(s.cloud_mask_path) as m:
            raw = src.read()
            value = raw.astype(np.float32) * np.float32(src.scales[0]) + np.float32(0)
            clear = (raw != 0).all(axis=0) & (m.read(1) == 0)
        looks.append(np.where(clear, value, np.float32(np.nan)))
    median = nanmedian_of_dates(np.stack(looks), use_network=False)
    n_clear = (~np.isnan(np.stack(looks)[:, 0])).sum(axis=0)
    expected = {name: median[i] for i, name in enumerate(("blue", "green", "red", "nir"))}
    expected["ndwi"] = np.where(n_clear > 0, ndwi(median[1], median[3]), np.float32(np.nan))
    expected["ndvi"] = np.where(n_clear > 0, ndvi(median[2], median[3]), np.float32(np.nan))

    dataset = build_composite_dataset(scenes, GRID).compute(scheduler="threads")
    for name, values in expected.items():
        assert dataset[name].dtype == np.float32
        np.testing.assert_array_equal(dataset[name].values.view(np.uint32), values.view(np.uint32))
    assert dataset["valid"].dtype == np.int16
    np.testing.assert_array_equal(dataset["valid"].values, n_clear)
    assert np.isnan(dataset["nir"].values[:3, :3]).all()
