"""Real training chips: label polygons or points -> STAC scenes -> 6-band chips + masks.

The way a user with internet access reaches real Sentinel-2 training data. The label
file is read once (:func:`load_label_set`) and cut into *label areas*, each one
composite's worth of chips:

* a GeoJSON / GeoPackage layer / LabelBox NDJSON of polygons or points (mining =
  positive; a ``class``/``label`` property in :data:`~asmspotter.detect.labels.NEGATIVE_CLASSES`
  = negative; points become discs of ``point_radius_m``): chips are the cells of a
  ``chip_px`` grid in each label's UTM zone (aligned to multiples of the chip size,
  so neighbouring labels share chips) that a label touches; cells are grouped into
  areas of at most ``area_chips`` x ``area_chips`` chips;
* a GeoPackage with a ``tiles`` layer (the annotated Sentinel-2 tiles of
  ``mining_tiles_test_annotations.gpkg``) and a polygon layer (default
  ``polygons_annotated``): each tile is an area, cut into whole chips; its
  ``s2_tile_id`` product is used alone when the catalogue has it (the labels were
  drawn on it), else the window composite.

:func:`build_area_chips` searches the catalogue over one area, downloads the scenes
through :class:`~asmspotter.providers.stac.StacProvider` (only the area's window, on a
local UTM grid), builds the cloud-free median composite
(:func:`~asmspotter.composite.composite.build_composite_dataset`) and writes each chip
as a float32 GeoTIFF with the model's six bands (:data:`DEFAULT_BANDS`, NaN = never
clear) plus a uint8 mask. The chip folder and ``labels.geojson`` are what
:func:`asmspotter.detect.train.data.labelled_scene_patches` reads (``asmspotter model train
--chips DIR``). A manifest (JSON + CSV) lists every chip, written or skipped with its
reason, with source scenes, dates, bounds, label pixel counts and licences.

Chips already on disk are kept and not fetched again, so an interrupted build resumes.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
import re
import shutil
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import geopandas as gpd
import numpy as np
import rasterio
from affine import Affine
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator
from rasterio.errors import RasterioIOError
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from asmspotter.composite.composite import build_composite_dataset
from asmspotter.detect.labels import LabelPolygon, LabelReadError, load_labels, rasterize_labels
from asmspotter.detect.model_card import DEFAULT_BANDS
from asmspotter.errors import (
    DatasetBuildError,
    ProviderAuthError,
    ProviderNotConfiguredError,
    ProviderUnavailableError,
    SceneReadError,
)
from asmspotter.grid import AOIGrid, build_grid, to_crs, to_lonlat, utm_epsg_for_lonlat
from asmspotter.providers.base import LocalScene, SceneRef, TimeWindow
from asmspotter.sources import StacSourceConfig

if TYPE_CHECKING:
    from asmspotter.providers.stac import StacProvider

logger = logging.getLogger(__name__)

CHIPS_DIRNAME = "chips"
"""Sub-folder of the chip GeoTIFFs (the ``scene_dir`` training reads)."""
MASKS_DIRNAME = "masks"
"""Sub-folder of the chip masks (kept out of ``chips/``, whose every .tif is a chip)."""
LABELS_FILENAME = "labels.geojson"
"""Every label used, EPSG:4326, ``class`` mining or negative: what training rasterises."""
MANIFEST_JSON = "manifest.json"
MANIFEST_CSV = "manifest.csv"
CACHE_DIRNAME = ".cache"
"""Per-area download cache under the output folder, removed once the area is done."""

MASK_BACKGROUND, MASK_MINING, MASK_NEGATIVE, MASK_NODATA = 0, 1, 2, 255
"""Values of a chip mask: unlabelled, mining, negative area, never clear."""

TILES_LAYER = "tiles"
TILE_POLYGONS_LAYER = "polygons_annotated"
"""Layers of an annotated-tiles GeoPackage (``mine-segmentation-tiles``)."""

IMAGERY_LICENCE = (
    "Copernicus Sentinel data: free, full and open access under the Copernicus Sentinel "
    "Data Terms and Conditions (https://sentinels.copernicus.eu/documents/247904/690755/"
    "Sentinel_Data_Legal_Notice)"
)
"""Licence of every pixel a chip holds (Sentinel-2 L2A from any STAC catalogue)."""

ChipStatus = Literal["written", "existing", "skipped"]


class DatasetBuildConfig(BaseModel):
    """Options of a chip build, validated once (``asmspotter dataset build`` flags)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    catalog: Literal["earth-search", "cdse", "planetary-computer"] = Field(
        default="earth-search", description="STAC preset (asset keys, signing)."
    )
    stac_url: str | None = Field(default=None, description="STAC API root; default the preset's.")
    collection: str | None = Field(default=None, description="Collection id; default the preset's.")
    token_env: str | None = Field(
        default=None, description="Environment variable holding a catalogue token."
    )
    start: dt.date | None = Field(default=None, description="First day of the search window.")
    end: dt.date | None = Field(default=None, description="Last day of the search window.")
    chip_px: int = Field(default=256, ge=16, le=4096, description="Chip side, pixels.")
    resolution_m: float = Field(default=10.0, gt=0, description="Pixel size, m.")
    max_cloud_pct: float = Field(
        default=30.0, ge=0, le=100, description="Skip scenes cloudier than this (percent)."
    )
    max_scenes: int = Field(default=8, ge=1, description="Least cloudy scenes used per area.")
    min_clear_pct: float = Field(
        default=50.0, ge=0, le=100, description="Skip chips with fewer clear pixels (percent)."
    )
    point_radius_m: float = Field(
        default=30.0, gt=0, description="Radius of the disc a point label stands for, m."
    )
    area_chips: int = Field(
        default=8, ge=1, description="Largest area side in chips (one composite per area)."
    )
    layer: str | None = Field(default=None, description="Label layer of a GeoPackage.")
    tiles_layer: str = Field(default=TILES_LAYER, description="Tile layer of a GeoPackage.")
    labels_licence: str = Field(default="", description="Licence of the labels.")
    labels_attribution: str = Field(default="", description="Attribution the labels require.")
    keep_cache: bool = Field(default=False, description="Keep downloaded scenes after an area.")
    http_tries: int = Field(default=3, ge=1, description="Attempts per HTTP request.")
    retry_backoff_s: float = Field(default=0.5, ge=0, description="Backoff between attempts.")
    timeout_s: float = Field(default=60.0, gt=0, description="HTTP timeout, seconds.")

    @model_validator(mode="after")
    def _window_is_ordered(self) -> DatasetBuildConfig:
        if (self.start is None) != (self.end is None):
            raise ValueError(
                f"give both --start and --end or neither (got start {self.start}, end {self.end})."
            )
        if self.start is not None and self.end is not None and self.start > self.end:
            raise ValueError(f"--start {self.start} is after --end {self.end}; swap them.")
        return self

    @property
    def window(self) -> TimeWindow | None:
        """The search window, or None when no --start/--end were given."""
        if self.start is None or self.end is None:
            return None
        return TimeWindow(self.start, self.end)

    def source(self, max_cloud_pct: float | None = None) -> StacSourceConfig:
        """The STAC source these options describe (``max_cloud_pct`` overridden if given)."""
        return StacSourceConfig(
            provider="sentinel-2-stac",
            catalog=self.catalog,
            url=self.stac_url,
            collection=self.collection,
            resolution_m=self.resolution_m,
            max_cloud_pct=self.max_cloud_pct if max_cloud_pct is None else max_cloud_pct,
            token_env=self.token_env,
        )


@dataclass(frozen=True)
class ChipCell:
    """One chip of an area: its id, top-left pixel on the area grid and side."""

    chip_id: str
    row_px: int
    col_px: int
    size_px: int


@dataclass(frozen=True)
class LabelArea:
    """Chips that share one composite: an area grid, its chips and a pinned product.

    Attributes:
        area_id: Stable name (``area-<epsg>-<x>-<y>`` or ``tile-<tile_id>``).
        grid: The area's UTM grid; every chip lies on it.
        chips: The chips to cut.
        pinned_product: Sentinel-2 product id the labels were drawn on, if known.
    """

    area_id: str
    grid: AOIGrid
    chips: tuple[ChipCell, ...]
    pinned_product: str | None = None

    @property
    def geometry_lonlat(self) -> BaseGeometry:
        """The area grid's extent in EPSG:4326 (what the catalogue is searched with)."""
        return to_lonlat(box(*self.grid.bounds), self.grid.epsg)


@dataclass(frozen=True)
class LabelSet:
    """Labels read from one file and the areas they need."""

    source: Path
    labels: tuple[LabelPolygon, ...]
    areas: tuple[LabelArea, ...]


@dataclass(frozen=True)
class ChipRecord:
    """One manifest row: a chip written, found on disk, or skipped with its reason."""

    chip_id: str
    area_id: str
    status: ChipStatus
    reason: str = ""
    chip_path: str = ""
    mask_path: str = ""
    scene_ids: tuple[str, ...] = ()
    dates: tuple[str, ...] = ()
    pinned_product: str = ""
    bbox_lonlat: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    epsg: int = 0
    mining_px: int = 0
    negative_px: int = 0
    clear_pct: float = 0.0
    licence: str = ""
    attribution: str = ""


@dataclass(frozen=True)
class DatasetSummary:
    """What a build left on disk."""

    out_dir: Path
    manifest_path: Path
    labels_path: Path
    records: tuple[ChipRecord, ...] = field(default_factory=tuple)

    def count(self, status: ChipStatus) -> int:
        """Chips with ``status``."""
        return sum(r.status == status for r in self.records)


# --------------------------------------------------------------------------------------
# Labels -> areas
# --------------------------------------------------------------------------------------
def _gpkg_layers(path: Path) -> list[str]:
    import pyogrio

    try:
        return [str(name) for name in pyogrio.list_layers(path)[:, 0]]
    except Exception as exc:  # pyogrio raises several types for unreadable files
        raise LabelReadError(f"{path}: cannot list its layers ({exc}).") from exc


def load_label_set(path: Path, config: DatasetBuildConfig) -> LabelSet:
    """Read the label file and plan its areas and chips (no network).

    A GeoPackage with a ``config.tiles_layer`` layer is read as annotated tiles
    (labels from ``config.layer``, default ``polygons_annotated``); any other file as
    free labels (GeoJSON, a GeoPackage ``config.layer``, LabelBox NDJSON).

    Raises:
        LabelReadError: The file, a layer or a field cannot be read, or no label can
            be placed on the map (LabelBox labels in pixel coordinates).
    """
    path = Path(path)
    if not path.is_file():
        raise LabelReadError(
            f"{path}: label file not found; give a GeoJSON, GeoPackage or LabelBox NDJSON "
            "of mining polygons or points."
        )
    if path.suffix.lower() == ".gpkg" and config.tiles_layer in _gpkg_layers(path):
        return _load_tiles(path, config)
    labels = load_labels(path, layer=config.layer, point_radius_m=config.point_radius_m)
    placed = [label for label in labels if label.crs is not None]
    if len(placed) < len(labels):
        logger.warning(
            "%s: %d labels in pixel coordinates of an image are not on the map and are "
            "left out; export geospatial labels (EPSG:4326)",
            path,
            len(labels) - len(placed),
        )
    if not placed:
        raise LabelReadError(
            f"{path}: every label is in pixel coordinates of an image, none on the map; "
            "export geospatial labels (GeoJSON in EPSG:4326) to fetch imagery for them."
        )
    return LabelSet(path, tuple(placed), plan_label_areas(placed, config))


def plan_label_areas(
    labels: Sequence[LabelPolygon], config: DatasetBuildConfig
) -> tuple[LabelArea, ...]:
    """Chip cells touched by any label, grouped into areas of <= ``area_chips``² chips.

    Cells are ``chip_px`` x ``resolution_m`` squares of each label's UTM zone, aligned to
    multiples of their size: ``<epsg>-<x>-<y>`` names the cell whose west edge is
    ``x`` and south edge ``y`` chip sizes from the zone's origin, so the same place
    always gives the same chip id.
    """
    chip_m = config.chip_px * config.resolution_m
    cells: dict[tuple[int, int, int], None] = {}
    for label in labels:
        lonlat = gpd.GeoSeries([label.geometry], crs=label.crs).to_crs("EPSG:4326").iloc[0]
        if lonlat.is_empty:
            continue
        epsg = utm_epsg_for_lonlat(lonlat.centroid.x, lonlat.centroid.y)
        projected = to_crs(lonlat, epsg)
        minx, miny, maxx, maxy = projected.bounds
        for ix in range(int(np.floor(minx / chip_m)), int(np.floor(maxx / chip_m)) + 1):
            for iy in range(int(np.floor(miny / chip_m)), int(np.floor(maxy / chip_m)) + 1):
                cell = box(ix * chip_m, iy * chip_m, (ix + 1) * chip_m, (iy + 1) * chip_m)
                if cell.intersects(projected):
                    cells[(epsg, ix, iy)] = None
    groups: dict[tuple[int, int, int], list[tuple[int, int]]] = {}
    for epsg, ix, iy in cells:
        key = (epsg, ix // config.area_chips, iy // config.area_chips)
        groups.setdefault(key, []).append((ix, iy))
    areas = []
    for (epsg, gx, gy), members in sorted(groups.items()):
        ix0 = min(ix for ix, _ in members)
        ix1 = max(ix for ix, _ in members)
        iy0 = min(iy for _, iy in members)
        iy1 = max(iy for _, iy in members)
        grid = AOIGrid(
            epsg=epsg,
            resolution_m=config.resolution_m,
            left_m=ix0 * chip_m,
            top_m=(iy1 + 1) * chip_m,
            width_px=(ix1 - ix0 + 1) * config.chip_px,
            height_px=(iy1 - iy0 + 1) * config.chip_px,
        )
        chips = tuple(
            ChipCell(
                f"{epsg}-{ix}-{iy}",
                (iy1 - iy) * config.chip_px,
                (ix - ix0) * config.chip_px,
                config.chip_px,
            )
            for ix, iy in sorted(members, key=lambda c: (-c[1], c[0]))
        )
        areas.append(LabelArea(f"area-{epsg}-{gx}-{gy}", grid, chips))
    return tuple(areas)


def _load_tiles(path: Path, config: DatasetBuildConfig) -> LabelSet:
    """Annotated tiles: each tile is an area cut into whole chips, labels from ``layer``."""
    layer = config.layer or TILE_POLYGONS_LAYER
    labels = load_labels(path, layer=layer, point_radius_m=config.point_radius_m)
    try:
        tiles = gpd.read_file(path, layer=config.tiles_layer)
    except Exception as exc:  # pyogrio raises several types for unreadable files
        raise LabelReadError(f"{path}: cannot read layer {config.tiles_layer!r} ({exc}).") from exc
    if tiles.crs is None:
        tiles = tiles.set_crs("EPSG:4326")
    tiles = tiles.to_crs("EPSG:4326")
    areas = []
    for index, row in tiles.iterrows():
        geom = row.geometry
        if geom is None or geom.is_empty:
            continue
        tile_id = row["tile_id"] if "tile_id" in tiles.columns else index
        pinned = row["s2_tile_id"] if "s2_tile_id" in tiles.columns else None
        grid = build_grid(geom, config.resolution_m)
        n_rows, n_cols = grid.height_px // config.chip_px, grid.width_px // config.chip_px
        if n_rows == 0 or n_cols == 0:
            logger.warning(
                "%s: tile %s (%dx%d px) is smaller than one %d px chip; left out",
                path,
                tile_id,
                grid.width_px,
                grid.height_px,
                config.chip_px,
            )
            continue
        chips = tuple(
            ChipCell(
                f"tile-{tile_id}-r{r:02d}-c{c:02d}",
                r * config.chip_px,
                c * config.chip_px,
                config.chip_px,
            )
            for r in range(n_rows)
            for c in range(n_cols)
        )
        areas.append(LabelArea(f"tile-{tile_id}", grid, chips, str(pinned) if pinned else None))
    if not areas:
        raise LabelReadError(
            f"{path}: layer {config.tiles_layer!r} holds no tile polygon large enough for a "
            f"{config.chip_px} px chip; use a smaller --chip-px."
        )
    return LabelSet(path, tuple(labels), tuple(areas))


# --------------------------------------------------------------------------------------
# Pinned products
# --------------------------------------------------------------------------------------
_ESA_NAME = re.compile(r"^(S2[A-D])_MSIL2A_(\d{8})T\d{6}_.*?_T(\d{2}[A-Z]{3})(?:_|$)")
_EARTH_SEARCH_ID = re.compile(r"^(S2[A-D])_(\d{2}[A-Z]{3})_(\d{8})_\d+_L2A$")


def product_key(product_id: str) -> tuple[str, str, str] | None:
    """(satellite, sensing date YYYYMMDD, MGRS tile) of a Sentinel-2 L2A id, or None.

    Reads the ESA product name (``S2B_MSIL2A_20190527T144739_..._T19LDD_...``, also the
    Planetary Computer's and CDSE's item id) and Earth Search's item id
    (``S2B_19LDD_20190527_0_L2A``): one acquisition has the same key in every
    catalogue, whatever the processing date in the name.
    """
    name = product_id.strip().removesuffix(".SAFE")
    if match := _ESA_NAME.match(name):
        return match.group(1), match.group(2), match.group(3)
    if match := _EARTH_SEARCH_ID.match(name):
        return match.group(1), match.group(3), match.group(2)
    return None


def find_pinned(refs: Sequence[SceneRef], product_id: str) -> SceneRef | None:
    """The search result that is ``product_id``: same id, or same satellite, day and tile."""
    for ref in refs:
        if ref.scene_id == product_id.removesuffix(".SAFE"):
            return ref
    key = product_key(product_id)
    if key is None:
        return None
    return next((ref for ref in refs if product_key(ref.scene_id) == key), None)


def product_date(product_id: str) -> dt.date | None:
    """Sensing date of a Sentinel-2 product id, if it has a readable one."""
    key = product_key(product_id)
    return None if key is None else dt.datetime.strptime(key[1], "%Y%m%d").date()


# --------------------------------------------------------------------------------------
# One area -> chips
# --------------------------------------------------------------------------------------
def chip_paths(out_dir: Path, chip_id: str) -> tuple[Path, Path]:
    """(chip GeoTIFF, mask GeoTIFF) of a chip in a dataset folder."""
    return out_dir / CHIPS_DIRNAME / f"{chip_id}.tif", out_dir / MASKS_DIRNAME / f"{chip_id}.tif"


def _is_complete_chip(chip: Path, mask: Path) -> bool:
    """A chip is complete when both files open with the expected band counts."""
    try:
        with rasterio.open(chip) as src, rasterio.open(mask) as msk:
            return bool(src.count == len(DEFAULT_BANDS) and msk.count == 1)
    except RasterioIOError:
        return False


def _attribution(dates: Sequence[str], config: DatasetBuildConfig) -> str:
    years = sorted({d[:4] for d in dates})
    imagery = f"Contains modified Copernicus Sentinel data {', '.join(years)}"
    return f"{imagery}; labels: {config.labels_attribution or 'unattributed'}"


def _licence(config: DatasetBuildConfig) -> str:
    return f"imagery: {IMAGERY_LICENCE}; labels: {config.labels_licence or 'unknown'}"


def _existing_record(
    out_dir: Path, area: LabelArea, cell: ChipCell, config: DatasetBuildConfig
) -> ChipRecord:
    """The manifest row of a chip already on disk, from its tags and mask."""
    chip, mask_path = chip_paths(out_dir, cell.chip_id)
    with rasterio.open(chip) as src:
        tags = src.tags()
        bounds = src.bounds
        epsg = int(src.crs.to_epsg() or 0)
    with rasterio.open(mask_path) as src:
        mask = src.read(1)
    dates = tuple(d for d in tags.get("ACQUISITION_DATES", "").split(",") if d)
    return ChipRecord(
        chip_id=cell.chip_id,
        area_id=area.area_id,
        status="existing",
        chip_path=str(chip.relative_to(out_dir)),
        mask_path=str(mask_path.relative_to(out_dir)),
        scene_ids=tuple(s for s in tags.get("SCENE_IDS", "").split(",") if s),
        dates=dates,
        pinned_product=tags.get("PINNED_PRODUCT", ""),
        bbox_lonlat=_bbox_lonlat((bounds.left, bounds.bottom, bounds.right, bounds.top), epsg),
        epsg=epsg,
        mining_px=int(np.count_nonzero(mask == MASK_MINING)),
        negative_px=int(np.count_nonzero(mask == MASK_NEGATIVE)),
        clear_pct=round(100.0 * float(np.mean(mask != MASK_NODATA)), 2),
        licence=_licence(config),
        attribution=_attribution(dates, config),
    )


def _bbox_lonlat(
    bounds_m: tuple[float, float, float, float], epsg: int
) -> tuple[float, float, float, float]:
    minx, miny, maxx, maxy = to_lonlat(box(*bounds_m), epsg).bounds
    return (round(minx, 6), round(miny, 6), round(maxx, 6), round(maxy, 6))


def _skipped(area: LabelArea, reason: str, pinned: str = "") -> list[ChipRecord]:
    logger.warning("%s: %d chips skipped: %s", area.area_id, len(area.chips), reason)
    return [
        ChipRecord(
            chip_id=cell.chip_id,
            area_id=area.area_id,
            status="skipped",
            reason=reason,
            pinned_product=pinned,
            bbox_lonlat=_bbox_lonlat(_cell_bounds(area.grid, cell), area.grid.epsg),
            epsg=area.grid.epsg,
        )
        for cell in area.chips
    ]


def _cell_bounds(grid: AOIGrid, cell: ChipCell) -> tuple[float, float, float, float]:
    """CRS bounds (left, bottom, right, top) of a chip of ``grid``."""
    left = grid.left_m + cell.col_px * grid.resolution_m
    top = grid.top_m - cell.row_px * grid.resolution_m
    side_m = cell.size_px * grid.resolution_m
    return (left, top - side_m, left + side_m, top)


def _provider(
    area: LabelArea, config: DatasetBuildConfig, max_cloud_pct: float | None = None
) -> StacProvider:
    """The STAC provider on the area's grid (imported here: pystac-client loads lazily)."""
    from asmspotter.providers.stac import StacProvider

    return StacProvider(
        config.source(max_cloud_pct),
        area.grid,
        f"dataset {area.area_id}",
        http_tries=config.http_tries,
        retry_backoff_s=config.retry_backoff_s,
        timeout_s=config.timeout_s,
    )


def search_area_scenes(
    area: LabelArea, config: DatasetBuildConfig
) -> tuple[list[SceneRef], str, str]:
    """The scenes to composite for an area, the pinned product used and why none.

    Returns ``(scenes, pinned product id or '', reason or '')``: the reason is set
    when there are no scenes.
    The pinned product is searched on its sensing day with no cloud limit (the labels
    were drawn on it, clouds and all) and used alone; otherwise the ``max_scenes``
    least cloudy scenes of the window.

    Raises:
        ProviderUnavailableError, ProviderAuthError, ProviderNotConfiguredError: from
            the catalogue.
    """
    geometry = area.geometry_lonlat
    note = ""
    if area.pinned_product:
        day = product_date(area.pinned_product)
        if day is not None:
            refs = _provider(area, config, max_cloud_pct=100.0).search(
                geometry, TimeWindow(day, day)
            )
            found = find_pinned(refs, area.pinned_product)
            if found is not None:
                logger.info(
                    "%s: pinned product %s is %s", area.area_id, area.pinned_product, found.scene_id
                )
                return [found], area.pinned_product, ""
        note = f"pinned product {area.pinned_product} is not in the catalogue"
        if config.window is None:
            return [], "", f"{note}, and no --start/--end window to fall back on"
        logger.warning(
            "%s: %s; using the window %s..%s", area.area_id, note, config.start, config.end
        )
    window = config.window
    if window is None:
        return [], "", "no --start/--end window given for labels without a pinned product"
    refs = _provider(area, config).search(geometry, window)
    if not refs:
        reason = (
            f"no scene with <= {config.max_cloud_pct:g} % cloud in {window.start}..{window.end}"
        )
        return [], "", f"{note}; {reason}" if note else reason
    ranked = sorted(
        refs, key=lambda r: (r.cloud_pct if r.cloud_pct is not None else 100.0, r.acquired)
    )
    chosen = sorted(ranked[: config.max_scenes], key=lambda r: (r.acquired, r.scene_id))
    return chosen, "", ""


def download_area_scenes(
    area: LabelArea, refs: Sequence[SceneRef], config: DatasetBuildConfig, cache_dir: Path
) -> tuple[list[LocalScene], list[str]]:
    """Download the area's window of each scene; unreadable scenes are listed, not fatal."""
    provider = _provider(area, config, max_cloud_pct=100.0)
    scenes: list[LocalScene] = []
    problems: list[str] = []
    for ref in refs:
        try:
            scenes.append(provider.download(ref, cache_dir))
        except SceneReadError as exc:
            logger.warning("%s: %s", area.area_id, exc)
            problems.append(f"{ref.scene_id}: {exc}")
    return scenes, problems


def _label_mask(labels: Sequence[LabelPolygon], grid: AOIGrid) -> NDArray[np.uint8]:
    """Mining / negative / background codes of the labels on the area grid."""
    mining, negative = rasterize_labels(
        labels,
        scene_id="",
        transform=grid.transform,
        crs=grid.crs.to_string(),
        shape_px=grid.shape,
    )
    codes = np.full(grid.shape, MASK_BACKGROUND, np.uint8)
    codes[mining] = MASK_MINING
    codes[negative] = MASK_NEGATIVE
    return codes


def _write_chip(
    chip_path: Path,
    mask_path: Path,
    bands: NDArray[np.float32],
    mask: NDArray[np.uint8],
    transform: Affine,
    epsg: int,
    tags: dict[str, str],
) -> None:
    """Write mask then chip, each under a temporary name renamed when complete.

    The chip is renamed last, so a chip file on disk means a complete pair; the
    temporary names do not end in ``.tif``, so training never reads a partial chip.
    """
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": bands.shape[2],
        "height": bands.shape[1],
        "crs": f"EPSG:{epsg}",
        "transform": transform,
        "compress": "deflate",
    }
    for path in (chip_path, mask_path):
        path.parent.mkdir(parents=True, exist_ok=True)
    partial_mask = mask_path.with_name(mask_path.name + ".partial")
    with rasterio.open(
        partial_mask, "w", count=1, dtype="uint8", nodata=MASK_NODATA, **profile
    ) as dst:
        dst.write(mask, 1)
        dst.descriptions = ("label",)
        dst.update_tags(
            VALUES=f"{MASK_BACKGROUND}=background,{MASK_MINING}=mining,"
            f"{MASK_NEGATIVE}=negative,{MASK_NODATA}=no data"
        )
    partial_mask.replace(mask_path)
    partial_chip = chip_path.with_name(chip_path.name + ".partial")
    with rasterio.open(
        partial_chip,
        "w",
        count=len(DEFAULT_BANDS),
        dtype="float32",
        nodata=float("nan"),
        predictor=3,
        **profile,
    ) as dst:
        dst.write(bands)
        dst.descriptions = tuple(DEFAULT_BANDS)
        dst.update_tags(**tags)
    partial_chip.replace(chip_path)


def build_area_chips(
    area: LabelArea, label_set: LabelSet, config: DatasetBuildConfig, out_dir: Path
) -> list[ChipRecord]:
    """Fetch, composite and cut one area's chips; return their manifest rows.

    Chips already complete on disk are kept (no request is made if all are). An area
    without usable scenes gives ``skipped`` rows with the reason; so does a chip with
    fewer than ``min_clear_pct`` % clear pixels.

    Raises:
        ProviderUnavailableError, ProviderAuthError, ProviderNotConfiguredError: the
            catalogue is unreachable, refuses us or is misconfigured.
    """
    out_dir = Path(out_dir)
    todo = [c for c in area.chips if not _is_complete_chip(*chip_paths(out_dir, c.chip_id))]
    done = [_existing_record(out_dir, area, c, config) for c in area.chips if c not in todo]
    if not todo:
        logger.info("%s: all %d chips already built", area.area_id, len(area.chips))
        return done
    pending = LabelArea(area.area_id, area.grid, tuple(todo), area.pinned_product)
    refs, pinned, reason = search_area_scenes(pending, config)
    if not refs:
        return done + _skipped(pending, reason, area.pinned_product or "")
    cache_dir = out_dir / CACHE_DIRNAME / area.area_id
    try:
        scenes, problems = download_area_scenes(pending, refs, config, cache_dir)
        if not scenes:
            return done + _skipped(
                pending, "no scene could be read: " + "; ".join(problems), pinned
            )
        with warnings.catch_warnings():
            # Pixels never clear in the window are expected: their median is NaN.
            warnings.filterwarnings("ignore", "All-NaN slice encountered", RuntimeWarning)
            composite = build_composite_dataset(scenes, area.grid).compute(scheduler="threads")
        bands = np.stack([composite[name].values for name in DEFAULT_BANDS]).astype(np.float32)
        valid = composite["valid"].values > 0
    finally:
        if not config.keep_cache:
            shutil.rmtree(cache_dir, ignore_errors=True)
    codes = _label_mask(label_set.labels, area.grid)
    codes[~valid] = MASK_NODATA
    scene_ids = tuple(s.ref.scene_id for s in scenes)
    dates = tuple(s.ref.acquired.astimezone(dt.UTC).date().isoformat() for s in scenes)
    records = list(done)
    for cell in todo:
        rows = slice(cell.row_px, cell.row_px + cell.size_px)
        cols = slice(cell.col_px, cell.col_px + cell.size_px)
        mask = codes[rows, cols]
        clear_pct = round(100.0 * float(np.mean(mask != MASK_NODATA)), 2)
        chip_path, mask_path = chip_paths(out_dir, cell.chip_id)
        record = ChipRecord(
            chip_id=cell.chip_id,
            area_id=area.area_id,
            status="written",
            chip_path=str(chip_path.relative_to(out_dir)),
            mask_path=str(mask_path.relative_to(out_dir)),
            scene_ids=scene_ids,
            dates=dates,
            pinned_product=pinned,
            bbox_lonlat=_bbox_lonlat(_cell_bounds(area.grid, cell), area.grid.epsg),
            epsg=area.grid.epsg,
            mining_px=int(np.count_nonzero(mask == MASK_MINING)),
            negative_px=int(np.count_nonzero(mask == MASK_NEGATIVE)),
            clear_pct=clear_pct,
            licence=_licence(config),
            attribution=_attribution(dates, config),
        )
        if clear_pct < config.min_clear_pct:
            reason = (
                f"only {clear_pct:g} % of pixels clear (< --min-clear-pct {config.min_clear_pct:g})"
            )
            records.append(
                replace(record, status="skipped", reason=reason, chip_path="", mask_path="")
            )
            continue
        _write_chip(
            chip_path,
            mask_path,
            bands[:, rows, cols],
            mask,
            area.grid.transform * Affine.translation(cell.col_px, cell.row_px),
            area.grid.epsg,
            {
                "SCENE_IDS": ",".join(scene_ids),
                "ACQUISITION_DATES": ",".join(dates),
                "PINNED_PRODUCT": pinned,
                "AREA_ID": area.area_id,
                "ACQUISITION_DATETIME": f"{dates[len(dates) // 2]}T00:00:00Z",
            },
        )
        records.append(record)
    logger.info(
        "%s: %d chips written from %d scenes (%s)",
        area.area_id,
        sum(r.status == "written" for r in records),
        len(scenes),
        ", ".join(scene_ids),
    )
    return records


# --------------------------------------------------------------------------------------
# The whole build
# --------------------------------------------------------------------------------------
def write_labels_geojson(label_set: LabelSet, out_dir: Path) -> Path:
    """Write every label (EPSG:4326, ``class`` mining or negative) for training."""
    out_dir.mkdir(parents=True, exist_ok=True)
    geometries = [
        gpd.GeoSeries([label.geometry], crs=label.crs).to_crs("EPSG:4326").iloc[0]
        for label in label_set.labels
    ]
    frame = gpd.GeoDataFrame(
        {
            "class": ["negative" if label.negative else "mining" for label in label_set.labels],
            "source_label": [label.label for label in label_set.labels],
        },
        geometry=geometries,
        crs="EPSG:4326",
    )
    path = out_dir / LABELS_FILENAME
    partial = path.with_name(path.name + ".partial")
    frame.to_file(partial, driver="GeoJSON")
    partial.replace(path)
    return path


MANIFEST_COLUMNS = tuple(ChipRecord.__dataclass_fields__)


def write_manifest(
    out_dir: Path,
    label_set: LabelSet,
    records: Sequence[ChipRecord],
    config: DatasetBuildConfig,
    failures: Sequence[str] = (),
) -> Path:
    """Write ``manifest.json`` (settings, licences, areas, chips) and ``manifest.csv``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    statuses: dict[str, int] = {}
    for record in records:
        statuses[record.status] = statuses.get(record.status, 0) + 1
    payload = {
        "labels": str(label_set.source),
        "built": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "bands": list(DEFAULT_BANDS),
        "mask_values": {
            "background": MASK_BACKGROUND,
            "mining": MASK_MINING,
            "negative": MASK_NEGATIVE,
            "no_data": MASK_NODATA,
        },
        "imagery_licence": IMAGERY_LICENCE,
        "labels_licence": config.labels_licence,
        "labels_attribution": config.labels_attribution,
        "config": config.model_dump(mode="json"),
        "counts": statuses,
        "failed_areas": list(failures),
        "areas": [
            {
                "area_id": a.area_id,
                "epsg": a.grid.epsg,
                "n_chips": len(a.chips),
                "pinned_product": a.pinned_product,
            }
            for a in label_set.areas
        ],
        "chips": [asdict(r) for r in records],
    }
    json_path = out_dir / MANIFEST_JSON
    partial = json_path.with_name(json_path.name + ".partial")
    partial.write_text(json.dumps(payload, indent=1), encoding="utf-8")
    partial.replace(json_path)
    csv_path = out_dir / MANIFEST_CSV
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        for record in records:
            row = asdict(record)
            row["scene_ids"] = ";".join(record.scene_ids)
            row["dates"] = ";".join(record.dates)
            row["bbox_lonlat"] = ",".join(f"{v:g}" for v in record.bbox_lonlat)
            writer.writerow(row)
    return json_path


def catalogue_error(
    exc: Exception, area: LabelArea, config: DatasetBuildConfig, n_done: int
) -> DatasetBuildError:
    """A fatal catalogue error, with what to fix and that the chips so far are kept."""
    url = config.stac_url or f"the {config.catalog} catalogue"
    return DatasetBuildError(
        f"dataset build stopped at {area.area_id}: STAC API {url} failed: {exc} "
        f"Check --stac-url / --catalog / --token-env and your connection; the {n_done} "
        "chips built so far are kept and a new run resumes after them."
    )


def build_dataset(
    labels_path: Path,
    out_dir: Path,
    config: DatasetBuildConfig,
    progress: Callable[[LabelArea, list[ChipRecord]], None] | None = None,
) -> DatasetSummary:
    """Build real training chips for every label area, one after another.

    Writes ``labels.geojson`` first, then each area's chips, and the manifest after
    every area, so an interrupted build leaves a true manifest and resumes.

    Raises:
        LabelReadError: The label file cannot be used.
        DatasetBuildError: The catalogue is unreachable, refuses us or is misconfigured
            (the first such error stops the build: no later area would get through).
    """
    out_dir = Path(out_dir)
    label_set = load_label_set(labels_path, config)
    labels_out = write_labels_geojson(label_set, out_dir)
    logger.info(
        "%s: %d labels in %d areas, %d chips of %d px",
        labels_path,
        len(label_set.labels),
        len(label_set.areas),
        sum(len(a.chips) for a in label_set.areas),
        config.chip_px,
    )
    records: list[ChipRecord] = []
    for area in label_set.areas:
        try:
            area_records = build_area_chips(area, label_set, config, out_dir)
        except (ProviderUnavailableError, ProviderAuthError, ProviderNotConfiguredError) as exc:
            n_done = sum(r.status != "skipped" for r in records)
            write_manifest(out_dir, label_set, records, config, [f"{area.area_id}: {exc}"])
            raise catalogue_error(exc, area, config, n_done) from exc
        records.extend(area_records)
        write_manifest(out_dir, label_set, records, config)
        if progress is not None:
            progress(area, area_records)
    manifest = write_manifest(out_dir, label_set, records, config)
    return DatasetSummary(out_dir, manifest, labels_out, tuple(records))


def chip_training_inputs(dataset_dir: Path) -> tuple[Path, Path]:
    """(chip folder, labels file) of a built dataset: a ``TrainConfig``'s scene folder and labels.

    Raises:
        DatasetBuildError: ``dataset_dir`` is not a built dataset or has no chip.
    """
    dataset_dir = Path(dataset_dir)
    chips = dataset_dir / CHIPS_DIRNAME
    labels = dataset_dir / LABELS_FILENAME
    if not labels.is_file() or not any(chips.glob("*.tif")):
        raise DatasetBuildError(
            f"{dataset_dir}: not a built chip dataset (need {CHIPS_DIRNAME}/*.tif and "
            f"{LABELS_FILENAME}); build one with `asmspotter dataset build LABELS --out "
            f"{dataset_dir}`, or check its {MANIFEST_CSV} for why chips were skipped."
        )
    return chips, labels
