"""A small store for the review web app's tests: one AOI, three runs, three sites.

:func:`build_review_store` writes, under a data folder, an AOI YAML, a composite COG
per run (forest with bare pits where the sites are, in UTM 21N) and a SQLite store
with the runs, the sites' observations and one delivered alert per alertable event,
exactly what a monitoring run would leave. Known by construction:

- ``rev-0001`` grows: 4 ha (new) -> 9 ha (expanded) -> 16 ha (expanded);
- ``rev-0002`` stays at 2.25 ha: new, then unchanged twice;
- ``rev-0003`` appears in the third window at 1 ha (new).
"""

from __future__ import annotations

import datetime as dt
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from pyproj import Transformer
from rasterio.transform import from_origin
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from asmspotter.events import SiteEvent
from asmspotter.storage import Store, channel_id_for

AOI_NAME = "rev"
"""The AOI slug."""
EPSG = 32621
"""UTM 21N: the demo AOI's zone (northeast Suriname)."""
ORIGIN_X_M, ORIGIN_Y_M = 600_000.0, 570_000.0
"""Top-left corner of the composites (metres, EPSG:32621)."""
SIZE_PX, PIXEL_M = 300, 10.0
"""Composite width = height in pixels, and pixel size: 3 km x 3 km."""
WINDOW_ENDS = (dt.date(2024, 1, 31), dt.date(2024, 2, 29), dt.date(2024, 3, 31))
"""The three runs' window ends."""
CHANNEL_URL = "mailto://field-team@example.org"
"""The (never contacted) channel the alerts were delivered to."""


@dataclass(frozen=True)
class ReviewStore:
    """What :func:`build_review_store` made.

    Attributes:
        database_url: SQLAlchemy URL of the SQLite store.
        data_dir: The data folder (``outputs/`` lies inside).
        aoi_dir: Folder with ``rev.yaml``.
        run_ids: Run id per window end.
    """

    database_url: str
    data_dir: Path
    aoi_dir: Path
    run_ids: dict[dt.date, int]

    @property
    def outputs_dir(self) -> Path:
        """Run outputs (composites)."""
        return self.data_dir / "outputs"


def _square(col: int, row: int, side_px: int) -> BaseGeometry:
    """A square site whose top-left pixel is (col, row), in metres."""
    x0, y0 = ORIGIN_X_M + col * PIXEL_M, ORIGIN_Y_M - row * PIXEL_M
    return box(x0, y0 - side_px * PIXEL_M, x0 + side_px * PIXEL_M, y0)


# (col, row, side in pixels) per site and window: 20 px = 200 m = 4 ha.
_SITES: dict[str, list[tuple[int, int, int] | None]] = {
    "rev-0001": [(60, 60, 20), (60, 60, 30), (60, 60, 40)],
    "rev-0002": [(200, 100, 15), (200, 100, 15), (200, 100, 15)],
    "rev-0003": [None, None, (120, 220, 10)],
}


def _write_composite(path: Path, pits: list[BaseGeometry], seed: int) -> None:
    """A 7-band composite: green forest, a river, and bright bare soil in the pits."""
    rng = np.random.default_rng(seed)
    shape = (SIZE_PX, SIZE_PX)
    blue = 0.03 + 0.005 * rng.standard_normal(shape)
    green = 0.06 + 0.008 * rng.standard_normal(shape)
    red = 0.04 + 0.006 * rng.standard_normal(shape)
    nir = 0.30 + 0.02 * rng.standard_normal(shape)
    rows, cols = np.mgrid[0:SIZE_PX, 0:SIZE_PX]
    river = np.abs(rows - (150 + 40 * np.sin(cols / 40.0))) < 4
    blue[river], green[river], red[river], nir[river] = 0.05, 0.07, 0.06, 0.03
    for pit in pits:
        minx, miny, maxx, maxy = pit.bounds
        c0, c1 = int((minx - ORIGIN_X_M) / PIXEL_M), int((maxx - ORIGIN_X_M) / PIXEL_M)
        r0, r1 = int((ORIGIN_Y_M - maxy) / PIXEL_M), int((ORIGIN_Y_M - miny) / PIXEL_M)
        blue[r0:r1, c0:c1], green[r0:r1, c0:c1] = 0.12, 0.14
        red[r0:r1, c0:c1], nir[r0:r1, c0:c1] = 0.18, 0.22
    ndwi = (green - nir) / (green + nir)
    ndvi = (nir - red) / (nir + red)
    valid = np.full(shape, 3.0)
    bands = np.stack([blue, green, red, nir, ndwi, ndvi, valid]).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "GTiff",
        "width": SIZE_PX,
        "height": SIZE_PX,
        "count": 7,
        "dtype": "float32",
        "crs": f"EPSG:{EPSG}",
        "transform": from_origin(ORIGIN_X_M, ORIGIN_Y_M, PIXEL_M, PIXEL_M),
        "nodata": float("nan"),
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(bands)
        dst.descriptions = ("blue", "green", "red", "nir", "ndwi", "ndvi", "valid")


def _aoi_yaml(aoi_dir: Path) -> None:
    """The AOI file: the composites' square, in lon/lat."""
    to_lonlat = Transformer.from_crs(EPSG, 4326, always_xy=True)
    west, north = to_lonlat.transform(ORIGIN_X_M, ORIGIN_Y_M)
    east, south = to_lonlat.transform(
        ORIGIN_X_M + SIZE_PX * PIXEL_M, ORIGIN_Y_M - SIZE_PX * PIXEL_M
    )
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    coords = ", ".join(f"[{x:.6f}, {y:.6f}]" for x, y in ring)
    aoi_dir.mkdir(parents=True, exist_ok=True)
    (aoi_dir / f"{AOI_NAME}.yaml").write_text(
        textwrap.dedent(f"""\
        name: {AOI_NAME}
        title: Review test forest
        geometry: {{type: Polygon, coordinates: [[{coords}]]}}
        sources: [{{provider: local, path: scenes}}]
        schedule: {{revisit_days: 30, window_days: 30, start_date: 2024-01-01}}
        detection: {{min_area_ha: 0.5, expansion: {{min_growth_ha: 1, min_growth_pct: 20}}}}
        labels: {{Tapanahony camp: [{(west + east) / 2:.5f}, {(south + north) / 2:.5f}]}}
        """)
    )


def build_review_store(data_dir: Path, aoi_dir: Path) -> ReviewStore:
    """Write the AOI, the composites and the store (see the module docstring).

    Args:
        data_dir: Data folder to fill (``asmspotter.db``, ``outputs/rev/<window end>/``).
        aoi_dir: Folder for ``rev.yaml``.

    Returns:
        Where everything is, with the run ids.
    """
    _aoi_yaml(aoi_dir)
    database_url = f"sqlite:///{(data_dir / 'asmspotter.db').resolve()}"
    to_lonlat = Transformer.from_crs(EPSG, 4326, always_xy=True)
    store = Store(database_url)
    channel_id = channel_id_for(CHANNEL_URL)
    run_ids: dict[dt.date, int] = {}
    first_seen: dict[str, dt.date] = {}
    previous: dict[str, float] = {}
    try:
        store.upsert_aoi(AOI_NAME, "Review test forest", EPSG)
        for i, end in enumerate(WINDOW_ENDS):
            run_dir = data_dir / "outputs" / AOI_NAME / end.isoformat()
            shapes = {
                site: _square(*where)
                for site, spec in _SITES.items()
                if (where := spec[i]) is not None
            }
            composite = run_dir / "composite.tif"
            _write_composite(composite, list(shapes.values()), seed=i)
            run_id = store.start_run(AOI_NAME, end - dt.timedelta(days=29), end)
            run_ids[end] = run_id
            events = []
            for site_id, geometry in shapes.items():
                area = geometry.area / 1e4
                before = previous.get(site_id)
                kind = "new" if before is None else ("expanded" if area > before else "unchanged")
                first_seen.setdefault(site_id, end)
                lon, lat = to_lonlat.transform(geometry.centroid.x, geometry.centroid.y)
                level = "highest" if site_id == "rev-0001" else "high" if i else "nominal"
                events.append(
                    SiteEvent(
                        site_id=site_id,
                        kind=kind,  # type: ignore[arg-type]
                        geometry=geometry,
                        area_ha=area,
                        previous_area_ha=before,
                        growth_ha=None if before is None else area - before,
                        growth_pct=None if before is None else 100 * (area - before) / before,
                        mean_probability=0.85,
                        centroid_lon=lon,
                        centroid_lat=lat,
                        first_seen=first_seen[site_id],
                        clear_observations=3,
                        verifier_score=0.9 if level != "nominal" else 0.4,
                        confidence=level,  # type: ignore[arg-type]
                    )
                )
                previous[site_id] = area
            store.record_events(AOI_NAME, run_id, events)
            for e in events:
                if e.is_alertable:
                    store.record_delivery(
                        run_id,
                        e,
                        f"{e.site_id}:{e.kind}:{end.isoformat()}",
                        channel_id,
                        "mailto://field-team@example.org",
                        "delivered",
                    )
            store.finish_run(
                run_id,
                "completed",
                n_scenes=3,
                composite_path=str(composite),
                clear_wkt=box(
                    ORIGIN_X_M,
                    ORIGIN_Y_M - SIZE_PX * PIXEL_M,
                    ORIGIN_X_M + SIZE_PX * PIXEL_M,
                    ORIGIN_Y_M,
                ),
            )
    finally:
        store.close()
    return ReviewStore(database_url, data_dir, aoi_dir, run_ids)
