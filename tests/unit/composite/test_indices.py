"""NDWI/NDVI on numpy, dask and xarray inputs (composite.indices)."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import xarray as xr

from asmspotter.composite.indices import ndvi, normalised_difference


def test_normalised_difference_is_zero_where_the_sum_is_zero():
    a = np.array([0.3, 0.0, 0.1], np.float32)
    b = np.array([0.1, 0.0, 0.3], np.float32)
    result = normalised_difference(a, b)
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, [0.5, 0.0, -0.5], rtol=1e-5)


def test_xarray_on_dask_stays_lazy_and_keeps_coords():
    """A dask-backed DataArray must not be computed here (the composite is lazy)."""
    nir = xr.DataArray(da.full((4, 4), 0.3, chunks=2, dtype=np.float32), dims=("y", "x"))
    red = xr.DataArray(da.full((4, 4), 0.1, chunks=2, dtype=np.float32), dims=("y", "x"))
    nir = nir.assign_coords(y=np.arange(4))

    def refuse(*args, **kwargs):
        raise AssertionError("ndvi computed a lazy array eagerly")

    with dask.config.set(scheduler=refuse):
        result = ndvi(red, nir)
    assert isinstance(result, xr.DataArray)
    assert isinstance(result.data, da.Array)
    assert list(result.y.values) == [0, 1, 2, 3]
    np.testing.assert_allclose(result.values, 0.5, rtol=1e-5)
