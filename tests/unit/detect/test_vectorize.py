"""Tests of asmspotter.detect.vectorize with answers known by construction."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from scipy import ndimage

from asmspotter.detect.vectorize import COLUMNS, clean_mask, vectorize_detections

# 10 m pixels: one pixel is 100 m2 = 0.01 ha.
TRANSFORM = Affine(10.0, 0.0, 500_000.0, 0.0, -10.0, 600_000.0)
EPSG = 32621


def _map_with_block(value: float = 0.9) -> np.ndarray:
    prob = np.zeros((10, 10), dtype=np.float32)
    prob[2:5, 3:6] = value
    return prob


def test_one_3x3_block_is_one_polygon_of_9_pixels() -> None:
    """A 3x3 block at 10 m is 9 px = 900 m2 = 0.09 ha, at rows 2-4, columns 3-5."""
    frame = vectorize_detections(_map_with_block(), TRANSFORM, EPSG, 0.5, 0.0)
    assert list(frame.columns) == COLUMNS
    assert frame.crs.to_epsg() == EPSG
    assert len(frame) == 1
    row = frame.iloc[0]
    assert row["area_ha"] == pytest.approx(0.09)
    assert row.geometry.area == pytest.approx(900.0)
    assert row.geometry.bounds == pytest.approx((500_030.0, 599_950.0, 500_060.0, 599_980.0))
    assert row["mean_probability"] == pytest.approx(0.9)
    assert row["max_probability"] == pytest.approx(0.9)


def test_scores_and_threshold() -> None:
    prob = _map_with_block(0.6)
    prob[3, 4] = 0.95
    frame = vectorize_detections(prob, TRANSFORM, EPSG, 0.5, 0.0)
    assert frame.iloc[0]["max_probability"] == pytest.approx(0.95)
    assert frame.iloc[0]["mean_probability"] == pytest.approx((8 * 0.6 + 0.95) / 9)
    assert len(vectorize_detections(prob, TRANSFORM, EPSG, 0.7, 0.0, cleanup_px=0)) == 1
    assert len(vectorize_detections(prob, TRANSFORM, EPSG, 0.99, 0.0)) == 0


def test_small_polygons_are_dropped() -> None:
    frame = vectorize_detections(_map_with_block(), TRANSFORM, EPSG, 0.5, min_area_ha=0.1)
    assert len(frame) == 0
    assert list(frame.columns) == COLUMNS
    assert frame.crs.to_epsg() == EPSG


def test_no_data_pixels_are_never_mining() -> None:
    """A 5x5 block (25 px) with its top row unobserved leaves 4x5 = 20 px = 0.2 ha."""
    prob = np.zeros((10, 10), dtype=np.float32)
    prob[2:7, 2:7] = 0.9
    valid = np.ones((10, 10), dtype=bool)
    valid[2, :] = False
    frame = vectorize_detections(prob, TRANSFORM, EPSG, 0.5, 0.0, valid_mask=valid)
    assert frame.iloc[0]["area_ha"] == pytest.approx(0.2)


def test_speckle_is_removed_and_border_blocks_kept() -> None:
    mask = np.zeros((10, 10), dtype=bool)
    mask[0:3, 0:3] = True  # touches the border: kept whole
    mask[7, 7] = True  # single-pixel speckle: removed
    cleaned = clean_mask(mask, 1)
    assert cleaned.sum() == 9
    assert cleaned[0:3, 0:3].all()
    assert clean_mask(mask, 0).sum() == 10


@pytest.mark.parametrize("radius", [1, 2, 3])
def test_the_opening_is_scipys_square_opening_of_the_edge_padded_mask(radius: int) -> None:
    rng = np.random.default_rng(radius)
    structure = np.ones((2 * radius + 1,) * 2, bool)
    pad = radius + 1
    for density in (0.3, 0.6, 0.9):
        mask = rng.random((37, 53)) < density
        padded = np.pad(mask, pad, mode="edge")
        expected = ndimage.binary_opening(padded, structure=structure)[pad:-pad, pad:-pad]
        np.testing.assert_array_equal(clean_mask(mask, radius), expected)


def test_two_blocks_two_polygons_largest_first() -> None:
    prob = _map_with_block()
    prob[7:10, 0:4] = 0.8
    frame = vectorize_detections(prob, TRANSFORM, EPSG, 0.5, 0.0)
    assert frame["area_ha"].tolist() == pytest.approx([0.12, 0.09])


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="give hectares"):
        vectorize_detections(_map_with_block(), TRANSFORM, EPSG, 0.5, -1.0)
    with pytest.raises(ValueError, match="2-D"):
        vectorize_detections(np.zeros((2, 3, 3), np.float32), TRANSFORM, EPSG, 0.5, 0.0)


@pytest.mark.parametrize("density", [1.0, 0.0])
def test_polygons_in_boxes_equal_polygons_of_the_whole_strip(monkeypatch, density):
    """Few regions: one box each; many: the whole strip at once. The same polygons."""
    from shapely.ops import unary_union

    from asmspotter.detect import vectorize

    rng = np.random.default_rng(3)
    mask = ndimage.binary_opening(rng.random((120, 300)) > 0.55)
    mask[40:60, 100:140] = True
    mask[48:52, 118:122] = False  # a hole
    labels, n = ndimage.label(mask, structure=[[0, 1, 0], [1, 1, 1], [0, 1, 0]])
    transform = Affine(10, 0, 600_000, 0, -10, 500_000)
    monkeypatch.setattr(vectorize, "BOX_POLYGONISING_MAX_DENSITY", density)
    got = vectorize._region_polygons(labels, transform)
    assert sorted(got) == list(range(1, n + 1))
    for index, pieces in got.items():
        pixels = np.argwhere(labels == index)
        area = 100.0 * len(pixels)
        assert unary_union(pieces).area == pytest.approx(area)
    one_box = vectorize._region_polygons(labels, transform)
    monkeypatch.setattr(vectorize, "BOX_POLYGONISING_MAX_DENSITY", 1 - density)
    other_way = vectorize._region_polygons(labels, transform)
    for index in one_box:
        assert unary_union(one_box[index]).equals(unary_union(other_way[index]))
