"""The detect stage: a composite COG in, a probability COG and scored site polygons out.

:func:`detect_sites` loads the model (:mod:`asmspotter.detect.runtime`), checks it fits
the composite, predicts it block by block (:mod:`asmspotter.detect.blocks`), writes the
probability COG strip by strip (:func:`write_probability_cog_by_strips`) and
vectorises and verifies the sites (:mod:`asmspotter.detect.vectorize`,
:mod:`asmspotter.detect.site_verification`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS

from asmspotter.atomic_write import writing_output
from asmspotter.cog import ChunkedCogWriter, TileAssembler
from asmspotter.detect.blocks import predict_by_column_blocks, predict_on_cluster
from asmspotter.detect.features import band_indexes, composite_inputs, open_composite
from asmspotter.detect.model_card import ModelCard, check_model_fits
from asmspotter.detect.predict import Precision, ProgressCallback, Strip
from asmspotter.detect.runtime import load_model, run_precision
from asmspotter.detect.site_verification import (
    RasterPatches,
    verified_sites,
    verifier_for,
    verifier_precision,
)
from asmspotter.detect.vectorize import vectorize_probability_file_at
from asmspotter.errors import SceneReadError

logger = logging.getLogger(__name__)

PROBABILITY_BAND = "mining_probability"
"""Band description of the probability COG."""

PROBABILITY_NODATA = -1.0
"""Nodata value of the probability COG (pixels without a clear observation)."""


def write_probability_cog_by_strips(
    strips: Iterator[Strip],
    path: Path,
    *,
    height: int,
    width: int,
    transform: Affine,
    crs: Any,
) -> Path:
    """Write strips ``(row_off, col_off, probability, nodata)`` into a probability COG.

    The strips (in any order) are gathered into the COG's tiles
    (:class:`~asmspotter.cog.TileAssembler`), each compressed as soon as it is
    complete, so the map is never held whole; the file takes its name when complete.
    Before, the strips went into an uncompressed staging GeoTIFF that GDAL gave
    overviews and copied into a COG: 4.7 s of a 12,000 km² detect, and 4 bytes of
    temporary disk per pixel.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with writing_output(path):
        writer = ChunkedCogWriter(
            path,
            width=width,
            height=height,
            band_names=[PROBABILITY_BAND],
            transform=transform,
            epsg=int(CRS.from_user_input(crs).to_epsg()),
            nodata=PROBABILITY_NODATA,
        )
        try:
            tiles = TileAssembler(writer)
            for row, col, prob, bad in strips:
                data = np.where(bad, np.float32(PROBABILITY_NODATA), prob).astype(np.float32)
                tiles.add(row, col, data[None])
            tiles.finish()
        finally:
            writer.discard()
    return path


def _check_composite(
    dataset: rasterio.io.DatasetReader, card: ModelCard, model_dir: Path, composite_path: Path
) -> int:
    """Check the model fits the composite (bands, pixel size); return the composite's EPSG."""
    band_names = list(band_indexes(dataset))
    res_x, res_y = dataset.res
    if not math.isclose(res_x, res_y, rel_tol=1e-3):
        logger.warning(
            "%s: non-square pixels %.3f x %.3f m; checking the model against the mean",
            composite_path,
            res_x,
            res_y,
        )
    check_model_fits(
        card, [b for b in band_names if b != "valid"], (res_x + res_y) / 2.0, model_dir=model_dir
    )
    epsg = dataset.crs.to_epsg() if dataset.crs is not None else None
    if epsg is None:
        raise SceneReadError(
            f"{composite_path}: CRS {dataset.crs} has no EPSG code; composites must be on "
            "an AOI grid (a UTM zone)."
        )
    return int(epsg)


def detect_sites(
    composite_path: Path,
    model_dir: Path,
    out_probability_path: Path,
    *,
    threshold: float | None = None,
    min_area_ha: float = 1.0,
    device: str | None = None,
    batch_size: int | None = None,
    precision: Precision | None = None,
    progress: ProgressCallback | None = None,
    client: Any | None = None,
    verify: bool = True,
) -> gpd.GeoDataFrame:
    """Find mining sites in a composite COG: probability COG and polygons.

    Reads the composite's bands by their descriptions (``blue, green, red, nir, ndwi,
    ndvi, valid``; ``valid`` is the count of clear observations, 0 = no data), checks the
    model fits (bands, and pixel size from the transform), predicts tile by tile
    (:func:`predict_probabilities`), writes a float32 COG with band
    ``mining_probability`` (nodata -1) on the same grid, and vectorises the pixels at or
    above the threshold (:func:`asmspotter.detect.vectorize.vectorize_detections`).

    Example:
        >>> from pathlib import Path
        >>> from asmspotter.detect.stage import detect_sites
        >>> sites = detect_sites(  # doctest: +SKIP
        ...     Path("data/brokopondo/composite_2024-06.tif"),
        ...     Path("models/s2-unet-v1"),
        ...     Path("data/brokopondo/probability_2024-06.tif"),
        ...     min_area_ha=0.5,
        ... )
        >>> sites[["area_ha", "mean_probability"]].head()  # doctest: +SKIP

    Args:
        composite_path: The composite COG.
        model_dir: Model directory (``models/<name>``).
        out_probability_path: Where to write the probability COG.
        threshold: Probability threshold; None uses the model card's.
        min_area_ha: Smallest polygon kept, in hectares.
        device: Torch device; None picks CUDA when available, else CPU.
        batch_size: Tiles per forward pass; None: half a megapixel of tiles
            (:func:`asmspotter.detect.predict.tiles_per_batch`).
        precision: ``"fp32"`` or ``"bf16"`` autocast of the U-Net and the verifier; None
            uses the card's ``precision`` (chosen from its bf16-vs-fp32 check), or fp32
            where the device has no native bf16 (:func:`run_precision`), decided per
            device: on each Dask worker for its blocks, for the CPU for the verifier.
        progress: Called as ``progress(tiles_done, tiles_total)``.
        client: A ``distributed.Client``: blocks of the composite (row strips x column
            blocks) are predicted on its workers at once
            (:func:`predict_composite_block`; the composite and the model must be on
            storage the workers share) and written here as they finish; the result
            equals a local run's on workers of the same precision. None: column block by
            column block in this process.
        verify: Score every polygon with the verifier the card names
            (:mod:`asmspotter.detect.site_verification`); False: all ``nominal``.

    Memory is bounded by one row of tiles of one column block (at most
    :data:`BLOCK_PX` wide) plus the probability COG's partly filled tiles (those astride
    a column block's edge: ~1 MiB per 512 px of the AOI's height; more on a cluster,
    :class:`asmspotter.cog.TileAssembler`): the probability is written to the COG
    strip by strip (:func:`write_probability_cog_by_strips`) and polygons are built
    strip by strip from the file
    (:func:`asmspotter.detect.vectorize.vectorize_probability_file_at`), so a
    20,000 x 20,000 px composite ran in 0.67 GiB with GDAL's cache capped
    (``benchmarks/inference.py --memory-px 20000``, before the tiles were assembled
    in memory: add up to ~40 MiB).

    Returns:
        GeoDataFrame of detections (``geometry``, ``area_ha``, ``mean_probability``,
        ``max_probability``, ``verifier_score``, ``confidence``) in the composite's CRS.

    Raises:
        ModelNotFoundError: If the model directory, card or weights are missing.
        ModelMismatchError: If the model's bands or resolution do not fit the composite.
        SceneReadError: If the composite cannot be read or has no EPSG CRS.
    """
    composite_path = Path(composite_path)
    model = load_model(Path(model_dir), device=device)
    card = model.card
    used_precision = precision or run_precision(card.precision, model.device)
    with open_composite(composite_path) as dataset:
        epsg = _check_composite(dataset, card, Path(model_dir), composite_path)
        height, width = dataset.height, dataset.width
        transform, crs = dataset.transform, dataset.crs
        if client is None:
            features, valid_mask = composite_inputs(dataset, card, composite_path)
            strips = predict_by_column_blocks(
                features,
                valid_mask,
                model,
                batch_size=batch_size,
                progress=progress,
                precision=used_precision,
            )
        else:
            strips = predict_on_cluster(
                client,
                composite_path,
                Path(model_dir),
                height=height,
                width=width,
                card=card,
                device=device,
                batch_size=batch_size,
                precision=precision,  # None: each worker decides for its own CPU
                progress=progress,
            )
        write_probability_cog_by_strips(
            strips,
            out_probability_path,
            height=height,
            width=width,
            transform=transform,
            crs=crs,
        )
    used_threshold = card.threshold if threshold is None else threshold
    verifier = (
        verifier_for(Path(model_dir), card.verifier, verifier_precision(precision, card.precision))
        if verify
        else None
    )
    with open_composite(composite_path) as dataset:
        detections = verified_sites(
            lambda cuts: vectorize_probability_file_at(
                out_probability_path, epsg, cuts, min_area_ha
            ),
            used_threshold,
            card.candidate_threshold,
            RasterPatches(dataset, band_indexes(dataset)),
            verifier,
        )
    levels = detections["confidence"].value_counts().to_dict()
    logger.info(
        "%s: %d detections, %.1f ha (%s), probability map %s",
        composite_path,
        len(detections),
        float(detections["area_ha"].sum()),
        ", ".join(f"{n} {level}" for level, n in sorted(levels.items())) or "none",
        out_probability_path,
    )
    return detections
