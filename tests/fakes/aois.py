"""Seeded builders of small synthetic AOIs for tests: scenes on disk plus the AOI YAML.

One 2.56 km square of generated forest in UTM 21N (by default), its scene series
written by :func:`asmspotter.synthetic.generate_scene_series`, and a YAML file
that points the local provider at it: what every flow test needs.
"""

from __future__ import annotations

import datetime as dt
import json
import textwrap
from collections.abc import Sequence
from pathlib import Path

from shapely.geometry import box

from asmspotter.grid import build_grid, to_lonlat
from asmspotter.synthetic import GeneratedSeries, generate_scene_series

TINY_AOI_SIZE_M = 2_560.0
"""Side of a tiny AOI: 256 px at 10 m."""


def write_tiny_aoi(
    aoi_dir: Path,
    scenes_dir: Path,
    name: str,
    dates: Sequence[dt.date],
    *,
    seed: int,
    left_m: float = 600_000.0,
    top_m: float = 560_000.0,
    epsg: int = 32621,
    n_static: int = 1,
    n_growing: int = 1,
    n_new: int = 0,
    new_from: dt.date | None = None,
    max_cloud_fraction: float = 0.1,
    title: str | None = None,
    revisit_days: int = 5,
    alert_urls: Sequence[str] = (),
) -> GeneratedSeries:
    """Generate a tiny AOI's scenes and write ``<aoi_dir>/<name>.yaml`` for them.

    Args:
        aoi_dir: Folder of AOI YAML files (created if missing).
        scenes_dir: Folder for this AOI's scenes.
        name: AOI slug.
        dates: Acquisition dates.
        seed: Generator seed (same seed, same landscape and sites).
        left_m: West edge of the square, metres in ``epsg``.
        top_m: North edge of the square, metres in ``epsg``.
        epsg: UTM zone of the square.
        n_static: Mining sites present from the first date, unchanging.
        n_growing: Mining sites present from the first date, growing.
        n_new: Mining sites appearing on ``new_from``.
        new_from: First date of the new sites (default: the middle date).
        max_cloud_fraction: Cloud cover drawn per date from 0 to this.
        title: AOI title (default: derived from the name).
        revisit_days: The AOI's revisit period.
        alert_urls: Apprise URLs of the AOI's alert channels (none: outbox).

    Returns:
        The generated series (scene paths and the truth sites).
    """
    square = box(left_m, top_m - TINY_AOI_SIZE_M, left_m + TINY_AOI_SIZE_M, top_m)
    lonlat = to_lonlat(square.buffer(-15), epsg)
    series = generate_scene_series(
        scenes_dir,
        build_grid(lonlat, 10.0),
        dates,
        seed=seed,
        n_static=n_static,
        n_growing=n_growing,
        n_new=n_new,
        new_from=new_from,
        max_cloud_fraction=max_cloud_fraction,
        scene_prefix=f"SYN{name.upper().replace('-', '')}",
    )
    coords = [list(c) for c in lonlat.exterior.coords]
    alerts = "".join(f'\n  - url: "{url}"' for url in alert_urls)
    aoi_dir.mkdir(parents=True, exist_ok=True)
    (aoi_dir / f"{name}.yaml").write_text(
        textwrap.dedent(
            f"""\
            name: {name}
            title: {title or f"Test forest {name}"}
            geometry: {{type: Polygon, coordinates: [{json.dumps(coords)}]}}
            sources:
              - provider: local
                path: {scenes_dir}
            schedule: {{revisit_days: {revisit_days}, window_days: 30, start_date: 2024-01-01}}
            detection: {{model: s2-unet-v1, min_area_ha: 1.0}}
            """
        )
        + (f"alerts:{alerts}\n" if alerts else "")
    )
    return series
