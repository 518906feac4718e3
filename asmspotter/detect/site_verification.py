"""Second opinion on every candidate site: the verifier scores the site's surroundings.

A candidate polygon from the U-Net is looked at by the verifier
(:mod:`asmspotter.detect.verifier`) through 480 m patches (48 px at 10 m) laid over it:
one centred on a small site, a half-overlapping grid over a large one (at most
:data:`MAX_PATCHES`, spread evenly). The site's verifier score is the highest patch
score, and its confidence level follows from the verifier card's thresholds:

- ``nominal``: the U-Net found it, the verifier does not agree (or there is none);
- ``high``: the verifier agrees (score >= ``thresholds["high"]``);
- ``highest``: the verifier is very sure (score >= ``thresholds["highest"]``), or the
  site was ``high`` or better in its previous composite too (tracking raises it,
  :func:`asmspotter.track.track_sites`).

On real imagery the U-Net misses mines it was never shown (hazy ones, other soils), so
a model card may also name a lower ``candidate_threshold``: regions above it that touch
no detection are *candidates*, and :func:`confirm_candidates` keeps those the verifier
confirms at ``high`` or better. The U-Net proposes, the real-pixel verifier decides.

Patches come from a :class:`PatchSource`: the composite COG in the pipeline, or
in-memory arrays (:mod:`asmspotter.detect.api`). Both pad by reflection where a patch
leaves the image, so a 48 x 48 px input (or smaller) works.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Protocol

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import torch
from affine import Affine
from numpy.typing import NDArray
from rasterio.windows import Window
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from asmspotter.cog import BLOCK_PX
from asmspotter.detect.model_card import InferencePrecision
from asmspotter.detect.runtime import run_precision
from asmspotter.detect.verifier import VERIFIER_CARD_FILENAME, Verifier, cached_verifier
from asmspotter.events import ConfidenceLevel

logger = logging.getLogger(__name__)

MAX_PATCHES = 16
"""Most patches scored per site (a grid over a large site is thinned evenly)."""

PATCHES_PER_BATCH = 512
"""Patches read and scored at once (about 14 MB of RGB, whatever the number of sites)."""

RGB = tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]


class PatchSource(Protocol):
    """Red, green and blue surface reflectance of any window of one image."""

    height: int
    width: int
    transform: Affine

    def read_rgb(self, row: int, col: int, size: int) -> RGB:
        """(size, size) red, green, blue from pixel (row, col); NaN where not clear."""
        ...


def _pad_to(
    band: NDArray[np.float32], rows: tuple[int, int], cols: tuple[int, int]
) -> NDArray[np.float32]:
    if rows == (0, 0) and cols == (0, 0):
        return band
    return np.pad(band, (rows, cols), mode="symmetric")


def _clamped(start: int, size: int, length: int) -> tuple[int, int, tuple[int, int]]:
    """A window of ``size`` from ``start`` kept inside 0..length; padding if too short."""
    if length >= size:
        start = min(max(start, 0), length - size)
        return start, size, (0, 0)
    short = size - length
    return 0, length, (short // 2, short - short // 2)


class ArrayPatches:
    """Patches of in-memory (H, W) red, green, blue arrays."""

    def __init__(
        self,
        red: NDArray[np.floating],
        green: NDArray[np.floating],
        blue: NDArray[np.floating],
        transform: Affine,
    ) -> None:
        self.bands = tuple(np.asarray(b, np.float32) for b in (red, green, blue))
        self.height, self.width = self.bands[0].shape
        self.transform = transform

    def read_rgb(self, row: int, col: int, size: int) -> RGB:
        """See :class:`PatchSource`."""
        r0, nr, pad_r = _clamped(row, size, self.height)
        c0, nc, pad_c = _clamped(col, size, self.width)
        red, green, blue = (
            _pad_to(b[r0 : r0 + nr, c0 : c0 + nc], pad_r, pad_c) for b in self.bands
        )
        return red, green, blue


class RasterPatches:
    """Patches of an open composite (bands found by their descriptions)."""

    def __init__(self, dataset: rasterio.io.DatasetReader, band_index: Mapping[str, int]) -> None:
        self.dataset = dataset
        self.indexes = [band_index["red"], band_index["green"], band_index["blue"]]
        self.height, self.width = dataset.height, dataset.width
        self.transform = dataset.transform

    def read_rgb(self, row: int, col: int, size: int) -> RGB:
        """See :class:`PatchSource`."""
        r0, nr, pad_r = _clamped(row, size, self.height)
        c0, nc, pad_c = _clamped(col, size, self.width)
        data = self.dataset.read(self.indexes, window=Window(c0, r0, nc, nr)).astype(np.float32)
        red, green, blue = (_pad_to(data[i], pad_r, pad_c) for i in range(3))
        return red, green, blue


def _starts(low: float, high: float, step: int) -> range:
    """Patch starts every ``step`` px from half a step before ``low`` to ``high``.

    There is at least one start.
    """
    first = int(np.floor(low)) - step // 2
    return range(first, max(int(np.ceil(high)) - step, first + 1), step)


def patch_origins(
    geometry: BaseGeometry, transform: Affine, patch_px: int, max_patches: int = MAX_PATCHES
) -> list[tuple[int, int]]:
    """Top-left (row, col) of the patches that look at ``geometry``.

    One patch centred on the outline's bounding box when it fits; otherwise a grid
    with half-patch steps over the box, keeping patches that touch the outline, thinned
    evenly to ``max_patches``.
    """
    inverse = ~transform
    minx, miny, maxx, maxy = geometry.bounds
    cols, rows = zip(*(inverse * (x, y) for x, y in ((minx, maxy), (maxx, miny))), strict=True)
    row_lo, row_hi = sorted(rows)
    col_lo, col_hi = sorted(cols)
    if row_hi - row_lo <= patch_px and col_hi - col_lo <= patch_px:
        centre_r, centre_c = (row_lo + row_hi) / 2, (col_lo + col_hi) / 2
        return [(round(centre_r - patch_px / 2), round(centre_c - patch_px / 2))]
    step = patch_px // 2
    origins: list[tuple[int, int]] = []
    for r in _starts(row_lo, row_hi, step):
        for c in _starts(col_lo, col_hi, step):
            x0, y0 = transform * (c, r)
            x1, y1 = transform * (c + patch_px, r + patch_px)
            if geometry.intersects(box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))):
                origins.append((r, c))
    if not origins:
        origins = [(int(row_lo), int(col_lo))]
    if len(origins) > max_patches:
        pick = np.linspace(0, len(origins) - 1, max_patches).round().astype(int)
        origins = [origins[i] for i in pick]
    return origins


def patch_reads(
    geometries: list[BaseGeometry], transform: Affine, patch_px: int
) -> list[tuple[int, int, int]]:
    """``(site index, row, col)`` of every patch to score, in the file's block order.

    Sites come largest first, scattered over the image; read in that order, a
    compressed composite decodes each 512 px block (all bands, pixel-interleaved) once
    per patch that touches it. Sorted by row of blocks, then column, the block stays in
    GDAL's cache for its neighbours: at 12,000 km² reading 2,076 patches took 14.2 s
    in site order (benchmarks/README.md, session 9).
    """
    reads = [
        (index, row, col)
        for index, geometry in enumerate(geometries)
        for row, col in patch_origins(geometry, transform, patch_px)
    ]
    reads.sort(key=lambda read: (read[1] // BLOCK_PX, read[2], read[1]))
    return reads


def score_sites(
    geometries: list[BaseGeometry],
    source: PatchSource,
    verifier: Verifier,
    patches_per_batch: int = PATCHES_PER_BATCH,
) -> NDArray[np.float32]:
    """Verifier score (0..1) of every outline: its highest patch score.

    Patches are read in the file's block order (:func:`patch_reads`) and scored
    ``patches_per_batch`` at a time, so memory does not grow with the number of sites
    a large AOI has.
    """
    size = verifier.card.patch_px
    scores = np.zeros(len(geometries), np.float32)
    owner: list[int] = []
    red: list[NDArray[np.float32]] = []
    green: list[NDArray[np.float32]] = []
    blue: list[NDArray[np.float32]] = []

    def score_batch() -> None:
        patch_scores = verifier.score_patches(np.stack(red), np.stack(green), np.stack(blue))
        np.maximum.at(scores, np.asarray(owner), patch_scores)
        owner.clear()
        for band in (red, green, blue):
            band.clear()

    for index, row, col in patch_reads(geometries, source.transform, size):
        r, g, b = source.read_rgb(row, col, size)
        red.append(r)
        green.append(g)
        blue.append(b)
        owner.append(index)
        if len(owner) == patches_per_batch:
            score_batch()
    if owner:
        score_batch()
    return scores


def verify_detections(
    detections: gpd.GeoDataFrame, source: PatchSource, verifier: Verifier | None
) -> gpd.GeoDataFrame:
    """``detections`` with ``verifier_score`` and ``confidence`` columns added.

    Without a verifier every detection is ``nominal`` with no score.
    """
    out = detections.copy()
    if verifier is None or out.empty:
        out["verifier_score"] = np.full(len(out), np.nan, np.float64)
        out["confidence"] = ["nominal"] * len(out)
        return out
    scores = score_sites(list(out.geometry), source, verifier)
    out["verifier_score"] = scores.astype(np.float64)
    out["confidence"] = [confidence_level(float(s), verifier.card.thresholds) for s in scores]
    return out


def confirm_candidates(
    detections: gpd.GeoDataFrame,
    candidates: gpd.GeoDataFrame,
    source: PatchSource,
    verifier: Verifier,
) -> gpd.GeoDataFrame:
    """Verified ``detections`` plus the ``candidates`` the verifier confirms.

    ``detections`` already carry ``verifier_score`` / ``confidence``
    (:func:`verify_detections`). A candidate that intersects a detection is that
    detection seen at a lower threshold and is dropped; the others are scored and kept
    only at ``high`` or better, so a candidate never becomes a ``nominal`` site. A kept
    candidate's outline and area are those at the candidate threshold (a small mine
    under ``min_area_ha`` at the U-Net threshold can pass it here).
    """
    if candidates.empty:
        return detections
    if not detections.empty:
        touching = candidates.sjoin(detections[["geometry"]], predicate="intersects").index
        candidates = candidates.drop(index=touching.unique())
    if candidates.empty:
        return detections
    scored = verify_detections(candidates, source, verifier)
    confirmed = scored[scored["confidence"] != "nominal"]
    logger.info(
        "verifier confirmed %d of %d candidates below the U-Net threshold",
        len(confirmed),
        len(scored),
    )
    if confirmed.empty:
        return detections
    merged = pd.concat([detections, confirmed], ignore_index=True)
    return gpd.GeoDataFrame(merged, geometry="geometry", crs=detections.crs).sort_values(
        "area_ha", ascending=False, ignore_index=True
    )


def verified_sites(
    polygons_at: Callable[[Sequence[float]], Mapping[float, gpd.GeoDataFrame]],
    threshold: float,
    candidate_threshold: float | None,
    source: PatchSource,
    verifier: Verifier | None,
) -> gpd.GeoDataFrame:
    """The sites of one image: detections at ``threshold``, verified, plus confirmed candidates.

    One rule for the pipeline (polygons from the probability COG) and the array API
    (polygons from an in-memory map): ``polygons_at(cuts)`` gives the regions at or
    above each probability in ``cuts``, all in one call (the pipeline reads its map
    once for both), and candidates are cut only when :func:`candidate_threshold_for`
    allows it.
    """
    cut = candidate_threshold_for(candidate_threshold, threshold, verifier)
    frames = polygons_at([threshold] if cut is None else [threshold, cut])
    detections = verify_detections(_marked(frames[threshold], threshold), source, verifier)
    if cut is None or verifier is None:
        return detections
    return confirm_candidates(detections, _marked(frames[cut], cut), source, verifier)


def _marked(polygons: gpd.GeoDataFrame, threshold: float) -> gpd.GeoDataFrame:
    """``polygons`` cut at ``threshold``, each marked with the cut (``outline_threshold``).

    Tracking measures a site's growth only between outlines cut at one threshold
    (:func:`asmspotter.track.track_sites`): a candidate's outline, cut lower, is larger
    for the same ground and would otherwise read as growth.
    """
    polygons["outline_threshold"] = np.full(len(polygons), threshold, np.float64)
    return polygons


def candidate_threshold_for(
    candidate_threshold: float | None, threshold: float, verifier: Verifier | None
) -> float | None:
    """The threshold candidates are cut at in a run, or None when there are none.

    Candidates need a verifier to confirm them and a threshold below the one in use
    (an AOI that lowers ``detection.threshold`` below the card's candidates gets none).
    """
    if verifier is None or candidate_threshold is None or candidate_threshold >= threshold:
        return None
    return candidate_threshold


def verifier_precision(
    named: InferencePrecision | None, card_precision: InferencePrecision
) -> InferencePrecision:
    """The verifier's precision: the run's if named, else the U-Net card's as the CPU runs it.

    That is :func:`asmspotter.detect.runtime.run_precision` for the CPU: the verifier
    always runs there, so a U-Net on a GPU with bf16 does not make it emulate bf16 on a
    CPU without it.
    """
    return named or run_precision(card_precision, torch.device("cpu"))


def verifier_for(
    model_dir: Path, name: str | None, precision: InferencePrecision = "fp32"
) -> Verifier | None:
    """The verifier a model card names (a directory beside the model), or None.

    ``precision``: what it runs in (:func:`verifier_precision`).
    """
    if name is None:
        return None
    verifier_dir = Path(model_dir).parent / name
    card_path = verifier_dir / VERIFIER_CARD_FILENAME
    mtime = card_path.stat().st_mtime_ns if card_path.is_file() else 0
    return replace(cached_verifier(verifier_dir, mtime), precision=precision)


def confidence_level(score: float | None, thresholds: Mapping[str, float]) -> ConfidenceLevel:
    """The level a verifier score reaches on its own (no history)."""
    if score is None or not np.isfinite(score):
        return "nominal"
    if score >= thresholds["highest"]:
        return "highest"
    if score >= thresholds["high"]:
        return "high"
    return "nominal"
