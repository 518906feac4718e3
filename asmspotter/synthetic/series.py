"""A time series of GeoTIFF scenes of one landscape with planted mining sites.

Static, growing and new sites, clouds per date, plus truth masks and ``sites.json``.
"""

from __future__ import annotations

import datetime
import itertools
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from asmspotter.grid import AOIGrid
from asmspotter.scene_io import write_scene
from asmspotter.synthetic.atmosphere import add_haze, apply_clouds, apply_sensor, cloud_layers
from asmspotter.synthetic.canvas import Canvas
from asmspotter.synthetic.landscape import build_landscape, paint_rivers
from asmspotter.synthetic.mines import Site, build_site, paint_site, pick_stream_point

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GeneratedScene:
    """One written scene of a synthetic series."""

    scene_id: str
    """``<prefix>_<YYYYMMDD>_<seed>``."""
    acquired: datetime.datetime
    """Acquisition time, UTC, tz-aware."""
    reflectance_path: Path
    """4-band uint16 GeoTIFF, DN = reflectance x 10000, nodata 0."""
    cloud_mask_path: Path
    """1-band uint8 GeoTIFF, 1 = cloud or shadow, 0 = clear."""
    truth_path: Path
    """1-band uint8 GeoTIFF, 1 = mining at this date."""


@dataclass(frozen=True)
class TruthSite:
    """A mining site planted in a synthetic series."""

    site_id: str
    """``truth-01``, ``truth-02``, ..."""
    design: Literal["static", "growing", "new"]
    """How the site changes over the dates."""
    centroid_x_m: float
    """Centroid of the last-date footprint, x in the grid CRS (metres)."""
    centroid_y_m: float
    """Centroid of the last-date footprint, y in the grid CRS (metres)."""
    area_ha_by_date: dict[str, float]
    """ISO date -> mined area in hectares (0 before the site appears)."""


@dataclass(frozen=True)
class GeneratedSeries:
    """What :func:`generate_scene_series` wrote."""

    scenes: list[GeneratedScene]
    """One scene per date, in date order."""
    sites: list[TruthSite]
    """The planted mining sites."""
    truth_json_path: Path
    """``truth/sites.json``: the sites and scenes as JSON."""


@dataclass
class _PlannedSite:
    site_id: str
    design: Literal["static", "growing", "new"]
    site: Site
    cells_by_date: list[int]


def _cells_for_area(site: Site, area_px: float) -> int:
    """Smallest number of cells whose mined pixels reach ``area_px``."""
    k = int(np.searchsorted(site.cum_area_px, area_px))
    return min(k + 1, len(site.cum_area_px))


def _plan_sites(
    cv: Canvas,
    dates: Sequence[datetime.date],
    designs: Sequence[Literal["static", "growing", "new"]],
    new_from: datetime.date,
) -> list[_PlannedSite]:
    """Place and size the truth sites and decide how many cells each has per date.

    Sizes are drawn first and the largest sites placed first; a site that finds no
    room after many tries is retried at the smallest size (3.6 ha at first sight).
    """
    rng = cv.rng
    h, w = cv.shape
    px_ha = 1e4 / cv.res_m**2
    grid_ha = h * w / px_ha
    min_ha = 3.0
    # The sites together take at most ~10 % of the grid at their largest.
    cap_ha = max(min(40.0, 0.1 * grid_ha / max(len(designs), 1)), 3.0 * 2.3)
    if len(cv.streams) < len(designs) // 2 + 1:  # mines need streams to follow
        paint_rivers(cv, 0, len(designs) // 2 + 1 - len(cv.streams))
    sep_px = cv.px(500.0)
    ratios = [
        1.0
        if d == "static"
        else (rng.uniform(2.1, 2.6) if d == "growing" else rng.uniform(1.3, 1.9))
        for d in designs
    ]
    firsts = [float(rng.uniform(min_ha * 1.2, max(cap_ha / r, min_ha * 1.3))) for r in ratios]
    order = sorted(range(len(designs)), key=lambda i: -firsts[i] * ratios[i])
    avoid: list[tuple[float, float, float]] = []
    placed: dict[int, tuple[Site, int, int]] = {}
    for i in order:
        placed[i] = _place_site(
            cv, designs[i], firsts[i], ratios[i], avoid, sep_px, min_ha * px_ha, px_ha
        )
    appear = next((x for x in dates if x >= new_from), None)
    planned: list[_PlannedSite] = []
    for i, design in enumerate(designs):
        site, k0, n_use = placed[i]
        start_px = float(site.cum_area_px[k0 - 1])
        total = float(site.cum_area_px[n_use - 1])
        cells: list[int] = []
        for d in dates:
            t0 = dates[0] if design != "new" else appear
            if t0 is None or d < t0:
                cells.append(0)
            elif design == "static":
                cells.append(n_use)
            else:
                frac = (d - t0).days / max((dates[-1] - t0).days, 1)
                target = start_px + (total - start_px) * frac
                cells.append(min(max(k0, _cells_for_area(site, target)), n_use))
        planned.append(_PlannedSite(f"truth-{i + 1:02d}", design, site, cells))
    return planned


def _place_site(
    cv: Canvas,
    design: Literal["static", "growing", "new"],
    first_ha: float,
    ratio: float,
    avoid: list[tuple[float, float, float]],
    sep_px: float,
    min_px: float,
    px_ha: float,
) -> tuple[Site, int, int]:
    """Build one truth site clear of the others; return it, first and last cell counts."""
    h, w = cv.shape
    # Fallbacks: the smallest size, then compact, then off the streams.
    tries = [(first_ha, 3.0, True), (min_px / px_ha * 1.2, 2.0, True)]
    tries.append((min_px / px_ha * 1.2, 1.5, False))
    for first_ha, max_elong, on_stream in tries:
        final_ha = first_ha * ratio
        radius = cv.px(math.sqrt(final_ha * 1e4)) + cv.px(40)
        for _retry in range(25):
            got = pick_stream_point(
                cv, radius * 0.6, avoid, radius, on_stream, min_sep_px=sep_px, best_of=6
            )
            if got is None:
                break
            centre, path, hw = got
            site = build_site(
                cv, final_ha * 1.2, centre, path, hw, math.sqrt(first_ha * 1e4 / 14), max_elong
            )
            if site is None or not _is_inside(site, (h, w)):
                continue
            n_use = _cells_for_area(site, final_ha * px_ha)
            k0 = _first_cells(site.cum_area_px[:n_use], ratio, min_px, design == "growing")
            if k0 is None:
                continue
            # Keep real footprints (not just planned centres) >= 500 m apart.
            on = (site.rank >= 0) & (site.rank < n_use) & (site.alpha >= 0.5)
            rows, cols = np.nonzero(on)
            rows = rows + site.sl[0].start
            cols = cols + site.sl[1].start
            cr, cc = float(rows.mean()), float(cols.mean())
            reach = float(np.hypot(rows - cr, cols - cc).max())
            if all(
                math.hypot(cr - r, cc - c) >= max(sep_px + 1, rad + reach + 1)
                for r, c, rad in avoid
            ):
                avoid.append((cr, cc, reach))
                return site, k0, n_use
    raise ValueError(
        f"grid of {w}x{h} px at {cv.res_m} m has no room for another {design} mining site "
        f"(sites are >= 3 ha and >= 500 m apart); pass a larger grid or fewer "
        f"n_static/n_growing/n_new."
    )


def _is_inside(site: Site, shape: tuple[int, int]) -> bool:
    """Whether a site's window lies inside the grid without touching its edge."""
    rs, cs = site.sl
    return bool(rs.start > 0 and cs.start > 0 and rs.stop < shape[0] and cs.stop < shape[1])


def _first_cells(
    cum_area_px: NDArray[np.int64], ratio: float, min_px: float, strict: bool
) -> int | None:
    """Cells mined at first appearance: >= ``min_px`` pixels, about total / ``ratio``.

    With ``strict`` (growing sites) the last/first area ratio must land in 1.85-2.9.
    """
    cum = cum_area_px.astype(np.float64)
    total = float(cum[-1])
    if total < min_px:
        return None
    k = np.arange(1, len(cum) + 1)
    ok = cum >= min_px
    if strict:
        r = total / np.maximum(cum, 1.0)
        ok &= (r >= 1.85) & (r <= 2.9)
    if not ok.any():
        return None
    best = np.argmin(np.where(ok, np.abs(cum - total / ratio), np.inf))
    return int(k[best])


def _write_mask(path: Path, mask: NDArray[np.bool_], grid: AOIGrid) -> None:
    """Write a uint8 0/1 mask on the grid with the scene files' tiling and compression."""
    import rasterio

    from asmspotter.scene_io import GTIFF_PROFILE

    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        **GTIFF_PROFILE,
        "width": grid.width_px,
        "height": grid.height_px,
        "count": 1,
        "dtype": "uint8",
        "crs": f"EPSG:{grid.epsg}",
        "transform": grid.transform,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(mask.astype(np.uint8), 1)


def generate_scene_series(
    out_dir: Path,
    grid: AOIGrid,
    dates: Sequence[datetime.date],
    *,
    seed: int = 0,
    n_static: int = 2,
    n_growing: int = 2,
    n_new: int = 2,
    new_from: datetime.date | None = None,
    max_cloud_fraction: float = 0.35,
    scene_prefix: str = "SYN",
) -> GeneratedSeries:
    """One landscape on ``grid`` seen on each date, with planted mining sites.

    Static sites exist from the first date and never change; growing sites exist from
    the first date and grow steadily (new ponds and tailings at the edge, the old
    footprint stays) to 1.8-3x their first-date area on the last date; new sites are
    absent before ``new_from`` (default: the middle date) and present from it on,
    growing afterwards. All sites are >= 3 ha at first appearance, >= 500 m apart and
    mostly along streams. Every date has its own clouds and shadows (cloud fraction
    uniform in 0..``max_cloud_fraction``), haze, noise and gain jitter; the landscape
    is the same on every date.

    Args:
        out_dir: Folder for ``<scene_id>.tif``, ``<scene_id>.cloudmask.tif`` and
            ``truth/``; created if missing.
        grid: The pixel grid (CRS, transform, shape, resolution).
        dates: Acquisition dates, strictly increasing.
        seed: Seed of the whole series.
        n_static: Number of static sites.
        n_growing: Number of growing sites.
        n_new: Number of sites appearing on ``new_from``.
        new_from: First date of the new sites; default the middle date.
        max_cloud_fraction: Upper bound of each scene's cloud + shadow fraction.
        scene_prefix: First part of every scene id.

    Returns:
        The written scenes, the planted sites and the path of ``sites.json``.

    Raises:
        ValueError: If ``dates`` is empty or not increasing, a count is negative,
            ``max_cloud_fraction`` is outside 0..1 or the grid is too small for the sites.

    Example:
        >>> import datetime, tempfile
        >>> from pathlib import Path
        >>> grid = AOIGrid(32621, 10.0, 500000.0, 600000.0, 256, 256)
        >>> days = [datetime.date(2024, 1, 5), datetime.date(2024, 3, 5)]
        >>> series = generate_scene_series(Path(tempfile.mkdtemp()), grid, days, n_static=1,
        ...                                n_growing=1, n_new=0)
        >>> len(series.scenes), len(series.sites)
        (2, 2)
    """
    if not dates:
        raise ValueError("dates is empty; pass at least one acquisition date.")
    if any(b <= a for a, b in itertools.pairwise(dates)):
        raise ValueError(
            f"dates must be strictly increasing, got {[d.isoformat() for d in dates]}."
        )
    if min(n_static, n_growing, n_new) < 0:
        raise ValueError(
            f"site counts must be >= 0, got n_static={n_static}, "
            f"n_growing={n_growing}, n_new={n_new}."
        )
    if not 0.0 <= max_cloud_fraction <= 1.0:
        raise ValueError(f"max_cloud_fraction must be within 0..1, got {max_cloud_fraction}.")
    dates = list(dates)
    if new_from is None:
        new_from = dates[len(dates) // 2]
    rng = np.random.default_rng(seed)
    shape = grid.shape
    res = grid.resolution_m
    cv = build_landscape(rng, shape, res)
    static: list[Literal["static", "growing", "new"]] = ["static"]
    growing: list[Literal["static", "growing", "new"]] = ["growing"]
    new: list[Literal["static", "growing", "new"]] = ["new"]
    designs = static * n_static + growing * n_growing + new * n_new
    planned = _plan_sites(cv, dates, designs, new_from)
    base_refl, base_cover, base_mask = cv.refl.copy(), cv.cover.copy(), cv.mask.copy()
    # Fixed sun geometry for the series: morning overpass, sun in the east at
    # 50-70 deg elevation; cumulus tops at 0.6-1.5 km cast shadows ~0.3-1.3 km west.
    elev = math.radians(rng.uniform(50, 70))
    az = math.radians(rng.uniform(50, 130))
    shift_px = rng.uniform(600, 1500) / math.tan(elev) / res
    shadow_offset = (shift_px * math.cos(az), -shift_px * math.sin(az))  # (row, col): south-west
    out_dir = Path(out_dir)
    truth_dir = out_dir / "truth"
    truth_dir.mkdir(parents=True, exist_ok=True)
    scenes: list[GeneratedScene] = []
    areas: dict[str, dict[str, float]] = {p.site_id: {} for p in planned}
    for t, day in enumerate(dates):
        cv.refl[:] = base_refl
        cv.cover[:] = base_cover
        cv.mask[:] = base_mask
        for p in planned:
            n_px = paint_site(cv, p.site, p.cells_by_date[t])
            areas[p.site_id][day.isoformat()] = round(n_px * grid.pixel_area_ha, 4)
        truth = cv.mask.copy()
        day_rng = np.random.default_rng([seed, t + 1])
        cv.rng = day_rng
        add_haze(cv, float(day_rng.uniform(0.0, 0.008)))
        fraction = float(day_rng.uniform(0.0, max_cloud_fraction))
        cloud, shadow, cmask = cloud_layers(day_rng, shape, res, fraction, shadow_offset)
        apply_clouds(cv, cloud, shadow)
        refl = apply_sensor(cv)
        minutes = int(day_rng.integers(-20, 21))
        acquired = datetime.datetime(day.year, day.month, day.day, 14, 5, tzinfo=datetime.UTC)
        acquired += datetime.timedelta(minutes=minutes)
        scene_id = f"{scene_prefix}_{day:%Y%m%d}_{seed}"
        refl_path = out_dir / f"{scene_id}.tif"
        cloud_path = out_dir / f"{scene_id}.cloudmask.tif"
        truth_path = truth_dir / f"{scene_id}.mining.tif"
        write_scene(refl_path, grid, refl, acquired, scene_id=scene_id, cloud_mask=cmask)
        _write_mask(truth_path, truth, grid)
        scenes.append(GeneratedScene(scene_id, acquired, refl_path, cloud_path, truth_path))
        logger.info(
            "wrote %s: cloud %.1f %%, mining %.2f ha",
            scene_id,
            100 * cmask.mean(),
            truth.sum() * grid.pixel_area_ha,
        )
    sites: list[TruthSite] = []
    for p in planned:
        on = p.site.rank >= 0
        on &= p.site.rank < p.cells_by_date[-1]
        on &= p.site.alpha >= 0.5
        rows, cols = np.nonzero(on)
        r = float(rows.mean()) + p.site.sl[0].start + 0.5
        c = float(cols.mean()) + p.site.sl[1].start + 0.5
        x, y = grid.transform * (c, r)
        sites.append(TruthSite(p.site_id, p.design, float(x), float(y), areas[p.site_id]))
    truth_json = truth_dir / "sites.json"
    truth_json.write_text(
        json.dumps(
            {
                "seed": seed,
                "epsg": grid.epsg,
                "resolution_m": res,
                "dates": [d.isoformat() for d in dates],
                "new_from": new_from.isoformat(),
                "scenes": [
                    {
                        "scene_id": s.scene_id,
                        "acquired": s.acquired.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "reflectance": s.reflectance_path.name,
                        "cloud_mask": s.cloud_mask_path.name,
                        "truth": f"truth/{s.truth_path.name}",
                    }
                    for s in scenes
                ],
                "sites": [
                    {
                        "site_id": s.site_id,
                        "design": s.design,
                        "centroid_x_m": s.centroid_x_m,
                        "centroid_y_m": s.centroid_y_m,
                        "area_ha_by_date": s.area_ha_by_date,
                    }
                    for s in sites
                ],
            },
            indent=2,
        )
    )
    logger.info("wrote %d scenes and %d truth sites to %s", len(scenes), len(sites), out_dir)
    return GeneratedSeries(scenes=scenes, sites=sites, truth_json_path=truth_json)
