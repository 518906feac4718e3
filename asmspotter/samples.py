"""The bundled demo: a synthetic Sentinel-2-like scene series for ``aoi_definitions/demo.yaml``.

The scenes are generated on first use (a few seconds) rather than shipped, from a
fixed seed, so every machine sees the same landscape. Two demo runs cover the
two halves of the series: the first window sees the static and growing sites,
the second sees the growing sites larger and the new sites appear.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry

from asmspotter.aoi import AOI
from asmspotter.errors import AOIConfigError
from asmspotter.events import SiteEvent
from asmspotter.grid import build_grid
from asmspotter.settings import Settings
from asmspotter.sources import LocalSourceConfig, resolve_local_path

logger = logging.getLogger(__name__)

DEMO_SEED = 7
DEMO_DATES: tuple[dt.date, ...] = (
    dt.date(2024, 1, 6),
    dt.date(2024, 1, 16),
    dt.date(2024, 1, 26),
    dt.date(2024, 2, 10),
    dt.date(2024, 2, 20),
    dt.date(2024, 2, 28),
)
DEMO_NEW_FROM = dt.date(2024, 2, 10)
"""New demo sites appear from this date: absent in the first window, present in the second."""

DEMO_WINDOW_ENDS: tuple[dt.date, dt.date] = (dt.date(2024, 1, 31), dt.date(2024, 2, 29))
"""End dates of the demo's two runs (the AOI's window is 30 days)."""


def has_scenes(folder: Path) -> bool:
    """True if ``folder`` holds at least one scene GeoTIFF."""
    return folder.is_dir() and any(
        not p.name.endswith(".cloudmask.tif") for p in folder.glob("*.tif")
    )


def ensure_demo_scenes(folder: Path, geometry_lonlat: BaseGeometry, resolution_m: float) -> Path:
    """Generate the demo scene series into ``folder`` unless it already holds scenes.

    The series is written to a temporary sibling folder and renamed when complete,
    so an interrupted generation never leaves a half-filled folder behind.

    Args:
        folder: Where the scenes go (the demo AOI's ``sources[].path``).
        geometry_lonlat: The AOI polygon; scenes are generated on its grid.
        resolution_m: Pixel size, metres.

    Returns:
        ``folder``.
    """
    if has_scenes(folder):
        return folder
    from asmspotter.synthetic import generate_scene_series

    grid = build_grid(geometry_lonlat, resolution_m)
    logger.info(
        "Generating the demo scene series (%d dates, %dx%d px) into %s",
        len(DEMO_DATES),
        grid.width_px,
        grid.height_px,
        folder,
    )
    staging = folder.with_name(f"partial_{folder.name}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    generate_scene_series(
        staging,
        grid,
        DEMO_DATES,
        seed=DEMO_SEED,
        n_static=2,
        n_growing=2,
        n_new=2,
        new_from=DEMO_NEW_FROM,
        scene_prefix="S2SYN",
    )
    if folder.exists():
        shutil.rmtree(folder)
    staging.rename(folder)
    return folder


def ensure_source_demo_scenes(aoi: AOI, settings: Settings) -> list[Path]:
    """Generate the demo series for every local source of ``aoi`` that asks for it.

    A source asks with ``generate_demo_scenes: true`` (the bundled demo AOI does).
    Whoever runs such an AOI calls this before it resolves the provider, which
    only reads what is in the folder.

    Args:
        aoi: The validated AOI.
        settings: Process settings (``{data_dir}`` in the sources' paths).

    Returns:
        The folders that hold (or now hold) a demo series.
    """
    folders = []
    for source in aoi.config.sources:
        if isinstance(source, LocalSourceConfig) and source.generate_demo_scenes:
            folder = resolve_local_path(source.path, aoi.path, settings.data_dir)
            folders.append(
                ensure_demo_scenes(folder, aoi.geometry_lonlat, resolution_m=source.resolution_m)
            )
    return folders


@dataclass(frozen=True)
class TruthMatch:
    """How one detected event compares with the generator's truth.

    Attributes:
        site_id: The tracked site id.
        event: The event kind the pipeline reported.
        truth_site: The truth site it lies on, or None (a false positive).
        truth_design: That site's design (static, growing, new), or None.
        agrees: True when the event is what the design implies for the run
            (new -> new, growing -> expanded, static -> unchanged).
    """

    site_id: str
    event: str
    truth_site: str | None
    truth_design: str | None
    agrees: bool


def demo_truth_path(aoi: AOI, settings: Settings) -> Path:
    """The generator's ``truth/sites.json`` for an AOI whose first source is a local folder.

    Raises:
        AOIConfigError: the AOI's first source is not a local folder.
    """
    source = aoi.config.sources[0]
    if not isinstance(source, LocalSourceConfig):
        raise AOIConfigError(
            f"{aoi.path}: sources.0 must be a local folder of generated scenes to compare with "
            f"their truth, got provider {source.provider!r}."
        )
    return resolve_local_path(source.path, aoi.path, settings.data_dir) / "truth" / "sites.json"


EXPECTED_EVENT = {"new": "new", "growing": "expanded", "static": "unchanged"}


def compare_with_truth(
    events: Sequence[SiteEvent], truth_json_path: Path, *, match_distance_m: float = 300.0
) -> list[TruthMatch]:
    """Match each event to the nearest truth site (centroids within ``match_distance_m``)."""
    truth = json.loads(truth_json_path.read_text())
    sites = truth["sites"] if isinstance(truth, dict) else truth
    matches = []
    for event in events:
        best, best_distance = None, match_distance_m
        for site in sites:
            point = Point(site["centroid_x_m"], site["centroid_y_m"])
            distance = event.geometry.distance(point)
            if distance <= best_distance:
                best, best_distance = site, distance
        design = best["design"] if best else None
        matches.append(
            TruthMatch(
                site_id=event.site_id,
                event=event.kind,
                truth_site=best["site_id"] if best else None,
                truth_design=design,
                agrees=design is not None and EXPECTED_EVENT.get(design) == event.kind,
            )
        )
    return matches
