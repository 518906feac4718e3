"""Synthetic Sentinel-2 / PlanetScope scenes of Amazonian forest with artisanal gold mines.

The generator paints surface reflectance (Sentinel-2 L2A-like, 0..1) in four bands
(blue, green, red, nir) on a pixel grid of any size: closed-canopy forest on hilly
terrain, meandering turbid and blackwater rivers with point bars and oxbow lakes,
streams, laterite roads, pasture and fresh clearings, villages, aquaculture ponds,
landslide scars, wetlands and haze; and the positive class, mining sites: clusters
of turbid ponds of varied colour in bright tailings, chained along streams.
Object sizes are in metres, so the same code serves 10 m (Sentinel-2) and 3 m
(PlanetScope) pixels.

Two entry points:

- :func:`render_training_pair` draws one cloud-free chip and its mining mask, for
  training the U-Net (:mod:`asmspotter.detect.unet`); :func:`render_labelled_chip`
  also returns the land-cover class of every pixel.
- :func:`generate_scene_series` writes a time series of GeoTIFF scenes of one
  landscape on an :class:`~asmspotter.grid.AOIGrid`, with clouds, shadows and
  static, growing and new mining sites, plus truth masks and ``sites.json``; the
  demo and end-to-end tests read it like any local provider's scenes.

Reflectance values are typical surface reflectance at the Sentinel-2 band centres
(B2 490 nm, B3 560 nm, B4 665 nm, B8 842 nm), read off published spectra; each
constant below names its source. Everything random is drawn from one
``numpy.random.Generator``, so a seed reproduces a chip or a series exactly.
"""

from __future__ import annotations

import datetime
import itertools
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage
from scipy.spatial import cKDTree

from asmspotter.grid import AOIGrid
from asmspotter.scene_io import write_scene

logger = logging.getLogger(__name__)

BAND_NAMES: tuple[str, str, str, str] = ("blue", "green", "red", "nir")
"""Band order of every reflectance array and GeoTIFF this module writes."""

F32 = NDArray[np.float32]

# --------------------------------------------------------------------------------------
# Spectra: surface reflectance at S2 B2, B3, B4, B8 (blue, green, red, nir).
# --------------------------------------------------------------------------------------
# Closed-canopy lowland tropical forest: green peak ~0.04-0.05, red chlorophyll
# absorption ~0.02-0.03, NIR plateau ~0.25-0.35 (Asner 1998, "Biophysical and
# biochemical sources of variability in canopy reflectance", Remote Sens. Environ. 64;
# USGS Spectral Library v7, Kokaly et al. 2017, USGS Data Series 1035, tropical leaf
# and canopy spectra). NDVI ~0.85.
_FOREST = np.array([0.020, 0.045, 0.025, 0.300], np.float32)
# Secondary forest / capoeira: denser young leaves, brighter green and NIR.
_SECONDARY = np.array([0.024, 0.056, 0.030, 0.360], np.float32)
# Palm swamp / flooded forest: wet background lowers NIR.
_WETLAND = np.array([0.022, 0.042, 0.030, 0.190], np.float32)
# Turbid "white-water" Amazon rivers (Madeira, Solimoes, rivers below mines):
# suspended-sediment reflectance peaks in red, NIR 0.05-0.10 (Lobo, Costa & Novo 2015,
# "Time-series analysis of Landsat-MSS/TM/OLI images over Amazonian waters impacted
# by gold mining activities", Remote Sens. Environ. 157).
_RIVER_TURBID = np.array([0.060, 0.100, 0.120, 0.075], np.float32)
# Blackwater (Rio Negro type) rivers: humic CDOM absorbs the visible, water the NIR:
# ~0.02-0.03 visible, 0.01-0.02 NIR.
_RIVER_BLACK = np.array([0.022, 0.028, 0.024, 0.014], np.float32)
# Oxbow lakes: still water, darker than the river, often phytoplankton-green.
_OXBOW_DARK = np.array([0.025, 0.040, 0.030, 0.020], np.float32)
_OXBOW_GREEN = np.array([0.035, 0.075, 0.045, 0.040], np.float32)
# Quartz sand of point bars (USGS splib07 quartz sand, damped by moisture and
# iron coatings): blue ~0.10, green ~0.14, red ~0.18, NIR ~0.22-0.28.
_SANDBAR = np.array([0.100, 0.140, 0.180, 0.250], np.float32)
# Laterite road surface (reddish Oxisol, ECOSTRESS soil library, Meerdink et al.
# 2019): strong ferric-iron red, blue ~0.06, green ~0.09, red ~0.14, NIR ~0.20.
_LATERITE = np.array([0.060, 0.090, 0.140, 0.200], np.float32)
# Pasture grass (USGS splib07 "Lawn grass"/dry grass mix at 10 m): NDVI 0.5-0.7.
_PASTURE = np.array([0.040, 0.080, 0.060, 0.300], np.float32)
_PASTURE_DRY = np.array([0.055, 0.090, 0.095, 0.270], np.float32)
# Fresh slash-and-burn clearing: ash, dead wood and bare soil.
_BARE_CLEARING = np.array([0.055, 0.075, 0.090, 0.180], np.float32)
# Roofs: galvanised metal (USGS splib07 "galvanized sheet metal") and rusty/clay.
_ROOF_METAL = np.array([0.250, 0.270, 0.280, 0.300], np.float32)
_ROOF_CLAY = np.array([0.080, 0.100, 0.180, 0.250], np.float32)
# Aquaculture ponds: eutrophic, chlorophyll-green water.
_AQUA_WATER = np.array([0.040, 0.085, 0.050, 0.045], np.float32)
# Landslide scar: fresh saprolite / rock, brighter than laterite.
_LANDSLIDE = np.array([0.070, 0.105, 0.150, 0.220], np.float32)
# Mining tailings: washed quartz sand and kaolinitic clay with iron stains, bright
# pinkish beige (Lobo et al. 2016, "Mapping mining areas in the Brazilian Amazon
# using MSI/Sentinel-2 imagery", Remote Sens. 8; USGS splib07 kaolinite + quartz).
_TAILINGS_BEIGE = np.array([0.120, 0.180, 0.250, 0.290], np.float32)
_TAILINGS_PINK = np.array([0.110, 0.145, 0.225, 0.270], np.float32)
_TAILINGS_PALE = np.array([0.150, 0.195, 0.245, 0.280], np.float32)
_MUD_WET = np.array([0.070, 0.090, 0.110, 0.140], np.float32)
_REGROWTH = np.array([0.035, 0.070, 0.050, 0.270], np.float32)
# Mining-pond water: sediment-laden, brown/tan to green-turquoise or dark
# (Lobo et al. 2015, above; Espejo et al. 2018, "Deforestation and forest degradation
# due to gold mining in the Peruvian Amazon", Remote Sens. 10, their pond spectra).
_POND_PALETTE = np.array(
    [
        [0.060, 0.100, 0.130, 0.100],  # brown, high suspended sediment
        [0.085, 0.135, 0.155, 0.130],  # tan, very turbid
        [0.085, 0.150, 0.090, 0.050],  # turquoise / green-blue, fine clay in suspension
        [0.040, 0.070, 0.060, 0.045],  # dark, settled
        [0.050, 0.095, 0.065, 0.060],  # algal green
        [0.065, 0.090, 0.085, 0.070],  # grey
    ],
    np.float32,
)
_POND_WEIGHTS = np.array([0.28, 0.18, 0.16, 0.14, 0.12, 0.12])


class LandCover(IntEnum):
    """Land-cover class codes of :attr:`LabelledChip.land_cover`."""

    FOREST = 0
    SECONDARY_FOREST = 1
    WETLAND = 2
    RIVER_TURBID = 3
    RIVER_BLACKWATER = 4
    STREAM = 5
    OXBOW = 6
    SANDBAR = 7
    ROAD = 8
    PASTURE = 9
    BARE_CLEARING = 10
    VILLAGE = 11
    AQUACULTURE = 12
    LANDSLIDE = 13
    MINE_POND = 14
    MINE_GROUND = 15


@dataclass(frozen=True)
class LabelledChip:
    """A training chip with the class of every pixel."""

    reflectance: F32
    """(4, H, W) float32 surface reflectance in (0, 1], bands blue, green, red, nir."""
    mining_mask: NDArray[np.bool_]
    """(H, W) True on mining ponds, tailings and disturbed ground."""
    land_cover: NDArray[np.uint8]
    """(H, W) :class:`LandCover` code of the cover painted last with weight >= 0.5."""


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


# --------------------------------------------------------------------------------------
# Noise and geometry primitives
# --------------------------------------------------------------------------------------
def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale_px: float) -> F32:
    """Gaussian random field with correlation length ~``scale_px``, mean 0, std 1.

    Drawn on a coarse lattice and bilinearly upsampled, so the cost does not grow with
    the correlation length.
    """
    h, w = shape
    if scale_px <= 1.5:
        field_ = rng.standard_normal(shape, dtype=np.float32)
        field_ = ndimage.gaussian_filter(field_, max(scale_px * 0.5, 0.3))
    else:
        step = scale_px / 2.0
        lh, lw = int(h / step) + 4, int(w / step) + 4
        low = ndimage.gaussian_filter(rng.standard_normal((lh, lw), dtype=np.float32), 1.0)
        field_ = _upsample_bilinear(low, step, shape)
    arr: F32 = np.asarray(field_, dtype=np.float32)
    std = float(arr.std())
    out: F32 = ((arr - arr.mean()) / (std if std > 0 else 1.0)).astype(np.float32)
    return out


def _upsample_bilinear(low: F32, step: float, shape: tuple[int, int]) -> F32:
    """Separable bilinear upsampling by ``step`` (much faster than ``ndimage.zoom``)."""

    def axis(n: int, n_low: int) -> tuple[NDArray[np.intp], F32]:
        pos = np.minimum(np.arange(n, dtype=np.float32) / step, n_low - 1.001)
        i0 = pos.astype(np.intp)
        return i0, (pos - i0).astype(np.float32)

    r0, fr = axis(shape[0], low.shape[0])
    c0, fc = axis(shape[1], low.shape[1])
    rows = low[r0] * (1 - fr)[:, None] + low[r0 + 1] * fr[:, None]
    out: F32 = (rows[:, c0] * (1 - fc) + rows[:, c0 + 1] * fc).astype(np.float32)
    return out


def _fractal_noise(
    rng: np.random.Generator,
    shape: tuple[int, int],
    scale_px: float,
    octaves: int = 4,
    persistence: float = 0.5,
) -> F32:
    """Sum of :func:`_smooth_noise` octaves (scale halves, amplitude x persistence)."""
    total = np.zeros(shape, np.float32)
    amp = 1.0
    for k in range(octaves):
        total += amp * _smooth_noise(rng, shape, max(scale_px / 2**k, 0.7))
        amp *= persistence
    return (total / float(total.std() or 1.0)).astype(np.float32)


def _window(
    shape: tuple[int, int], centre_rc: tuple[float, float], radius_px: float
) -> tuple[slice, slice, NDArray[np.float32], NDArray[np.float32]] | None:
    """Clip a square window around a point; return slices and pixel-centre coords."""
    r0 = max(int(centre_rc[0] - radius_px) - 1, 0)
    r1 = min(int(centre_rc[0] + radius_px) + 2, shape[0])
    c0 = max(int(centre_rc[1] - radius_px) - 1, 0)
    c1 = min(int(centre_rc[1] + radius_px) + 2, shape[1])
    if r1 <= r0 or c1 <= c0:
        return None
    rr, cc = np.mgrid[r0:r1, c0:c1].astype(np.float32)
    return slice(r0, r1), slice(c0, c1), rr, cc


def _meander_path(
    rng: np.random.Generator,
    shape: tuple[int, int],
    wavelength_px: float,
    amplitude_rad: float,
    pad_px: float,
) -> tuple[F32, F32]:
    """A sine-generated meander curve crossing the canvas.

    Meanders follow Langbein & Leopold's (1966) sine-generated curve,
    theta(s) = omega sin(2 pi s / lambda), with amplitude and wavelength that drift
    along the course, plus a slow random wander of the mean direction.

    Returns:
        (points (N, 2) as (row, col) floats, heading angle (N,) in radians) with
        points 0.5 px apart; the path starts and ends outside the canvas (+pad).
    """
    h, w = shape
    step = 0.5
    n = int(3.0 * (h + w + 4 * pad_px) / step)
    # Enter from a random edge, heading roughly across.
    side = int(rng.integers(4))
    u = float(rng.uniform(0.1, 0.9))
    starts = [
        (-pad_px, u * w, math.pi / 2),
        (h + pad_px, u * w, -math.pi / 2),
        (u * h, -pad_px, 0.0),
        (u * h, w + pad_px, math.pi),
    ]
    r0, c0, heading = starts[side]
    heading += float(rng.uniform(-0.6, 0.6))
    s = np.arange(n, dtype=np.float32) * step
    slow = np.interp(s, np.linspace(0, s[-1], 12), rng.uniform(-1, 1, 12)).astype(np.float32)
    slow2 = np.interp(s, np.linspace(0, s[-1], 9), rng.uniform(-1, 1, 9)).astype(np.float32)
    lam = wavelength_px * (1.0 + 0.35 * slow2)
    phase = 2 * np.pi * np.cumsum(step / lam) + rng.uniform(0, 2 * np.pi)
    omega = amplitude_rad * (1.0 + 0.3 * slow)
    theta = (heading + 0.5 * slow2 + omega * np.sin(phase)).astype(np.float32)
    # (row, col) with heading measured from the +col axis towards +row.
    pts = np.empty((n, 2), np.float32)
    pts[:, 0] = r0 + np.cumsum(step * np.sin(theta))
    pts[:, 1] = c0 + np.cumsum(step * np.cos(theta))
    inside = (
        (pts[:, 0] > -pad_px - 1)
        & (pts[:, 0] < h + pad_px + 1)
        & (pts[:, 1] > -pad_px - 1)
        & (pts[:, 1] < w + pad_px + 1)
    )
    # Keep the first contiguous run inside the padded canvas.
    idx = np.flatnonzero(inside)
    if idx.size == 0:
        return pts[:2], theta[:2]
    gaps = np.flatnonzero(np.diff(idx) > 1)
    end = idx[gaps[0]] + 1 if gaps.size else idx[-1] + 1
    return pts[idx[0] : end], theta[idx[0] : end]


def _line_coverage(
    shape: tuple[int, int], lines: Sequence[tuple[F32, F32]]
) -> tuple[F32, NDArray[np.int32], NDArray[np.int32]]:
    """Anti-aliased coverage of thick polylines, with one distance transform for all.

    Args:
        shape: Canvas (H, W).
        lines: (points (N, 2) row/col, half-width (N,) in px) per line.

    Returns:
        (coverage 0..1, index of the nearest line, index of the nearest point on it);
        indexes are -1 where no line is near.
    """
    h, w = shape
    if not lines:
        return (
            np.zeros(shape, np.float32),
            np.full(shape, -1, np.int32),
            np.full(shape, -1, np.int32),
        )
    pad = int(max(float(hw.max()) for _, hw in lines)) + 3
    ph, pw = h + 2 * pad, w + 2 * pad
    seed_line = np.full((ph, pw), -1, np.int32)
    seed_pt = np.zeros((ph, pw), np.int32)
    seed_hw = np.zeros((ph, pw), np.float32)
    for i, (pts, hw) in enumerate(lines):
        rc = np.rint(pts).astype(np.int64) + pad
        ok = (rc[:, 0] >= 0) & (rc[:, 0] < ph) & (rc[:, 1] >= 0) & (rc[:, 1] < pw)
        sel = np.flatnonzero(ok)
        seed_line[rc[sel, 0], rc[sel, 1]] = i
        seed_pt[rc[sel, 0], rc[sel, 1]] = sel
        seed_hw[rc[sel, 0], rc[sel, 1]] = hw[sel]
    if not (seed_line >= 0).any():
        return (
            np.zeros(shape, np.float32),
            np.full(shape, -1, np.int32),
            np.full(shape, -1, np.int32),
        )
    dist, (ir, ic) = ndimage.distance_transform_edt(seed_line < 0, return_indices=True)
    crop = (slice(pad, pad + h), slice(pad, pad + w))
    ir, ic, dist = ir[crop], ic[crop], dist[crop]
    cov = np.clip(seed_hw[ir, ic] + 0.5 - dist, 0.0, 1.0).astype(np.float32)
    line_idx = np.where(cov > 0, seed_line[ir, ic], -1).astype(np.int32)
    pt_idx = np.where(cov > 0, seed_pt[ir, ic], -1).astype(np.int32)
    return cov, line_idx, pt_idx


def _ellipse_alpha(
    rr: F32, cc: F32, centre: tuple[float, float], a_px: float, b_px: float, angle: float
) -> F32:
    """Anti-aliased ellipse (semi-axes a along ``angle``, b across) on window coords."""
    dr, dc = rr - centre[0], cc - centre[1]
    u = dc * math.cos(angle) + dr * math.sin(angle)
    v = -dc * math.sin(angle) + dr * math.cos(angle)
    rho = np.sqrt((u / max(a_px, 0.5)) ** 2 + (v / max(b_px, 0.5)) ** 2)
    return np.clip((1.0 - rho) * min(a_px, b_px) + 0.5, 0.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------------------
# The canvas
# --------------------------------------------------------------------------------------
@dataclass
class _Canvas:
    """Reflectance, labels and context while a scene is being painted."""

    rng: np.random.Generator
    res_m: float
    refl: F32
    cover: NDArray[np.uint8]
    mask: NDArray[np.bool_]
    water: F32
    """Coverage of rivers/streams/oxbows: mines and clearings avoid it."""
    occupied: NDArray[np.bool_]
    """Pixels already holding a non-forest object."""
    slope_angle: F32
    """Downslope direction (radians, col axis towards row) of the terrain."""
    streams: list[F32] = field(default_factory=list)
    """Centre lines (N, 2) of rivers and streams, where mines settle."""
    stream_halfwidth_px: list[float] = field(default_factory=list)
    n_lookalikes: int = 0
    hard_lookalikes: bool = False
    """Paint the harder variants of look-alikes (see :func:`render_labelled_chip`)."""

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.refl.shape[1]), int(self.refl.shape[2]))

    def px(self, metres: float) -> float:
        """Convert metres to pixels."""
        return metres / self.res_m

    def texture(self, scale_m: float, amp: float) -> F32:
        """Multiplicative texture field 1 + amp * noise at the given scale."""
        return (1.0 + amp * _smooth_noise(self.rng, self.shape, max(self.px(scale_m), 0.6))).astype(
            np.float32
        )

    def paint(
        self,
        sl: tuple[slice, slice],
        alpha: F32,
        spectrum: F32,
        label: LandCover,
        *,
        mining: bool = False,
        occupy: bool = True,
    ) -> None:
        """Alpha-blend a spectrum ((4,) or (4, h, w)) into a window of the canvas."""
        spec = spectrum if spectrum.ndim == 3 else spectrum[:, None, None]
        window = self.refl[:, sl[0], sl[1]]
        window += alpha[None] * (spec - window)
        solid = alpha >= 0.5
        self.cover[sl][solid] = int(label)
        if mining:
            self.mask[sl] |= solid
        else:
            self.mask[sl] &= ~solid
        if occupy:
            self.occupied[sl] |= alpha > 0.2


def _jitter(rng: np.random.Generator, spectrum: F32, rel: float) -> F32:
    """A spectrum scaled by a common and a per-band random factor."""
    common = rng.uniform(1 - rel, 1 + rel)
    return (spectrum * common * rng.uniform(1 - rel / 2, 1 + rel / 2, 4)).astype(np.float32)


def _mix(rng: np.random.Generator, a: F32, b: F32) -> F32:
    """A random convex mix of two spectra."""
    t = float(rng.uniform())
    return (a * (1 - t) + b * t).astype(np.float32)


# --------------------------------------------------------------------------------------
# Landscape
# --------------------------------------------------------------------------------------
def _paint_forest(cv: _Canvas) -> None:
    """Closed canopy on hilly terrain: crowns, tone patches, relief shading, secondary forest."""
    rng = cv.rng
    shape = cv.shape
    h, w = shape
    # Terrain: fractal relief 0.4-1.5 km features; Lambertian-like shading from a sun in
    # the east (morning overpass), +-4-15 % brightness on slopes.
    dem = _fractal_noise(rng, shape, cv.px(rng.uniform(400, 1500)), octaves=5, persistence=0.6)
    gy, gx = np.gradient(dem)
    sun = rng.uniform(-0.6, 0.6) + math.pi  # shading from the east: light on east faces
    lit = gx * math.cos(sun) + gy * math.sin(sun)
    # Slope in m/m does not depend on the pixel size, so normalise the shading.
    relief = 1.0 + rng.uniform(0.04, 0.15) * lit / float(lit.std() or 1.0)
    relief = np.clip(relief, 0.7, 1.3)
    cv.slope_angle = np.arctan2(gy, gx).astype(np.float32)
    # Crowns ~8-25 m; shadows between crowns make a common multiplicative texture
    # (a few %), with weaker band-independent speckle.
    crown = _smooth_noise(rng, shape, cv.px(rng.uniform(8, 20)))
    crown_amp = rng.uniform(0.06, 0.12) * min(1.0, (10.0 / cv.res_m) ** 0.5 * 0.8)
    tone = _fractal_noise(rng, shape, cv.px(rng.uniform(300, 1200)), octaves=3)
    tone_amp = rng.uniform(0.02, 0.06)
    base = _jitter(rng, _FOREST, 0.12)
    bright = (relief * (1.0 + crown_amp * crown) * (1.0 + tone_amp * tone)).astype(np.float32)
    cv.refl[:] = base[:, None, None] * bright[None]
    # Band-specific tone (greener / browner canopy patches: phenology, species).
    for b in range(4):
        cv.refl[b] *= 1.0 + 0.03 * _smooth_noise(rng, shape, cv.px(600))
    # Secondary forest patches: smoother, brighter in green and NIR.
    if rng.uniform() < 0.55:
        patches = _fractal_noise(rng, shape, cv.px(rng.uniform(150, 500)), octaves=3)
        thr = np.quantile(patches, 1.0 - rng.uniform(0.03, 0.2))
        alpha = np.clip((patches - thr) * 3.0, 0, 1).astype(np.float32)
        spec = _jitter(rng, _SECONDARY, 0.1)[:, None, None] * np.asarray(relief)[None]
        cv.paint(
            (slice(0, h), slice(0, w)),
            alpha,
            spec.astype(np.float32),
            LandCover.SECONDARY_FOREST,
            occupy=False,
        )
    if rng.uniform() < 0.2:
        wet = _fractal_noise(rng, shape, cv.px(rng.uniform(200, 600)), octaves=3)
        thr = np.quantile(wet, 1.0 - rng.uniform(0.02, 0.12))
        alpha = np.clip((wet - thr) * 2.0, 0, 1).astype(np.float32)
        spec = _jitter(rng, _WETLAND, 0.1)[:, None, None] * cv.texture(30, 0.08)[None]
        cv.paint(
            (slice(0, h), slice(0, w)),
            alpha,
            spec.astype(np.float32),
            LandCover.WETLAND,
            occupy=False,
        )


def _paint_rivers(cv: _Canvas, n_rivers: int, n_streams: int) -> None:
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
        pts, theta = _meander_path(rng, cv.shape, max(lam, 8.0), rng.uniform(0.6, 1.9), hw + 2)
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
        spec = _jitter(rng, _RIVER_TURBID if turbid else _RIVER_BLACK, 0.15)
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
        pts, _theta = _meander_path(
            rng, cv.shape, cv.px(rng.uniform(150, 500)), rng.uniform(0.3, 1.0), 2
        )
        if len(pts) < 4:
            continue
        lines.append((pts, np.full(len(pts), hw, np.float32)))
        kinds.append((LandCover.STREAM, _jitter(rng, _mix(rng, _RIVER_BLACK, _OXBOW_GREEN), 0.2)))
        cv.streams.append(pts)
        cv.stream_halfwidth_px.append(hw)
    cov, line_idx, _pt = _line_coverage(cv.shape, lines)
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


def _paint_bars_and_oxbows(cv: _Canvas, pts: F32, theta: F32, hw: float) -> None:
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
            win = _window(cv.shape, centre, a_px + 2)
            if win is not None:
                rs, cs, rr, cc = win
                alpha = _ellipse_alpha(rr, cc, centre, a_px, b_px, th)
                alpha *= np.clip(1.0 + 0.4 * _smooth_noise(rng, alpha.shape, 2.0), 0, 1)
                # Damp bars are as listed; dry white quartz beaches up to ~2x brighter,
                # as bright as fresh tailings in the visible (the hardest look-alike).
                top = 2.0 if cv.hard_lookalikes else 1.6
                spec = _jitter(rng, _SANDBAR, 0.12) * float(rng.uniform(0.9, top))
                cv.paint((rs, cs), alpha, spec, LandCover.SANDBAR)
        if rng.uniform() < p_ox:
            r_ox = radius * rng.uniform(0.7, 1.3) + hw
            dist = radius + 2 * hw + r_ox * rng.uniform(0.6, 1.4)
            centre = (float(p[0] - inner[0] * dist), float(p[1] - inner[1] * dist))
            win = _window(cv.shape, centre, r_ox + hw + 2)
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
            spec = _jitter(rng, _mix(rng, _OXBOW_DARK, _OXBOW_GREEN), 0.15)
            cv.paint((rs, cs), alpha, spec, LandCover.OXBOW)
            cv.water[rs, cs] = np.maximum(cv.water[rs, cs], alpha)


def _paint_roads(cv: _Canvas, n_roads: int) -> None:
    """Laterite roads 5-15 m wide, with a grassy cleared verge."""
    rng = cv.rng
    verge: list[tuple[F32, F32]] = []
    road: list[tuple[F32, F32]] = []
    for _ in range(n_roads):
        pts, _theta = _meander_path(
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
    cov_v, _, _ = _line_coverage(cv.shape, verge)
    cv.paint(
        full, cov_v * 0.6, _jitter(rng, _mix(rng, _PASTURE, _PASTURE_DRY), 0.1), LandCover.PASTURE
    )
    cov_r, _, _ = _line_coverage(cv.shape, road)
    spec = _jitter(rng, _LATERITE, 0.15)[:, None, None] * cv.texture(40, 0.08)[None]
    cv.paint(full, cov_r, spec.astype(np.float32), LandCover.ROAD)
    cv.n_lookalikes += len(road)


def _polygon_alpha(
    cv: _Canvas,
    centre: tuple[float, float],
    size_px: tuple[float, float],
    angle: float,
    roughness: float,
) -> tuple[tuple[slice, slice], F32] | None:
    """A rotated rectangle-ish field (superellipse) with noisy edges."""
    rng = cv.rng
    a, b = size_px
    win = _window(cv.shape, centre, math.hypot(a, b) + 2)
    if win is None:
        return None
    rs, cs, rr, cc = win
    dr, dc = rr - centre[0], cc - centre[1]
    u = (dc * math.cos(angle) + dr * math.sin(angle)) / max(a, 0.5)
    v = (-dc * math.sin(angle) + dr * math.cos(angle)) / max(b, 0.5)
    p = rng.uniform(2.0, 8.0)  # superellipse exponent: rounded to nearly rectangular
    rho = (np.abs(u) ** p + np.abs(v) ** p) ** (1.0 / p)
    edge = roughness * _smooth_noise(rng, rr.shape, max(min(a, b) / 3, 1.0))
    alpha = np.clip((1.0 - rho + edge) * min(a, b) + 0.5, 0, 1).astype(np.float32)
    return (rs, cs), alpha


def _random_point(cv: _Canvas, avoid_water: bool = True) -> tuple[float, float]:
    h, w = cv.shape
    for _ in range(20):
        r, c = float(cv.rng.uniform(0, h)), float(cv.rng.uniform(0, w))
        if not avoid_water or cv.water[int(r), int(c)] < 0.1:
            return r, c
    return r, c


def _paint_clearings(cv: _Canvas, n: int) -> None:
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
            spec = _jitter(rng, _mix(rng, _BARE_CLEARING, _PASTURE_DRY), 0.12)
            tex = cv.texture(rng.uniform(15, 60), 0.12)[sl]
            label = LandCover.BARE_CLEARING
            cv.n_lookalikes += 1
        else:
            spec = _jitter(rng, _mix(rng, _PASTURE, _PASTURE_DRY), 0.1)
            tex = cv.texture(rng.uniform(20, 120), 0.06)[sl]
            label = LandCover.PASTURE
        cv.paint(sl, alpha, (spec[:, None, None] * tex[None]).astype(np.float32), label)
        if not bare and rng.uniform() < 0.5:  # remnant trees and scrub in the pasture
            trees = _smooth_noise(rng, alpha.shape, cv.px(20)) > rng.uniform(1.0, 2.0)
            cv.paint(
                sl, (trees * alpha).astype(np.float32), _FOREST, LandCover.FOREST, occupy=False
            )


def _paint_village(cv: _Canvas) -> None:
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
        _smooth_noise(rng, alpha.shape, cv.px(30))[None] > 0,
        _jitter(rng, _LATERITE, 0.1)[:, None, None],
        _jitter(rng, _PASTURE_DRY, 0.1)[:, None, None],
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
    spec = _mix(rng, _ROOF_METAL, _ROOF_CLAY)
    cv.paint(sl, roofs.astype(np.float32), spec, LandCover.VILLAGE)
    cv.n_lookalikes += 1


def _paint_aquaculture(cv: _Canvas) -> None:
    """A grid of regular rectangular fish ponds (green water) with levees."""
    rng = cv.rng
    nx, ny = int(rng.integers(1, 5)), int(rng.integers(1, 4))
    pa, pb = cv.px(rng.uniform(30, 120)), cv.px(rng.uniform(25, 80))
    levee = max(cv.px(rng.uniform(5, 12)), 0.6)
    centre = _random_point(cv)
    ang = rng.uniform(0, math.pi)
    ext_a, ext_b = nx * pa / 2, ny * pb / 2
    win = _window(cv.shape, centre, math.hypot(ext_a, ext_b) + levee * 4 + 2)
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
        _jitter(rng, _mix(rng, _PASTURE_DRY, _LATERITE), 0.1),
        LandCover.AQUACULTURE,
    )
    du = np.minimum(np.mod(u, pa), pa - np.mod(u, pa))
    dv = np.minimum(np.mod(v, pb), pb - np.mod(v, pb))
    inner = (u > 0) & (u < 2 * ext_a) & (v > 0) & (v < 2 * ext_b)
    pond = np.clip(np.minimum(du, dv) - levee / 2 + 0.5, 0, 1) * inner
    spec = _jitter(rng, _AQUA_WATER if rng.uniform() < 0.7 else _RIVER_TURBID, 0.15)
    cv.paint((rs, cs), pond.astype(np.float32), spec, LandCover.AQUACULTURE)
    cv.n_lookalikes += 1


def _paint_landslide(cv: _Canvas) -> None:
    """An elongated bare scar down a slope, tapering towards the toe; no ponds."""
    rng = cv.rng
    length = cv.px(rng.uniform(80, 600))
    width = length * rng.uniform(0.12, 0.35)
    centre = _random_point(cv)
    ang = float(cv.slope_angle[int(centre[0]), int(centre[1])])
    win = _window(cv.shape, centre, length + 2)
    if win is None:
        return
    rs, cs, rr, cc = win
    dr, dc = rr - centre[0], cc - centre[1]
    u = (dc * math.cos(ang) + dr * math.sin(ang)) / length  # -1 head .. +1 toe
    v = (-dc * math.sin(ang) + dr * math.cos(ang)) / max(width, 0.7)
    half = 0.5 + 0.5 * np.clip(1 - u, 0, 2) / 2  # wide head, narrow toe
    edge = 0.25 * _smooth_noise(rng, rr.shape, max(width / 2, 1))
    alpha = np.clip(
        (np.minimum(1 - np.abs(u), half - np.abs(v)) + edge) * max(width, 1) + 0.5, 0, 1
    )
    spec = _jitter(rng, _mix(rng, _LANDSLIDE, _LATERITE), 0.12)[:, None, None]
    tex = 1.0 + 0.1 * _smooth_noise(rng, rr.shape, cv.px(15))
    cv.paint(
        (rs, cs),
        alpha.astype(np.float32),
        (spec * tex[None]).astype(np.float32),
        LandCover.LANDSLIDE,
    )
    cv.n_lookalikes += 1


def _build_landscape(
    rng: np.random.Generator,
    shape: tuple[int, int],
    res_m: float,
    *,
    hard_lookalikes: bool = False,
) -> _Canvas:
    """Paint forest, water and every look-alike; no mines and no atmosphere yet."""
    h, w = shape
    cv = _Canvas(
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
    _paint_rivers(cv, n_rivers, n_streams)
    _paint_clearings(cv, int(rng.poisson(0.9 * k)))
    if rng.uniform() < min(0.4 * k, 0.9):
        _paint_aquaculture(cv)
    for _ in range(int(rng.poisson(0.25 * k))):
        _paint_landslide(cv)
    _paint_roads(cv, int(rng.poisson(0.5 * k**0.5)))
    if rng.uniform() < min(0.25 * k, 0.9):
        _paint_village(cv)
    return cv


def _add_lookalike(cv: _Canvas) -> None:
    """Force one hard negative into a chip that drew none."""
    choice = int(cv.rng.integers(6))
    if choice == 0:
        _paint_rivers(cv, 1, 0)
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


# --------------------------------------------------------------------------------------
# Mining sites
# --------------------------------------------------------------------------------------
@dataclass
class _Site:
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


def _build_site(
    cv: _Canvas,
    area_ha: float,
    centre: tuple[float, float],
    path: F32 | None,
    path_hw_px: float = 0.0,
    max_cell_m: float = 110.0,
    max_elong: float = 5.0,
) -> _Site | None:
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
    wr = rr + warp * _smooth_noise(rng, shape, max(cell / 2, 1.0))
    wc = cc + warp * _smooth_noise(rng, shape, max(cell / 2, 1.0))
    coords = np.stack([wr.ravel(), wc.ravel()], axis=1).astype(np.float64)
    d, idx = cKDTree(seeds).query(coords, k=2)
    d1 = d[:, 0].reshape(shape).astype(np.float32)
    d2 = d[:, 1].reshape(shape).astype(np.float32)
    owner = idx[:, 0].reshape(shape)
    # Footprint: pixels within ~0.75 cell of their seed, with a noisy, moth-eaten edge.
    edge_noise = _smooth_noise(rng, shape, max(cell / 2.5, 1.0))
    ragged = _smooth_noise(rng, shape, max(cell / 5, 1.5))
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
    t1 = _smooth_noise(rng, shape, max(cv.px(30), 1.0))
    t2 = _smooth_noise(rng, shape, max(cv.px(15), 0.8))
    sand_a = _jitter(rng, _mix(rng, _TAILINGS_BEIGE, _TAILINGS_PINK), 0.12)
    sand_b = _jitter(rng, _mix(rng, _TAILINGS_PALE, _LATERITE), 0.12)
    w_ab = np.clip(0.5 + 0.5 * t1, 0, 1)[None]
    ground = sand_a[:, None, None] * w_ab + sand_b[:, None, None] * (1 - w_ab)
    ground *= (1.0 + 0.12 * t2)[None]
    cell_tone = rng.uniform(0.75, 1.2, n_seeds).astype(np.float32)
    ground *= cell_tone[owner][None]
    mud = (kind[owner] == 2)[None]
    ground = np.where(
        mud, _jitter(rng, _MUD_WET, 0.15)[:, None, None] * (1 + 0.1 * t2)[None], ground
    )
    regrowth = (kind[owner] == 3) & (t2 > -0.8)
    # Regrowth on old tailings: sparse grass and shrubs, 40-80 % cover over the sand.
    cover = float(rng.uniform(0.4, 0.8))
    grass = _mix(rng, _REGROWTH, _PASTURE)[:, None, None]
    ground = np.where(regrowth[None], cover * grass + (1 - cover) * ground, ground)
    # Ponds: the cell interior beyond a berm (4 m up to a third of the cell, per cell,
    # with a wobbly shoreline); one water colour per cell.
    berm = np.maximum(cell * rng.uniform(0.03, 0.25, n_seeds), cv.px(3))[owner]
    interior = np.minimum((d2 - d1) / 2, cutoff - d1) + cell * 0.12 * t2
    pond_a = np.clip(interior - berm + 0.5, 0, 1) * (kind[owner] == 0)
    colours = _POND_PALETTE[rng.choice(len(_POND_PALETTE), n_seeds, p=_POND_WEIGHTS)]
    colours = (
        colours * rng.uniform(0.85, 1.15, (n_seeds, 1)) * rng.uniform(0.93, 1.07, (n_seeds, 4))
    ).astype(np.float32)
    pond_spec = colours[owner].transpose(2, 0, 1) * (1.0 + 0.05 * t1)[None]
    spectrum = (ground * (1 - pond_a[None]) + pond_spec * pond_a[None]).astype(np.float32)
    inside = rank >= 0
    counts = np.bincount(rank[inside & (alpha >= 0.5)], minlength=n_seeds)
    return _Site(
        sl=sl,
        spectrum=spectrum,
        alpha=alpha,
        rank=rank,
        cum_area_px=np.cumsum(counts).astype(np.int64),
        pond=(pond_a >= 0.5) & inside,
    )


def _paint_site(cv: _Canvas, site: _Site, n_cells: int) -> int:
    """Paint the first ``n_cells`` cells of a site; return its mask pixel count."""
    on = (site.rank >= 0) & (site.rank < n_cells)
    alpha = (site.alpha * on).astype(np.float32)
    cv.paint(site.sl, alpha, site.spectrum, LandCover.MINE_GROUND, mining=True)
    cv.cover[site.sl][site.pond & on & (alpha >= 0.5)] = int(LandCover.MINE_POND)
    return int((alpha >= 0.5).sum())


def _pick_stream_point(
    cv: _Canvas,
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


# --------------------------------------------------------------------------------------
# Atmosphere and sensor
# --------------------------------------------------------------------------------------
def _add_haze(cv: _Canvas, strength: float) -> None:
    """Additive low-frequency path radiance, strongest in blue (Rayleigh + aerosol)."""
    if strength <= 0:
        return
    field_ = np.clip(
        0.6 + 0.5 * _smooth_noise(cv.rng, cv.shape, cv.px(cv.rng.uniform(1500, 5000))), 0, 2
    )
    # Relative weights ~ lambda^-1.5 (aerosol-dominated), normalised at blue.
    for b, weight in enumerate((1.0, 0.65, 0.42, 0.2)):
        cv.refl[b] += strength * weight * field_


def _cloud_layers(
    rng: np.random.Generator,
    shape: tuple[int, int],
    res_m: float,
    fraction: float,
    shadow_offset_px: tuple[float, float],
) -> tuple[F32, F32, NDArray[np.bool_]]:
    """Fractal cumulus clouds, their displaced shadows and a dilated cloud+shadow mask.

    The cloud threshold is lowered step by step until the mask covers at most
    ``fraction`` of the scene.
    """
    h, w = shape
    oy, ox = shadow_offset_px
    pad_r, pad_c = int(abs(oy)) + 2, int(abs(ox)) + 2
    big = (h + 2 * pad_r, w + 2 * pad_c)
    base = _fractal_noise(
        rng, big, max(rng.uniform(400, 1500) / res_m, 2.0), octaves=5, persistence=0.55
    )
    thick = _smooth_noise(rng, big, max(200 / res_m, 1.0))
    cloud = np.zeros(shape, np.float32)
    shadow = np.zeros(shape, np.float32)
    mask = np.zeros(shape, np.bool_)
    if fraction <= 0:
        return cloud, shadow, mask
    soft = 0.35
    target = fraction
    dil = np.ones((3, 3), bool)
    for _ in range(12):
        thr = float(np.quantile(base, 1.0 - target))
        full = np.clip((base - thr) / soft, 0, 1) ** 0.8
        cloud = full[pad_r : pad_r + h, pad_c : pad_c + w]
        sr, sc = pad_r - round(oy), pad_c - round(ox)
        shadow = full[sr : sr + h, sc : sc + w] * (1 - cloud)
        mask = ndimage.binary_dilation((cloud > 0.03) | (shadow > 0.05), dil, iterations=2)
        got = float(mask.mean())
        if got <= fraction:
            break
        target *= max(0.5, 0.95 * fraction / got)
    cloud_t = (thick[pad_r : pad_r + h, pad_c : pad_c + w]).astype(np.float32)
    return (
        (cloud * (0.7 + 0.3 * np.tanh(cloud_t))).astype(np.float32),
        shadow.astype(np.float32),
        mask,
    )


def _apply_clouds(cv: _Canvas, cloud: F32, shadow: F32) -> None:
    """Darken shadows by 50-70 % and blend in bright clouds (0.3-0.8 reflectance)."""
    rng = cv.rng
    cv.refl *= (1.0 - rng.uniform(0.5, 0.7) * shadow)[None]
    brightness = 0.3 + 0.5 * np.clip(cloud, 0, 1)
    for b, tint in enumerate((1.04, 1.02, 1.0, 0.96)):
        cv.refl[b] += np.clip(cloud, 0, 1) * (brightness * tint - cv.refl[b])


def _apply_sensor(cv: _Canvas) -> F32:
    """Per-scene gain/offset (+-5-10 %), MTF blur, Gaussian noise; clip to (0, 1]."""
    rng = cv.rng
    gain = rng.uniform(0.93, 1.07) * rng.uniform(0.97, 1.03, 4)
    offset = rng.uniform(-0.003, 0.003, 4)
    sigma = rng.uniform(0.35, 0.6)  # S2 MTF at Nyquist ~0.3 (ESA S2 MSI user guide)
    noise = rng.uniform(0.002, 0.005)
    out = np.empty_like(cv.refl)
    for b in range(4):
        band = ndimage.gaussian_filter(cv.refl[b], sigma) * gain[b] + offset[b]
        out[b] = band + rng.standard_normal(cv.shape, dtype=np.float32) * noise
    return np.clip(out, 1e-4, 1.0).astype(np.float32)


# --------------------------------------------------------------------------------------
# Training chips
# --------------------------------------------------------------------------------------
def render_labelled_chip(
    rng: np.random.Generator,
    size_px: int = 256,
    resolution_m: float = 10.0,
    mining_probability: float = 0.6,
    *,
    hard_lookalikes: bool = False,
) -> LabelledChip:
    """Draw one clear-sky chip with its mining mask and per-pixel land cover.

    The same draws as :func:`render_training_pair`, which returns only the first two.

    Args:
        rng: Source of all randomness.
        size_px: Chip height and width in pixels.
        resolution_m: Pixel size in metres (10 for Sentinel-2, 3 for PlanetScope).
        mining_probability: Chance that the chip holds at least one mining site.
        hard_lookalikes: Harder negatives: dry white sandbars up to 2x (not 1.6x) the
            damp-bar reflectance, as bright as tailings, and cloud remnants/edges in 15 %
            (not 8 %) of chips. Same number of random draws either way.

    Returns:
        The chip.

    Raises:
        ValueError: If ``size_px`` < 8, ``resolution_m`` <= 0 or the probability is
            outside 0..1.
    """
    if size_px < 8:
        raise ValueError(f"size_px must be >= 8, got {size_px}; pass a larger chip size.")
    if not resolution_m > 0:
        raise ValueError(f"resolution_m must be > 0 metres, got {resolution_m}.")
    if not 0.0 <= mining_probability <= 1.0:
        raise ValueError(f"mining_probability must be within 0..1, got {mining_probability}.")
    shape = (size_px, size_px)
    cv = _build_landscape(rng, shape, resolution_m, hard_lookalikes=hard_lookalikes)
    has_mining = rng.uniform() < mining_probability
    if not has_mining and cv.n_lookalikes == 0:
        _add_lookalike(cv)
    if has_mining:
        chip_ha = size_px * size_px * resolution_m**2 / 1e4
        n_sites = 1 + int(rng.poisson(0.4))
        avoid: list[tuple[float, float, float]] = []
        painted = 0
        for i in range(n_sites):
            hi = max(min(60.0, 0.3 * chip_ha), 0.6)
            area = float(np.exp(rng.uniform(math.log(min(1.0, hi / 2)), math.log(hi))))
            radius = cv.px(math.sqrt(area * 1e4) * 0.6)
            got = _pick_stream_point(cv, 0.0, avoid, radius, along_stream=rng.uniform() < 0.8)
            if got is None:
                continue
            centre, path, hw = got
            site = _build_site(cv, area, centre, path, hw)
            if site is None:
                continue
            n = _paint_site(cv, site, len(site.cum_area_px))
            painted += n
            avoid.append((centre[0], centre[1], radius))
            if painted == 0 and i == n_sites - 1:
                n_sites += 1  # keep going until one site shows
                if n_sites > 6:
                    break
    if rng.uniform() < 0.6:
        _add_haze(cv, float(rng.uniform(0.0, 0.03)))
    # A faint cloud remnant or cloud edge left by the median composite.
    if rng.uniform() < (0.15 if hard_lookalikes else 0.08):
        offset = (cv.px(rng.uniform(-800, 800)), cv.px(rng.uniform(-800, 800)))
        cloud, shadow, _ = _cloud_layers(rng, shape, resolution_m, rng.uniform(0.02, 0.15), offset)
        _apply_clouds(cv, cloud * rng.uniform(0.15, 0.5), shadow * 0.3)
    refl = _apply_sensor(cv)
    return LabelledChip(reflectance=refl, mining_mask=cv.mask.copy(), land_cover=cv.cover)


def render_training_pair(
    rng: np.random.Generator,
    size_px: int = 256,
    resolution_m: float = 10.0,
    mining_probability: float = 0.6,
    *,
    hard_lookalikes: bool = False,
) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """One clear-sky (cloud-free, like a median composite; may have light haze) chip.

    With probability ``mining_probability`` it contains >= 1 mining site; every chip
    has random natural context and look-alikes (rivers, sandbars, oxbows, roads,
    clearings, villages, aquaculture, landslides, haze), so chips without mining are
    hard negatives.

    Args:
        rng: Source of all randomness; the same generator state gives the same chip.
        size_px: Chip height and width in pixels.
        resolution_m: Pixel size in metres (10 for Sentinel-2, 3 for PlanetScope).
        mining_probability: Chance that the chip holds at least one mining site.
        hard_lookalikes: Harder negatives (see :func:`render_labelled_chip`).

    Returns:
        (reflectance (4, H, W) float32 in (0, 1], band order blue, green, red, nir;
        mining mask (H, W) bool: ponds, tailings and disturbed ground of mines).

    Raises:
        ValueError: On a chip size < 8, a pixel size <= 0 or a probability outside 0..1.

    Example:
        >>> import numpy as np
        >>> refl, mask = render_training_pair(np.random.default_rng(0), size_px=64)
        >>> refl.shape, mask.shape
        ((4, 64, 64), (64, 64))
    """
    chip = render_labelled_chip(
        rng, size_px, resolution_m, mining_probability, hard_lookalikes=hard_lookalikes
    )
    return chip.reflectance, chip.mining_mask


# --------------------------------------------------------------------------------------
# Scene series
# --------------------------------------------------------------------------------------
@dataclass
class _PlannedSite:
    site_id: str
    design: Literal["static", "growing", "new"]
    site: _Site
    cells_by_date: list[int]


def _cells_for_area(site: _Site, area_px: float) -> int:
    """Smallest number of cells whose mined pixels reach ``area_px``."""
    k = int(np.searchsorted(site.cum_area_px, area_px))
    return min(k + 1, len(site.cum_area_px))


def _plan_sites(
    cv: _Canvas,
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
        _paint_rivers(cv, 0, len(designs) // 2 + 1 - len(cv.streams))
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
    placed: dict[int, tuple[_Site, int, int]] = {}
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
    cv: _Canvas,
    design: Literal["static", "growing", "new"],
    first_ha: float,
    ratio: float,
    avoid: list[tuple[float, float, float]],
    sep_px: float,
    min_px: float,
    px_ha: float,
) -> tuple[_Site, int, int]:
    """Build one truth site clear of the others; return it, first and last cell counts."""
    h, w = cv.shape
    # Fallbacks: the smallest size, then compact, then off the streams.
    tries = [(first_ha, 3.0, True), (min_px / px_ha * 1.2, 2.0, True)]
    tries.append((min_px / px_ha * 1.2, 1.5, False))
    for first_ha, max_elong, on_stream in tries:
        final_ha = first_ha * ratio
        radius = cv.px(math.sqrt(final_ha * 1e4)) + cv.px(40)
        for _retry in range(25):
            got = _pick_stream_point(
                cv, radius * 0.6, avoid, radius, on_stream, min_sep_px=sep_px, best_of=6
            )
            if got is None:
                break
            centre, path, hw = got
            site = _build_site(
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


def _is_inside(site: _Site, shape: tuple[int, int]) -> bool:
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
    cv = _build_landscape(rng, shape, res)
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
            n_px = _paint_site(cv, p.site, p.cells_by_date[t])
            areas[p.site_id][day.isoformat()] = round(n_px * grid.pixel_area_ha, 4)
        truth = cv.mask.copy()
        day_rng = np.random.default_rng([seed, t + 1])
        cv.rng = day_rng
        _add_haze(cv, float(day_rng.uniform(0.0, 0.008)))
        fraction = float(day_rng.uniform(0.0, max_cloud_fraction))
        cloud, shadow, cmask = _cloud_layers(day_rng, shape, res, fraction, shadow_offset)
        _apply_clouds(cv, cloud, shadow)
        refl = _apply_sensor(cv)
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
