"""Mining sites: clusters of turbid ponds in bright tailings, chained along streams.

A site is mined cell by cell in a fixed order, so it can grow between dates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from asmspotter.synthetic import spectra
from asmspotter.synthetic.canvas import Canvas, jitter_spectrum, mix_spectra
from asmspotter.synthetic.primitives import smooth_noise
from asmspotter.synthetic.spectra import F32, LandCover


@dataclass
class Site:
    """A mining site's appearance and the order in which its pixels get mined."""

    sl: tuple[slice, slice]
    spectrum: F32
    """(4, h, w) reflectance of the fully mined window."""
    alpha: F32
    """(h, w) coverage of the footprint (soft edge)."""
    rank: NDArray[np.int32]
    """(h, w) order of the cell owning each pixel (0 = mined first), -1 never."""
    cum_area_px: NDArray[np.int64]
    """Mask pixels mined once cells 0..k are mined, per k."""
    pond: NDArray[np.bool_]
    """(h, w) pond pixels (for labels)."""


def build_site(
    cv: Canvas,
    area_ha: float,
    centre: tuple[float, float],
    path: F32 | None,
    path_hw_px: float = 0.0,
    max_cell_m: float = 110.0,
    max_elong: float = 5.0,
) -> Site | None:
    """Lay out one mining site: Voronoi cells of ponds and tailings along a stream.

    Cells are 20-110 m wide (packed pits, "moth-eaten" outline); each cell is a pond
    (turbid water of its own colour, ringed by a berm), bare tailings, wet mud,
    regrowth or a remnant of forest (a hole, not mining). Cells are ordered by their
    distance from where mining started, so a growing site extends at its edge.
    """
    rng = cv.rng
    area_m2 = area_ha * 1e4
    cell_m = float(
        np.clip(rng.uniform(35, 120), 20.0, max(20.0, min(math.sqrt(area_m2 / 12.0), max_cell_m)))
    )
    cell = cv.px(cell_m)
    region_m2 = area_m2 * 1.25
    elong = rng.uniform(1.5, max_elong)
    length = cv.px(math.sqrt(region_m2 * elong * 4 / math.pi))
    width = length / elong
    n_seeds = max(int(region_m2 / cell_m**2 * 1.1), 3)
    if path is not None and len(path) > 8:
        i0 = int(np.argmin(np.hypot(path[:, 0] - centre[0], path[:, 1] - centre[1])))
        half = int(length / 2 / 0.5)
        seg = path[max(i0 - half, 0) : i0 + half + 1]
        if len(seg) < 4:
            seg = path[max(i0 - 4, 0) : i0 + 5]
        tang = np.gradient(seg, axis=0)
        tang /= np.maximum(np.linalg.norm(tang, axis=1, keepdims=True), 1e-6)
        normal = np.stack([tang[:, 1], -tang[:, 0]], axis=1)
        j = rng.integers(0, len(seg), n_seeds)
        # Beside a wide river the pits sit on the floodplain, clear of the channel.
        side = (
            np.where(rng.uniform(size=n_seeds) < 0.5, -1.0, 1.0)
            if path_hw_px < 3
            else np.full(n_seeds, 1.0 if rng.uniform() < 0.5 else -1.0)
        )
        lateral = side * (path_hw_px + np.abs(rng.normal(0, width / 3, n_seeds)))
        seeds = seg[j] + normal[j] * lateral[:, None] + rng.normal(0, cell / 3, (n_seeds, 2))
        origin = seg[rng.integers(len(seg))] if rng.uniform() < 0.5 else seg[len(seg) // 2]
    else:
        ang = rng.uniform(0, math.pi)
        uv = rng.uniform(-1, 1, (n_seeds * 2, 2))
        uv = uv[(uv**2).sum(1) < 1][:n_seeds] * np.array([length / 2, width / 2])
        rot = np.array([[math.sin(ang), math.cos(ang)], [math.cos(ang), -math.sin(ang)]])
        seeds = np.asarray(centre) + uv @ rot.T
        origin = np.asarray(centre)
    seeds = seeds.astype(np.float64)
    reach = cell * 1.0
    lo = np.floor(seeds.min(0) - reach - 2).astype(int)
    hi = np.ceil(seeds.max(0) + reach + 3).astype(int)
    r0, c0 = max(lo[0], 0), max(lo[1], 0)
    r1, c1 = min(hi[0], cv.shape[0]), min(hi[1], cv.shape[1])
    if r1 - r0 < 2 or c1 - c0 < 2:
        return None
    sl = (slice(r0, r1), slice(c0, c1))
    rr, cc = np.mgrid[r0:r1, c0:c1]
    shape = (r1 - r0, c1 - c0)
    # Domain warping bends the straight Voronoi edges into irregular pit outlines.
    warp = cell * 0.3
    wr = rr + warp * smooth_noise(rng, shape, max(cell / 2, 1.0))
    wc = cc + warp * smooth_noise(rng, shape, max(cell / 2, 1.0))
    coords = np.stack([wr.ravel(), wc.ravel()], axis=1).astype(np.float64)
    d, idx = cKDTree(seeds).query(coords, k=2)
    d1 = d[:, 0].reshape(shape).astype(np.float32)
    d2 = d[:, 1].reshape(shape).astype(np.float32)
    owner = idx[:, 0].reshape(shape)
    # Footprint: pixels within ~0.75 cell of their seed, with a noisy, moth-eaten edge.
    edge_noise = smooth_noise(rng, shape, max(cell / 2.5, 1.0))
    ragged = smooth_noise(rng, shape, max(cell / 5, 1.5))
    cutoff = reach * (1.05 + 0.25 * edge_noise + 0.06 * ragged)
    soft = max(1.0, cell * 0.08)  # a fuzzy edge of half-cleared, trampled ground
    alpha = np.clip((cutoff - d1) / soft + 0.5, 0.0, 1.0).astype(np.float32)
    alpha *= 1.0 - np.clip(cv.water[sl] * 1.5, 0, 1)  # rivers stay rivers
    # Cell kinds; an old site has more regrowth, a fresh one more ponds.
    fresh = rng.uniform()
    probs = np.array([0.35 + 0.25 * fresh, 0.35, 0.1, 0.1 * (1 - fresh) + 0.02, 0.05])
    kind = rng.choice(5, n_seeds, p=probs / probs.sum())  # pond, tailings, mud, regrowth, forest
    ranks = np.argsort(
        np.argsort(np.hypot(*(seeds - origin).T) + rng.normal(0, cell * 0.8, n_seeds))
    ).astype(np.int32)
    rank = np.where(alpha > 0, ranks[owner], -1).astype(np.int32)
    remnant = kind[owner] == 4
    rank[remnant] = -1
    alpha[remnant] = 0.0
    # Ground: mottled tailings, pink to pale beige, wet mud and laterite patches.
    t1 = smooth_noise(rng, shape, max(cv.px(30), 1.0))
    t2 = smooth_noise(rng, shape, max(cv.px(15), 0.8))
    sand_a = jitter_spectrum(
        rng, mix_spectra(rng, spectra.TAILINGS_BEIGE, spectra.TAILINGS_PINK), 0.12
    )
    sand_b = jitter_spectrum(rng, mix_spectra(rng, spectra.TAILINGS_PALE, spectra.LATERITE), 0.12)
    w_ab = np.clip(0.5 + 0.5 * t1, 0, 1)[None]
    ground = sand_a[:, None, None] * w_ab + sand_b[:, None, None] * (1 - w_ab)
    ground *= (1.0 + 0.12 * t2)[None]
    cell_tone = rng.uniform(0.75, 1.2, n_seeds).astype(np.float32)
    ground *= cell_tone[owner][None]
    mud = (kind[owner] == 2)[None]
    ground = np.where(
        mud,
        jitter_spectrum(rng, spectra.MUD_WET, 0.15)[:, None, None] * (1 + 0.1 * t2)[None],
        ground,
    )
    regrowth = (kind[owner] == 3) & (t2 > -0.8)
    # Regrowth on old tailings: sparse grass and shrubs, 40-80 % cover over the sand.
    cover = float(rng.uniform(0.4, 0.8))
    grass = mix_spectra(rng, spectra.REGROWTH, spectra.PASTURE)[:, None, None]
    ground = np.where(regrowth[None], cover * grass + (1 - cover) * ground, ground)
    # Ponds: the cell interior beyond a berm (4 m up to a third of the cell, per cell,
    # with a wobbly shoreline); one water colour per cell.
    berm = np.maximum(cell * rng.uniform(0.03, 0.25, n_seeds), cv.px(3))[owner]
    interior = np.minimum((d2 - d1) / 2, cutoff - d1) + cell * 0.12 * t2
    pond_a = np.clip(interior - berm + 0.5, 0, 1) * (kind[owner] == 0)
    colours = spectra.POND_PALETTE[
        rng.choice(len(spectra.POND_PALETTE), n_seeds, p=spectra.POND_WEIGHTS)
    ]
    colours = (
        colours * rng.uniform(0.85, 1.15, (n_seeds, 1)) * rng.uniform(0.93, 1.07, (n_seeds, 4))
    ).astype(np.float32)
    pond_spec = colours[owner].transpose(2, 0, 1) * (1.0 + 0.05 * t1)[None]
    spectrum = (ground * (1 - pond_a[None]) + pond_spec * pond_a[None]).astype(np.float32)
    inside = rank >= 0
    counts = np.bincount(rank[inside & (alpha >= 0.5)], minlength=n_seeds)
    return Site(
        sl=sl,
        spectrum=spectrum,
        alpha=alpha,
        rank=rank,
        cum_area_px=np.cumsum(counts).astype(np.int64),
        pond=(pond_a >= 0.5) & inside,
    )


def paint_site(cv: Canvas, site: Site, n_cells: int) -> int:
    """Paint the first ``n_cells`` cells of a site; return its mask pixel count."""
    on = (site.rank >= 0) & (site.rank < n_cells)
    alpha = (site.alpha * on).astype(np.float32)
    cv.paint(site.sl, alpha, site.spectrum, LandCover.MINE_GROUND, mining=True)
    cv.cover[site.sl][site.pond & on & (alpha >= 0.5)] = int(LandCover.MINE_POND)
    return int((alpha >= 0.5).sum())


def pick_stream_point(
    cv: Canvas,
    margin_px: float,
    avoid: Sequence[tuple[float, float, float]],
    radius_px: float,
    along_stream: bool,
    min_sep_px: float = 0.0,
    best_of: int = 1,
) -> tuple[tuple[float, float], F32 | None, float] | None:
    """A site centre on a stream (or anywhere), away from edges and other sites.

    ``avoid`` holds (row, col, radius) of sites already placed; a new centre keeps
    ``max(min_sep_px, radius + radius_px)`` from each. With ``best_of`` > 1 the
    candidate with the most room among that many valid ones wins (spreads sites out).
    """
    rng = cv.rng
    h, w = cv.shape
    best: tuple[tuple[float, float], F32 | None, float] | None = None
    best_room = -math.inf
    found = 0
    for attempt in range(200):
        use_stream = along_stream and cv.streams and attempt < 150
        if use_stream:
            i = int(rng.integers(len(cv.streams)))
            path = cv.streams[i]
            p = path[int(rng.integers(len(path)))]
            centre = (float(p[0]), float(p[1]))
            hw = cv.stream_halfwidth_px[i]
        else:
            path, hw = None, 0.0
            centre = (float(rng.uniform(0, h)), float(rng.uniform(0, w)))
        if not (
            margin_px <= centre[0] <= h - margin_px and margin_px <= centre[1] <= w - margin_px
        ):
            continue
        room = min(
            (
                math.hypot(centre[0] - r, centre[1] - c) - max(min_sep_px, rad + radius_px)
                for r, c, rad in avoid
            ),
            default=0.0,
        )
        if room >= 0:
            found += 1
            if room > best_room:
                best, best_room = (centre, path, hw), room
            if found >= best_of:
                break
    return best
