"""Tiled prediction: run the net over overlapping tiles in batches and blend them.

:func:`predict_probabilities` predicts a whole (C, H, W) feature array;
:func:`predict_strips` yields a block of it (rows x columns) strip by strip, which is
what the column blocks and Dask blocks of :mod:`asmspotter.detect.blocks` run. Tiles
come from :mod:`asmspotter.detect.tiling`.

Memory is bounded by a row of tiles: features are read one row of tiles at a time
(``tile_px`` rows, full width) from anything indexable as ``features[:, r0:r1, c0:c1]``
(numpy, dask, a rasterio window reader), and finished rows of the output are handed
on strip by strip.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import NDArray
from rasterio.windows import Window

from asmspotter.detect.features import FeatureArray
from asmspotter.detect.model_card import ModelCard
from asmspotter.detect.runtime import LoadedModel, configure_torch_threads
from asmspotter.detect.tiling import blend_weights, tile_windows, tiles_covering
from asmspotter.detect.unet import fold_space_to_depth
from asmspotter.errors import ModelMismatchError
from asmspotter.memory import reuse_freed_memory

logger = logging.getLogger(__name__)

Precision = Literal["fp32", "bf16"]
ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(tiles_done, tiles_total)`` after each batch of tiles."""

BATCH_PIXELS = 8 * 256 * 256
"""Tile pixels per forward pass when no batch size is given: 8 tiles of 256 px, 2 of
512 px. Activation memory follows the pixels in a batch, not the number of tiles."""


def tiles_per_batch(card: ModelCard) -> int:
    """Tiles per forward pass for ``card``'s tile size: :data:`BATCH_PIXELS` of them."""
    return max(1, BATCH_PIXELS // (card.tile_px * card.tile_px))


def _batches_of(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive lists of ``size`` items (the last may be shorter)."""
    while batch := list(itertools.islice(items, size)):
        yield batch


def _prepared_tiles(
    features: NDArray[np.float32] | FeatureArray,
    valid_mask: NDArray[np.bool_] | FeatureArray | None,
    windows: Sequence[Window],
    mean: NDArray[np.float32],
    std: NDArray[np.float32],
    pad_h: int,
    pad_w: int,
) -> Iterator[tuple[Window, NDArray[np.float32], NDArray[np.bool_]]]:
    """Yield ``(window, normalised tile, no-data mask)`` for row-major ``windows``.

    Features are read one row of tiles at a time (one read of the row's full width
    instead of one per tile) and normalised once per pixel, not once per overlapping
    tile: reading and normalising cost less than the net itself this way.
    """
    for row, group in itertools.groupby(windows, key=lambda window: window[0]):
        row_windows = list(group)
        height = row_windows[0][2]
        c0 = min(col for _, col, _, _ in row_windows)
        c1 = max(col + w for _, col, _, w in row_windows)
        strip = np.asarray(features[:, row : row + height, c0:c1], dtype=np.float32)
        finite = np.isfinite(strip)
        bad = np.logical_not(finite.all(axis=0))
        if valid_mask is not None:
            bad |= ~np.asarray(valid_mask[row : row + height, c0:c1], dtype=bool)
        # NaNs become the band mean, i.e. 0 after normalising: neutral input.
        strip = np.where(finite, strip, mean)
        strip -= mean
        strip /= std
        for window in row_windows:
            col, width = window[1] - c0, window[3]
            tile = strip[:, :, col : col + width]
            if pad_h or pad_w:
                tile = np.pad(tile, ((0, 0), (0, pad_h), (0, pad_w)), mode="reflect")
            yield window, tile, bad[:, col : col + width]


Strip = tuple[int, int, NDArray[np.float32], NDArray[np.bool_]]
"""A finished piece of the probability map: ``(row_off, col_off, probability, nodata)``."""


def _check_range(name: str, value: tuple[int, int] | None, length: int) -> tuple[int, int]:
    """``value`` (default: the whole axis) after checking it lies inside ``0..length``."""
    start, stop = (0, length) if value is None else value
    if not 0 <= start < stop <= length:
        raise ValueError(f"{name} {value} is not inside the image's {length} pixels.")
    return start, stop


def predict_strips(
    features: NDArray[np.float32] | FeatureArray,
    model: LoadedModel,
    *,
    valid_mask: NDArray[np.bool_] | FeatureArray | None,
    batch_size: int | None,
    progress: ProgressCallback | None,
    precision: Precision,
    row_range: tuple[int, int] | None = None,
    col_range: tuple[int, int] | None = None,
) -> Iterator[Strip]:
    """Yield finished strips ``(row_off, col_off, probability, nodata)`` top to bottom.

    Tiles are visited row of tiles by row of tiles; rows above the current tile row are
    final (no later tile covers them), so they are blended, yielded and dropped. Memory
    is one tile row of accumulators (``tile_px`` x the block's width x 9 bytes) plus the
    tile batch, whatever the image height.

    ``row_range=(start, stop)`` and ``col_range`` predict only that block of the image:
    it runs every tile of the whole image's tiling that covers one of its pixels, so
    each pixel blends the same tiles as in a whole-image run and blocks predicted apart
    (column blocks of a wide AOI, strips on several Dask workers) join without seams or
    differences. Tile rows (columns) that straddle a block edge are run by both
    neighbouring blocks.
    """
    card = model.card
    if len(features.shape) != 3:
        raise ValueError(f"features must be (C, H, W), got shape {tuple(features.shape)}.")
    n_bands, height, width = (int(s) for s in features.shape)
    if n_bands != len(card.bands):
        raise ModelMismatchError(
            f"model {card.name!r} takes {len(card.bands)} bands {card.bands} but the features "
            f"have {n_bands}; build them with build_features(reflectance, card.bands)."
        )
    if valid_mask is not None and tuple(valid_mask.shape) != (height, width):
        raise ValueError(
            f"valid_mask has shape {tuple(valid_mask.shape)}, features have {(height, width)}."
        )
    if batch_size is None:
        batch_size = tiles_per_batch(card)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    first_row, stop_row = _check_range("row_range", row_range, height)
    first_col, stop_col = _check_range("col_range", col_range, width)
    if model.device.type == "cpu":
        configure_torch_threads()
        reuse_freed_memory()

    mean = np.asarray(card.normalisation.mean, dtype=np.float32)[:, None, None]
    std = np.asarray(card.normalisation.std, dtype=np.float32)[:, None, None]
    windows = tiles_covering(
        tile_windows(height, width, card.tile_px, card.overlap_px),
        (first_row, stop_row),
        (first_col, stop_col),
    )
    tile_h, tile_w = windows[0][2], windows[0][3]
    # Accumulators span the columns of the tiles run: the block plus the tiles' margins.
    span_c0 = min(col for _, col, _, _ in windows)
    span = max(col + w for _, col, _, w in windows) - span_c0
    weights = blend_weights(card.tile_px, card.overlap_px)
    value_sum = np.zeros((tile_h, span), dtype=np.float32)
    weight_sum = np.zeros((tile_h, span), dtype=np.float32)
    nodata = np.zeros((tile_h, span), dtype=bool)
    buf_r0 = windows[0][0]
    end_row = max(row + h for row, _, h, _ in windows)
    multiple = int(getattr(model.module, "size_multiple", 1))
    fold = int(getattr(model.module, "space_to_depth", 1))
    pad_h = math.ceil(tile_h / multiple) * multiple - tile_h
    pad_w = math.ceil(tile_w / multiple) * multiple - tile_w
    # bf16 autocast: about 2x faster where the CPU has AVX512-BF16/AMX and on GPUs;
    # the card's precision_check records the IoU cost on the test split.
    autocast = torch.autocast(
        device_type=model.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"
    )

    def flush(upto: int) -> Iterator[Strip]:
        """Blend rows ``buf_r0..upto``, yield their part inside the block, drop them."""
        nonlocal value_sum, weight_sum, nodata, buf_r0
        n = upto - buf_r0
        lo, hi = max(buf_r0, first_row), min(upto, stop_row)
        if hi > lo:
            rows = slice(lo - buf_r0, hi - buf_r0)
            cols = slice(first_col - span_c0, stop_col - span_c0)
            prob = np.zeros((hi - lo, stop_col - first_col), dtype=np.float32)
            np.divide(
                value_sum[rows, cols],
                weight_sum[rows, cols],
                out=prob,
                where=weight_sum[rows, cols] > 0,
            )
            bad = nodata[rows, cols].copy()
            prob[bad] = 0.0
            yield lo, first_col, prob, bad
        value_sum = np.concatenate([value_sum[n:], np.zeros((n, span), np.float32)])
        weight_sum = np.concatenate([weight_sum[n:], np.zeros((n, span), np.float32)])
        nodata = np.concatenate([nodata[n:], np.zeros((n, span), bool)])
        buf_r0 = upto

    done = 0
    tiles = _prepared_tiles(features, valid_mask, windows, mean, std, pad_h, pad_w)
    with torch.inference_mode(), autocast:
        for prepared in _batches_of(tiles, batch_size):
            batch = [window for window, _, _ in prepared]
            bads = [bad for _, _, bad in prepared]
            # Tiles go straight into a channels-last (N, H, W, C) buffer, folded into
            # space-to-depth blocks if the net wants them: one copy, and the permuted
            # view is the channels-last NCHW tensor the net takes.
            stacked = np.stack([fold_space_to_depth(tile, fold) for _, tile, _ in prepared])
            x = torch.from_numpy(stacked).permute(0, 3, 1, 2).to(model.device)
            logits = model.module(x, folded=True) if fold > 1 else model.module(x)
            probs = torch.sigmoid(logits.float())[:, 0].cpu().numpy()
            for (row, col, h, w), prob, bad in zip(batch, probs, bads, strict=True):
                if row > buf_r0:
                    yield from flush(row)
                r, c = row - buf_r0, col - span_c0
                nodata[r : r + h, c : c + w] |= bad
                weight = weights[:h, :w]
                value_sum[r : r + h, c : c + w] += weight * prob[:h, :w]
                weight_sum[r : r + h, c : c + w] += weight
            done += len(batch)
            if progress is not None:
                progress(done, len(windows))
    yield from flush(end_row)
    logger.info(
        "predicted rows %d..%d, columns %d..%d of %dx%d px in %d tiles of %d px (overlap %d) "
        "on %s, %s",
        first_row,
        stop_row,
        first_col,
        stop_col,
        height,
        width,
        len(windows),
        card.tile_px,
        card.overlap_px,
        model.device,
        precision,
    )


def predict_block(
    features: NDArray[np.float32] | FeatureArray,
    model: LoadedModel,
    *,
    valid_mask: NDArray[np.bool_] | FeatureArray | None,
    batch_size: int | None,
    progress: ProgressCallback | None,
    precision: Precision,
    row_range: tuple[int, int] | None = None,
    col_range: tuple[int, int] | None = None,
) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """Return (probability, no-data mask) of a block (default: the whole image).

    See :func:`predict_probabilities` and :func:`predict_strips`.
    """
    height, width = int(features.shape[1]), int(features.shape[2])
    first_row, stop_row = _check_range("row_range", row_range, height)
    first_col, stop_col = _check_range("col_range", col_range, width)
    probability = np.zeros((stop_row - first_row, stop_col - first_col), dtype=np.float32)
    nodata = np.zeros(probability.shape, dtype=bool)
    for row, _, prob, bad in predict_strips(
        features,
        model,
        valid_mask=valid_mask,
        batch_size=batch_size,
        progress=progress,
        precision=precision,
        row_range=(first_row, stop_row),
        col_range=(first_col, stop_col),
    ):
        probability[row - first_row : row - first_row + len(prob)] = prob
        nodata[row - first_row : row - first_row + len(prob)] = bad
    return probability, nodata


def predict_probabilities(
    features: NDArray[np.float32] | FeatureArray,
    model: LoadedModel,
    *,
    valid_mask: NDArray[np.bool_] | FeatureArray | None = None,
    batch_size: int | None = None,
    progress: ProgressCallback | None = None,
    precision: Precision = "fp32",
) -> NDArray[np.float32]:
    """Predict the mining probability of every pixel, in overlapping tiles, blended.

    Tiles of ``card.tile_px`` overlapping by ``card.overlap_px`` are read one row of
    tiles at a time (``np.asarray(features[:, r0:r1, c0:c1])``), normalised with the card's
    mean and std, run under ``torch.inference_mode()`` in channels-last layout, and
    blended with :func:`asmspotter.detect.tiling.blend_weights`.

    Args:
        features: (C, H, W) float32 in the card's band order: a numpy array, or anything
            lazily sliceable the same way (a dask array, a rasterio window reader).
        model: From :func:`load_model`.
        valid_mask: (H, W) bool (or lazily sliceable), False where there is no data.
        batch_size: Tiles per forward pass; memory grows with it. None:
            :func:`tiles_per_batch` (:data:`BATCH_PIXELS` of tiles).
        progress: Called as ``progress(tiles_done, tiles_total)`` after each batch.
        precision: ``"fp32"``, or ``"bf16"`` for bfloat16 autocast (faster on recent
            CPUs and GPUs, slightly different results).

    Returns:
        Probability (H, W) float32 in [0, 1]; 0 where any input band is NaN or
        ``valid_mask`` is False.

    Raises:
        ModelMismatchError: If the number of bands is not the model's.
        ValueError: If shapes or ``batch_size`` are invalid.
    """
    probability, _ = predict_block(
        features,
        model,
        valid_mask=valid_mask,
        batch_size=batch_size,
        progress=progress,
        precision=precision,
    )
    return probability
