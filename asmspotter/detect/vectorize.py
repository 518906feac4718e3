"""Turn a mining probability map into polygons with area and score.

:func:`vectorize_detections` thresholds the map, removes single-pixel speckle with a
small morphological opening, labels 4-connected regions, polygonises them with
``rasterio.features.shapes`` and keeps those of at least ``min_area_ha``. The
polygons are in the grid's CRS (a UTM zone, metres); :mod:`asmspotter.detect.stage`
calls this after prediction and ``asmspotter.track`` matches the polygons to sites.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import rasterio
import rasterio.features
from affine import Affine
from numpy.typing import NDArray
from scipy import ndimage
from shapely.geometry import shape

logger = logging.getLogger(__name__)

COLUMNS = ["geometry", "area_ha", "mean_probability", "max_probability"]
"""Columns of the frame :func:`vectorize_detections` returns."""

# 4-connectivity, matching rasterio.features.shapes(connectivity=4) so that one
# labelled region becomes exactly one polygon (8-connected regions touching at a
# corner would give self-touching rings).
_STRUCTURE = ndimage.generate_binary_structure(2, 1)

STRIP_BYTES_PER_PX = 20
"""Working memory of the strip vectoriser per pixel (probability, mask, labels, copies)."""

STRIP_BUDGET_BYTES = 128 * 2**20
"""Memory a strip may use; at 12,000 km² (10,954 px wide) a fixed 2,048-row strip took
450 MB, the largest width-dependent term of inference (benchmarks/README.md)."""


def clean_mask(mask: NDArray[np.bool_], cleanup_px: int = 1) -> NDArray[np.bool_]:
    """Remove speckle and strands thinner than ``2 * cleanup_px + 1`` pixels (an opening).

    With the default radius 1 at 10 m pixels this removes features under 30 m across
    (isolated pixels, 1-2 px strands such as roads joining two pits), far below the
    1 ha (100 px) sites the pipeline reports.

    The mask is edge-padded first so regions touching the image border are not
    eroded away by the zero border an opening assumes. The same opening as
    ``scipy.ndimage.binary_opening`` with a square (tested), done as shifted
    logical and/or per axis: a square is separable, and this was 20x faster on a
    10,952 x 618 px strip (0.007 s against 0.15 s).

    Args:
        mask: Boolean mask (H, W).
        cleanup_px: Radius of the square structuring element; 0 returns the mask as is.

    Returns:
        The opened mask (H, W) bool.
    """
    if cleanup_px <= 0:
        return mask.astype(bool)
    pad = cleanup_px + 1
    padded = np.pad(mask.astype(bool), pad, mode="edge")
    eroded = _square_reduce(padded, cleanup_px, np.logical_and)
    opened = _square_reduce(eroded, cleanup_px, np.logical_or)
    return opened[pad:-pad, pad:-pad]


def _square_reduce(mask: NDArray[np.bool_], radius: int, combine: np.ufunc) -> NDArray[np.bool_]:
    """``combine`` over each pixel's (2 radius + 1)² square; outside the array is False.

    ``np.logical_and`` erodes, ``np.logical_or`` dilates.
    """
    result = mask
    for axis in (0, 1):
        length = result.shape[axis]
        widths = [(radius, radius) if a == axis else (0, 0) for a in (0, 1)]
        padded = np.pad(result, widths)
        shifts = [
            padded[start : start + length] if axis == 0 else padded[:, start : start + length]
            for start in range(2 * radius + 1)
        ]
        reduced = shifts[0].copy()
        for shifted in shifts[1:]:
            combine(reduced, shifted, out=reduced)
        result = reduced
    return result


def region_statistics(
    labels: NDArray[np.integer], n: int, prob: NDArray[np.floating]
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
    """Pixel count, probability sum and maximum of regions ``1..n`` of ``labels``.

    Works on the labelled pixels only, with ``bincount`` and ``maximum.at``:
    ``scipy.ndimage.maximum`` sorts the whole map by label, which took 7 of 46 s of
    inference at 3,000 km².
    """
    inside = labels > 0
    region = labels[inside]
    values = prob[inside].astype(np.float64)
    counts = np.bincount(region, minlength=n + 1)[1:].astype(np.int64)
    sums = np.bincount(region, weights=values, minlength=n + 1)[1:].astype(np.float64)
    maxima = np.full(n + 1, -np.inf, dtype=np.float64)
    np.maximum.at(maxima, region, values)
    return counts, sums, maxima[1:]


def empty_detections(epsg: int) -> gpd.GeoDataFrame:
    """Return an empty detections frame with the right columns and CRS."""
    return gpd.GeoDataFrame(
        {
            "area_ha": np.array([], dtype=np.float64),
            "mean_probability": np.array([], dtype=np.float32),
            "max_probability": np.array([], dtype=np.float32),
        },
        geometry=gpd.GeoSeries([], crs=f"EPSG:{epsg}"),
        crs=f"EPSG:{epsg}",
    )[COLUMNS]


def vectorize_detections(
    probability: NDArray[np.float32],
    transform: Affine,
    epsg: int,
    threshold: float,
    min_area_ha: float,
    *,
    valid_mask: NDArray[np.bool_] | None = None,
    cleanup_px: int = 1,
) -> gpd.GeoDataFrame:
    """Polygonise pixels with probability >= ``threshold`` into mining detections.

    Example: a 10x10 map at 10 m with one 3x3 block of 0.9 gives one polygon of
    9 pixels = 9 * 0.01 ha = 0.09 ha with mean and max probability 0.9.

    Args:
        probability: Mining probability (H, W) float32 in [0, 1]; NaN counts as 0.
        transform: Affine transform of the grid (pixel to CRS).
        epsg: EPSG code of the grid's CRS.
        threshold: Probability at or above which a pixel is mining.
        min_area_ha: Polygons smaller than this many hectares are dropped.
        valid_mask: (H, W) bool, False where there was no data; such pixels are never
            mining.
        cleanup_px: Radius of the speckle-removing opening (:func:`clean_mask`); 0 off.

    Returns:
        GeoDataFrame with ``geometry`` (polygons in EPSG:``epsg``), ``area_ha``,
        ``mean_probability`` and ``max_probability``, largest first, CRS set.

    Raises:
        ValueError: If ``probability`` is not 2-D, ``valid_mask`` has another shape or
            ``min_area_ha`` is negative.
    """
    probability = np.asarray(probability, dtype=np.float32)
    if probability.ndim != 2:
        raise ValueError(f"probability must be 2-D (H, W), got shape {probability.shape}.")
    if min_area_ha < 0:
        raise ValueError(f"min_area_ha must be >= 0, got {min_area_ha}; give hectares.")
    prob = np.nan_to_num(probability, nan=0.0)
    mask = prob >= threshold
    if valid_mask is not None:
        valid_mask = np.asarray(valid_mask, dtype=bool)
        if valid_mask.shape != prob.shape:
            raise ValueError(
                f"valid_mask has shape {valid_mask.shape}, probability has {prob.shape}."
            )
        mask &= valid_mask
    mask = clean_mask(mask, cleanup_px)
    labels, n = ndimage.label(mask, structure=_STRUCTURE)
    if n == 0:
        logger.info("vectorised 0 detections (threshold %.2f)", threshold)
        return empty_detections(epsg)

    pixel_area_ha = abs(transform.a * transform.e - transform.b * transform.d) / 10_000.0
    counts, sums, maxima_64 = region_statistics(labels, n, prob)
    means = (sums / counts).astype(np.float32)
    maxima = maxima_64.astype(np.float32)
    areas_ha = counts * pixel_area_ha
    # A hair of tolerance so 9 px at 10 m (0.09 ha) passes min_area_ha=0.09.
    keep = areas_ha >= min_area_ha * (1 - 1e-9)

    geometries = {}
    kept_labels = np.where(np.concatenate([[False], keep])[labels], labels, 0).astype(np.int32)
    for geom, value in rasterio.features.shapes(
        kept_labels, mask=kept_labels > 0, connectivity=4, transform=transform
    ):
        geometries[int(value)] = shape(geom)
    ids = [i for i in range(1, n + 1) if keep[i - 1]]
    if not ids:
        logger.info(
            "vectorised 0 detections (%d regions below %.2f ha, threshold %.2f)",
            n,
            min_area_ha,
            threshold,
        )
        return empty_detections(epsg)
    frame = gpd.GeoDataFrame(
        {
            "area_ha": areas_ha[[i - 1 for i in ids]].astype(np.float64),
            "mean_probability": means[[i - 1 for i in ids]],
            "max_probability": maxima[[i - 1 for i in ids]],
        },
        geometry=[geometries[i] for i in ids],
        crs=f"EPSG:{epsg}",
    )[COLUMNS]
    frame = frame.sort_values("area_ha", ascending=False, ignore_index=True)
    logger.info(
        "vectorised %d detections, %.2f ha (threshold %.2f, min area %.2f ha, %d dropped)",
        len(frame),
        float(frame["area_ha"].sum()),
        threshold,
        min_area_ha,
        n - len(frame),
    )
    return frame


BOX_POLYGONISING_MAX_DENSITY = 1 / 40_000
"""Regions per pixel up to which each region is polygonised in its own box: one GDAL call
costs ~0.37 ms, a whole 6.7 Mpx strip ~80 ms, so boxes win below ~200 regions there
(measured: 5 regions 13 against 83 ms, 771 regions 299 against 91 ms)."""


def _region_polygons(labels: NDArray[np.integer], transform: Affine) -> dict[int, list[Any]]:
    """The polygons of each labelled region ``1..n`` (4-connected, pixel edges).

    GDAL's polygoniser scans every pixel it is given: over whole strips it took 2.9 of
    6.1 s of a 12,000 km² map's vectorising, though the regions cover a small part of
    it. So a strip with few regions has each polygonised inside its own bounding box
    (the same polygons); one with many (a noisy map, a low cut) is done whole.
    """
    boxes = ndimage.find_objects(labels)
    geoms: dict[int, list[Any]] = {}
    if len(boxes) > labels.size * BOX_POLYGONISING_MAX_DENSITY:
        for geom, value in rasterio.features.shapes(
            labels.astype(np.int32), mask=labels > 0, connectivity=4, transform=transform
        ):
            geoms.setdefault(int(value), []).append(shape(geom))
        return geoms
    for index, box in enumerate(boxes, start=1):
        if box is None:
            continue
        inside = labels[box] == index
        box_tf = transform * Affine.translation(box[1].start, box[0].start)
        geoms[index] = [
            shape(geom)
            for geom, _ in rasterio.features.shapes(
                inside.view(np.uint8), mask=inside, connectivity=4, transform=box_tf
            )
        ]
    return geoms


class _RegionsAcrossStrips:
    """Regions at one threshold, labelled strip by strip and joined across strip edges.

    Each strip's regions become parts; two parts that share a pixel edge across a
    strip boundary (4-connectivity) are one region (union-find over the parts), whose
    pixel count and probability sum are the parts' sums.
    """

    def __init__(self, threshold: float, cleanup_px: int) -> None:
        self.threshold = threshold
        self.cleanup_px = cleanup_px
        self.parts: list[dict[str, Any]] = []
        self.parent: list[int] = []
        self.prev_bottom: NDArray[np.int64] | None = None

    def find(self, i: int) -> int:
        """The part that stands for ``i``'s region."""
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def add_strip(
        self, prob_with_halo: NDArray[np.float32], inner: slice, strip_tf: Affine
    ) -> None:
        """Label the strip ``prob_with_halo[inner]`` (the halo feeds only the opening)."""
        mask = clean_mask(prob_with_halo >= self.threshold, self.cleanup_px)[inner]
        prob = prob_with_halo[inner]
        labels, n = ndimage.label(mask, structure=_STRUCTURE)
        base = len(self.parts)
        if n:
            counts, sums, maxima = region_statistics(labels, n, prob)
            geoms = _region_polygons(labels, strip_tf)
            for i in range(n):
                self.parts.append(
                    {
                        "geoms": geoms.get(i + 1, []),
                        "count": int(counts[i]),
                        "sum": float(sums[i]),
                        "max": float(maxima[i]),
                    }
                )
                self.parent.append(base + i)
        top = np.where(labels[0] > 0, labels[0] + base - 1, -1) if n else None
        if self.prev_bottom is not None and top is not None:
            joined = (self.prev_bottom >= 0) & (top >= 0)
            for a, b in set(
                zip(self.prev_bottom[joined].tolist(), top[joined].tolist(), strict=True)
            ):
                ra, rb = self.find(a), self.find(b)
                if ra != rb:
                    self.parent[rb] = ra
        self.prev_bottom = (
            np.where(labels[-1] > 0, labels[-1] + base - 1, -1).astype(np.int64) if n else None
        )

    def rows(self, pixel_area_ha: float, min_area_ha: float) -> list[dict[str, Any]]:
        """One row per joined region of at least ``min_area_ha``."""
        from shapely.ops import unary_union

        groups: dict[int, list[int]] = {}
        for i in range(len(self.parts)):
            groups.setdefault(self.find(i), []).append(i)
        rows = []
        for members in groups.values():
            count = sum(self.parts[i]["count"] for i in members)
            area_ha = count * pixel_area_ha
            if area_ha < min_area_ha * (1 - 1e-9):
                continue
            pieces = [g for i in members for g in self.parts[i]["geoms"]]
            rows.append(
                {
                    "geometry": pieces[0] if len(pieces) == 1 else unary_union(pieces),
                    "area_ha": float(area_ha),
                    "mean_probability": np.float32(
                        sum(self.parts[i]["sum"] for i in members) / count
                    ),
                    "max_probability": np.float32(max(self.parts[i]["max"] for i in members)),
                }
            )
        return rows


def vectorize_probability_file(
    path: Path,
    epsg: int,
    threshold: float,
    min_area_ha: float,
    *,
    cleanup_px: int = 1,
    strip_px: int | None = None,
) -> gpd.GeoDataFrame:
    """Polygonise a probability GeoTIFF strip by strip, in memory bounded by the strip.

    Gives the same polygons as :func:`vectorize_detections` on the whole map: each strip
    is read with a halo of ``2 * cleanup_px + 1`` rows so the opening sees its real
    neighbours; regions are labelled per strip and joined across strip edges where they
    share a pixel edge (4-connectivity), summing their pixel counts and probabilities;
    then ``min_area_ha`` is applied. Nodata pixels (negative values) are never mining.

    Args:
        path: Single-band probability GeoTIFF (e.g. from
            :func:`asmspotter.detect.stage.write_probability_cog_by_strips`).
        epsg: EPSG code of its CRS.
        threshold: Probability at or above which a pixel is mining.
        min_area_ha: Smallest polygon kept, hectares.
        cleanup_px: Speckle-removing opening radius (:func:`clean_mask`).
        strip_px: Rows per strip; memory is about 20 bytes x width x strip rows. None:
            as many rows as fit in ``STRIP_BUDGET_BYTES`` (at least 256), so memory
            stays the same however wide the map.

    Returns:
        The detections frame, as :func:`vectorize_detections`.
    """
    frames = vectorize_probability_file_at(
        path, epsg, [threshold], min_area_ha, cleanup_px=cleanup_px, strip_px=strip_px
    )
    return frames[threshold]


def vectorize_probability_file_at(
    path: Path,
    epsg: int,
    thresholds: Sequence[float],
    min_area_ha: float,
    *,
    cleanup_px: int = 1,
    strip_px: int | None = None,
) -> dict[float, gpd.GeoDataFrame]:
    """:func:`vectorize_probability_file` at several thresholds, reading the file once.

    The pipeline cuts its map at the model's threshold and at the lower candidate
    threshold (:mod:`asmspotter.detect.site_verification`); one pass saves a second
    read and decode of the whole map (1.9 s at 12,000 km²). Strips hold one
    threshold's working arrays at a time, so memory is that of one threshold.

    Returns:
        The detections frame of each threshold.
    """
    from rasterio.windows import Window

    halo = 2 * cleanup_px + 1 if cleanup_px > 0 else 0
    regions = {t: _RegionsAcrossStrips(t, cleanup_px) for t in thresholds}
    with rasterio.open(path) as src:
        height, width, transform = src.height, src.width, src.transform
        if strip_px is None:
            strip_px = max(256, STRIP_BUDGET_BYTES // (STRIP_BYTES_PER_PX * width))
        for r0 in range(0, height, strip_px):
            r1 = min(height, r0 + strip_px)
            h0, h1 = max(0, r0 - halo), min(height, r1 + halo)
            prob = src.read(1, window=Window(0, h0, width, h1 - h0)).astype(np.float32)  # type: ignore[call-arg]
            prob = np.nan_to_num(prob, nan=0.0)
            strip_tf = transform * Affine.translation(0, r0)
            for region in regions.values():
                region.add_strip(prob, slice(r0 - h0, r1 - h0), strip_tf)
    pixel_area_ha = abs(transform.a * transform.e - transform.b * transform.d) / 10_000.0
    return {
        t: _detections_frame(region.rows(pixel_area_ha, min_area_ha), epsg, path, t, min_area_ha)
        for t, region in regions.items()
    }


def _detections_frame(
    rows: list[dict[str, Any]], epsg: int, path: Path, threshold: float, min_area_ha: float
) -> gpd.GeoDataFrame:
    """The detections frame of ``rows``, largest first (logged)."""
    if not rows:
        logger.info("vectorised 0 detections from %s (threshold %.2f)", path, threshold)
        return empty_detections(epsg)
    frame = gpd.GeoDataFrame(rows, geometry="geometry", crs=f"EPSG:{epsg}")[COLUMNS]
    frame["mean_probability"] = frame["mean_probability"].astype(np.float32)
    frame["max_probability"] = frame["max_probability"].astype(np.float32)
    frame = frame.sort_values("area_ha", ascending=False, ignore_index=True)
    logger.info(
        "vectorised %d detections, %.2f ha from %s (threshold %.2f, min area %.2f ha)",
        len(frame),
        float(frame["area_ha"].sum()),
        path,
        threshold,
        min_area_ha,
    )
    return frame
