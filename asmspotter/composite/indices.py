"""Normalised-difference spectral indices (NDWI, NDVI) on reflectance arrays.

NDWI (McFeeters 1996) = (G - NIR) / (G + NIR): positive over open water.
NDVI = (NIR - R) / (NIR + R): ~0.8 over closed tropical forest, ~0 on bare soil.
Both work on numpy arrays, dask arrays and xarray objects alike.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

ArrayT = TypeVar("ArrayT")


def normalised_difference(a: ArrayT, b: ArrayT) -> ArrayT:
    """Return (a - b) / (a + b), 0 where the sum is 0, as float32.

    Args:
        a: First band, reflectance.
        b: Second band, reflectance, same shape.
    """
    total = a + b  # type: ignore[operator]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (a - b) / total  # type: ignore[operator]
    if hasattr(ratio, "dims"):
        # xarray: keeps coords and attrs, and stays lazy. np.where on a dask-backed
        # DataArray would compute the whole array (it has no __array_function__).
        result = ratio.where(total != 0, 0.0)
    else:
        result = np.where(total != 0, ratio, 0.0)
    return result.astype(np.float32)  # type: ignore[no-any-return,attr-defined,return-value]


def ndwi(green: ArrayT, nir: ArrayT) -> ArrayT:
    """McFeeters NDWI = (G - NIR) / (G + NIR)."""
    return normalised_difference(green, nir)


def ndvi(red: ArrayT, nir: ArrayT) -> ArrayT:
    """NDVI = (NIR - R) / (NIR + R)."""
    return normalised_difference(nir, red)
