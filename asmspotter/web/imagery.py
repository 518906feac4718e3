"""Pictures for the review web app: the composite as a map overlay, and site chips.

:func:`render_overlay_png` warps a run's composite COG (AOI UTM grid) to lon/lat
and returns a true-colour PNG with its bounds, for a Leaflet image overlay.
:func:`render_site_chip_png` crops one composite around a site and draws its
outline, the "before" and "after" pictures of the site page. Paths come from the
store, never from a request, and :func:`is_inside` keeps them under the outputs
folder. The quicklooks for alerts live in ``asmspotter.alerts.quicklook``.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from numpy.typing import NDArray
from PIL import Image, ImageDraw
from rasterio.enums import Resampling
from rasterio.warp import calculate_default_transform, reproject
from rasterio.windows import from_bounds
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

logger = logging.getLogger(__name__)

_RGB_BANDS = ("red", "green", "blue")

# Stretch each band between these percentiles of its clear pixels, as the quicklooks
# do: robust to cloud remnants and dark water in a median composite.
_STRETCH_PCT = (2.0, 98.0)


@dataclass(frozen=True)
class Overlay:
    """A composite warped to lon/lat.

    Attributes:
        png: True-colour PNG bytes; never-clear pixels are transparent.
        bounds_latlon: ((south, west), (north, east)), the order Leaflet wants.
    """

    png: bytes
    bounds_latlon: tuple[tuple[float, float], tuple[float, float]]


def is_inside(path: Path, root: Path) -> bool:
    """True if ``path`` resolves (links followed) to a file under ``root``."""
    try:
        return path.resolve(strict=True).is_relative_to(root.resolve()) and path.is_file()
    except OSError:
        return False


def _band_indexes(src: rasterio.io.DatasetReader) -> list[int]:
    """1-based indexes of red, green, blue by band description (the composite contract)."""
    names = [d or "" for d in src.descriptions]
    try:
        return [names.index(b) + 1 for b in _RGB_BANDS]
    except ValueError:
        from asmspotter.composite.composite import COMPOSITE_BANDS

        return [COMPOSITE_BANDS.index(b) + 1 for b in _RGB_BANDS]


def _stretch(rgb: NDArray[np.float32]) -> tuple[NDArray[np.uint8], NDArray[np.bool_]]:
    """(3, rows, cols) reflectance -> (rows, cols, 3) uint8 and the valid-pixel mask."""
    valid = np.all(np.isfinite(rgb), axis=0)
    out = np.zeros((*rgb.shape[1:], 3), dtype=np.uint8)
    for i in range(3):
        band = rgb[i]
        finite = band[valid]
        if finite.size == 0:
            continue
        lo, hi = np.percentile(finite, _STRETCH_PCT)
        scaled = np.clip((band - lo) / max(float(hi - lo), 1e-6), 0, 1) * 255
        out[..., i] = np.where(valid, scaled, 0).astype(np.uint8)
    return out, valid


def render_overlay_png(composite_path: Path, *, max_px: int = 1600) -> Overlay:
    """Warp a composite to EPSG:4326 and render it as a PNG with transparent no-data.

    Args:
        composite_path: A composite COG (bands named as in the composite contract).
        max_px: Longest side of the PNG in pixels (reads an overview when smaller).

    Returns:
        The PNG and its lat/lon bounds.
    """
    with rasterio.open(composite_path) as src:
        scale = max(src.width, src.height) / max_px
        factor = max(scale, 1.0)
        out_w, out_h = round(src.width / factor), round(src.height / factor)
        rgb = src.read(
            _band_indexes(src),
            out_shape=(3, out_h, out_w),
            resampling=Resampling.average,
            masked=True,
        )
        rgb = np.ma.filled(rgb.astype(np.float32), np.nan)
        src_transform = src.transform * src.transform.scale(src.width / out_w, src.height / out_h)
        dst_transform, dst_w, dst_h = calculate_default_transform(
            src.crs, "EPSG:4326", out_w, out_h, *src.bounds
        )
        warped = np.full((3, dst_h, dst_w), np.nan, dtype=np.float32)
        reproject(
            rgb,
            warped,
            src_transform=src_transform,
            src_crs=src.crs,
            dst_transform=dst_transform,
            dst_crs="EPSG:4326",
            src_nodata=np.nan,
            dst_nodata=np.nan,
            resampling=Resampling.bilinear,
        )
    image, valid = _stretch(warped)
    rgba = np.dstack([image, np.where(valid, 255, 0).astype(np.uint8)])
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, format="PNG", optimize=True)
    west, north = dst_transform * (0, 0)
    east, south = dst_transform * (dst_w, dst_h)
    return Overlay(buffer.getvalue(), ((float(south), float(west)), (float(north), float(east))))


def _rings(geometry: BaseGeometry) -> list[list[tuple[float, float]]]:
    polygons: list[Polygon] = (
        [geometry]
        if isinstance(geometry, Polygon)
        else list(geometry.geoms)
        if isinstance(geometry, MultiPolygon)
        else []
    )
    return [list(p.exterior.coords) for p in polygons]


def render_site_chip_png(
    composite_path: Path,
    outline: BaseGeometry,
    bounds: tuple[float, float, float, float],
    *,
    colour: str = "#ff2020",
    size_px: int = 240,
) -> bytes:
    """Crop a composite to ``bounds`` and draw a site's outline on it.

    Args:
        composite_path: A composite COG in the same CRS as ``outline`` and ``bounds``.
        outline: The site's outline in that run (AOI CRS, metres).
        bounds: (minx, miny, maxx, maxy) of the crop in the AOI CRS; use the same
            bounds for every run of a site so the chips compare.
        colour: Outline colour (hex RGB).
        size_px: Width and height of the PNG.

    Returns:
        PNG bytes (black where the composite has no clear pixel or no data).
    """
    with rasterio.open(composite_path) as src:
        window = from_bounds(*bounds, transform=src.transform)
        rgb = src.read(
            _band_indexes(src),
            window=window,
            out_shape=(3, size_px, size_px),
            boundless=True,
            fill_value=np.nan,
            resampling=Resampling.nearest,
            masked=False,
        ).astype(np.float32)
    image, _ = _stretch(rgb)
    picture = Image.fromarray(image, "RGB")
    draw = ImageDraw.Draw(picture)
    minx, miny, maxx, maxy = bounds
    sx, sy = size_px / (maxx - minx), size_px / (maxy - miny)
    for ring in _rings(outline):
        pixels = [((x - minx) * sx, (maxy - y) * sy) for x, y, *_ in ring]
        draw.line([*pixels, pixels[0]], fill=colour, width=2)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def chip_bounds(
    geometries: list[BaseGeometry], margin_m: float = 250.0
) -> tuple[float, float, float, float]:
    """A square around every outline of a site plus a margin (AOI CRS, metres)."""
    minx = min(g.bounds[0] for g in geometries)
    miny = min(g.bounds[1] for g in geometries)
    maxx = max(g.bounds[2] for g in geometries)
    maxy = max(g.bounds[3] for g in geometries)
    half = max(maxx - minx, maxy - miny) / 2 + margin_m
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    return (cx - half, cy - half, cx + half, cy + half)


__all__ = [
    "Overlay",
    "chip_bounds",
    "is_inside",
    "render_overlay_png",
    "render_site_chip_png",
]
