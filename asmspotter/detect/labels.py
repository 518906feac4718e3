"""Label polygons for training and evaluation: GeoJSON or a LabelBox NDJSON export.

:func:`load_labels` reads mining polygons (positives) and, optionally, dismissed false
positives (negatives) into :class:`LabelPolygon` records; :func:`rasterize_labels`
burns them onto a scene's grid. Geometries are either in a CRS (GeoJSON: EPSG:4326
unless the file names another; LabelBox geospatial objects: EPSG:4326) or, for
LabelBox image projects, in pixel coordinates of one scene (``x`` = column,
``y`` = row, tied to the scene by the data row's ``external_id``).

:mod:`asmspotter.detect.datasets` samples patches from scenes with these labels.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import rasterio.features
from affine import Affine
from numpy.typing import NDArray
from shapely.geometry import Polygon, shape
from shapely.geometry.base import BaseGeometry

from asmspotter.errors import AsmspotterError

logger = logging.getLogger(__name__)

NEGATIVE_CLASSES: tuple[str, ...] = (
    "negative",
    "not_mining",
    "not-mining",
    "false_positive",
    "false-positive",
    "dismissed",
)
"""Class names (case-insensitive) that mark a polygon as a negative area."""

CLASS_PROPERTIES: tuple[str, ...] = ("class", "label", "name", "category")
"""GeoJSON feature properties searched, in order, for a class name."""


class LabelReadError(AsmspotterError, ValueError):
    """A label file cannot be read or holds no usable polygon."""


@dataclass(frozen=True)
class LabelPolygon:
    """One labelled polygon.

    Attributes:
        geometry: Polygon or MultiPolygon in ``crs``, or in pixel coordinates of
            ``scene`` when ``crs`` is None.
        crs: CRS of the geometry (e.g. ``"EPSG:4326"``), or None for pixel coordinates.
        scene: Scene id (file stem) the polygon belongs to, or None for all scenes.
        negative: True for a negative area (e.g. a dismissed false positive).
        label: The class name found in the file ('' if none).
    """

    geometry: BaseGeometry
    crs: str | None
    scene: str | None
    negative: bool
    label: str = ""


def _is_negative(label: str, negative_classes: Sequence[str]) -> bool:
    return label.strip().lower() in {c.lower() for c in negative_classes}


def load_geojson_labels(
    path: Path,
    *,
    negative: bool = False,
    negative_classes: Sequence[str] = NEGATIVE_CLASSES,
    layer: str | None = None,
    point_radius_m: float | None = None,
) -> list[LabelPolygon]:
    """Read polygons from a GeoJSON (or any vector file geopandas reads).

    A feature whose class property (:data:`CLASS_PROPERTIES`) is in
    ``negative_classes`` is a negative area; so is every feature when ``negative``.
    A ``scene`` property ties a feature to one scene (file stem). ``layer`` picks one
    layer of a multi-layer file (a GeoPackage). Point labels carry no extent: with
    ``point_radius_m`` each becomes a disc of that radius (drawn in the point's UTM
    zone, returned in EPSG:4326); without it they are skipped like other non-polygons.

    Raises:
        LabelReadError: If the file or layer cannot be read or has no polygons.
    """
    path = Path(path)
    try:
        frame = gpd.read_file(path, layer=layer) if layer else gpd.read_file(path)
    except Exception as exc:  # pyogrio raises several types for unreadable files
        where = f"{path} (layer {layer!r})" if layer else str(path)
        raise LabelReadError(
            f"{where}: cannot read label polygons: {exc}; give a GeoJSON FeatureCollection "
            "of polygons (EPSG:4326), a GeoPackage with --layer naming its polygon layer, "
            "or a LabelBox NDJSON export (.ndjson)."
        ) from exc
    if frame.crs is None:
        frame = frame.set_crs("EPSG:4326")
    if point_radius_m is not None:
        frame = _points_to_discs(frame, point_radius_m)
    crs = frame.crs.to_string()
    out = []
    for _, row in frame.iterrows():
        geom = row.geometry
        if geom is None or geom.is_empty or geom.geom_type not in ("Polygon", "MultiPolygon"):
            continue
        label = next(
            (str(row[c]) for c in CLASS_PROPERTIES if c in frame.columns and row[c] is not None),
            "",
        )
        scene = str(row["scene"]) if "scene" in frame.columns and row["scene"] else None
        out.append(
            LabelPolygon(
                geometry=geom,
                crs=crs,
                scene=scene,
                negative=negative or _is_negative(label, negative_classes),
                label=label,
            )
        )
    if not out:
        raise LabelReadError(
            f"{path}: no Polygon or MultiPolygon features found; label mining areas as polygons."
        )
    return out


def _points_to_discs(frame: gpd.GeoDataFrame, radius_m: float) -> gpd.GeoDataFrame:
    """``frame`` in EPSG:4326 with every (Multi)Point replaced by discs of ``radius_m``.

    Each point is buffered in the UTM zone of its own location, so the disc is round
    and ``radius_m`` is metres wherever the label lies.
    """
    from asmspotter.grid import to_crs, to_lonlat, utm_epsg_for_lonlat

    frame = frame.to_crs("EPSG:4326")
    discs = []
    for geom in frame.geometry:
        if geom is None or geom.is_empty or geom.geom_type not in ("Point", "MultiPoint"):
            discs.append(geom)
            continue
        epsg = utm_epsg_for_lonlat(geom.centroid.x, geom.centroid.y)
        discs.append(to_lonlat(to_crs(geom, epsg).buffer(radius_m), epsg))
    return frame.set_geometry(gpd.GeoSeries(discs, index=frame.index, crs="EPSG:4326"))


def _labelbox_objects(record: dict[str, Any]) -> Iterable[dict[str, Any]]:
    """Yield the annotation objects of one LabelBox export row (v2, or v1 'Label')."""
    for project in (record.get("projects") or {}).values():
        for label in project.get("labels", []):
            yield from (label.get("annotations") or {}).get("objects", [])
    legacy = record.get("Label")
    if isinstance(legacy, dict):
        yield from legacy.get("objects", [])


def parse_labelbox_ndjson(
    path: Path, *, negative_classes: Sequence[str] = NEGATIVE_CLASSES
) -> list[LabelPolygon]:
    """Read polygons from a LabelBox NDJSON export (one data row per line).

    Each row's ``data_row.external_id`` (file name) names the scene; its objects with a
    ``polygon`` (list of ``{"x", "y"}``) are pixel coordinates of that scene, unless the
    object's ``annotation_kind`` starts with ``Geospatial`` (then x = lon, y = lat,
    EPSG:4326); objects with a ``geojson`` geometry are EPSG:4326. Other kinds (masks,
    points, boxes) are skipped with a warning. The object's ``name`` (or ``value``) is
    the class: one of ``negative_classes`` makes it a negative area.

    Raises:
        LabelReadError: If a line is not JSON or no polygon is found.
    """
    path = Path(path)
    out: list[LabelPolygon] = []
    skipped: dict[str, int] = {}
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise LabelReadError(
                    f"{path}:{line_no}: not valid JSON ({exc}); a LabelBox NDJSON export has "
                    "one JSON object per line."
                ) from exc
            data_row = record.get("data_row") or {}
            external = data_row.get("external_id") or record.get("External ID")
            scene = Path(str(external)).name.removesuffix(".tif") if external else None
            for obj in _labelbox_objects(record):
                label = str(obj.get("name") or obj.get("value") or obj.get("title") or "")
                kind = str(obj.get("annotation_kind", ""))
                negative = _is_negative(label, negative_classes)
                if "geojson" in obj:
                    geom = shape(obj["geojson"])
                    out.append(LabelPolygon(geom, "EPSG:4326", scene, negative, label))
                elif "polygon" in obj and len(obj["polygon"]) >= 3:
                    ring = [(float(p["x"]), float(p["y"])) for p in obj["polygon"]]
                    geom = Polygon(ring).buffer(0)
                    if kind.lower().startswith("geospatial"):
                        out.append(LabelPolygon(geom, "EPSG:4326", scene, negative, label))
                    elif scene is None:
                        skipped["pixel polygon without external_id"] = (
                            skipped.get("pixel polygon without external_id", 0) + 1
                        )
                    else:
                        out.append(LabelPolygon(geom, None, scene, negative, label))
                else:
                    skipped[kind or "unknown"] = skipped.get(kind or "unknown", 0) + 1
    for kind, count in skipped.items():
        logger.warning("%s: skipped %d LabelBox objects of kind %s", path, count, kind)
    if not out:
        raise LabelReadError(
            f"{path}: no polygon annotations found; export polygon labels from LabelBox "
            "(NDJSON, one data row per line with projects.<id>.labels[].annotations.objects)."
        )
    logger.info("%s: read %d LabelBox polygons", path, len(out))
    return out


def load_labels(
    path: Path,
    negatives_path: Path | None = None,
    *,
    negative_classes: Sequence[str] = NEGATIVE_CLASSES,
    layer: str | None = None,
    point_radius_m: float | None = None,
) -> list[LabelPolygon]:
    """Read label polygons (GeoJSON or LabelBox ``.ndjson``) and optional negative areas.

    Args:
        path: Mining polygons: ``*.ndjson`` is read as a LabelBox export, anything
            else as a vector file (GeoJSON, GeoPackage).
        negatives_path: Optional GeoJSON of negative areas (dismissed false positives).
        negative_classes: Class names that mark a polygon as negative.
        layer: Layer of a multi-layer vector file (GeoPackage) to read.
        point_radius_m: Turn point labels into discs of this radius (vector files).

    Returns:
        All polygons, positives and negatives.

    Raises:
        LabelReadError: If a file cannot be read or holds no polygon.
    """
    path = Path(path)
    if not path.is_file():
        raise LabelReadError(
            f"{path}: label file not found; pass a GeoJSON of mining polygons or a LabelBox "
            "NDJSON export (--labels)."
        )
    if path.suffix.lower() in (".ndjson", ".jsonl"):
        labels = parse_labelbox_ndjson(path, negative_classes=negative_classes)
    else:
        labels = load_geojson_labels(
            path, negative_classes=negative_classes, layer=layer, point_radius_m=point_radius_m
        )
    if negatives_path is not None:
        labels += load_geojson_labels(
            Path(negatives_path), negative=True, point_radius_m=point_radius_m
        )
    return labels


def rasterize_labels(
    labels: Sequence[LabelPolygon],
    *,
    scene_id: str,
    transform: Affine,
    crs: Any,
    shape_px: tuple[int, int],
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Burn labels onto a scene's grid: (mining mask, negative-area mask).

    Polygons tied to another scene are ignored; CRS polygons are reprojected to the
    scene's CRS; pixel polygons are burnt as given. A pixel is labelled when its centre
    is inside a polygon. Negative areas win over mining where both cover a pixel.

    Example: a 10x10 grid at 10 m with one polygon covering 3x3 pixel centres gives a
    mask of 9 pixels.
    """
    height, width = shape_px
    masks = {}
    for negative in (False, True):
        shapes: list[BaseGeometry] = []
        for item in labels:
            if item.negative != negative or (item.scene is not None and item.scene != scene_id):
                continue
            if item.crs is None:
                geom = _pixel_to_crs(item.geometry, transform)
            else:
                geom = gpd.GeoSeries([item.geometry], crs=item.crs).to_crs(crs).iloc[0]
            if not geom.is_empty:
                shapes.append(geom)
        if shapes:
            masks[negative] = rasterio.features.rasterize(
                [(g, 1) for g in shapes],
                out_shape=(height, width),
                transform=transform,
                fill=0,
                dtype="uint8",
            ).astype(bool)
        else:
            masks[negative] = np.zeros((height, width), dtype=bool)
    negative_mask = masks[True]
    return masks[False] & ~negative_mask, negative_mask


def _pixel_to_crs(geometry: BaseGeometry, transform: Affine) -> BaseGeometry:
    from shapely import affinity

    a, b, c, d, e, f = transform.a, transform.b, transform.c, transform.d, transform.e, transform.f
    return affinity.affine_transform(geometry, [a, b, d, e, c, f])
