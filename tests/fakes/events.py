"""Seeded builders of site events for tests: square outlines with every field consistent.

A test draws a site as a square in a UTM zone; :func:`square_site` derives its
area and its lon/lat centroid from that square, so a test that checks which layer,
map link or channel a site goes to knows the answer by construction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

from pyproj import Transformer
from shapely.geometry import box

from asmspotter.events import SiteEvent


def square_site(
    site_id: str, x_m: float, y_m: float, side_m: float = 100, **fields: Any
) -> SiteEvent:
    """A verified ``new`` site: a square in UTM 21N (EPSG:32621), south-west corner at (x, y).

    Args:
        site_id: The site id.
        x_m: Easting of the south-west corner, metres.
        y_m: Northing of the south-west corner, metres.
        side_m: Side of the square; 100 m is 1 ha.
        **fields: Any other :class:`SiteEvent` field to set (``kind``, ``confidence``,
            ``first_seen`` (default 2024-02-29) ...).
    """
    geometry = box(x_m, y_m, x_m + side_m, y_m + side_m)
    lon, lat = Transformer.from_crs(32621, 4326, always_xy=True).transform(
        geometry.centroid.x, geometry.centroid.y
    )
    event = SiteEvent(
        site_id=site_id,
        kind="new",
        geometry=geometry,
        area_ha=geometry.area / 1e4,
        previous_area_ha=None,
        growth_ha=None,
        growth_pct=None,
        mean_probability=0.9,
        centroid_lon=lon,
        centroid_lat=lat,
        first_seen=dt.date(2024, 2, 29),
        clear_observations=3,
        verifier_score=0.9,
        confidence="high",
    )
    return replace(event, **fields)
