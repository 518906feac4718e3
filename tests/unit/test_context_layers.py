"""Context layers: loading and checking the files an AOI names, and tagging sites with them.

Layers and sites are drawn by the tests in UTM zone 21N (EPSG:32621) around
(600 000 E, 559 000 N), about 56.10 W 5.06 N, so which site lies in which
feature is known by construction.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import Point, box, mapping
from shapely.geometry.base import BaseGeometry

from asmspotter.alerts.dispatch import events_for_channel
from asmspotter.aoi import load_aoi, load_registry
from asmspotter.context_layers import ContextTag, tag_events, tag_sites
from asmspotter.errors import AOIConfigError
from asmspotter.events import SiteEvent
from asmspotter.settings import PROJECT_ROOT
from fakes.events import square_site

EPSG = 32621
TO_LONLAT = Transformer.from_crs(EPSG, 4326, always_xy=True)

PARK_UTM = box(599_000, 558_000, 601_000, 560_000)
"""A 2 km square park; the site at 600 000 E lies inside, the one at 605 000 E does not."""
CONCESSION_UTM = box(600_500, 558_500, 603_000, 559_500)
"""Overlaps the park's east half: a site at 600 600 E lies in both."""


def site(site_id: str, x: float, *, confidence: str = "high") -> SiteEvent:
    """A 100 m square site (1 ha) with its south-west corner at (x, 559 000)."""
    return square_site(site_id, x, 559_000, confidence=confidence)


def to_lonlat(geometry: BaseGeometry) -> BaseGeometry:
    return shapely.transform(
        geometry, lambda xy: np.column_stack(TO_LONLAT.transform(xy[:, 0], xy[:, 1]))
    )


def write_geojson_layer(path: Path, features: list[tuple[str, BaseGeometry]]) -> Path:
    """Features (name, UTM geometry) as an EPSG:4326 GeoJSON file with a NAME attribute."""
    path.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"NAME": name, "IUCN": "II"},
                        "geometry": mapping(to_lonlat(geometry)),
                    }
                    for name, geometry in features
                ],
            }
        )
    )
    return path


def write_aoi(folder: Path, layers: str, alerts: str = "[]", name: str = "tc") -> Path:
    """An AOI around the test area whose ``context_layers`` block is ``layers``."""
    path = folder / f"{name}.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        name: {name}
        title: Test creek
        geometry: {{type: Polygon, coordinates: [[[-56.15, 5.02], [-56.0, 5.02], [-56.0, 5.1], [-56.15, 5.1], [-56.15, 5.02]]]}}
        sources: [{{provider: local, path: scenes}}]
        schedule: {{revisit_days: 5, window_days: 30, start_date: 2024-01-01}}
        alerts: {alerts}
        context_layers:
        """)
        + textwrap.indent(textwrap.dedent(layers), "  ")
    )
    return path


PARK_LAYER = """\
- name: protected_areas
  path: parks.geojson
  label_field: NAME
"""


def test_geojson_layer_tags_the_sites_inside_with_feature_names(tmp_path: Path) -> None:
    write_geojson_layer(tmp_path / "parks.geojson", [("Park A", PARK_UTM)])
    aoi = load_aoi(write_aoi(tmp_path, PARK_LAYER))
    tags = tag_sites(
        {"inside": site("inside", 600_000).geometry, "outside": site("o", 605_000).geometry},
        EPSG,
        aoi.context_layers,
    )
    assert tags == {"inside": (ContextTag("protected_areas", ("Park A",)),), "outside": ()}


def test_geopackage_in_its_own_crs_and_two_layers(tmp_path: Path) -> None:
    """A GeoPackage in UTM (not lon/lat) is reprojected; a site can be in two layers."""
    gpd.GeoDataFrame(
        {"holder": ["Mina Sur SA"]}, geometry=[CONCESSION_UTM], crs=f"EPSG:{EPSG}"
    ).to_file(tmp_path / "cadastre.gpkg", layer="concessions", driver="GPKG")
    write_geojson_layer(tmp_path / "parks.geojson", [("Park A", PARK_UTM)])
    layers = PARK_LAYER + (
        "- name: concessions\n  path: cadastre.gpkg\n  layer: concessions\n  label_field: holder\n"
    )
    aoi = load_aoi(write_aoi(tmp_path, layers))
    events = tag_events([site("both", 600_600), site("park", 599_100)], EPSG, aoi.context_layers)
    assert events[0].context_tags == (
        ContextTag("protected_areas", ("Park A",)),
        ContextTag("concessions", ("Mina Sur SA",)),
    )
    assert events[1].context_tags == (ContextTag("protected_areas", ("Park A",)),)


def test_layer_without_label_field_tags_the_layer_only(tmp_path: Path) -> None:
    """A layer without any attribute at all, as a bare GeoJSON export gives."""
    feature = {"type": "Feature", "properties": {}, "geometry": mapping(to_lonlat(PARK_UTM))}
    (tmp_path / "parks.geojson").write_text(
        json.dumps({"type": "FeatureCollection", "features": [feature]})
    )
    aoi = load_aoi(write_aoi(tmp_path, "- name: protected_areas\n  path: parks.geojson\n"))
    (event,) = tag_events([site("s", 600_000)], EPSG, aoi.context_layers)
    assert event.context_tags == (ContextTag("protected_areas", ()),)


@pytest.mark.parametrize(
    ("layer_file", "content", "expected"),
    [
        (None, None, r"parks.geojson does not exist; put the GeoPackage or GeoJSON beside"),
        ("parks.geojson", "this is not GeoJSON", r"cannot read parks.geojson as a GeoPackage"),
        (
            "parks.geojson",
            '{"type": "FeatureCollection", "features": []}',
            r"has no feature with a geometry; give a layer of polygons",
        ),
    ],
)
def test_broken_layer_names_aoi_file_layer_and_fix(
    tmp_path: Path, layer_file: str | None, content: str | None, expected: str
) -> None:
    if layer_file:
        (tmp_path / layer_file).write_text(str(content))
    path = write_aoi(tmp_path, PARK_LAYER)
    with pytest.raises(AOIConfigError, match=expected) as info:
        load_aoi(path)
    assert str(info.value).startswith(f"{path}: context_layers.0 (protected_areas): ")


def test_missing_label_field_lists_the_attributes(tmp_path: Path) -> None:
    write_geojson_layer(tmp_path / "parks.geojson", [("Park A", PARK_UTM)])
    path = write_aoi(tmp_path, PARK_LAYER.replace("NAME", "NOM"))
    with pytest.raises(AOIConfigError, match=r"label_field 'NOM' .* \(attributes: NAME, IUCN\)"):
        load_aoi(path)


def test_layer_path_outside_the_aoi_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "aois"
    folder.mkdir()
    write_geojson_layer(tmp_path / "parks.geojson", [("Park A", PARK_UTM)])
    path = write_aoi(folder, PARK_LAYER.replace("parks.geojson", "../parks.geojson"))
    with pytest.raises(AOIConfigError, match="points outside"):
        load_aoi(path)


def test_channel_tags_must_name_a_layer(tmp_path: Path) -> None:
    write_geojson_layer(tmp_path / "parks.geojson", [("Park A", PARK_UTM)])
    alerts = '[{url: "json://127.0.0.1:1/x", tags: [protected_area]}]'
    with pytest.raises(AOIConfigError, match=r"alerts.0.tags: \['protected_area'\] is not"):
        load_aoi(write_aoi(tmp_path, PARK_LAYER, alerts))


def test_a_broken_layer_makes_only_its_aoi_invalid(tmp_path: Path) -> None:
    write_geojson_layer(tmp_path / "parks.geojson", [("Park A", PARK_UTM)])
    write_aoi(tmp_path, PARK_LAYER, name="good")
    bad = write_aoi(tmp_path, PARK_LAYER.replace("parks.geojson", "gone.gpkg"), name="bad")
    registry = load_registry(tmp_path)
    assert list(registry.aois) == ["good"]
    assert list(registry.errors) == [bad]
    assert registry.aois["good"].context_layers[0].name == "protected_areas"


def test_channel_tags_and_levels_filter_together(tmp_path: Path) -> None:
    write_geojson_layer(tmp_path / "parks.geojson", [("Park A", PARK_UTM)])
    alerts = (
        '[{url: "json://127.0.0.1:1/park", tags: [protected_areas]}, '
        '{url: "json://127.0.0.1:1/all"}]'
    )
    aoi = load_aoi(write_aoi(tmp_path, PARK_LAYER, alerts))
    park, everyone = aoi.config.alerts
    events = tag_events(
        [
            site("in-high", 600_000),
            site("in-nominal", 599_500, confidence="nominal"),
            site("out-high", 605_000),
        ],
        EPSG,
        aoi.context_layers,
    )
    assert [e.site_id for e in events_for_channel(events, park)] == ["in-high"]
    assert [e.site_id for e in events_for_channel(events, everyone)] == ["in-high", "out-high"]


# Centroids of the demo series' truth sites (truth/sites.json of seed 7, EPSG:32621),
# which the demo's second run alerts as 2 new (05, 06) and 2 expanded (03, 04).
DEMO_TRUTH = {
    "truth-01": (730_289.7, 565_627.7),
    "truth-02": (727_598.7, 566_773.6),
    "truth-03": (730_867.4, 570_253.0),
    "truth-04": (731_861.1, 574_271.6),
    "truth-05": (724_571.4, 567_391.5),
    "truth-06": (723_659.2, 572_727.9),
}


def test_demo_layer_holds_exactly_one_demo_site() -> None:
    """The bundled demonstration layer puts new site truth-05 alone in a 'protected area'."""
    aoi = load_aoi(PROJECT_ROOT / "aoi_definitions" / "demo.yaml")
    (layer,) = aoi.context_layers
    outlines = {name: Point(xy).buffer(150) for name, xy in DEMO_TRUTH.items()}
    tagged = {k for k, v in tag_sites(outlines, EPSG, aoi.context_layers).items() if v}
    assert tagged == {"truth-05"}
    properties = json.loads(layer.path.read_text())["features"][0]["properties"]
    assert "not a real" in properties["NAME"] and "MIT" in properties["licence"]


def test_channel_exclude_tags_takes_only_sites_outside_those_layers(tmp_path: Path) -> None:
    """exclude_tags leaves out a site in any named layer; with tags, both must hold."""
    write_geojson_layer(tmp_path / "parks.geojson", [("Park A", PARK_UTM)])
    gpd.GeoDataFrame(
        {"holder": ["Mina Sur SA"]}, geometry=[CONCESSION_UTM], crs=f"EPSG:{EPSG}"
    ).to_file(tmp_path / "cadastre.gpkg", layer="concessions", driver="GPKG")
    layers = PARK_LAYER + "- name: concessions\n  path: cadastre.gpkg\n  label_field: holder\n"
    alerts = (
        '[{url: "json://127.0.0.1:1/frontier", exclude_tags: [concessions]}, '
        '{url: "json://127.0.0.1:1/park-only", tags: [protected_areas], exclude_tags: [concessions]}, '
        '{url: "json://127.0.0.1:1/wild", exclude_tags: [concessions, protected_areas]}]'
    )
    aoi = load_aoi(write_aoi(tmp_path, layers, alerts))
    frontier, park_only, wild = aoi.config.alerts
    events = tag_events(
        [
            site("both", 600_600),
            site("park", 599_100),
            site("conc", 602_000),
            site("none", 605_000),
        ],
        EPSG,
        aoi.context_layers,
    )
    assert [e.site_id for e in events_for_channel(events, frontier)] == ["park", "none"]
    assert [e.site_id for e in events_for_channel(events, park_only)] == ["park"]
    assert [e.site_id for e in events_for_channel(events, wild)] == ["none"]


@pytest.mark.parametrize(
    ("channel", "expected"),
    [
        ("exclude_tags: [protected_area]", r"alerts.0.exclude_tags: \['protected_area'\] is not"),
        ("exclude_tags: []", r"alerts.0.exclude_tags: List should have at least 1 item"),
        ("exclude_tags: [Parks]", r"alerts.0.exclude_tags.0: .*must be a tag of lowercase"),
        (
            "tags: [protected_areas], exclude_tags: [protected_areas]",
            r"alerts.0: \['protected_areas'\] is in both tags and exclude_tags",
        ),
    ],
)
def test_channel_exclude_tags_must_name_a_layer_not_in_tags(
    tmp_path: Path, channel: str, expected: str
) -> None:
    write_geojson_layer(tmp_path / "parks.geojson", [("Park A", PARK_UTM)])
    alerts = f'[{{url: "json://127.0.0.1:1/x", {channel}}}]'
    with pytest.raises(AOIConfigError, match=expected):
        load_aoi(write_aoi(tmp_path, PARK_LAYER, alerts))
