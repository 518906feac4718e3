"""Sites as files for people and GIS tools: CSV, GeoJSON, KML, GPX and GeoPackage.

Pure functions from :class:`ExportSite` rows (EPSG:4326 outlines plus a few
attributes) to bytes, so the review web app's downloads (``asmspotter.web``) and
the alert attachments (``asmspotter.alerts``) write the same files. Build the rows
with :func:`sites_from_records` (store sites) or :func:`sites_from_events`
(tracking events); nothing here touches the store or the network.

Example:
    >>> import datetime as dt
    >>> from shapely.geometry import box
    >>> site = ExportSite("demo-0001", box(-54.91, 5.12, -54.90, 5.13), 12.5,
    ...                   event="new", first_seen=dt.date(2024, 1, 31))
    >>> render_csv([site]).splitlines()[1][:24]
    'demo-0001,new,,,12.50,5.'
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape as xml_escape

import numpy as np
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError
from shapely.geometry import MultiPolygon, Polygon, mapping
from shapely.geometry.base import BaseGeometry

from asmspotter.atomic_write import atomic_write
from asmspotter.context_layers import ContextTag
from asmspotter.events import SiteEvent

logger = logging.getLogger(__name__)

__all__ = [
    "EXPORT_FORMATS",
    "ExportSite",
    "format_context_tags",
    "geojson_feature",
    "lonlat_reprojector",
    "render_csv",
    "render_export",
    "render_feature_collection",
    "render_geojson",
    "render_geopackage",
    "render_gpx",
    "render_kml",
    "sites_from_events",
    "sites_from_records",
    "write_bytes_atomic",
    "write_geojson",
]

# 7 decimals of a degree is about 1 cm: RFC 7946 section 11.2 asks for no more
# precision than the data has, and our pixels are metres.
_DECIMALS = 7

EVENT_COLOURS: dict[str, str] = {
    "new": "#ff2020",
    "expanded": "#ffa000",
    "unchanged": "#00d8ff",
    "shrunk": "#b070ff",
    "not_seen": "#c8c8c8",
}
"""Colour per last event kind (hex RGB), the same as the quicklooks' outlines."""

DISMISSED_COLOUR = "#808080"
"""Colour of dismissed sites, whatever their last event."""

_CSV_COLUMNS = (
    "site_id",
    "event",
    "review",
    "confidence",
    "area_ha",
    "centroid_lat",
    "centroid_lon",
    "first_seen",
    "last_seen",
    "reason",
    "context_layers",
    "url",
)


@dataclass(frozen=True)
class ExportSite:
    """One site as exported: outline in lon/lat and what a reader needs to know about it.

    Attributes:
        site_id: Persistent site id, e.g. ``demo-0003``.
        geometry_lonlat: Outline (Polygon or MultiPolygon) in EPSG:4326, x = longitude.
        area_ha: Mapped area in hectares.
        event: Last event kind (``new``, ``expanded``, ...), if known.
        review: ``confirmed``, ``dismissed`` or ``unreviewed``; None if not applicable.
        confidence: Confidence level (``nominal``, ``high``, ``highest``), if scored.
        first_seen: Window end of the run that first detected it.
        last_seen: Window end of the latest run that detected it.
        reason: The reviewer's reason (dismissals and confirmations).
        url: A link for the site (its review page or a map), if any.
        context_tags: The AOI's context layers the site lies in (protected areas,
            territories, concessions), with the names of the features.
    """

    site_id: str
    geometry_lonlat: BaseGeometry
    area_ha: float
    event: str | None = None
    review: str | None = None
    confidence: str | None = None
    first_seen: dt.date | None = None
    last_seen: dt.date | None = None
    reason: str | None = None
    url: str | None = None
    context_tags: tuple[ContextTag, ...] = ()

    @property
    def centroid_lonlat(self) -> tuple[float, float]:
        """A point inside the outline (lon, lat): where the waypoint or pin goes."""
        point = self.geometry_lonlat.representative_point()
        return float(point.x), float(point.y)

    @property
    def colour(self) -> str:
        """Hex RGB colour: grey when dismissed, else by last event."""
        if self.review == "dismissed":
            return DISMISSED_COLOUR
        return EVENT_COLOURS.get(self.event or "", "#ffffff")

    def properties(self) -> dict[str, Any]:
        """The attributes as JSON-ready values (dates as ISO text, area rounded to 0.01 ha)."""
        lon, lat = self.centroid_lonlat
        return {
            "site_id": self.site_id,
            "event": self.event,
            "review": self.review,
            "confidence": self.confidence,
            "area_ha": round(float(self.area_ha), 2),
            "centroid_lat": round(lat, 6),
            "centroid_lon": round(lon, 6),
            "first_seen": self.first_seen.isoformat() if self.first_seen else None,
            "last_seen": self.last_seen.isoformat() if self.last_seen else None,
            "reason": self.reason,
            "context_layers": format_context_tags(self.context_tags) or None,
            "url": self.url,
        }


def format_context_tags(tags: Sequence[ContextTag]) -> str:
    """Tags as one text cell: ``protected_areas (Park A, Park B); concessions``.

    Layer names stay the AOI file's tags (what channels subscribe to), untranslated,
    so a spreadsheet filter or a GIS query matches them in every language.
    """
    return "; ".join(
        f"{tag.layer} ({', '.join(tag.features)})" if tag.features else tag.layer for tag in tags
    )


def lonlat_reprojector(epsg: int) -> Callable[[BaseGeometry], BaseGeometry]:
    """A function reprojecting shapely geometries from ``EPSG:<epsg>`` to lon/lat.

    Raises:
        ValueError: ``epsg`` is not a known EPSG code.
    """
    try:
        source = CRS.from_epsg(epsg)
    except CRSError as exc:
        raise ValueError(
            f"epsg={epsg} is not a known EPSG code; pass the AOI grid's CRS code, e.g. "
            "32621 for UTM zone 21N."
        ) from exc
    transformer = Transformer.from_crs(source, 4326, always_xy=True)

    def reproject(geometry: BaseGeometry) -> BaseGeometry:
        return shapely.transform(
            geometry, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))
        )

    return reproject


def sites_from_records(
    sites: Sequence[Any],
    latest: Mapping[str, Any] | None = None,
    url_for: Callable[[str], str | None] | None = None,
    tags: Mapping[str, tuple[ContextTag, ...]] | None = None,
) -> list[ExportSite]:
    """Build export rows from store sites (:class:`asmspotter.storage.SiteRecord`).

    Args:
        sites: Store site records (outline WKT in their ``epsg``).
        latest: Site id -> latest :class:`~asmspotter.storage.ObservationRecord`, for the
            last event and confidence level.
        url_for: Site id -> link to put in each row (e.g. the review page).
        tags: Site id -> the context layers it lies in
            (:func:`asmspotter.context_layers.tag_sites`); none without.

    Returns:
        One row per site, in the given order.
    """
    transformers: dict[int, Callable[[BaseGeometry], BaseGeometry]] = {}
    rows = []
    for site in sites:
        if site.epsg not in transformers:
            transformers[site.epsg] = lonlat_reprojector(site.epsg)
        obs = (latest or {}).get(site.site_id)
        reason = site.dismissed_reason if site.status == "dismissed" else None
        rows.append(
            ExportSite(
                site_id=site.site_id,
                geometry_lonlat=transformers[site.epsg](site.geometry),
                area_ha=float(site.area_ha),
                event=obs.kind if obs is not None else None,
                review=site.review_state,
                confidence=obs.confidence if obs is not None else None,
                first_seen=site.first_seen,
                last_seen=site.last_seen,
                reason=reason,
                url=url_for(site.site_id) if url_for else None,
                context_tags=(tags or {}).get(site.site_id, ()),
            )
        )
    return rows


def sites_from_events(
    events: Sequence[SiteEvent],
    epsg: int,
    url_for: Callable[[str], str | None] | None = None,
) -> list[ExportSite]:
    """Build export rows from tracking events (outlines in ``EPSG:<epsg>``), e.g. for alerts."""
    reproject = lonlat_reprojector(epsg)
    return [
        ExportSite(
            site_id=e.site_id,
            geometry_lonlat=reproject(e.geometry),
            area_ha=float(e.area_ha),
            event=e.kind,
            confidence=e.confidence,
            first_seen=e.first_seen,
            url=url_for(e.site_id) if url_for else None,
            context_tags=e.context_tags,
        )
        for e in events
    ]


def render_csv(sites: Sequence[ExportSite]) -> str:
    """One row per site: id, event, review, confidence, area, centroid, dates, reason, link."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(_CSV_COLUMNS)
    for site in sites:
        props = site.properties()
        props["area_ha"] = f"{site.area_ha:.2f}"
        writer.writerow(["" if props[c] is None else props[c] for c in _CSV_COLUMNS])
    return buffer.getvalue()


def _rounded(geometry: BaseGeometry) -> dict[str, Any]:
    """GeoJSON geometry mapping with coordinates at :data:`_DECIMALS` decimals."""
    rounded: dict[str, Any] = mapping(shapely.set_precision(geometry, 10.0**-_DECIMALS))
    return rounded


def geojson_feature(
    feature_id: str, geometry_lonlat: BaseGeometry, properties: Mapping[str, Any]
) -> dict[str, Any]:
    """One RFC 7946 feature: lon/lat geometry at :data:`_DECIMALS` decimals (about 1 cm)."""
    return {
        "type": "Feature",
        "id": feature_id,
        "properties": dict(properties),
        "geometry": _rounded(geometry_lonlat),
    }


def render_feature_collection(features: Sequence[Mapping[str, Any]]) -> str:
    """The text of a FeatureCollection (UTF-8 kept readable, one indent per level)."""
    collection = {"type": "FeatureCollection", "features": list(features)}
    return json.dumps(collection, indent=1, ensure_ascii=False) + "\n"


def render_geojson(sites: Sequence[ExportSite]) -> str:
    """An RFC 7946 FeatureCollection (EPSG:4326): outlines with every attribute."""
    return render_feature_collection(
        [geojson_feature(s.site_id, s.geometry_lonlat, s.properties()) for s in sites]
    )


def write_bytes_atomic(path: Path, content: bytes) -> Path:
    """Write ``content`` through :func:`asmspotter.atomic_write.atomic_write`.

    A reader never sees half a file, parents are created and the file gets the mode of
    any other output.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as scratch:
        scratch.write_bytes(content)
    return path


def write_geojson(features: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Write features (from :func:`geojson_feature`) as one GeoJSON file, atomically.

    The one GeoJSON writer of the project: alert attachments, the run's
    ``sites.geojson`` and the training examples all go through it.

    Returns:
        ``path``.
    """
    write_bytes_atomic(path, render_feature_collection(features).encode("utf-8"))
    logger.debug("Wrote %d features to %s", len(features), path)
    return path


def _kml_colour(hex_rgb: str, alpha: int) -> str:
    """KML colours are ``aabbggrr`` hex."""
    red, green, blue = hex_rgb[1:3], hex_rgb[3:5], hex_rgb[5:7]
    return f"{alpha:02x}{blue}{green}{red}"


def _kml_ring(coords: Sequence[Sequence[float]]) -> str:
    text = " ".join(f"{x:.{_DECIMALS}f},{y:.{_DECIMALS}f},0" for x, y, *_ in coords)
    return f"<LinearRing><coordinates>{text}</coordinates></LinearRing>"


def _kml_polygons(geometry: BaseGeometry) -> list[str]:
    polygons: list[Polygon]
    if isinstance(geometry, Polygon):
        polygons = [geometry]
    elif isinstance(geometry, MultiPolygon):
        polygons = list(geometry.geoms)
    else:
        polygons = [p for p in getattr(geometry, "geoms", []) if isinstance(p, Polygon)]
    out = []
    for polygon in polygons:
        inner = "".join(
            f"<innerBoundaryIs>{_kml_ring(r.coords)}</innerBoundaryIs>" for r in polygon.interiors
        )
        out.append(
            f"<Polygon><outerBoundaryIs>{_kml_ring(polygon.exterior.coords)}</outerBoundaryIs>"
            f"{inner}</Polygon>"
        )
    return out


def _style_id(site: ExportSite) -> str:
    return "dismissed" if site.review == "dismissed" else (site.event or "site")


def render_kml(sites: Sequence[ExportSite], *, name: str = "asmspotter sites") -> str:
    """A KML document: one styled placemark per site (pin at the centroid + outline).

    Styles follow the map: colour by last event, grey when dismissed; the
    description lists the attributes and the link, every string XML-escaped.
    """
    styles = sorted({(_style_id(s), s.colour) for s in sites})
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<kml xmlns="http://www.opengis.net/kml/2.2"><Document>',
        f"<name>{xml_escape(name)}</name>",
    ]
    for style_id, colour in styles:
        parts.append(
            f'<Style id="{xml_escape(style_id)}">'
            f"<IconStyle><color>{_kml_colour(colour, 255)}</color><scale>1.1</scale></IconStyle>"
            f"<LineStyle><color>{_kml_colour(colour, 255)}</color><width>2</width></LineStyle>"
            f"<PolyStyle><color>{_kml_colour(colour, 0x55)}</color></PolyStyle></Style>"
        )
    for site in sites:
        lon, lat = site.centroid_lonlat
        props = site.properties()
        rows = "".join(
            f"<tr><th>{xml_escape(k)}</th><td>{xml_escape(str(v))}</td></tr>"
            for k, v in props.items()
            if v is not None and k not in ("site_id",)
        )
        description = f"<table>{rows}</table>"
        data = "".join(
            f'<Data name="{xml_escape(k)}"><value>{xml_escape(str(v))}</value></Data>'
            for k, v in props.items()
            if v is not None
        )
        pin = f"<Point><coordinates>{lon:.{_DECIMALS}f},{lat:.{_DECIMALS}f},0</coordinates></Point>"
        geometry = "".join([pin, *_kml_polygons(site.geometry_lonlat)])
        parts.append(
            f"<Placemark><name>{xml_escape(site.site_id)}</name>"
            f"<description><![CDATA[{description.replace(']]>', ']]&gt;')}]]></description>"
            f"<styleUrl>#{xml_escape(_style_id(site))}</styleUrl>"
            f"<ExtendedData>{data}</ExtendedData>"
            f"<MultiGeometry>{geometry}</MultiGeometry></Placemark>"
        )
    parts.append("</Document></kml>")
    return "\n".join(parts) + "\n"


def render_gpx(sites: Sequence[ExportSite], *, creator: str = "asmspotter") -> str:
    """A GPX 1.1 file with one waypoint per site (at a point inside its outline), for GPS units."""
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<gpx version="1.1" creator="{xml_escape(creator, {chr(34): "&quot;"})}" '
        'xmlns="http://www.topografix.com/GPX/1/1">',
    ]
    for site in sites:
        lon, lat = site.centroid_lonlat
        what = ", ".join(
            str(v)
            for v in (
                site.event,
                f"{site.area_ha:.1f} ha",
                site.confidence,
                site.review,
                format_context_tags(site.context_tags),
            )
            if v
        )
        link = (
            f'<link href="{xml_escape(site.url, {chr(34): "&quot;"})}"><text>review</text></link>'
            if site.url
            else ""
        )
        parts.append(
            f'<wpt lat="{lat:.{_DECIMALS}f}" lon="{lon:.{_DECIMALS}f}">'
            f"<name>{xml_escape(site.site_id)}</name><desc>{xml_escape(what)}</desc>{link}"
            "<sym>Flag, Red</sym></wpt>"
        )
    parts.append("</gpx>")
    return "\n".join(parts) + "\n"


def render_geopackage(sites: Sequence[ExportSite], *, layer: str = "sites") -> bytes:
    """A GeoPackage (EPSG:4326) with one layer of outlines and every attribute, as bytes."""
    import geopandas as gpd

    props = [s.properties() for s in sites]
    frame = gpd.GeoDataFrame(
        {c: [p[c] for p in props] for c in _CSV_COLUMNS},
        geometry=[s.geometry_lonlat for s in sites],
        crs="EPSG:4326",
    )
    with tempfile.TemporaryDirectory(prefix="asmspotter-gpkg-") as tmp:
        path = Path(tmp) / "sites.gpkg"
        frame.to_file(path, layer=layer, driver="GPKG")
        return path.read_bytes()


EXPORT_FORMATS: dict[str, tuple[str, Callable[[Sequence[ExportSite]], str | bytes]]] = {
    "csv": ("text/csv; charset=utf-8", render_csv),
    "geojson": ("application/geo+json", render_geojson),
    "kml": ("application/vnd.google-earth.kml+xml", render_kml),
    "gpx": ("application/gpx+xml", render_gpx),
    "gpkg": ("application/geopackage+sqlite3", render_geopackage),
}
"""File extension -> (media type, renderer) of every export format."""


def render_export(sites: Sequence[ExportSite], fmt: str) -> tuple[bytes, str]:
    """Render sites in the format named by its file extension.

    Args:
        sites: The rows to write.
        fmt: ``csv``, ``geojson``, ``kml``, ``gpx`` or ``gpkg``.

    Returns:
        (file content, media type).

    Raises:
        ValueError: ``fmt`` is not one of the formats (they are listed).
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(
            f"export format {fmt!r} is unknown; use one of {', '.join(EXPORT_FORMATS)}."
        )
    media_type, render = EXPORT_FORMATS[fmt]
    content = render(sites)
    return (content.encode("utf-8") if isinstance(content, str) else content), media_type
