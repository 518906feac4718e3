"""Training inputs: the model's bands from chip reflectance, and their normalisation.

:func:`reflectance_to_features` stacks the input bands (NDWI/NDVI computed as
inference computes them) from blue/green/red/nir chips; :func:`band_mean_std` gives
the training split's per-band statistics written to the card.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from numpy.typing import NDArray

REFLECTANCE_BANDS: tuple[str, ...] = ("blue", "green", "red", "nir")
"""Band order of :func:`asmspotter.synthetic.render_training_pair`'s reflectance."""


def reflectance_to_features(reflectance: torch.Tensor, bands: Sequence[str]) -> torch.Tensor:
    """Stack model input bands from (N, 4, H, W) blue/green/red/nir reflectance.

    NDWI and NDVI use the formula of :mod:`asmspotter.composite.indices`
    ((a - b) / (a + b), 0 where the sum is 0), so training sees what inference sees.

    Args:
        reflectance: (N, 4, H, W) float32 tensor, band order :data:`REFLECTANCE_BANDS`.
        bands: Output bands in order (reflectance bands, ``ndwi``, ``ndvi``).

    Returns:
        (N, len(bands), H, W) float32 tensor.

    Raises:
        ValueError: If a band is unknown.
    """
    layer = {name: reflectance[:, i] for i, name in enumerate(REFLECTANCE_BANDS)}

    def normalised_difference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        total = a + b
        return torch.where(total != 0, (a - b) / torch.where(total != 0, total, 1.0), 0.0)

    out = []
    for band in bands:
        if band in layer:
            out.append(layer[band])
        elif band == "ndwi":
            out.append(normalised_difference(layer["green"], layer["nir"]))
        elif band == "ndvi":
            out.append(normalised_difference(layer["nir"], layer["red"]))
        else:
            raise ValueError(
                f"cannot train on band {band!r}: the generated chips have "
                f"{list(REFLECTANCE_BANDS)} plus ndwi and ndvi."
            )
    return torch.stack(out, dim=1)


def features_in_chunks(
    reflectance: NDArray[np.float32], bands: Sequence[str], chunk: int = 64
) -> torch.Tensor:
    """:func:`reflectance_to_features` of a whole split, ``chunk`` chips at a time."""
    parts = [
        reflectance_to_features(torch.from_numpy(reflectance[i : i + chunk]), bands)
        for i in range(0, len(reflectance), chunk)
    ]
    return torch.cat(parts)


def band_mean_std(
    reflectance: NDArray[np.float32], bands: Sequence[str], chunk: int = 256
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-band mean and sample standard deviation (float64, std >= 1e-6) of the features.

    Chunk by chunk, merged with Chan et al.'s pairwise update, so memory stays at one
    chunk's features however many chips there are.
    """
    count = 0
    mean = torch.zeros(len(bands), dtype=torch.float64)
    m2 = torch.zeros(len(bands), dtype=torch.float64)
    for i in range(0, len(reflectance), chunk):
        f = reflectance_to_features(torch.from_numpy(reflectance[i : i + chunk]), bands)
        f = f.double().transpose(0, 1).reshape(len(bands), -1)
        n = f.shape[1]
        chunk_mean = f.mean(dim=1)
        chunk_m2 = ((f - chunk_mean[:, None]) ** 2).sum(dim=1)
        delta = chunk_mean - mean
        total = count + n
        mean = mean + delta * (n / total)
        m2 = m2 + chunk_m2 + delta**2 * (count * n / total)
        count = total
    std = (m2 / max(count - 1, 1)).sqrt().clamp_min(1e-6)
    return mean, std
