"""Context layers: the protected areas, territories and concessions an AOI names.

An AOI file may list ``context_layers`` (a GeoPackage or GeoJSON beside it, e.g.
WDPA protected areas, RAISG indigenous territories, a mining-concession cadastre).
:func:`load_context_layers` reads and checks them when the AOI is loaded (so
``aoi validate`` reports a broken layer, and a broken layer makes only its own AOI
invalid); :func:`tag_sites` tells which layers (and which named features) each
site outline intersects, in the AOI grid's CRS. The alerts (``asmspotter.alerts``)
show these tags in every message and file, and channels subscribe by tag
(``tags: [protected_areas]``) or leave tagged sites out (``exclude_tags:
[known_mining_2024]``: only new frontiers). The AOI schema that holds the list is in
``asmspotter.aoi``; nothing here touches the network or the store.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from shapely.geometry.base import BaseGeometry

from asmspotter.errors import AOIConfigError

if TYPE_CHECKING:
    from asmspotter.events import SiteEvent

logger = logging.getLogger(__name__)

__all__ = [
    "ContextFeature",
    "ContextLayer",
    "ContextLayerConfig",
    "ContextTag",
    "load_context_layers",
    "tag_events",
    "tag_sites",
]

TAG_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"


def _check_tag(value: str) -> str:
    if not re.match(TAG_PATTERN, value):
        raise ValueError(
            "must be a tag of lowercase letters, digits and underscores starting with a "
            f"letter (e.g. protected_areas), got {value!r}"
        )
    return value


LayerTag = Annotated[str, AfterValidator(_check_tag)]
"""A context layer's name, the tag its sites get: ``protected_areas``."""


class ContextLayerConfig(BaseModel):
    """One ``context_layers`` entry of an AOI file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: LayerTag = Field(
        description="The tag sites inside this layer get, and channels subscribe to "
        "(e.g. protected_areas, indigenous_territories, concessions)."
    )
    path: str = Field(
        min_length=1,
        description="GeoPackage (.gpkg) or GeoJSON file, relative to the AOI file's folder.",
    )
    layer: str | None = Field(
        default=None, description="Layer inside a GeoPackage; default: its first layer."
    )
    label_field: str | None = Field(
        default=None,
        description="Attribute naming each feature (e.g. NAME); alerts name the features "
        "a site lies in. Default: only the layer is named.",
    )


@dataclass(frozen=True)
class ContextFeature:
    """One feature of a context layer.

    Attributes:
        label: Its ``label_field`` value, or None (no field configured, or empty).
        geometry_lonlat: Its geometry in EPSG:4326 (x = longitude), made valid.
    """

    label: str | None
    geometry_lonlat: BaseGeometry


@dataclass(frozen=True)
class ContextLayer:
    """A loaded context layer: the features of the file that touch the AOI.

    Attributes:
        name: The tag (``ContextLayerConfig.name``).
        path: The file it was read from.
        features: Features intersecting the AOI polygon, in EPSG:4326.
    """

    name: str
    path: Path
    features: tuple[ContextFeature, ...]


@dataclass(frozen=True, order=True)
class ContextTag:
    """A site lies in (intersects) a context layer.

    Attributes:
        layer: The layer's name, e.g. ``protected_areas``.
        features: Labels of the intersecting features, sorted; empty when the layer
            has no ``label_field``.
    """

    layer: str
    features: tuple[str, ...] = ()


def _layer_path(config: ContextLayerConfig, aoi_path: Path, where: str) -> Path:
    """The layer file, which must lie in (or below) the AOI file's folder."""
    folder = aoi_path.parent.resolve()
    path = (aoi_path.parent / config.path).resolve()
    if not path.is_relative_to(folder):
        raise AOIConfigError(
            f"{aoi_path}: {where}: path {config.path!r} points outside {aoi_path.parent}; "
            "put the GeoPackage or GeoJSON beside the AOI file."
        )
    if not path.is_file():
        raise AOIConfigError(
            f"{aoi_path}: {where}: file {path} does not exist; put the GeoPackage or GeoJSON "
            "beside the AOI file (the path is relative to it), or remove this layer."
        )
    return path


def _read_layer(config: ContextLayerConfig, path: Path, aoi_path: Path, where: str) -> Any:
    """Read the file's features with pyogrio: (meta, geometries as WKB, attribute arrays)."""
    import pyogrio.raw
    from pyogrio.errors import DataLayerError, DataSourceError

    try:
        meta, _, geometries, fields = pyogrio.raw.read(path, layer=config.layer)
    except (DataSourceError, DataLayerError, OSError) as exc:
        raise AOIConfigError(
            f"{aoi_path}: {where}: cannot read {path.name} as a GeoPackage or GeoJSON "
            f"({exc}); export the layer again as .gpkg or .geojson"
            + (", and check its layer name" if config.layer else "")
            + "."
        ) from exc
    return meta, geometries, fields


def _labels(
    config: ContextLayerConfig,
    meta: Mapping[str, Any],
    fields: Sequence[Any],
    n_features: int,
    where: str,
) -> list[str | None]:
    """The label of each feature (None where there is no label field or value)."""
    names = [str(n) for n in meta["fields"]]
    if config.label_field is None:
        return [None] * n_features
    if config.label_field not in names:
        raise ValueError(
            f"{where}: label_field {config.label_field!r} is not an attribute of the layer "
            f"(attributes: {', '.join(names) or 'none'}); set it to one of them or leave it out."
        )
    values = fields[names.index(config.label_field)]
    return [None if v is None or str(v).strip() == "" else str(v).strip() for v in values]


def _load_layer(
    config: ContextLayerConfig, aoi_path: Path, aoi_lonlat: BaseGeometry, index: int
) -> ContextLayer:
    """Read, reproject and clip one layer to the features that touch the AOI."""
    import shapely
    from pyproj import CRS, Transformer
    from pyproj.exceptions import CRSError

    where = f"context_layers.{index} ({config.name})"
    path = _layer_path(config, aoi_path, where)
    meta, wkb, fields = _read_layer(config, path, aoi_path, where)
    # A table without a geometry column reads as None, not as an empty list.
    wkb_items = wkb if wkb is not None else ()
    geometries = [None if g is None else shapely.from_wkb(g) for g in wkb_items]
    if not any(g is not None and not g.is_empty for g in geometries):
        raise AOIConfigError(
            f"{aoi_path}: {where}: {path.name} has no feature with a geometry; give a layer "
            "of polygons (protected areas, territories, concessions)."
        )
    try:
        labels = _labels(config, meta, fields, len(geometries), where)
    except ValueError as exc:
        raise AOIConfigError(f"{aoi_path}: {exc}") from exc
    if not meta.get("crs"):
        raise AOIConfigError(
            f"{aoi_path}: {where}: {path.name} has no coordinate reference system; assign "
            "one in QGIS (Layer > Set CRS) or save it as GeoJSON (EPSG:4326)."
        )
    try:
        to_lonlat = Transformer.from_crs(CRS.from_user_input(meta["crs"]), 4326, always_xy=True)
    except CRSError as exc:
        raise AOIConfigError(
            f"{aoi_path}: {where}: {path.name} has a coordinate reference system PROJ does not "
            f"know ({meta['crs']!r}); save it again in EPSG:4326 or a UTM zone."
        ) from exc
    features = []
    for label, geometry in zip(labels, geometries, strict=True):
        if geometry is None or geometry.is_empty:
            continue
        lonlat = shapely.make_valid(
            shapely.transform(geometry, lambda xy: _stack(to_lonlat.transform(xy[:, 0], xy[:, 1])))
        )
        if lonlat.intersects(aoi_lonlat):
            features.append(ContextFeature(label, lonlat))
    if not features:
        logger.warning(
            "%s: %s: no feature of %s touches the AOI (is its CRS right?); no site gets the tag %r",
            aoi_path,
            where,
            path.name,
            config.name,
        )
    return ContextLayer(config.name, path, tuple(features))


def _stack(xy: tuple[Any, Any]) -> Any:
    import numpy as np

    return np.column_stack(xy)


def load_context_layers(
    configs: Sequence[ContextLayerConfig], aoi_path: Path, aoi_lonlat: BaseGeometry
) -> tuple[ContextLayer, ...]:
    """Read every context layer of an AOI, keeping the features that touch the AOI.

    Args:
        configs: The AOI's validated ``context_layers`` entries.
        aoi_path: The AOI YAML file (paths are relative to its folder).
        aoi_lonlat: The AOI polygon, EPSG:4326.

    Returns:
        One loaded layer per entry, in the file's order.

    Raises:
        AOIConfigError: naming the AOI file, the layer and the fix, when a file is
            missing, outside the AOI folder, unreadable, without a CRS, without any
            geometry, or lacks the ``label_field``.
    """
    return tuple(
        _load_layer(config, aoi_path, aoi_lonlat, index) for index, config in enumerate(configs)
    )


@cache
def _from_lonlat(epsg: int) -> Any:
    from pyproj import Transformer

    return Transformer.from_crs(4326, epsg, always_xy=True)


def _in_crs(layer: ContextLayer, epsg: int) -> list[BaseGeometry]:
    """The layer's features in ``EPSG:<epsg>``."""
    import shapely

    transformer = _from_lonlat(epsg)
    return [
        shapely.transform(
            f.geometry_lonlat, lambda xy: _stack(transformer.transform(xy[:, 0], xy[:, 1]))
        )
        for f in layer.features
    ]


def tag_sites(
    outlines: Mapping[str, BaseGeometry], epsg: int, layers: Sequence[ContextLayer]
) -> dict[str, tuple[ContextTag, ...]]:
    """Tag each site with the context layers its outline intersects.

    The layers are brought into the AOI grid's CRS (where the outlines are), and a
    site touching a feature's boundary counts as inside: a park service would rather
    hear of a pit on its border than not.

    Args:
        outlines: Site id -> outline in ``EPSG:<epsg>`` (the AOI grid's CRS).
        epsg: CRS of the outlines.
        layers: The AOI's loaded context layers.

    Returns:
        Site id -> tags in the layers' order (one per intersected layer, with the
        labels of the intersected features); a site in no layer maps to ``()``.

    Example:
        >>> from shapely.geometry import box
        >>> park = ContextLayer("parks", Path("parks.geojson"),
        ...                     (ContextFeature("Park A", box(-56.2, 5.0, -56.0, 5.1)),))
        >>> tag_sites({"s1": box(600_000, 559_800, 600_200, 560_000)}, 32621, [park])
        {'s1': (ContextTag(layer='parks', features=('Park A',)),)}
    """
    import shapely

    tags: dict[str, list[ContextTag]] = {site_id: [] for site_id in outlines}
    site_ids = list(outlines)
    site_geoms = [outlines[s] for s in site_ids]
    for layer in layers:
        if not layer.features or not site_ids:
            continue
        tree = shapely.STRtree(_in_crs(layer, epsg))
        site_index, feature_index = tree.query(site_geoms, predicate="intersects")
        hits: dict[str, set[str]] = {}
        for s, f in zip(site_index.tolist(), feature_index.tolist(), strict=True):
            labels = hits.setdefault(site_ids[s], set())
            if layer.features[f].label:
                labels.add(str(layer.features[f].label))
        for site_id, labels in hits.items():
            tags[site_id].append(ContextTag(layer.name, tuple(sorted(labels))))
    return {site_id: tuple(found) for site_id, found in tags.items()}


def tag_events(
    events: Sequence[SiteEvent], epsg: int, layers: Sequence[ContextLayer]
) -> list[SiteEvent]:
    """The events with ``context_tags`` set from the AOI's layers (unchanged without layers).

    Args:
        events: Site events, outlines in ``EPSG:<epsg>``.
        epsg: The AOI grid's CRS.
        layers: The AOI's loaded context layers.
    """
    if not layers:
        return list(events)
    tags = tag_sites({f"{i}": e.geometry for i, e in enumerate(events)}, epsg, layers)
    return [replace(e, context_tags=tags[f"{i}"]) for i, e in enumerate(events)]
