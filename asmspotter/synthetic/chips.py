"""Training chips: one clear-sky chip with its mining mask (and land cover of every pixel)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from asmspotter.synthetic.atmosphere import add_haze, apply_clouds, apply_sensor, cloud_layers
from asmspotter.synthetic.landscape import add_lookalike, build_landscape
from asmspotter.synthetic.mines import build_site, paint_site, pick_stream_point
from asmspotter.synthetic.spectra import F32


@dataclass(frozen=True)
class LabelledChip:
    """A training chip with the class of every pixel."""

    reflectance: F32
    """(4, H, W) float32 surface reflectance in (0, 1], bands blue, green, red, nir."""
    mining_mask: NDArray[np.bool_]
    """(H, W) True on mining ponds, tailings and disturbed ground."""
    land_cover: NDArray[np.uint8]
    """(H, W) :class:`LandCover` code of the cover painted last with weight >= 0.5."""


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
    cv = build_landscape(rng, shape, resolution_m, hard_lookalikes=hard_lookalikes)
    has_mining = rng.uniform() < mining_probability
    if not has_mining and cv.n_lookalikes == 0:
        add_lookalike(cv)
    if has_mining:
        chip_ha = size_px * size_px * resolution_m**2 / 1e4
        n_sites = 1 + int(rng.poisson(0.4))
        avoid: list[tuple[float, float, float]] = []
        painted = 0
        for i in range(n_sites):
            hi = max(min(60.0, 0.3 * chip_ha), 0.6)
            area = float(np.exp(rng.uniform(math.log(min(1.0, hi / 2)), math.log(hi))))
            radius = cv.px(math.sqrt(area * 1e4) * 0.6)
            got = pick_stream_point(cv, 0.0, avoid, radius, along_stream=rng.uniform() < 0.8)
            if got is None:
                continue
            centre, path, hw = got
            site = build_site(cv, area, centre, path, hw)
            if site is None:
                continue
            n = paint_site(cv, site, len(site.cum_area_px))
            painted += n
            avoid.append((centre[0], centre[1], radius))
            if painted == 0 and i == n_sites - 1:
                n_sites += 1  # keep going until one site shows
                if n_sites > 6:
                    break
    if rng.uniform() < 0.6:
        add_haze(cv, float(rng.uniform(0.0, 0.03)))
    # A faint cloud remnant or cloud edge left by the median composite.
    if rng.uniform() < (0.15 if hard_lookalikes else 0.08):
        offset = (cv.px(rng.uniform(-800, 800)), cv.px(rng.uniform(-800, 800)))
        cloud, shadow, _ = cloud_layers(rng, shape, resolution_m, rng.uniform(0.02, 0.15), offset)
        apply_clouds(cv, cloud * rng.uniform(0.15, 0.5), shadow * 0.3)
    refl = apply_sensor(cv)
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
