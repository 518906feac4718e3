"""Writing scenes in the local provider's format (4-band GeoTIFF + cloud mask).

The synthetic generator, the test builders and anyone converting their own
imagery use this one writer, so every scene on disk follows the same contract:
uint16 digital numbers with a band scale of 1e-4 (reflectance = DN x 1e-4, as
Sentinel-2 L2A), nodata 0, band descriptions blue, green, red, nir, and the
acquisition time in the ``ACQUISITION_DATETIME`` tag.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import rasterio
from numpy.typing import NDArray
from rasterio.enums import Interleaving
from rasterio.errors import RasterioError

from asmspotter.errors import SceneReadError
from asmspotter.grid import AOIGrid

REFLECTANCE_SCALE = 1e-4
BAND_NAMES = ("blue", "green", "red", "nir")
GTIFF_PROFILE = {
    "driver": "GTiff",
    "tiled": True,
    "blockxsize": 256,
    "blockysize": 256,
    "compress": "deflate",
    "predictor": 2,
}


PLAUSIBLE_REFLECTANCE_P99 = (0.03, 2.0)
"""Range the 99th percentile of a scene's clear reflectance must fall in. Tropical
forest reaches ~0.3 in the NIR and cloud ~1.2; below 0.03 the values are 8-bit
display numbers scaled as DN (at most 255 x 1e-4), above 2 an unscaled DN."""

CHECK_SAMPLE_PX = 512
"""Longest side of the decimated read the reflectance range is measured on (files with
overviews)."""

CHECK_SAMPLE_BLOCKS = 8
"""Without overviews, the range is measured on up to this many x this many of the file's
own blocks, spread evenly: a decimated read of such a file decodes every block (2.9 s for
one 10,952 px scene, a third of a 12,000 km² run's download stage), a block grid 3 %
of them."""


def check_scene(path: Path, scene_id: str) -> None:
    """Refuse a scene file that would silently spoil a composite.

    Every provider's download ends here, whatever wrote the file: it must have a
    CRS, 4 bands of 16-bit or float reflectance, every tile inside the file (a cut
    download or a truncated COG would fail the whole composite later, without the
    file's name), and plausible reflectance once scaled.

    Args:
        path: The scene's reflectance GeoTIFF.
        scene_id: The provider's scene id, named in the error.

    Raises:
        SceneReadError: naming the scene, the file, what was found and what is expected.
    """
    label = f"scene {scene_id}: {path}"
    try:
        with rasterio.open(path) as src:
            if src.crs is None:
                raise SceneReadError(
                    f"{label} has no CRS (no georeferencing), so it cannot be placed on the "
                    "AOI grid; re-export it with its CRS (e.g. gdal_translate -a_srs EPSG:<code>)."
                )
            if src.count != len(BAND_NAMES):
                raise SceneReadError(
                    f"{label} has {src.count} bands, expected {len(BAND_NAMES)} "
                    f"({', '.join(BAND_NAMES)})."
                )
            dtype = src.dtypes[0]
            if dtype in ("uint8", "int8"):
                raise SceneReadError(
                    f"{label} holds 8-bit values ({dtype}), which look like a display "
                    "export, not reflectance: give uint16 DN (reflectance x 10000) or float32 "
                    "reflectance 0..1."
                )
            _check_tiles_inside(src, path, label)
            _check_reflectance_range(src, label)
    except RasterioError as exc:
        raise SceneReadError(
            f"{label} is not a readable GeoTIFF ({exc}); the scene is skipped."
        ) from exc


def _check_tiles_inside(src: rasterio.io.DatasetReader, path: Path, label: str) -> None:
    """Every block of a (Geo)TIFF must end inside the file: a cut file fails here, named."""
    if src.driver != "GTiff":
        return
    file_bytes = path.stat().st_size
    block_h, block_w = src.block_shapes[0]
    rows, cols = math.ceil(src.height / block_h), math.ceil(src.width / block_w)
    bands = [1] if src.interleaving == Interleaving.pixel else list(src.indexes)
    for band in bands:
        for row in range(rows):
            for col in range(cols):
                offset = src.get_tag_item(f"BLOCK_OFFSET_{col}_{row}", "TIFF", bidx=band)
                size = src.get_tag_item(f"BLOCK_SIZE_{col}_{row}", "TIFF", bidx=band)
                if offset is None or size is None:
                    continue  # a sparse block (all nodata) is not stored at all
                if int(offset) + int(size) > file_bytes:
                    raise SceneReadError(
                        f"{label} is cut short: block ({row}, {col}) of band {band} ends at "
                        f"byte {int(offset) + int(size):,} but the file has {file_bytes:,} "
                        "bytes (an interrupted download or copy); the scene is skipped. "
                        "Delete the file so the next run fetches it again."
                    )


def _check_reflectance_range(src: rasterio.io.DatasetReader, label: str) -> None:
    """The scaled reflectance of the clear pixels must look like reflectance (0..~1)."""
    scales = np.array(src.scales, dtype=np.float64)[:, None, None]
    offsets = np.array(src.offsets, dtype=np.float64)[:, None, None]
    values = np.concatenate(
        [
            (np.ma.asarray(raw, dtype=np.float64) * scales + offsets).compressed()
            for raw in _range_samples(src)
        ]
    )
    values = values[np.isfinite(values) & (values != 0)]
    if values.size == 0:
        return  # an all-nodata scene is handled as no clear pixels, not as an error
    p99 = float(np.percentile(values, 99))
    low, high = PLAUSIBLE_REFLECTANCE_P99
    if p99 < low or p99 > high:
        raise SceneReadError(
            f"{label}: reflectance (DN x band scale {src.scales[0]:g} + offset "
            f"{src.offsets[0]:g}) reaches only {p99:.4g} at its 99th percentile, expected "
            f"{low:g}..{high:g}; the scene is skipped. Give uint16 DN with band scale "
            f"{REFLECTANCE_SCALE:g} (reflectance x 10000) or float32 reflectance 0..1 with "
            "scale 1."
            if p99 < low
            else f"{label}: reflectance (DN x band scale {src.scales[0]:g} + offset "
            f"{src.offsets[0]:g}) reaches {p99:.4g} at its 99th percentile, expected "
            f"{low:g}..{high:g}: the band scale is missing or wrong; the scene is skipped. "
            f"Set the band scale to {REFLECTANCE_SCALE:g} for DN = reflectance x 10000."
        )


def _range_samples(src: rasterio.io.DatasetReader) -> list[np.ma.MaskedArray]:
    """Masked (bands, h, w) samples of the scene to measure its reflectance range on.

    From overviews, one decimated read of the whole scene; otherwise a grid of whole
    blocks spread over it (:data:`CHECK_SAMPLE_BLOCKS`), so only those are decoded, and
    every 4th pixel of each (about as many pixels as the decimated read).
    """
    if src.overviews(1):
        factor = max(1, math.ceil(max(src.height, src.width) / CHECK_SAMPLE_PX))
        shape = (src.count, max(1, src.height // factor), max(1, src.width // factor))
        return [src.read(out_shape=shape, masked=True)]
    block_h, block_w = src.block_shapes[0]
    rows = _spread(math.ceil(src.height / block_h), CHECK_SAMPLE_BLOCKS)
    cols = _spread(math.ceil(src.width / block_w), CHECK_SAMPLE_BLOCKS)
    return [
        src.read(window=src.block_window(1, row, col), masked=True)[:, ::4, ::4]
        for row in rows
        for col in cols
    ]


def _spread(count: int, most: int) -> list[int]:
    """Up to ``most`` of ``0..count-1``, evenly spread, first and last included."""
    n = min(count, most)
    return sorted({round(i * (count - 1) / max(1, n - 1)) for i in range(n)})


def write_scene(
    path: Path,
    grid: AOIGrid,
    reflectance: NDArray[np.floating],
    acquired: dt.datetime,
    *,
    scene_id: str | None = None,
    cloud_mask: NDArray[np.bool_] | None = None,
) -> Path:
    """Write a 4-band reflectance scene (and its cloud mask beside it).

    Args:
        path: Target ``<scene_id>.tif``.
        grid: Grid the arrays are on.
        reflectance: (4, H, W) reflectance 0..1, bands blue, green, red, nir; NaN = no data.
        acquired: Acquisition time (UTC).
        scene_id: Stored in the ``SCENE_ID`` tag (default: the file stem).
        cloud_mask: (H, W) True = cloud or shadow; written to ``<stem>.cloudmask.tif``.

    Returns:
        ``path``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    dn = np.nan_to_num(np.asarray(reflectance, dtype=np.float64) / REFLECTANCE_SCALE, nan=0.0)
    valid = np.isfinite(reflectance).all(axis=0)
    dn = np.where(valid, np.clip(np.round(dn), 1, 65535), 0).astype(np.uint16)
    profile = {
        **GTIFF_PROFILE,
        "width": grid.width_px,
        "height": grid.height_px,
        "crs": f"EPSG:{grid.epsg}",
        "transform": grid.transform,
    }
    stamp = acquired.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    with rasterio.open(path, "w", count=4, dtype="uint16", nodata=0, **profile) as dst:
        dst.write(dn)
        dst.scales = (REFLECTANCE_SCALE,) * 4
        dst.offsets = (0.0,) * 4
        dst.descriptions = BAND_NAMES
        dst.update_tags(ACQUISITION_DATETIME=stamp, SCENE_ID=scene_id or path.stem)
    if cloud_mask is not None:
        mask_path = path.with_name(path.name.removesuffix(".tif") + ".cloudmask.tif")
        with rasterio.open(mask_path, "w", count=1, dtype="uint8", **profile) as dst:
            dst.write(cloud_mask.astype(np.uint8), 1)
    return path
