"""Writing scenes in the local provider's format (4-band GeoTIFF + cloud mask).

The synthetic generator, the test builders and anyone converting their own
imagery use this one writer, so every scene on disk follows the same contract:
uint16 digital numbers with a band scale of 1e-4 (reflectance = DN x 1e-4, as
Sentinel-2 L2A), nodata 0, band descriptions blue, green, red, nir, and the
acquisition time in the ``ACQUISITION_DATETIME`` tag.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import rasterio
from numpy.typing import NDArray

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
