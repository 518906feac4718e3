"""Noise fields and shapes the painters draw with: noise, meanders, lines, ellipses."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from asmspotter.synthetic.spectra import F32


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale_px: float) -> F32:
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


def fractal_noise(
    rng: np.random.Generator,
    shape: tuple[int, int],
    scale_px: float,
    octaves: int = 4,
    persistence: float = 0.5,
) -> F32:
    """Sum of :func:`smooth_noise` octaves (scale halves, amplitude x persistence)."""
    total = np.zeros(shape, np.float32)
    amp = 1.0
    for k in range(octaves):
        total += amp * smooth_noise(rng, shape, max(scale_px / 2**k, 0.7))
        amp *= persistence
    return (total / float(total.std() or 1.0)).astype(np.float32)


def square_window(
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


def meander_path(
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


def line_coverage(
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


def ellipse_alpha(
    rr: F32, cc: F32, centre: tuple[float, float], a_px: float, b_px: float, angle: float
) -> F32:
    """Anti-aliased ellipse (semi-axes a along ``angle``, b across) on window coords."""
    dr, dc = rr - centre[0], cc - centre[1]
    u = dc * math.cos(angle) + dr * math.sin(angle)
    v = -dc * math.sin(angle) + dr * math.cos(angle)
    rho = np.sqrt((u / max(a_px, 0.5)) ** 2 + (v / max(b_px, 0.5)) ** 2)
    return np.clip((1.0 - rho) * min(a_px, b_px) + 0.5, 0.0, 1.0).astype(np.float32)
