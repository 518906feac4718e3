"""Blocks of a composite predicted apart: column blocks here, row strips x column blocks on Dask.

A wide AOI is predicted in column blocks of at most :data:`BLOCK_PX` columns, one
after another (:func:`predict_by_column_blocks`); with a ``distributed.Client`` the
composite is cut into row strips x column blocks that the workers predict at once
(:func:`predict_on_cluster`, each block one :func:`predict_composite_block` task).
Every block runs all tiles covering its pixels, so blocks join exactly.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from asmspotter.detect.features import RasterFeatures, RasterValid, composite_inputs, open_composite
from asmspotter.detect.model_card import WEIGHTS_FILENAME, ModelCard
from asmspotter.detect.predict import (
    Precision,
    ProgressCallback,
    Strip,
    predict_block,
    predict_strips,
)
from asmspotter.detect.runtime import LoadedModel, load_model, run_precision
from asmspotter.detect.tiling import split_axis, tile_windows, tiles_covering

logger = logging.getLogger(__name__)

BLOCK_PX = 3072
"""Widest column block predicted at once, and most rows of one block on a Dask worker.

What inference holds grows with the width of what it predicts (rows of composite
blocks and of tiles, about 100 KB per column of float32 bands, temporaries and
accumulators): a wide AOI is predicted in column blocks of at most this many pixels,
so its peak memory does not grow with the AOI's size (``detect_sites`` alone on a
10,954 px wide composite: 0.75 GiB in 3,651 px blocks, 0.63 GiB in 1,826 px blocks).
Each block edge runs one column of tiles twice (at this width about 7 % more tiles
per edge for a block).
"""


@functools.lru_cache(maxsize=4)
def _cached_model(model_dir: Path, device: str | None, weights_mtime_ns: int) -> LoadedModel:
    """One loaded model per process (a Dask worker predicts many strips with it).

    ``weights_mtime_ns`` is part of the key so that re-trained weights are reloaded.
    """
    return load_model(model_dir, device=device)


def predict_composite_block(
    composite_path: Path,
    model_dir: Path,
    rows: tuple[int, int],
    cols: tuple[int, int],
    *,
    device: str | None = None,
    batch_size: int | None = None,
    precision: Precision | None = None,
) -> Strip:
    """Predict one block (rows x columns) of a composite COG: one task of a distributed run.

    Runs every tile that covers the block (see ``row_range``/``col_range`` of the
    tiled predictor), so blocks predicted apart join exactly. The model is loaded once
    per process. ``precision`` None is decided here, on the worker
    (:func:`asmspotter.detect.runtime.run_precision`): a cluster's machines may differ
    from the one that started the run in whether they have native bf16.

    Returns:
        ``(row_off, col_off, probability, nodata)`` of the block, as
        :func:`detect_sites` writes it.
    """
    weights = Path(model_dir) / WEIGHTS_FILENAME
    mtime = weights.stat().st_mtime_ns if weights.is_file() else 0
    model = _cached_model(Path(model_dir), device, mtime)
    with open_composite(Path(composite_path)) as dataset:
        features, valid_mask = composite_inputs(dataset, model.card, Path(composite_path))
        probability, nodata = predict_block(
            features,
            model,
            valid_mask=valid_mask,
            batch_size=batch_size,
            progress=None,
            precision=precision or run_precision(model.card.precision, model.device),
            row_range=rows,
            col_range=cols,
        )
    return rows[0], cols[0], probability, nodata


def column_blocks(width: int, card: ModelCard) -> list[tuple[int, int]]:
    """Column ranges of at most about :data:`BLOCK_PX` to predict one after another."""
    return split_axis(width, card.tile_px, card.overlap_px, math.ceil(width / BLOCK_PX))


def _tiles_per_block(
    blocks: Sequence[tuple[tuple[int, int], tuple[int, int]]],
    height: int,
    width: int,
    card: ModelCard,
) -> list[int]:
    """Tiles each (rows, cols) block runs: the progress total counts the repeated ones."""
    windows = tile_windows(height, width, card.tile_px, card.overlap_px)
    return [len(tiles_covering(windows, rows, cols)) for rows, cols in blocks]


def predict_by_column_blocks(
    features: RasterFeatures,
    valid_mask: RasterValid | None,
    model: LoadedModel,
    *,
    batch_size: int | None,
    precision: Precision,
    progress: ProgressCallback | None,
) -> Iterator[Strip]:
    """Predict a composite column block by column block in this process."""
    _, height, width = features.shape
    blocks = [((0, height), cols) for cols in column_blocks(width, model.card)]
    totals = _tiles_per_block(blocks, height, width, model.card)
    for i, (rows, cols) in enumerate(blocks):
        before = sum(totals[:i])

        def block_progress(done: int, _total: int, before: int = before) -> None:
            if progress is not None:
                progress(before + done, sum(totals))

        yield from predict_strips(
            features,
            model,
            valid_mask=valid_mask,
            batch_size=batch_size,
            progress=block_progress,
            precision=precision,
            row_range=rows,
            col_range=cols,
        )


def predict_on_cluster(
    client: Any,
    composite_path: Path,
    model_dir: Path,
    *,
    height: int,
    width: int,
    card: ModelCard,
    device: str | None,
    batch_size: int | None,
    precision: Precision | None,
    progress: ProgressCallback | None,
) -> Iterator[Strip]:
    """Predict blocks of rows x columns on a Dask cluster's workers; yield them as they finish.

    ``precision`` None lets each worker decide for its own CPU (:func:`predict_composite_block`).

    Each block edge costs one extra row (column) of tiles
    (:func:`asmspotter.detect.tiling.split_axis`).
    """
    from distributed import as_completed

    n_threads = max(1, sum(client.nthreads().values()))
    col_ranges = column_blocks(width, card)
    # Two blocks per worker thread keep workers busy to the end; blocks of at most
    # BLOCK_PX square keep what a worker holds and returns independent of the AOI.
    n_row_strips = max(math.ceil(2 * n_threads / len(col_ranges)), math.ceil(height / BLOCK_PX))
    row_ranges = split_axis(height, card.tile_px, card.overlap_px, n_row_strips)
    blocks = list(itertools.product(row_ranges, col_ranges))
    tiles = dict(zip(blocks, _tiles_per_block(blocks, height, width, card), strict=True))
    logger.info(
        "predicting %d blocks (%d row strips x %d column blocks) of %s on %d Dask worker threads",
        len(blocks),
        len(row_ranges),
        len(col_ranges),
        composite_path,
        n_threads,
    )
    futures = {
        client.submit(
            predict_composite_block,
            composite_path,
            model_dir,
            rows,
            cols,
            device=device,
            batch_size=batch_size,
            precision=precision,
            pure=False,
        ): (rows, cols)
        for rows, cols in blocks
    }
    done = 0
    # The loop of our client: dask_client() does not make it the default client.
    for future in as_completed(futures, loop=client.loop):  # type: ignore[no-untyped-call]
        strip = future.result()
        block = futures.pop(future)  # drop our reference: the worker frees the result
        done += tiles[block]
        if progress is not None:
            progress(done, sum(tiles.values()))
        yield strip
