"""asmspotter.exports: CSV, GeoJSON, KML, GPX and GeoPackage of sites.

Two sites known by construction: ``a-0001`` a 0.01 x 0.01 degree square at
(-54.91..-54.90, 5.12..5.13), last event ``new``; ``a-0002`` dismissed as a river
bar with a reason holding markup characters, which every format must escape.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import xml.etree.ElementTree as ET

import geopandas as gpd
import pytest
from shapely.geometry import box

from asmspotter.exports import (
    EVENT_COLOURS,
    ExportSite,
    render_csv,
    render_export,
    render_geojson,
    render_geopackage,
    render_gpx,
    render_kml,
    sites_from_events,
)

KML = "{http://www.opengis.net/kml/2.2}"
GPX = "{http://www.topografix.com/GPX/1/1}"

SITES = [
    ExportSite(
        "a-0001",
        box(-54.91, 5.12, -54.90, 5.13),
        12.5,
        event="new",
        review="unreviewed",
        confidence="high",
        first_seen=dt.date(2024, 1, 31),
        last_seen=dt.date(2024, 1, 31),
        url="https://asm.example.org/sites/a-0001",
    ),
    ExportSite(
        "a-0002",
        box(-54.95, 5.15, -54.94, 5.16),
        3.0,
        event="unchanged",
        review="dismissed",
        reason='river bar <b>&</b> "sand"',
    ),
]


def test_csv_has_one_row_per_site_with_attributes():
    rows = list(csv.DictReader(io.StringIO(render_csv(SITES))))
    assert [r["site_id"] for r in rows] == ["a-0001", "a-0002"]
    assert rows[0]["area_ha"] == "12.50" and rows[0]["confidence"] == "high"
    assert float(rows[0]["centroid_lat"]) == pytest.approx(5.125, abs=1e-3)
    assert rows[1]["reason"] == 'river bar <b>&</b> "sand"'  # CSV quotes, not escapes


def test_geojson_is_a_feature_collection_in_lonlat():
    data = json.loads(render_geojson(SITES))
    assert data["type"] == "FeatureCollection"
    first = data["features"][0]
    assert first["id"] == "a-0001" and first["properties"]["event"] == "new"
    xs = [x for x, _ in first["geometry"]["coordinates"][0]]
    assert min(xs) == pytest.approx(-54.91) and max(xs) == pytest.approx(-54.90)


def test_kml_has_styled_placemarks_and_escapes_text():
    text = render_kml(SITES, name="Sites & more")
    root = ET.fromstring(text.encode())  # well-formed despite the markup in the reason
    document = root.find(f"{KML}Document")
    assert document.find(f"{KML}name").text == "Sites & more"
    styles = {s.get("id"): s for s in document.findall(f"{KML}Style")}
    assert set(styles) == {"new", "dismissed"}
    # KML colours are aabbggrr: new is #ff2020 -> ff2020ff; dismissed grey #808080.
    assert styles["new"].find(f"{KML}LineStyle/{KML}color").text == "ff2020ff"
    assert styles["dismissed"].find(f"{KML}LineStyle/{KML}color").text == "ff808080"
    placemarks = document.findall(f"{KML}Placemark")
    assert [p.find(f"{KML}styleUrl").text for p in placemarks] == ["#new", "#dismissed"]
    data = {
        d.get("name"): d.find(f"{KML}value").text
        for d in placemarks[1].findall(f"{KML}ExtendedData/{KML}Data")
    }
    assert data["reason"] == 'river bar <b>&</b> "sand"'
    description = placemarks[1].find(f"{KML}description").text  # HTML shown by viewers
    assert "river bar &lt;b&gt;&amp;&lt;/b&gt;" in description and "<b>" not in description
    assert placemarks[0].find(f"{KML}MultiGeometry/{KML}Polygon") is not None


def test_gpx_has_a_waypoint_per_site_inside_its_outline():
    root = ET.fromstring(render_gpx(SITES).encode())
    waypoints = root.findall(f"{GPX}wpt")
    assert [w.find(f"{GPX}name").text for w in waypoints] == ["a-0001", "a-0002"]
    lat, lon = float(waypoints[0].get("lat")), float(waypoints[0].get("lon"))
    assert 5.12 < lat < 5.13 and -54.91 < lon < -54.90
    assert waypoints[0].find(f"{GPX}link").get("href") == SITES[0].url
    assert "12.5 ha" in waypoints[0].find(f"{GPX}desc").text


def test_geopackage_round_trips(tmp_path):
    path = tmp_path / "sites.gpkg"
    path.write_bytes(render_geopackage(SITES))
    frame = gpd.read_file(path, layer="sites")
    assert frame.crs.to_epsg() == 4326
    assert list(frame["site_id"]) == ["a-0001", "a-0002"]
    assert frame.geometry.iloc[0].equals_exact(SITES[0].geometry_lonlat, 1e-9)


def test_render_export_names_the_valid_formats():
    content, media_type = render_export(SITES, "kml")
    assert content.startswith(b"<?xml") and "kml" in media_type
    with pytest.raises(ValueError, match="csv, geojson, kml, gpx, gpkg"):
        render_export(SITES, "shp")


def test_events_reproject_from_the_aoi_crs():
    from asmspotter.events import SiteEvent

    square = box(600_000, 560_000, 600_200, 560_200)  # 4 ha in UTM 21N
    event = SiteEvent(
        "d-1", "new", square, 4.0, None, None, None, 0.9, -54.1, 5.06, dt.date(2024, 1, 31), 3
    )
    [row] = sites_from_events([event], 32621)
    lon, lat = row.centroid_lonlat
    # 100 km east of UTM 21N's central meridian (57 W) near 5 N: about 56.1 W.
    assert -56.11 < lon < -56.08 and 5.06 < lat < 5.07
    assert row.event == "new" and row.area_ha == 4.0


def test_colours_match_the_quicklooks():
    from asmspotter.alerts.quicklook import EVENT_COLOURS as QUICKLOOK_COLOURS

    assert EVENT_COLOURS == QUICKLOOK_COLOURS
