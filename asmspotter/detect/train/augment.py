"""Augmentation of training chips: rotations, flips, brightness, haze, pixel-size jitter.

The texts :data:`AUGMENTATION` and :data:`RESOLUTION_JITTER` describe it in the card.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

AUGMENTATION = (
    "random 90-degree rotations and flips; brightness x U(0.8, 1.2); "
    "haze: blend with a blue-heavy veil, weight U(0, 0.15), half of the chips; "
    "ndwi/ndvi recomputed after jitter"
)

RESOLUTION_JITTER = (
    "; resolution jitter: half of the chips rescaled by U(0.8, 1.25) (bilinear, mask "
    "nearest) and cropped or reflect-padded back"
)

# A thin haze veil (blue, green, red, nir reflectance): scattering is strongest in blue.
_HAZE = (0.12, 0.11, 0.10, 0.08)


def _rescale(
    refl: torch.Tensor, mask: torch.Tensor, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Resample one chip by ``scale`` (a coarser or finer pixel) and crop/pad it back."""
    size = refl.shape[-1]
    new = max(8, round(size * scale))
    r = F.interpolate(refl[None], size=(new, new), mode="bilinear", align_corners=False)[0]
    m = F.interpolate(mask[None], size=(new, new), mode="nearest")[0]
    if new >= size:
        off = (new - size) // 2
        return r[:, off : off + size, off : off + size], m[:, off : off + size, off : off + size]
    pad = size - new
    before, after = pad // 2, pad - pad // 2
    r = F.pad(r[None], (before, after, before, after), mode="reflect")[0]
    m = F.pad(m[None], (before, after, before, after), mode="reflect")[0]
    return r, m


def augment(
    reflectance: torch.Tensor,
    masks: torch.Tensor,
    gen: torch.Generator,
    *,
    resolution_jitter: bool = False,
) -> Any:
    """Rotate/flip each chip with its mask, jitter brightness and haze (and pixel size).

    The random draws come from ``gen`` (a CPU generator) in a fixed order, so the result
    does not depend on the device the chips are on. Chips sharing a rotation and flip
    are transformed together (8 groups), not one by one.
    """
    n = reflectance.shape[0]
    device = reflectance.device
    ks = torch.randint(0, 4, (n,), generator=gen)
    flips = torch.rand(n, generator=gen).lt(0.5)
    scales = (0.8 + 0.45 * torch.rand(n, generator=gen)).tolist() if resolution_jitter else []
    jitter = torch.rand(n, generator=gen).lt(0.5).tolist() if resolution_jitter else []
    refl = torch.empty_like(reflectance)
    mask = torch.empty_like(masks)
    for k in range(4):
        for flip in (False, True):
            sel = torch.nonzero((ks == k) & (flips == flip))[:, 0]
            if not len(sel):
                continue
            sel = sel.to(device)
            r, m = reflectance[sel], masks[sel]
            if k:
                r, m = torch.rot90(r, k, dims=(2, 3)), torch.rot90(m, k, dims=(2, 3))
            if flip:
                r, m = torch.flip(r, dims=(3,)), torch.flip(m, dims=(3,))
            refl[sel], mask[sel] = r, m
    if resolution_jitter:
        for i in range(n):
            if jitter[i]:
                refl[i], mask[i] = _rescale(refl[i], mask[i], scales[i])
    gain = (0.8 + 0.4 * torch.rand(n, 1, 1, 1, generator=gen)).to(device)
    haze_weight = 0.15 * torch.rand(n, 1, 1, 1, generator=gen)
    haze_weight = (haze_weight * torch.rand(n, 1, 1, 1, generator=gen).lt(0.5)).to(device)
    haze = torch.tensor(_HAZE, dtype=refl.dtype, device=device)[None, :, None, None]
    refl = ((refl * gain) * (1 - haze_weight) + haze * haze_weight).clamp(0.0, 1.0)
    return refl, mask
