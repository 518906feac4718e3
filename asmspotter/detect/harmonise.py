"""One radiometry for real chips of two kinds: L1C gallery chips and L2A composites.

The verifier learns from the Amazon Mining Watch gallery: L1C, top-of-atmosphere (TOA)
reflectance, stored as uint8 that saturates at 0.3. The pipeline composites L2A,
bottom-of-atmosphere (surface) reflectance. Over humid tropical forest the two differ
mostly by the atmosphere's path radiance, an additive veil that is strongest in blue
(haze), and by a transmittance a little below 1. Both are brought to one form in two
explicit steps:

1. :func:`l2a_to_gallery_rgb` turns L2A reflectance into what an L1C chip of the same
   place would store: ``toa = TRANSMITTANCE * boa + PATH_REFLECTANCE`` per band (a
   typical AOT550 0.1-0.2 tropical atmosphere), then the gallery's uint8 encoding.
2. :func:`network_input` removes what is left of the haze from either kind by dark-object
   subtraction (each band minus its 2nd percentile in the chip, the darkest forest
   canopy or shadow, capped at the haziest veil seen so a chip that is all bright
   tailings keeps its brightness) and scales to about unit range.

Training adds random veils and gains on top (see ``verifier_training``), so the model
does not depend on the exact atmosphere. ``benchmarks/synthetic_gallery.py`` uses the
same step 1 for generated scenes.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from asmspotter.detect.gallery import GALLERY_SCALE

PATH_REFLECTANCE = np.array([0.025, 0.035, 0.065], np.float32)
"""Path radiance of the gallery's atmosphere as reflectance, R, G, B order.

Calibrated on the gallery itself: the median dark object of its 11,557 chips (R 0.047,
G 0.076, B 0.088 TOA) minus what dense forest reflects at the surface in L2A (about
0.02, 0.04, 0.02) after :data:`TRANSMITTANCE`."""

TRANSMITTANCE = 0.95
"""Two-way transmittance of that atmosphere (surface signal reaching the sensor)."""

MAX_DARK = np.array([0.10, 0.12, 0.13], np.float32)
"""Largest dark-object offset subtracted, R, G, B: the 95th percentile of the gallery's
dark objects (hazier chips keep some veil rather than lose the brightness of a chip
that is all tailings)."""

DARK_PERCENTILE = 2.0
"""Percentile of a chip's pixels taken as its dark object."""


def l2a_to_gallery_rgb(
    red: NDArray[np.floating], green: NDArray[np.floating], blue: NDArray[np.floating]
) -> NDArray[np.uint8]:
    """L2A surface reflectance bands (H, W) -> (H, W, 3) uint8 RGB as an L1C gallery chip.

    NaN (never clear) pixels become 0, as masked pixels are in the gallery's composites.
    """
    boa = np.stack([red, green, blue], axis=-1).astype(np.float32)
    return encode_like_gallery(TRANSMITTANCE * boa + PATH_REFLECTANCE)


def encode_like_gallery(toa: NDArray[np.floating]) -> NDArray[np.uint8]:
    """(..., H, W, 3) TOA reflectance -> uint8 as the gallery's sheets store it.

    Saturates at :data:`GALLERY_SCALE`; NaN becomes 0. The inverse of
    :func:`gallery_reflectance` up to rounding.
    """
    encoded = np.clip(np.nan_to_num(toa, nan=0.0) / GALLERY_SCALE, 0.0, 1.0) * 255.0
    rgb: NDArray[np.uint8] = np.round(encoded).astype(np.uint8)
    return rgb


def gallery_reflectance(rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
    """(..., H, W, 3) uint8 gallery RGB -> (..., 3, H, W) float32 TOA reflectance."""
    refl = rgb.astype(np.float32) * (GALLERY_SCALE / 255.0)
    return np.moveaxis(refl, -1, -3)


def network_input(reflectance: NDArray[np.float32]) -> NDArray[np.float32]:
    """(N, 3, H, W) TOA reflectance R, G, B -> dehazed, scaled network input.

    Dark-object subtraction per chip and band (capped at :data:`MAX_DARK`), then
    divided by the gallery's saturation so values lie in about 0..1.
    """
    flat = reflectance.reshape(*reflectance.shape[:2], -1)
    dark = np.percentile(flat, DARK_PERCENTILE, axis=-1).astype(np.float32)
    dark = np.minimum(dark, MAX_DARK[None, :])
    out = (reflectance - dark[:, :, None, None]) / GALLERY_SCALE
    return np.ascontiguousarray(out, dtype=np.float32)
