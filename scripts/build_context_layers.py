"""Build the bundled AOIs' ``known_mining_2024`` context layers from Amazon Mining Watch.

Amazon Mining Watch (Earth Genome, MIT licence) mapped the Amazon's mining areas of
2024; ``shared/data/amazon-mining-watch/`` holds its polygons for Guyana + Suriname
and Madre de Dios. For each real bundled AOI this keeps the polygons that touch the
AOI's geometry grown by ``--buffer-m`` and writes them, whole, to
``aoi_definitions/<aoi>-known-mining-2024.geojson``, with a ``NAME`` label for the
alerts, the mined area and the attribution. A site the pipeline finds inside one
of them is most likely an existing district growing; one outside is a new frontier.

Polygons are not cut at the AOI's edge: their area stays the one AMW measured, and a
site on the edge that touches a polygon crossing it is still tagged. The buffer
keeps the layer complete when the AOI is drawn a little larger later; the AOI
loader drops features that do not touch the AOI. The source is already simplified
(coordinates to 6 decimals, about 0.1 m), so geometries are copied as they are and
the output is byte-for-byte reproducible.

Usage::

    python scripts/build_context_layers.py                 # all three AOIs
    python scripts/build_context_layers.py --aoi peru-madre-de-dios --buffer-m 500
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from asmspotter.grid import to_crs, to_lonlat, utm_epsg_for_lonlat

REPO_ROOT = Path(__file__).resolve().parent.parent
AMW_DIR = REPO_ROOT.parent / "shared/data/amazon-mining-watch"
AOI_DIR = REPO_ROOT / "aoi_definitions"

LAYER_NAME = "known_mining_2024"
"""The tag sites inside the layer get (the AOI YAML's ``context_layers`` name)."""
LABEL_FIELD = "NAME"
AREA_FIELD = "Mined area (ha)"
DEFAULT_BUFFER_M = 1000.0

SOURCES = {
    "guyana-mazaruni": "mining_2024_guyana_suriname.geojson",
    "suriname-northeast": "mining_2024_guyana_suriname.geojson",
    "peru-madre-de-dios": "mining_2024_madre_de_dios.geojson",
}
"""Each real bundled AOI and the AMW extract that covers it."""

SOURCE = "Amazon Mining Watch 2024 mining areas (Earth Genome), amazonminingwatch.org"
LICENCE = "MIT, Copyright (c) 2022 Earth Genome; see LICENSE-amazon-mining-watch beside this file"


def output_path(aoi_name: str, out_dir: Path = AOI_DIR) -> Path:
    """Where the layer of ``aoi_name`` is written: beside the AOI's YAML."""
    return out_dir / f"{aoi_name}-known-mining-2024.geojson"


def aoi_geometry(aoi_name: str, aoi_dir: Path = AOI_DIR) -> BaseGeometry:
    """The AOI polygon (EPSG:4326) from its ``<aoi>.geojson`` (a Feature, as bundled).

    Read directly rather than with ``load_aoi``: the YAML names the layer this script
    writes, so loading it would fail before the first build.
    """
    mapping = json.loads((aoi_dir / f"{aoi_name}.geojson").read_text())
    if mapping.get("type") == "Feature":
        mapping = mapping["geometry"]
    return shape(mapping)


def buffered(aoi_lonlat: BaseGeometry, buffer_m: float) -> BaseGeometry:
    """The AOI grown by ``buffer_m`` metres, in its UTM zone (as the AOI grid is)."""
    if buffer_m <= 0:
        return aoi_lonlat
    centroid = aoi_lonlat.centroid
    epsg = utm_epsg_for_lonlat(centroid.x, centroid.y)
    return to_lonlat(to_crs(aoi_lonlat, epsg).buffer(buffer_m), epsg)


def label(index: int, area_ha: float) -> str:
    """``AMW 2024 #412: 12.3 ha``: the feature's index in the source file and its area.

    No commas or parentheses: alerts list several labels as ``layer (a, b)``.
    """
    return f"AMW 2024 #{index}: {area_ha:.1f} ha"


def clip_to_aoi(
    source: Mapping[str, Any],
    aoi_lonlat: BaseGeometry,
    aoi_name: str,
    buffer_m: float = DEFAULT_BUFFER_M,
) -> dict[str, Any]:
    """The AMW features that touch the AOI grown by ``buffer_m``, as a FeatureCollection.

    Args:
        source: An AMW FeatureCollection (EPSG:4326, attribute ``Mined area (ha)``).
        aoi_lonlat: The AOI polygon, EPSG:4326.
        aoi_name: The AOI's name, written into the collection.
        buffer_m: Metres the AOI is grown by before selecting.

    Returns:
        A FeatureCollection in the source's order; each feature keeps its geometry and
        has ``NAME``, ``mined_area_ha``, ``amw_index`` (its index in ``source``),
        ``year``, ``source`` and ``licence``. Attribution is also at the top level.
    """
    region = buffered(aoi_lonlat, buffer_m)
    features = []
    for index, feature in enumerate(source["features"]):
        geometry = feature.get("geometry")
        if not geometry or not shape(geometry).intersects(region):
            continue
        area_ha = round(float(feature["properties"][AREA_FIELD]), 2)
        features.append(
            {
                "type": "Feature",
                "properties": {
                    LABEL_FIELD: label(index, area_ha),
                    "mined_area_ha": area_ha,
                    "amw_index": index,
                    "year": 2024,
                    "source": "Amazon Mining Watch (Earth Genome)",
                    "licence": "MIT",
                },
                "geometry": geometry,
            }
        )
    return {
        "type": "FeatureCollection",
        "name": f"{aoi_name}-known-mining-2024",
        "description": (
            f"Amazon Mining Watch 2024 mining polygons touching the AOI {aoi_name} grown by "
            f"{buffer_m:g} m, kept whole; built by scripts/build_context_layers.py. A model's "
            "output, not ground truth."
        ),
        "source": SOURCE,
        "licence": LICENCE,
        "features": features,
    }


def dumps(collection: Mapping[str, Any]) -> str:
    """The collection as text: one feature per line, so a rebuild diffs feature by feature."""
    head = {k: v for k, v in collection.items() if k != "features"}
    lines = [json.dumps(f, ensure_ascii=False) for f in collection["features"]]
    text = json.dumps(head, ensure_ascii=False, indent=1)[:-2]
    return text + ',\n "features": [\n' + ",\n".join(lines) + "\n ]\n}\n"


def build(
    aoi_name: str,
    amw_dir: Path = AMW_DIR,
    aoi_dir: Path = AOI_DIR,
    out_dir: Path = AOI_DIR,
    buffer_m: float = DEFAULT_BUFFER_M,
) -> Path:
    """Write the known-mining layer of one bundled AOI; returns the file written."""
    source = json.loads((amw_dir / SOURCES[aoi_name]).read_text())
    collection = clip_to_aoi(source, aoi_geometry(aoi_name, aoi_dir), aoi_name, buffer_m)
    path = output_path(aoi_name, out_dir)
    path.write_text(dumps(collection))
    return path


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--aoi", choices=sorted(SOURCES), action="append", help="default: all")
    parser.add_argument("--amw-dir", type=Path, default=AMW_DIR, help="AMW GeoJSON folder")
    parser.add_argument("--aoi-dir", type=Path, default=AOI_DIR, help="the AOIs' geometry")
    parser.add_argument("--out-dir", type=Path, default=AOI_DIR)
    parser.add_argument("--buffer-m", type=float, default=DEFAULT_BUFFER_M)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Build and print each file with its feature count and size; returns the exit status."""
    args = parse_args(argv)
    for aoi_name in args.aoi or sorted(SOURCES):
        path = build(aoi_name, args.amw_dir, args.aoi_dir, args.out_dir, args.buffer_m)
        count = len(json.loads(path.read_text())["features"])
        print(f"{path}: {count} polygons, {path.stat().st_size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
