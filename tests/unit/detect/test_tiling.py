"""Tests of asmspotter.detect.tiling: coverage, bounds, blending (property tests)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asmspotter.detect.tiling import TileAccumulator, blend_weights, tile_windows


@st.composite
def tilings(draw: st.DrawFn) -> tuple[int, int, int, int]:
    tile_px = draw(st.integers(1, 40))
    overlap_px = draw(st.integers(0, tile_px - 1))
    height = draw(st.integers(1, 120))
    width = draw(st.integers(1, 120))
    return height, width, tile_px, overlap_px


@settings(max_examples=200, deadline=None)
@given(tilings())
def test_every_pixel_is_covered_and_no_tile_leaves_the_image(
    case: tuple[int, int, int, int],
) -> None:
    height, width, tile_px, overlap_px = case
    covered = np.zeros((height, width), dtype=int)
    windows = tile_windows(height, width, tile_px, overlap_px)
    for row, col, h, w in windows:
        assert (h, w) == (min(tile_px, height), min(tile_px, width))
        assert row >= 0 and row + h <= height
        assert col >= 0 and col + w <= width
        covered[row : row + h, col : col + w] += 1
    assert covered.min() >= 1
    assert len(set(windows)) == len(windows)


@settings(max_examples=100, deadline=None)
@given(tilings())
def test_neighbouring_tiles_overlap_by_at_least_overlap_px(
    case: tuple[int, int, int, int],
) -> None:
    height, width, tile_px, overlap_px = case
    rows = sorted({r for r, _, _, _ in tile_windows(height, width, tile_px, overlap_px)})
    for first, second in itertools.pairwise(rows):
        assert first + tile_px - second >= overlap_px


@settings(max_examples=100, deadline=None)
@given(tilings(), st.floats(-5, 5, allow_nan=False))
def test_blending_a_constant_gives_the_constant(
    case: tuple[int, int, int, int], value: float
) -> None:
    height, width, tile_px, overlap_px = case
    acc = TileAccumulator(height, width, tile_px, overlap_px)
    for window in tile_windows(height, width, tile_px, overlap_px):
        acc.add(window, np.full(window[2:], value, dtype=np.float32))
    np.testing.assert_allclose(acc.result(), value, rtol=1e-5, atol=1e-5)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 64).flatmap(lambda t: st.tuples(st.just(t), st.integers(0, t - 1))))
def test_blend_weights_are_positive_symmetric_and_at_most_one(case: tuple[int, int]) -> None:
    tile_px, overlap_px = case
    weights = blend_weights(tile_px, overlap_px)
    assert weights.shape == (tile_px, tile_px)
    assert weights.dtype == np.float32
    assert weights.min() > 0
    assert weights.max() <= 1
    np.testing.assert_allclose(weights, weights.T)
    np.testing.assert_allclose(weights, weights[::-1, ::-1])


def test_known_offsets() -> None:
    """10 px, tiles of 4 overlapping by 1: stride 3 gives 0, 3, 6 (6 + 4 = 10)."""
    rows = sorted({r for r, _, _, _ in tile_windows(10, 4, 4, 1)})
    assert rows == [0, 3, 6]
    # 11 px: 0, 3, 6 and the last shifted inward to 7, not padded past the edge.
    rows = sorted({r for r, _, _, _ in tile_windows(11, 4, 4, 1)})
    assert rows == [0, 3, 6, 7]


def test_image_smaller_than_a_tile_gets_one_cut_tile() -> None:
    assert tile_windows(5, 7, 32, 8) == [(0, 0, 5, 7)]


def test_interior_weights_are_one_and_ramp_at_margins() -> None:
    weights = blend_weights(16, 4)
    assert weights[4:12, 4:12].min() == pytest.approx(1.0)
    assert weights[0, 0] < weights[1, 1] < weights[4, 4]


@pytest.mark.parametrize(
    ("tile_px", "overlap_px", "match"),
    [(0, 0, "tile_px must be >= 1"), (8, 8, "overlap smaller than the tile"), (8, -1, "overlap")],
)
def test_bad_tiling_raises(tile_px: int, overlap_px: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        tile_windows(10, 10, tile_px, overlap_px)


def test_accumulator_rejects_wrong_tile_shape() -> None:
    acc = TileAccumulator(10, 10, 4, 1)
    with pytest.raises(ValueError, match="window needs"):
        acc.add((0, 0, 4, 4), np.zeros((3, 4), dtype=np.float32))
