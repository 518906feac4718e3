"""Overlapping tiles over an image and the weights that blend them without seams.

A probability map of a large AOI is predicted tile by tile
(:func:`asmspotter.detect.predict.predict_probabilities`): :func:`tile_windows` lays
tiles of ``tile_px`` with ``overlap_px`` overlap over the image, shifting the last
row and column of tiles inward so no tile reaches past the image;
:func:`blend_weights` down-weights tile margins, where the net sees less context,
with a raised-cosine ramp; :class:`TileAccumulator` sums ``weight * probability``
and ``weight`` per pixel and divides at the end.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

Window = tuple[int, int, int, int]
"""A tile window: (row_off, col_off, height, width) in pixels."""


def _check_tiling(tile_px: int, overlap_px: int) -> None:
    if tile_px < 1:
        raise ValueError(f"tile_px must be >= 1, got {tile_px}; give a tile size in pixels.")
    if not 0 <= overlap_px < tile_px:
        raise ValueError(
            f"overlap_px must be in [0, tile_px) = [0, {tile_px}), got {overlap_px}; "
            "use an overlap smaller than the tile."
        )


def _axis_offsets(length: int, tile_px: int, overlap_px: int) -> list[int]:
    """Offsets of tiles along one axis; the last one is shifted to end at ``length``."""
    if length <= tile_px:
        return [0]
    stride = tile_px - overlap_px
    n_tiles = math.ceil((length - tile_px) / stride) + 1
    offsets = [min(i * stride, length - tile_px) for i in range(n_tiles)]
    return sorted(set(offsets))


def tile_windows(height: int, width: int, tile_px: int, overlap_px: int) -> list[Window]:
    """Lay overlapping tiles over an image so every pixel is in at least one tile.

    Tiles step by ``tile_px - overlap_px``; the last tile of each row and column is
    shifted inward to end on the image edge, so it overlaps its neighbour by at least
    ``overlap_px``. No tile reaches past the image; only when the image is smaller than
    a tile along an axis is the tile cut to the image size along that axis (the caller
    pads it if the net needs a fixed size).

    Args:
        height: Image height in pixels.
        width: Image width in pixels.
        tile_px: Tile size in pixels (square tiles).
        overlap_px: Overlap between neighbouring tiles in pixels, ``0 <= overlap < tile``.

    Returns:
        Windows ``(row_off, col_off, h, w)`` in row-major order, with
        ``h = min(tile_px, height)`` and ``w = min(tile_px, width)``.

    Raises:
        ValueError: If the image is empty or the tile size or overlap are invalid.
    """
    _check_tiling(tile_px, overlap_px)
    if height < 1 or width < 1:
        raise ValueError(f"image must be at least 1x1 pixels, got {height}x{width}.")
    tile_h = min(tile_px, height)
    tile_w = min(tile_px, width)
    return [
        (row, col, tile_h, tile_w)
        for row in _axis_offsets(height, tile_px, overlap_px)
        for col in _axis_offsets(width, tile_px, overlap_px)
    ]


def tiles_covering(
    windows: Sequence[Window], rows: tuple[int, int], cols: tuple[int, int]
) -> list[Window]:
    """The windows that cover at least one pixel of rows ``rows`` x columns ``cols``."""
    (r0, r1), (c0, c1) = rows, cols
    return [
        (row, col, h, w)
        for row, col, h, w in windows
        if row < r1 and row + h > r0 and col < c1 and col + w > c0
    ]


def split_axis(length: int, tile_px: int, overlap_px: int, n_parts: int) -> list[tuple[int, int]]:
    """Split an image's rows (or columns) into up to ``n_parts`` ranges to predict apart.

    A range predicted on its own must run every tile that covers one of its rows, so a
    row of tiles that straddles a boundary runs twice. Boundaries are put just past an
    overlap zone (a tile row's offset + ``overlap_px``), where one row of tiles covers
    both sides: each boundary costs one extra row of tiles, not two. Columns work the
    same way with columns of tiles.

    Args:
        length: Image height (or width) in pixels.
        tile_px: Tile size in pixels.
        overlap_px: Overlap between neighbouring tiles in pixels.
        n_parts: Ranges wanted; fewer come back when the image has too few tile rows.

    Returns:
        ``(start, stop)`` ranges, contiguous, covering ``0..length``.

    Raises:
        ValueError: If ``n_parts < 1`` or the tiling is invalid.
    """
    _check_tiling(tile_px, overlap_px)
    if n_parts < 1:
        raise ValueError(f"n_parts must be >= 1, got {n_parts}.")
    offsets = _axis_offsets(length, tile_px, overlap_px)

    def straddling(cut: int) -> int:
        return sum(1 for o in offsets if o < cut < o + tile_px)

    cuts = [o + overlap_px for o in offsets[1:] if 0 < o + overlap_px < length]
    candidates = [c for c in cuts if straddling(c) == 1] or cuts
    bounds = [0]
    for i in range(1, n_parts):
        later = [c for c in candidates if c > bounds[-1]]
        if not later:
            break
        target = i * length / n_parts
        bounds.append(min(later, key=lambda c: abs(c - target)))
    bounds.append(length)
    return list(itertools.pairwise(bounds))


def blend_weights(tile_px: int, overlap_px: int) -> NDArray[np.float32]:
    """Return the (tile_px, tile_px) blending window: 1 inside, cosine ramps at the margins.

    Over the outer ``overlap_px`` pixels of each side the weight rises as a raised
    cosine from near 0 to 1 (sampled at pixel centres, so never exactly 0); the 2-D
    window is the outer product of the 1-D ramps. Neighbouring tiles then hand over
    smoothly and tile margins, where the net saw the least context, count least. Every
    weight is strictly positive, so a pixel covered only by a tile margin (at the image
    edge) still gets a value.

    Args:
        tile_px: Tile size in pixels.
        overlap_px: Width of the ramp in pixels; 0 gives a flat window of ones.

    Returns:
        float32 array of shape (tile_px, tile_px), values in (0, 1].

    Raises:
        ValueError: If the tile size or overlap are invalid.
    """
    _check_tiling(tile_px, overlap_px)
    ramp = np.ones(tile_px, dtype=np.float64)
    if overlap_px > 0:
        # Pixel centres (i + 0.5) / overlap lie in (0, 1): the ramp is in (0, 1).
        centres = (np.arange(overlap_px) + 0.5) / overlap_px
        rise = 0.5 - 0.5 * np.cos(np.pi * centres)
        n = min(overlap_px, tile_px)
        ramp[:n] = np.minimum(ramp[:n], rise[:n])
        ramp[tile_px - n :] = np.minimum(ramp[tile_px - n :], rise[:n][::-1])
    return np.outer(ramp, ramp).astype(np.float32)


class TileAccumulator:
    """Blend per-tile predictions into one map with :func:`blend_weights`.

    Holds two (H, W) float32 arrays: the sum of ``weight * value`` and the sum of
    weights. Memory is two float32 values per output pixel, independent of the tiles.

    Args:
        height: Image height in pixels.
        width: Image width in pixels.
        tile_px: Tile size in pixels, as given to :func:`tile_windows`.
        overlap_px: Overlap in pixels, as given to :func:`tile_windows`.
    """

    def __init__(self, height: int, width: int, tile_px: int, overlap_px: int) -> None:
        self.weights = blend_weights(tile_px, overlap_px)
        self._value_sum = np.zeros((height, width), dtype=np.float32)
        self._weight_sum = np.zeros((height, width), dtype=np.float32)

    def add(self, window: Window, values: NDArray[np.floating]) -> None:
        """Add one tile's values (h, w) at ``window`` = (row_off, col_off, h, w).

        Raises:
            ValueError: If ``values`` does not have the window's shape.
        """
        row, col, h, w = window
        if values.shape != (h, w):
            raise ValueError(f"tile values have shape {values.shape}, window needs {(h, w)}.")
        weight = self.weights[:h, :w]
        self._value_sum[row : row + h, col : col + w] += weight * values
        self._weight_sum[row : row + h, col : col + w] += weight

    def result(self) -> NDArray[np.float32]:
        """Return the blended map (H, W) float32; pixels no tile covered are 0."""
        out = np.zeros_like(self._value_sum)
        np.divide(self._value_sum, self._weight_sum, out=out, where=self._weight_sum > 0)
        return out
