"""Atmosphere and sensor: haze, clouds and their shadows, noise and gain jitter."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from asmspotter.synthetic.canvas import Canvas
from asmspotter.synthetic.primitives import fractal_noise, smooth_noise
from asmspotter.synthetic.spectra import F32


def add_haze(cv: Canvas, strength: float) -> None:
    """Additive low-frequency path radiance, strongest in blue (Rayleigh + aerosol)."""
    if strength <= 0:
        return
    field_ = np.clip(
        0.6 + 0.5 * smooth_noise(cv.rng, cv.shape, cv.px(cv.rng.uniform(1500, 5000))), 0, 2
    )
    # Relative weights ~ lambda^-1.5 (aerosol-dominated), normalised at blue.
    for b, weight in enumerate((1.0, 0.65, 0.42, 0.2)):
        cv.refl[b] += strength * weight * field_


def cloud_layers(
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
    base = fractal_noise(
        rng, big, max(rng.uniform(400, 1500) / res_m, 2.0), octaves=5, persistence=0.55
    )
    thick = smooth_noise(rng, big, max(200 / res_m, 1.0))
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


def apply_clouds(cv: Canvas, cloud: F32, shadow: F32) -> None:
    """Darken shadows by 50-70 % and blend in bright clouds (0.3-0.8 reflectance)."""
    rng = cv.rng
    cv.refl *= (1.0 - rng.uniform(0.5, 0.7) * shadow)[None]
    brightness = 0.3 + 0.5 * np.clip(cloud, 0, 1)
    for b, tint in enumerate((1.04, 1.02, 1.0, 0.96)):
        cv.refl[b] += np.clip(cloud, 0, 1) * (brightness * tint - cv.refl[b])


def apply_sensor(cv: Canvas) -> F32:
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
