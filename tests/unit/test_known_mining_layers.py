"""The bundled real AOIs' ``known_mining_2024`` layers (Amazon Mining Watch 2024, MIT).

The layers are the committed files in ``aoi_definitions/``; the script that builds
them (``scripts/build_context_layers.py``) is checked on a tiny drawn input, and
against the committed files where the shared AMW data is on this machine.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from types import ModuleType

import pytest
import shapely
from shapely.geometry import Point, box, mapping

from asmspotter.alerts.dispatch import events_for_channel
from asmspotter.alerts.render import describe_context
from asmspotter.aoi import AOI, load_aoi
from asmspotter.context_layers import ContextTag, tag_events, tag_sites
from asmspotter.grid import build_grid, to_crs
from asmspotter.settings import PROJECT_ROOT
from fakes.events import square_site

AOI_DIR = PROJECT_ROOT / "aoi_definitions"
REAL_AOIS = ("guyana-mazaruni", "suriname-northeast", "peru-madre-de-dios")


def load_script() -> ModuleType:
    script = PROJECT_ROOT / "scripts" / "build_context_layers.py"
    spec = importlib.util.spec_from_file_location("build_context_layers", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def farthest_point_from_mining(aoi: AOI, epsg: int) -> Point:
    """The point of a 500 m lattice inside the AOI that lies farthest from any AMW polygon."""
    polygon = to_crs(aoi.geometry_lonlat, epsg)
    mining = shapely.union_all(
        [to_crs(f.geometry_lonlat, epsg) for f in aoi.context_layers[0].features]
    )
    minx, miny, maxx, maxy = polygon.bounds
    lattice = [
        Point(x, y)
        for x in range(int(minx), int(maxx), 500)
        for y in range(int(miny), int(maxy), 500)
        if polygon.contains(Point(x, y))
    ]
    return max(lattice, key=mining.distance)


@pytest.mark.parametrize("name", REAL_AOIS)
def test_real_aoi_validates_with_its_known_mining_layer(name: str) -> None:
    aoi = load_aoi(AOI_DIR / f"{name}.yaml")
    (layer,) = aoi.context_layers
    assert layer.name == "known_mining_2024"
    assert layer.path == AOI_DIR / f"{name}-known-mining-2024.geojson"
    collection = json.loads(layer.path.read_text())
    assert "MIT" in collection["licence"] and "Earth Genome" in collection["source"]
    # Every polygon kept is a real AMW one that touches the AOI, named for the alerts.
    assert 20 <= len(layer.features) <= len(collection["features"])
    assert all(str(f.label).startswith("AMW 2024 #") for f in layer.features)
    assert layer.path.stat().st_size < 300_000


@pytest.mark.parametrize("name", REAL_AOIS)
def test_site_in_a_known_mine_is_tagged_and_one_far_from_any_is_not(name: str) -> None:
    aoi = load_aoi(AOI_DIR / f"{name}.yaml")
    epsg = build_grid(aoi.geometry_lonlat, 10).epsg
    largest = max(
        aoi.context_layers[0].features, key=lambda f: to_crs(f.geometry_lonlat, epsg).area
    )
    inside = to_crs(largest.geometry_lonlat, epsg).representative_point().buffer(50)
    frontier = farthest_point_from_mining(aoi, epsg)
    tags = tag_sites({"inside": inside, "frontier": frontier.buffer(50)}, epsg, aoi.context_layers)
    assert tags["inside"] == (ContextTag("known_mining_2024", (str(largest.label),)),)
    assert tags["frontier"] == ()
    mining = shapely.union_all(
        [to_crs(f.geometry_lonlat, epsg) for f in aoi.context_layers[0].features]
    )
    assert mining.distance(frontier) > 2000, "the AOI should hold forest far from known mining"


def test_the_commented_frontier_channel_gets_only_sites_outside_known_mining(
    tmp_path: Path,
) -> None:
    """Uncommenting suriname-northeast.yaml's example gives the new-frontier channel."""
    name = "suriname-northeast"
    text = (AOI_DIR / f"{name}.yaml").read_text()
    example = '  # - url: "mailtos://${SMTP_USER}:${SMTP_PASSWORD}@smtp.example.org/frontier@'
    assert example in text
    head, tail = text.split(example)
    tail = tail.replace("  #   ", "    ")
    (tmp_path / f"{name}.yaml").write_text(head + example.replace("# - ", "- ") + tail)
    for suffix in (".geojson", "-known-mining-2024.geojson"):
        shutil.copy(AOI_DIR / f"{name}{suffix}", tmp_path / f"{name}{suffix}")
    aoi = load_aoi(tmp_path / f"{name}.yaml")
    monitoring, frontier = aoi.config.alerts
    assert frontier.exclude_tags == ["known_mining_2024"] and frontier.tags is None
    epsg = build_grid(aoi.geometry_lonlat, 10).epsg
    assert epsg == 32621  # the CRS square_site draws in
    feature = aoi.context_layers[0].features[0]
    mine = to_crs(feature.geometry_lonlat, epsg).representative_point()
    far = farthest_point_from_mining(aoi, epsg)
    events = tag_events(
        [square_site("expanding", mine.x - 50, mine.y - 50), square_site("new", far.x, far.y)],
        epsg,
        aoi.context_layers,
    )
    assert [e.site_id for e in events_for_channel(events, frontier)] == ["new"]
    assert [e.site_id for e in events_for_channel(events, monitoring)] == ["expanding", "new"]
    assert describe_context(events[0].context_tags) == f"known mining area 2024 ({feature.label})"


def test_clip_keeps_whole_polygons_touching_the_buffered_aoi_and_is_reproducible() -> None:
    """A tiny drawn source: one polygon inside, one crossing the edge, one just outside
    (within the buffer) and one far away; the output is the same text every time."""
    script = load_script()
    aoi = box(-55.0, 5.0, -54.9, 5.1)
    polygons = {
        "inside": box(-54.96, 5.04, -54.95, 5.05),
        "crossing": box(-54.905, 5.05, -54.895, 5.06),
        "near": box(-54.895, 5.05, -54.894, 5.06),  # ~0.55 km east of the edge
        "far": box(-54.5, 5.05, -54.49, 5.06),
    }
    source = json.loads(  # as read from a file: lists, not shapely's tuples
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"Mined area (ha)": 12.345, "year": 202400},
                        "geometry": mapping(p),
                    }
                    for p in polygons.values()
                ],
            }
        )
    )
    collection = script.clip_to_aoi(source, aoi, "tiny", buffer_m=1000)
    kept = [f["properties"]["amw_index"] for f in collection["features"]]
    assert kept == [0, 1, 2]
    assert collection["features"][1]["geometry"] == source["features"][1]["geometry"]  # not cut
    assert collection["features"][0]["properties"]["NAME"] == "AMW 2024 #0: 12.3 ha"
    assert collection["features"][0]["properties"]["mined_area_ha"] == 12.35
    assert "MIT" in collection["licence"]
    no_buffer = script.clip_to_aoi(source, aoi, "tiny", buffer_m=0)
    assert [f["properties"]["amw_index"] for f in no_buffer["features"]] == [0, 1]
    text = script.dumps(collection)
    assert json.loads(text) == collection
    assert script.dumps(script.clip_to_aoi(source, aoi, "tiny", buffer_m=1000)) == text


AMW_DIR = PROJECT_ROOT.parent / "shared/data/amazon-mining-watch"


@pytest.mark.skipif(not AMW_DIR.is_dir(), reason="the shared Amazon Mining Watch data is not here")
def test_committed_layers_are_what_the_script_builds(tmp_path: Path) -> None:
    script = load_script()
    assert script.main(["--amw-dir", str(AMW_DIR), "--out-dir", str(tmp_path)]) == 0
    for name in REAL_AOIS:
        built = tmp_path / f"{name}-known-mining-2024.geojson"
        assert built.read_bytes() == (AOI_DIR / built.name).read_bytes(), name
