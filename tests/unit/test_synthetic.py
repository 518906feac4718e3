"""Tests of asmspotter.synthetic: spectra, masks, determinism, resolution, series files."""

from __future__ import annotations

import datetime
import json

import numpy as np
import pytest
import rasterio
from scipy import ndimage

from asmspotter.composite.indices import ndvi, ndwi
from asmspotter.grid import AOIGrid
from asmspotter.synthetic import (
    LandCover,
    generate_scene_series,
    render_labelled_chip,
    render_training_pair,
)

B, G, R, N = 0, 1, 2, 3


def _interior(mask: np.ndarray, px: int = 2) -> np.ndarray:
    """Pixels of a class away from its edge (blur and mixing stay out)."""
    return ndimage.binary_erosion(mask, iterations=px)


@pytest.fixture(scope="module")
def chips():
    """A dozen mining chips at 10 m, 128 px."""
    rng = np.random.default_rng(42)
    return [render_labelled_chip(rng, 128, 10.0, 1.0) for _ in range(12)]


def _pixels(chips, label: LandCover, erode: int = 2) -> np.ndarray:
    """(4, n) reflectance of a class's interior pixels across chips."""
    parts = [c.reflectance[:, _interior(c.land_cover == label, erode)] for c in chips]
    return np.concatenate(parts, axis=1)


def test_shapes_dtypes_and_range(chips):
    for chip in chips:
        assert chip.reflectance.shape == (4, 128, 128)
        assert chip.reflectance.dtype == np.float32
        assert chip.mining_mask.dtype == np.bool_
        assert chip.reflectance.min() > 0.0
        assert chip.reflectance.max() <= 1.0


def test_forest_ndvi_high(chips):
    forest = _pixels(chips, LandCover.FOREST)
    v = ndvi(forest[R], forest[N])
    assert forest.shape[1] > 10_000
    assert np.mean(v > 0.7) > 0.99, np.percentile(v, [0.5, 1, 50])
    assert 0.78 < float(np.median(v)) < 0.95


def test_mine_ponds_wetter_and_tailings_redder_than_forest(chips):
    forest = _pixels(chips, LandCover.FOREST)
    ponds = _pixels(chips, LandCover.MINE_POND, erode=1)
    ground = _pixels(chips, LandCover.MINE_GROUND, erode=1)
    assert ponds.shape[1] > 50 and ground.shape[1] > 200
    assert ndwi(ponds[G], ponds[N]).mean() > ndwi(forest[G], forest[N]).mean() + 0.3
    assert ground[R].mean() > 2.5 * forest[R].mean()
    # Tailings: bright in all visible bands, NDVI low.
    assert ndvi(ground[R], ground[N]).mean() < 0.4


def test_turbid_river_ndwi_positive():
    rng = np.random.default_rng(7)
    found = []
    for _ in range(40):
        chip = render_labelled_chip(rng, 128, 10.0, 0.0)
        sel = _interior(chip.land_cover == LandCover.RIVER_TURBID, 2)
        if sel.sum() > 20:
            found.append(chip.reflectance[:, sel])
        if len(found) >= 3:
            break
    assert found, "no turbid river in 40 chips"
    for river in found:
        assert ndwi(river[G], river[N]).mean() > 0.0


def test_mask_only_on_mining_pixels(chips):
    for chip in chips:
        assert chip.mining_mask.any()
        mined = np.isin(chip.land_cover, [LandCover.MINE_POND, LandCover.MINE_GROUND])
        np.testing.assert_array_equal(chip.mining_mask, mined)
        # No river, sandbar, oxbow, road or clearing is labelled mining.
        for label in (LandCover.RIVER_TURBID, LandCover.SANDBAR, LandCover.OXBOW, LandCover.ROAD):
            assert not chip.mining_mask[chip.land_cover == label].any()


def test_negative_chips_have_empty_mask_but_lookalikes():
    rng = np.random.default_rng(3)
    lookalike = {
        LandCover.RIVER_TURBID,
        LandCover.RIVER_BLACKWATER,
        LandCover.OXBOW,
        LandCover.SANDBAR,
        LandCover.ROAD,
        LandCover.BARE_CLEARING,
        LandCover.PASTURE,
        LandCover.VILLAGE,
        LandCover.AQUACULTURE,
        LandCover.LANDSLIDE,
    }
    water_or_bare = 0
    for _ in range(6):
        refl, mask = render_training_pair(rng, 96, 10.0, mining_probability=0.0)
        assert not mask.any()
        wet = ndwi(refl[G], refl[N]) > 0
        bare = ndvi(refl[R], refl[N]) < 0.4
        water_or_bare += int((wet | bare).sum() > 5)
    assert water_or_bare >= 3
    rng = np.random.default_rng(3)
    for _ in range(6):
        chip = render_labelled_chip(rng, 96, 10.0, 0.0)
        assert set(np.unique(chip.land_cover).tolist()) & {int(x) for x in lookalike}


def test_same_seed_same_chip():
    a = render_training_pair(np.random.default_rng(11), 96, 10.0, 0.6)
    b = render_training_pair(np.random.default_rng(11), 96, 10.0, 0.6)
    c = render_training_pair(np.random.default_rng(12), 96, 10.0, 0.6)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_planetscope_resolution_chip():
    refl, mask = render_training_pair(np.random.default_rng(5), 128, 3.0, 1.0)
    assert refl.shape == (4, 128, 128) and mask.any()


def test_invalid_arguments_name_the_argument():
    with pytest.raises(ValueError, match="mining_probability"):
        render_training_pair(np.random.default_rng(0), 64, 10.0, 1.5)
    with pytest.raises(ValueError, match="resolution_m"):
        render_training_pair(np.random.default_rng(0), 64, 0.0)


DATES = [datetime.date(2024, 1, 5), datetime.date(2024, 4, 5), datetime.date(2024, 7, 5)]


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    grid = AOIGrid(32621, 10.0, 500_000.0, 600_000.0, 256, 256)
    out = tmp_path_factory.mktemp("series")
    return grid, generate_scene_series(out, grid, DATES, seed=4, max_cloud_fraction=0.3)


def _read(path):
    with rasterio.open(path) as src:
        return src.read(), src


def test_series_files_and_tags(series):
    grid, s = series
    assert len(s.scenes) == 3
    assert len({sc.scene_id for sc in s.scenes}) == 3
    assert s.scenes[0].scene_id == "SYN_20240105_4"
    for scene in s.scenes:
        with rasterio.open(scene.reflectance_path) as src:
            assert src.count == 4 and src.dtypes == ("uint16",) * 4
            assert src.descriptions == ("blue", "green", "red", "nir")
            assert src.scales == (1e-4,) * 4 and src.nodata == 0
            assert src.crs.to_epsg() == 32621 and src.transform == grid.transform
            # 256 x 256 blocks (rasterio reports a single full-width tile as untiled).
            assert src.block_shapes[0] == (256, 256) and src.profile["compress"] == "deflate"
            assert src.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"] == "2"
            tags = src.tags()
            assert tags["SCENE_ID"] == scene.scene_id
            assert tags["ACQUISITION_DATETIME"].startswith(scene.acquired.strftime("%Y-%m-%d"))
            assert tags["ACQUISITION_DATETIME"].endswith("Z")
            dn = src.read()
            assert dn.min() >= 1
        assert scene.acquired.tzinfo is not None
        for path in (scene.cloud_mask_path, scene.truth_path):
            with rasterio.open(path) as src:
                assert src.count == 1 and src.dtypes == ("uint8",)
                assert set(np.unique(src.read()).tolist()) <= {0, 1}
    doc = json.loads(s.truth_json_path.read_text())
    assert [x["site_id"] for x in doc["sites"]] == [x.site_id for x in s.sites]


def test_series_site_dynamics(series):
    grid, s = series
    keys = [d.isoformat() for d in DATES]
    designs = [x.design for x in s.sites]
    assert (
        designs.count("static") == 2 and designs.count("growing") == 2 and designs.count("new") == 2
    )
    for site in s.sites:
        areas = [site.area_ha_by_date[k] for k in keys]
        if site.design == "static":
            assert areas[0] >= 3.0 and len(set(areas)) == 1
        elif site.design == "growing":
            assert areas[0] >= 3.0
            assert 1.8 <= areas[-1] / areas[0] <= 3.0, areas
            assert areas == sorted(areas)
        else:  # new from the middle date
            assert areas[0] == 0.0 and areas[1] >= 3.0 and areas[2] >= areas[1]
    # Truth rasters carry exactly the site areas.
    for scene, key in zip(s.scenes, keys, strict=True):
        truth, _ = _read(scene.truth_path)
        total = sum(site.area_ha_by_date[key] for site in s.sites)
        assert truth.sum() * grid.pixel_area_ha == pytest.approx(total, abs=0.01)
    # Sites are >= 500 m apart.
    xy = np.array([(x.centroid_x_m, x.centroid_y_m) for x in s.sites])
    d = np.hypot(*(xy[:, None] - xy[None]).transpose(2, 0, 1))
    assert d[np.triu_indices(len(xy), 1)].min() >= 400  # centroids, not planned centres
    # Old footprints stay mined.
    t0, _ = _read(s.scenes[0].truth_path)
    t2, _ = _read(s.scenes[2].truth_path)
    assert not (t0.astype(bool) & ~t2.astype(bool)).any()


def test_series_clouds_and_stable_landscape(series):
    _, s = series
    refl, masks, truths = [], [], []
    for scene in s.scenes:
        refl.append(_read(scene.reflectance_path)[0].astype(np.float32) / 10000)
        masks.append(_read(scene.cloud_mask_path)[0][0].astype(bool))
        truths.append(_read(scene.truth_path)[0][0].astype(bool))
    for m in masks:
        assert m.mean() <= 0.3 + 0.01
    clear = ~masks[0] & ~masks[1] & ~(truths[0] | truths[1])
    clear = ndimage.binary_erosion(clear, iterations=2)
    assert clear.sum() > 5000
    for b in range(4):
        x, y = refl[0][b][clear], refl[1][b][clear]
        ratio = np.median(y) / np.median(x)
        # Gain jitter is +-10 %; haze adds < 0.01 in blue.
        assert 0.8 < ratio < 1.25, (b, ratio)
        resid = y - ratio * x
        # What is left is sensor noise and a little haze: a few 1e-3 reflectance.
        assert resid.std() < 0.01, (b, resid.std())
    # Forest texture and objects line up between dates: strong correlation in NIR.
    assert np.corrcoef(refl[0][3][clear], refl[1][3][clear])[0, 1] > 0.8


def test_resolution_scales_pixel_counts(tmp_path):
    """The same landscape in metres at 10 m and 3 m: truth pixels scale by (10/3)^2."""
    counts = {}
    areas = {}
    for res, n_px in ((10.0, 160), (3.0, 533)):
        grid = AOIGrid(32621, res, 500_000.0, 600_000.0, n_px, n_px)
        s = generate_scene_series(
            tmp_path / str(res),
            grid,
            DATES[:1],
            seed=2,
            n_static=1,
            n_growing=0,
            n_new=0,
            max_cloud_fraction=0.0,
        )
        counts[res] = int(_read(s.scenes[0].truth_path)[0].sum())
        areas[res] = s.sites[0].area_ha_by_date[DATES[0].isoformat()]
    ratio = counts[3.0] / counts[10.0]
    assert 0.5 * (10 / 3) ** 2 < ratio < 2.0 * (10 / 3) ** 2, (counts, areas)
    # A 3-8 ha site at both resolutions.
    for res in (10.0, 3.0):
        assert areas[res] >= 3.0


def test_series_rejects_bad_dates(tmp_path):
    grid = AOIGrid(32621, 10.0, 0.0, 0.0, 64, 64)
    with pytest.raises(ValueError, match="increasing"):
        generate_scene_series(tmp_path, grid, [DATES[1], DATES[0]])
    with pytest.raises(ValueError, match="dates"):
        generate_scene_series(tmp_path, grid, [])
