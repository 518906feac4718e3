"""A spectral rule baseline for mining detection: NDWI, NDVI and brightness, no training.

Artisanal gold mines are clusters of sediment-laden ponds in bare, bright tailings.
:func:`baseline_score` flags the two ingredients with fixed thresholds

- turbid water: NDWI > -0.1 and red reflectance > 0.05 (suspended sediment raises red;
  clear and blackwater rivers stay below),
- bare bright ground: NDVI < 0.35 and mean visible reflectance > 0.08,

and keeps a candidate pixel only where both ingredients occur within about 150 m
(ponds next to tailings), which is the rule-of-thumb an analyst applies by eye. The
score is the share of candidate pixels in a 3x3 window, so it can be thresholded and
drawn as a PR curve like the U-Net's probability. It is what the U-Net must beat
(``asmspotter model evaluate`` reports both; :mod:`asmspotter.detect.evaluate`).
Sandbars next to turbid rivers satisfy the same rule, which is exactly why a rule
is not enough.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

BASELINE_NAME = "spectral-baseline"
"""Name of the baseline detector in evaluations and model cards."""

TURBID_NDWI_MIN = -0.1
"""Turbid water: NDWI above this (water and wet mud are > 0; -0.1 admits shallow ponds)."""
TURBID_RED_MIN = 0.05
"""Turbid water: red reflectance above this (suspended sediment)."""
BARE_NDVI_MAX = 0.35
"""Bare ground: NDVI below this (forest is > 0.7, pasture ~0.5)."""
BARE_BRIGHTNESS_MIN = 0.08
"""Bare ground: mean of blue, green, red reflectance above this."""
CONTEXT_M = 150.0
"""Turbid water and bare ground must both occur within this distance, metres."""


def _normalised_difference(a: NDArray[np.float32], b: NDArray[np.float32]) -> NDArray[np.float32]:
    total = a + b
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(total != 0, (a - b) / np.where(total != 0, total, 1.0), 0.0)
    return out.astype(np.float32)


def baseline_score(
    reflectance: NDArray[np.floating], resolution_m: float = 10.0
) -> NDArray[np.float32]:
    """Score every pixel of a reflectance image with the spectral mining rule.

    Example: a forest image scores 0 everywhere; a turbid pond (NDWI > 0, red 0.09)
    ringed by tailings (NDVI 0.1, brightness 0.18) scores 1 inside.

    Args:
        reflectance: (4, H, W) reflectance 0..1 in blue, green, red, nir order; NaN
            pixels score 0.
        resolution_m: Pixel size in metres (sets the context window).

    Returns:
        (H, W) float32 score in [0, 1]; 0.5 is the rule's own cut-off.

    Raises:
        ValueError: If the array is not (4, H, W) or ``resolution_m`` <= 0.
    """
    refl = np.asarray(reflectance, dtype=np.float32)
    if refl.ndim != 3 or refl.shape[0] != 4:
        raise ValueError(
            f"reflectance must be (4, H, W) blue, green, red, nir, got shape {refl.shape}."
        )
    if not resolution_m > 0:
        raise ValueError(f"resolution_m must be > 0 metres, got {resolution_m}.")
    finite = np.isfinite(refl).all(axis=0)
    refl = np.nan_to_num(refl, nan=0.0)
    blue, green, red, nir = refl
    ndwi = _normalised_difference(green, nir)
    ndvi = _normalised_difference(nir, red)
    turbid = (ndwi > TURBID_NDWI_MIN) & (red > TURBID_RED_MIN) & finite
    bare = (ndvi < BARE_NDVI_MAX) & ((blue + green + red) / 3 > BARE_BRIGHTNESS_MIN) & finite
    bare &= ~turbid
    size = max(3, round(2 * CONTEXT_M / resolution_m) | 1)
    near_turbid = ndimage.maximum_filter(turbid, size=size)
    near_bare = ndimage.maximum_filter(bare, size=size)
    candidate = (turbid & near_bare) | (bare & near_turbid)
    score = ndimage.uniform_filter(candidate.astype(np.float32), size=3)
    return np.where(finite, score, 0.0).astype(np.float32)
