"""The landscape without mines, and the look-alikes of mines.

Forest on hilly terrain, rivers with bars and oxbows, streams, roads, clearings,
villages, aquaculture ponds and landslides.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy import ndimage

from asmspotter.synthetic import spectra
from asmspotter.synthetic.canvas import Canvas, jitter_spectrum, mix_spectra
from asmspotter.synthetic.primitives import (
    ellipse_alpha,
    fractal_noise,
    line_coverage,
    meander_path,
    smooth_noise,
    square_window,
)
from asmspotter.synthetic.spectra import F32, LandCover


def _paint_everywhere(cv: Canvas, alpha: F32, spec: F32, label: LandCover) -> None:
    """Blend a (4, H, W) spectrum over the whole canvas by ``alpha``; occupy nothing."""
    h, w = cv.shape
    cv.paint((slice(0, h), slice(0, w)), alpha, spec.astype(np.float32), label, occupy=False)


def _paint_forest(cv: Canvas) -> None:
    """Closed canopy on hilly terrain: crowns, tone patches, relief shading, secondary forest."""
    rng = cv.rng
    shape = cv.shape
    # Terrain: fractal relief 0.4-1.5 km features; Lambertian-like shading from a sun in
    # the east (morning overpass), +-4-15 % brightness on slopes.
    dem = fractal_noise(rng, shape, cv.px(rng.uniform(400, 1500)), octaves=5, persistence=0.6)
    gy, gx = np.gradient(dem)
    sun = rng.uniform(-0.6, 0.6) + math.pi  # shading from the east: light on east faces
    lit = gx * math.cos(sun) + gy * math.sin(sun)
    # Slope in m/m does not depend on the pixel size, so normalise the shading.
    relief = 1.0 + rng.uniform(0.04, 0.15) * lit / float(lit.std() or 1.0)
    relief = np.clip(relief, 0.7, 1.3)
    cv.slope_angle = np.arctan2(gy, gx).astype(np.float32)
    # Crowns ~8-25 m; shadows between crowns make a common multiplicative texture
    # (a few %), with weaker band-independent speckle.
    crown = smooth_noise(rng, shape, cv.px(rng.uniform(8, 20)))
    crown_amp = rng.uniform(0.06, 0.12) * min(1.0, (10.0 / cv.res_m) ** 0.5 * 0.8)
    tone = fractal_noise(rng, shape, cv.px(rng.uniform(300, 1200)), octaves=3)
    tone_amp = rng.uniform(0.02, 0.06)
    base = jitter_spectrum(rng, spectra.FOREST, 0.12)
    bright = (relief * (1.0 + crown_amp * crown) * (1.0 + tone_amp * tone)).astype(np.float32)
    cv.refl[:] = base[:, None, None] * bright[None]
    # Band-specific tone (greener / browner canopy patches: phenology, species).
    for b in range(4):
        cv.refl[b] *= 1.0 + 0.03 * smooth_noise(rng, shape, cv.px(600))
    # Secondary forest patches: smoother, brighter in green and NIR.
    if rng.uniform() < 0.55:
        patches = fractal_noise(rng, shape, cv.px(rng.uniform(150, 500)), octaves=3)
        thr = np.quantile(patches, 1.0 - rng.uniform(0.03, 0.2))
        alpha = np.clip((patches - thr) * 3.0, 0, 1).astype(np.float32)
        spec = (
            jitter_spectrum(rng, spectra.SECONDARY, 0.1)[:, None, None] * np.asarray(relief)[None]
        )
        _paint_everywhere(cv, alpha, spec, LandCover.SECONDARY_FOREST)
    if rng.uniform() < 0.2:
        wet = fractal_noise(rng, shape, cv.px(rng.uniform(200, 600)), octaves=3)
        thr = np.quantile(wet, 1.0 - rng.uniform(0.02, 0.12))
        alpha = np.clip((wet - thr) * 2.0, 0, 1).astype(np.float32)
        spec = (
            jitter_spectrum(rng, spectra.WETLAND, 0.1)[:, None, None] * cv.texture(30, 0.08)[None]
        )
        _paint_everywhere(cv, alpha, spec, LandCover.WETLAND)


def paint_rivers(cv: Canvas, n_rivers: int, n_streams: int) -> None:
    """Rivers (20-200 m, turbid or black), streams (4-15 m), point bars and oxbows."""
    rng = cv.rng
    lines: list[tuple[F32, F32]] = []
    kinds: list[tuple[LandCover, F32]] = []
    curves: list[tuple[F32, F32, float]] = []
    for _ in range(n_rivers):
        width_m = float(np.exp(rng.uniform(math.log(20), math.log(200))))
        hw = max(cv.px(width_m / 2), 0.35)
        # Meander wavelength ~ 10-14 channel widths (Leopold & Wolman 1960).
        lam = cv.px(width_m * rng.uniform(9, 16)) * 2.2
        pts, theta = meander_path(rng, cv.shape, max(lam, 8.0), rng.uniform(0.6, 1.9), hw + 2)
        if len(pts) < 4:
            continue
        hw_arr = (
            hw
            * (
                1
                + 0.12
                * np.interp(np.arange(len(pts)), np.linspace(0, len(pts), 7), rng.uniform(-1, 1, 7))
            )
        ).astype(np.float32)
        turbid = rng.uniform() < 0.65
        spec = jitter_spectrum(rng, spectra.RIVER_TURBID if turbid else spectra.RIVER_BLACK, 0.15)
        if turbid:
            # Sediment load varies: from greenish-brown to café-au-lait (red up to 0.14).
            spec = (spec * np.array([1, 1, rng.uniform(0.85, 1.25), rng.uniform(0.8, 1.3)])).astype(
                np.float32
            )
            spec[3] = min(float(spec[3]), 0.8 * float(spec[1]))
        lines.append((pts, hw_arr))
        kinds.append((LandCover.RIVER_TURBID if turbid else LandCover.RIVER_BLACKWATER, spec))
        curves.append((pts, theta, hw))
        cv.streams.append(pts)
        cv.stream_halfwidth_px.append(hw)
    for _ in range(n_streams):
        width_m = rng.uniform(4, 15)
        hw = max(cv.px(width_m / 2), 0.3)
        pts, _theta = meander_path(
            rng, cv.shape, cv.px(rng.uniform(150, 500)), rng.uniform(0.3, 1.0), 2
        )
        if len(pts) < 4:
            continue
        lines.append((pts, np.full(len(pts), hw, np.float32)))
        kinds.append(
            (
                LandCover.STREAM,
                jitter_spectrum(
                    rng, mix_spectra(rng, spectra.RIVER_BLACK, spectra.OXBOW_GREEN), 0.2
                ),
            )
        )
        cv.streams.append(pts)
        cv.stream_halfwidth_px.append(hw)
    cov, line_idx, _pt = line_coverage(cv.shape, lines)
    full = (slice(0, cv.shape[0]), slice(0, cv.shape[1]))
    for i, (label, spec) in enumerate(kinds):
        alpha = np.where(line_idx == i, cov, 0.0).astype(np.float32)
        if label == LandCover.STREAM:
            alpha *= float(rng.uniform(0.3, 0.9))  # partly hidden under the canopy
        texture = cv.texture(rng.uniform(50, 300), 0.06)
        cv.paint(full, alpha, (spec[:, None, None] * texture[None]).astype(np.float32), label)
        cv.water = np.maximum(cv.water, alpha)
    for pts, theta, hw in curves:
        _paint_bars_and_oxbows(cv, pts, theta, hw)
    cv.n_lookalikes += len(curves)


def _paint_bars_and_oxbows(cv: Canvas, pts: F32, theta: F32, hw: float) -> None:
    """Point bars on the inner side of tight bends; oxbow lakes outside some bends."""
    rng = cv.rng
    kappa = np.gradient(np.unwrap(theta)) / 0.5
    kappa = ndimage.uniform_filter1d(kappa, 9)
    sign = np.sign(kappa)
    runs = np.flatnonzero(np.diff(sign) != 0) + 1
    edges = np.concatenate([[0], runs, [len(kappa)]])
    p_bar = rng.uniform(0.3, 1.0)
    p_ox = rng.uniform(0.0, 0.25)
    for a, b in itertools.pairwise(edges):
        if b - a < 6:
            continue
        apex = a + int(np.argmax(np.abs(kappa[a:b])))
        k = float(kappa[apex])
        radius = 1.0 / max(abs(k), 1e-6)
        if radius > 12 * max(hw, 1.0):
            continue
        p = pts[apex]
        th = float(theta[apex])
        normal = np.array([math.cos(th), -math.sin(th)], np.float32)  # (row, col) of +90 deg
        inner = normal * math.copysign(1.0, k)
        if rng.uniform() < p_bar:
            off = hw * rng.uniform(0.4, 1.0)
            centre = (float(p[0] + inner[0] * off), float(p[1] + inner[1] * off))
            a_px = max(hw * rng.uniform(1.2, 3.0), 1.0)
            b_px = max(hw * rng.uniform(0.4, 0.9), 0.7)
            win = square_window(cv.shape, centre, a_px + 2)
            if win is not None:
                rs, cs, rr, cc = win
                alpha = ellipse_alpha(rr, cc, centre, a_px, b_px, th)
                alpha *= np.clip(1.0 + 0.4 * smooth_noise(rng, alpha.shape, 2.0), 0, 1)
                # Damp bars are as listed; dry white quartz beaches up to ~2x brighter,
                # as bright as fresh tailings in the visible (the hardest look-alike).
                top = 2.0 if cv.hard_lookalikes else 1.6
                spec = jitter_spectrum(rng, spectra.SANDBAR, 0.12) * float(rng.uniform(0.9, top))
                cv.paint((rs, cs), alpha, spec, LandCover.SANDBAR)
        if rng.uniform() < p_ox:
            r_ox = radius * rng.uniform(0.7, 1.3) + hw
            dist = radius + 2 * hw + r_ox * rng.uniform(0.6, 1.4)
            centre = (float(p[0] - inner[0] * dist), float(p[1] - inner[1] * dist))
            win = square_window(cv.shape, centre, r_ox + hw + 2)
            if win is None:
                continue
            rs, cs, rr, cc = win
            d = np.hypot(rr - centre[0], cc - centre[1])
            ang = np.arctan2(rr - centre[0], cc - centre[1])
            gap_dir = rng.uniform(-math.pi, math.pi)
            gap = rng.uniform(0.5, 2.2)  # opening of the crescent, radians
            ang_d = np.abs(np.angle(np.exp(1j * (ang - gap_dir))))
            taper = np.clip((ang_d - gap / 2) / 0.8, 0, 1)
            w_ox = max(hw * rng.uniform(0.5, 1.0), 0.6) * taper
            alpha = np.clip(w_ox + 0.5 - np.abs(d - r_ox), 0, 1).astype(np.float32)
            alpha *= (cv.water[rs, cs] < 0.05).astype(np.float32)
            spec = jitter_spectrum(
                rng, mix_spectra(rng, spectra.OXBOW_DARK, spectra.OXBOW_GREEN), 0.15
            )
            cv.paint((rs, cs), alpha, spec, LandCover.OXBOW)
            cv.water[rs, cs] = np.maximum(cv.water[rs, cs], alpha)


def _paint_roads(cv: Canvas, n_roads: int) -> None:
    """Laterite roads 5-15 m wide, with a grassy cleared verge."""
    rng = cv.rng
    verge: list[tuple[F32, F32]] = []
    road: list[tuple[F32, F32]] = []
    for _ in range(n_roads):
        pts, _theta = meander_path(
            rng, cv.shape, cv.px(rng.uniform(800, 3000)), rng.uniform(0.05, 0.4), 3
        )
        if len(pts) < 4:
            continue
        w_road = cv.px(rng.uniform(4, 12)) / 2
        w_verge = w_road + cv.px(rng.uniform(0, 12))
        road.append((pts, np.full(len(pts), w_road, np.float32)))
        verge.append((pts, np.full(len(pts), w_verge, np.float32)))
    if not road:
        return
    full = (slice(0, cv.shape[0]), slice(0, cv.shape[1]))
    cov_v, _, _ = line_coverage(cv.shape, verge)
    cv.paint(
        full,
        cov_v * 0.6,
        jitter_spectrum(rng, mix_spectra(rng, spectra.PASTURE, spectra.PASTURE_DRY), 0.1),
        LandCover.PASTURE,
    )
    cov_r, _, _ = line_coverage(cv.shape, road)
    spec = jitter_spectrum(rng, spectra.LATERITE, 0.15)[:, None, None] * cv.texture(40, 0.08)[None]
    cv.paint(full, cov_r, spec.astype(np.float32), LandCover.ROAD)
    cv.n_lookalikes += len(road)


def _polygon_alpha(
    cv: Canvas,
    centre: tuple[float, float],
    size_px: tuple[float, float],
    angle: float,
    roughness: float,
) -> tuple[tuple[slice, slice], F32] | None:
    """A rotated rectangle-ish field (superellipse) with noisy edges."""
    rng = cv.rng
    a, b = size_px
    win = square_window(cv.shape, centre, math.hypot(a, b) + 2)
    if win is None:
        return None
    rs, cs, rr, cc = win
    dr, dc = rr - centre[0], cc - centre[1]
    u = (dc * math.cos(angle) + dr * math.sin(angle)) / max(a, 0.5)
    v = (-dc * math.sin(angle) + dr * math.cos(angle)) / max(b, 0.5)
    p = rng.uniform(2.0, 8.0)  # superellipse exponent: rounded to nearly rectangular
    rho = (np.abs(u) ** p + np.abs(v) ** p) ** (1.0 / p)
    edge = roughness * smooth_noise(rng, rr.shape, max(min(a, b) / 3, 1.0))
    alpha = np.clip((1.0 - rho + edge) * min(a, b) + 0.5, 0, 1).astype(np.float32)
    return (rs, cs), alpha


def _random_point(cv: Canvas, avoid_water: bool = True) -> tuple[float, float]:
    h, w = cv.shape
    for _ in range(20):
        r, c = float(cv.rng.uniform(0, h)), float(cv.rng.uniform(0, w))
        if not avoid_water or cv.water[int(r), int(c)] < 0.1:
            return r, c
    return r, c


def _paint_clearings(cv: Canvas, n: int) -> None:
    """Pasture (NDVI 0.5-0.7) and fresh bare clearings, 1-40 ha."""
    rng = cv.rng
    for _ in range(n):
        area_m2 = float(np.exp(rng.uniform(math.log(1e4), math.log(4e5))))
        ratio = rng.uniform(1.0, 3.0)
        a = cv.px(math.sqrt(area_m2 * ratio) / 2)
        b = cv.px(math.sqrt(area_m2 / ratio) / 2)
        got = _polygon_alpha(
            cv, _random_point(cv), (a, b), rng.uniform(0, math.pi), rng.uniform(0.02, 0.25)
        )
        if got is None:
            continue
        sl, alpha = got
        alpha *= 1.0 - np.clip(cv.water[sl] * 2, 0, 1)
        bare = rng.uniform() < 0.35
        if bare:
            spec = jitter_spectrum(
                rng, mix_spectra(rng, spectra.BARE_CLEARING, spectra.PASTURE_DRY), 0.12
            )
            tex = cv.texture(rng.uniform(15, 60), 0.12)[sl]
            label = LandCover.BARE_CLEARING
            cv.n_lookalikes += 1
        else:
            spec = jitter_spectrum(rng, mix_spectra(rng, spectra.PASTURE, spectra.PASTURE_DRY), 0.1)
            tex = cv.texture(rng.uniform(20, 120), 0.06)[sl]
            label = LandCover.PASTURE
        cv.paint(sl, alpha, (spec[:, None, None] * tex[None]).astype(np.float32), label)
        if not bare and rng.uniform() < 0.5:  # remnant trees and scrub in the pasture
            trees = smooth_noise(rng, alpha.shape, cv.px(20)) > rng.uniform(1.0, 2.0)
            cv.paint(
                sl,
                (trees * alpha).astype(np.float32),
                spectra.FOREST,
                LandCover.FOREST,
                occupy=False,
            )


def _paint_village(cv: Canvas) -> None:
    """A cleared patch with bare soil, grass and bright roofs of 6-15 m."""
    rng = cv.rng
    size = cv.px(rng.uniform(80, 350))
    centre = _random_point(cv)
    got = _polygon_alpha(
        cv, centre, (size, size * rng.uniform(0.5, 1.0)), rng.uniform(0, math.pi), 0.25
    )
    if got is None:
        return
    sl, alpha = got
    ground = np.where(
        smooth_noise(rng, alpha.shape, cv.px(30))[None] > 0,
        jitter_spectrum(rng, spectra.LATERITE, 0.1)[:, None, None],
        jitter_spectrum(rng, spectra.PASTURE_DRY, 0.1)[:, None, None],
    ).astype(np.float32)
    cv.paint(sl, alpha, ground, LandCover.VILLAGE)
    n_roofs = int(rng.integers(5, 40))
    hh, ww = alpha.shape
    roofs = np.zeros(alpha.shape, np.float32)
    rows = rng.integers(0, hh, n_roofs)
    cols = rng.integers(0, ww, n_roofs)
    roof_area = (rng.uniform(6, 15, n_roofs) / cv.res_m) ** 2  # fraction of a pixel at 10 m
    np.add.at(roofs, (rows, cols), roof_area.astype(np.float32))
    roofs = np.clip(ndimage.grey_dilation(roofs, size=max(int(cv.px(10)), 1)), 0, 1) * alpha
    spec = mix_spectra(rng, spectra.ROOF_METAL, spectra.ROOF_CLAY)
    cv.paint(sl, roofs.astype(np.float32), spec, LandCover.VILLAGE)
    cv.n_lookalikes += 1


def _paint_aquaculture(cv: Canvas) -> None:
    """A grid of regular rectangular fish ponds (green water) with levees."""
    rng = cv.rng
    nx, ny = int(rng.integers(1, 5)), int(rng.integers(1, 4))
    pa, pb = cv.px(rng.uniform(30, 120)), cv.px(rng.uniform(25, 80))
    levee = max(cv.px(rng.uniform(5, 12)), 0.6)
    centre = _random_point(cv)
    ang = rng.uniform(0, math.pi)
    ext_a, ext_b = nx * pa / 2, ny * pb / 2
    win = square_window(cv.shape, centre, math.hypot(ext_a, ext_b) + levee * 4 + 2)
    if win is None:
        return
    rs, cs, rr, cc = win
    dr, dc = rr - centre[0], cc - centre[1]
    u = dc * math.cos(ang) + dr * math.sin(ang) + ext_a
    v = -dc * math.sin(ang) + dr * math.cos(ang) + ext_b
    pad = levee * 3
    site = np.clip(
        np.minimum.reduce([u + pad, 2 * ext_a + pad - u, v + pad, 2 * ext_b + pad - v]) + 0.5, 0, 1
    )
    cv.paint(
        (rs, cs),
        site.astype(np.float32),
        jitter_spectrum(rng, mix_spectra(rng, spectra.PASTURE_DRY, spectra.LATERITE), 0.1),
        LandCover.AQUACULTURE,
    )
    du = np.minimum(np.mod(u, pa), pa - np.mod(u, pa))
    dv = np.minimum(np.mod(v, pb), pb - np.mod(v, pb))
    inner = (u > 0) & (u < 2 * ext_a) & (v > 0) & (v < 2 * ext_b)
    pond = np.clip(np.minimum(du, dv) - levee / 2 + 0.5, 0, 1) * inner
    spec = jitter_spectrum(
        rng, spectra.AQUA_WATER if rng.uniform() < 0.7 else spectra.RIVER_TURBID, 0.15
    )
    cv.paint((rs, cs), pond.astype(np.float32), spec, LandCover.AQUACULTURE)
    cv.n_lookalikes += 1


def _paint_landslide(cv: Canvas) -> None:
    """An elongated bare scar down a slope, tapering towards the toe; no ponds."""
    rng = cv.rng
    length = cv.px(rng.uniform(80, 600))
    width = length * rng.uniform(0.12, 0.35)
    centre = _random_point(cv)
    ang = float(cv.slope_angle[int(centre[0]), int(centre[1])])
    win = square_window(cv.shape, centre, length + 2)
    if win is None:
        return
    rs, cs, rr, cc = win
    dr, dc = rr - centre[0], cc - centre[1]
    u = (dc * math.cos(ang) + dr * math.sin(ang)) / length  # -1 head .. +1 toe
    v = (-dc * math.sin(ang) + dr * math.cos(ang)) / max(width, 0.7)
    half = 0.5 + 0.5 * np.clip(1 - u, 0, 2) / 2  # wide head, narrow toe
    edge = 0.25 * smooth_noise(rng, rr.shape, max(width / 2, 1))
    alpha = np.clip(
        (np.minimum(1 - np.abs(u), half - np.abs(v)) + edge) * max(width, 1) + 0.5, 0, 1
    )
    spec = jitter_spectrum(rng, mix_spectra(rng, spectra.LANDSLIDE, spectra.LATERITE), 0.12)[
        :, None, None
    ]
    tex = 1.0 + 0.1 * smooth_noise(rng, rr.shape, cv.px(15))
    cv.paint(
        (rs, cs),
        alpha.astype(np.float32),
        (spec * tex[None]).astype(np.float32),
        LandCover.LANDSLIDE,
    )
    cv.n_lookalikes += 1


def build_landscape(
    rng: np.random.Generator,
    shape: tuple[int, int],
    res_m: float,
    *,
    hard_lookalikes: bool = False,
) -> Canvas:
    """Paint forest, water and every look-alike; no mines and no atmosphere yet."""
    h, w = shape
    cv = Canvas(
        hard_lookalikes=hard_lookalikes,
        rng=rng,
        res_m=res_m,
        refl=np.zeros((4, h, w), np.float32),
        cover=np.zeros(shape, np.uint8),
        mask=np.zeros(shape, np.bool_),
        water=np.zeros(shape, np.float32),
        occupied=np.zeros(shape, np.bool_),
        slope_angle=np.zeros(shape, np.float32),
    )
    # Counts scale with area, but a chip (~0.6-7 km2) still gets some context.
    area_km2 = h * w * res_m * res_m / 1e6
    k = max(area_km2 / 6.5, 0.35)
    _paint_forest(cv)
    n_rivers = int(rng.poisson(0.55 * k**0.5))
    n_streams = int(rng.poisson(1.4 * k))
    paint_rivers(cv, n_rivers, n_streams)
    _paint_clearings(cv, int(rng.poisson(0.9 * k)))
    if rng.uniform() < min(0.4 * k, 0.9):
        _paint_aquaculture(cv)
    for _ in range(int(rng.poisson(0.25 * k))):
        _paint_landslide(cv)
    _paint_roads(cv, int(rng.poisson(0.5 * k**0.5)))
    if rng.uniform() < min(0.25 * k, 0.9):
        _paint_village(cv)
    return cv


def add_lookalike(cv: Canvas) -> None:
    """Force one hard negative into a chip that drew none."""
    choice = int(cv.rng.integers(6))
    if choice == 0:
        paint_rivers(cv, 1, 0)
    elif choice == 1:
        _paint_clearings(cv, 1)
        _paint_landslide(cv)
    elif choice == 2:
        _paint_aquaculture(cv)
    elif choice == 3:
        _paint_landslide(cv)
    elif choice == 4:
        _paint_village(cv)
    else:
        _paint_roads(cv, 1)
