"""Write an alert's sites as the files a field team loads on a phone or GPS.

KML (styled placemarks, for Google Earth / OsmAnd / Avenza), GPX (one waypoint per
site, for handheld GPS units and navigation apps), CSV (one row per site, for
spreadsheets) and GeoPackage (for QGIS) are rendered by :mod:`asmspotter.exports`,
the same code as the review web app's downloads, so the two never disagree. The
GeoJSON with every event attribute is written by
:func:`asmspotter.alerts.render.write_events_geojson`, through the same module's
one GeoJSON writer.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from asmspotter.alerts.render import site_page_url
from asmspotter.events import SiteEvent
from asmspotter.exports import render_export, sites_from_events, write_bytes_atomic

logger = logging.getLogger(__name__)

__all__ = ["FIELD_FORMATS", "write_field_exports"]

FIELD_FORMATS = ("kml", "gpx", "csv", "gpkg")
"""Formats written beside the events GeoJSON, in the order they are attached."""


def write_field_exports(
    events: Sequence[SiteEvent], epsg: int, folder: Path, stem: str
) -> list[Path]:
    """Write the events' sites as ``<stem>.kml``, ``.gpx``, ``.csv`` and ``.gpkg``.

    Args:
        events: The alert's events, geometries in ``EPSG:<epsg>``.
        epsg: CRS of the geometries (reprojected to lon/lat in the files).
        folder: Where to write; created if needed.
        stem: File name without extension, e.g. ``ne-suriname-2024-02-29-sites``.

    Returns:
        The written files, in :data:`FIELD_FORMATS` order. Each site links its review
        page when ``ASMSPOTTER_PUBLIC_URL`` is set.
    """
    sites = sites_from_events(events, epsg, url_for=site_page_url)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in FIELD_FORMATS:
        content, _ = render_export(sites, fmt)
        path = folder / f"{stem}.{fmt}"
        write_bytes_atomic(path, content)
        written.append(path)
    logger.debug("Wrote %d sites as %s to %s", len(sites), ", ".join(FIELD_FORMATS), folder)
    return written
