"""The pixel grid of an AOI: CRS, affine transform and shape.

Every composite, probability map and mask of an AOI lives on this grid: the UTM
zone of the AOI's centroid at the source's native pixel size, with bounds snapped
to whole pixels so repeated runs align exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import shapely
from affine import Affine
from pyproj import CRS, Transformer
from shapely.geometry.base import BaseGeometry


@dataclass(frozen=True)
class AOIGrid:
    """A north-up pixel grid in a projected CRS.

    Attributes:
        epsg: EPSG code of the projected CRS (a UTM zone).
        resolution_m: Pixel size in metres (square pixels).
        left_m: West edge in CRS metres.
        top_m: North edge in CRS metres.
        width_px: Number of columns.
        height_px: Number of rows.
    """

    epsg: int
    resolution_m: float
    left_m: float
    top_m: float
    width_px: int
    height_px: int

    @property
    def crs(self) -> CRS:
        """The grid's CRS as a pyproj object."""
        return CRS.from_epsg(self.epsg)

    @property
    def transform(self) -> Affine:
        """Affine transform from pixel (col, row) to CRS (x, y)."""
        return Affine(self.resolution_m, 0.0, self.left_m, 0.0, -self.resolution_m, self.top_m)

    @property
    def shape(self) -> tuple[int, int]:
        """(height_px, width_px), the numpy order."""
        return (self.height_px, self.width_px)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in CRS metres."""
        right = self.left_m + self.width_px * self.resolution_m
        bottom = self.top_m - self.height_px * self.resolution_m
        return (self.left_m, bottom, right, self.top_m)

    @property
    def pixel_area_ha(self) -> float:
        """Area of one pixel in hectares."""
        return self.resolution_m * self.resolution_m / 10_000.0


def utm_epsg_for_lonlat(lon: float, lat: float) -> int:
    """Return the EPSG code of the WGS84 UTM zone containing a point.

    Args:
        lon: Longitude in degrees.
        lat: Latitude in degrees.

    Returns:
        326xx north of the equator, 327xx south of it.
    """
    zone = min(60, max(1, math.floor((lon + 180.0) / 6.0) + 1))
    return (32600 if lat >= 0 else 32700) + zone


def to_crs(geometry_lonlat: BaseGeometry, epsg: int) -> BaseGeometry:
    """Reproject a lon/lat (EPSG:4326) geometry to ``epsg``."""
    transformer = Transformer.from_crs(4326, epsg, always_xy=True)
    return shapely.transform(geometry_lonlat, transformer.transform, interleaved=False)


def to_lonlat(geometry: BaseGeometry, epsg: int) -> BaseGeometry:
    """Reproject a geometry in ``epsg`` to lon/lat (EPSG:4326)."""
    transformer = Transformer.from_crs(epsg, 4326, always_xy=True)
    return shapely.transform(geometry, transformer.transform, interleaved=False)


def build_grid(geometry_lonlat: BaseGeometry, resolution_m: float) -> AOIGrid:
    """Build the AOI grid: UTM zone of the centroid, bounds snapped to whole pixels.

    Args:
        geometry_lonlat: AOI geometry in EPSG:4326.
        resolution_m: Pixel size in metres.

    Returns:
        The grid covering the AOI's bounding box.
    """
    centroid = geometry_lonlat.centroid
    epsg = utm_epsg_for_lonlat(centroid.x, centroid.y)
    minx, miny, maxx, maxy = to_crs(geometry_lonlat, epsg).bounds
    left = math.floor(minx / resolution_m) * resolution_m
    top = math.ceil(maxy / resolution_m) * resolution_m
    right = math.ceil(maxx / resolution_m) * resolution_m
    bottom = math.floor(miny / resolution_m) * resolution_m
    return AOIGrid(
        epsg=epsg,
        resolution_m=resolution_m,
        left_m=left,
        top_m=top,
        width_px=max(1, round((right - left) / resolution_m)),
        height_px=max(1, round((top - bottom) / resolution_m)),
    )
