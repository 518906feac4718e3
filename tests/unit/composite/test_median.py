"""The sorting-network NaN median against numpy.nanmedian and the one-sort median."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from asmspotter.composite.median import (
    SORTING_NETWORKS,
    nanmedian_of_dates,
    sort_planes,
)


def reference_nanmedian(values: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(values, axis=0)


@pytest.mark.parametrize("n_dates", sorted(SORTING_NETWORKS))
def test_every_network_sorts_all_zero_one_inputs(n_dates: int) -> None:
    # 0-1 principle: a comparator network sorts every input iff it sorts every 0/1 input.
    inputs = np.array(list(itertools.product([0.0, 1.0], repeat=n_dates)), dtype=np.float32).T
    planes = [row.copy() for row in inputs]
    sort_planes(planes, SORTING_NETWORKS[n_dates])
    np.testing.assert_array_equal(np.stack(planes), np.sort(inputs, axis=0))


def test_a_broken_network_is_caught_by_the_zero_one_check() -> None:
    inputs = np.array(list(itertools.product([0.0, 1.0], repeat=4)), dtype=np.float32).T
    planes = [row.copy() for row in inputs]
    sort_planes(planes, SORTING_NETWORKS[4][:-1])  # drop the last comparator
    assert not np.array_equal(np.stack(planes), np.sort(inputs, axis=0))


# Reflectance-like values (0..1.5) plus NaN; shapes (dates, rows, cols).
observations = st.integers(min_value=1, max_value=8).flatmap(
    lambda n_dates: hnp.arrays(
        np.float32,
        st.tuples(st.just(n_dates), st.integers(1, 6), st.integers(1, 7)),
        elements=st.one_of(
            st.just(np.nan),
            st.floats(0.0, 1.5, width=32, allow_nan=False),
        ),
    )
)


@settings(max_examples=300, deadline=None)
@given(observations)
def test_network_median_matches_numpy_nanmedian(values: np.ndarray) -> None:
    result = nanmedian_of_dates(values)
    assert result.dtype == np.float32 and result.shape == values.shape[1:]
    expected = reference_nanmedian(values)
    # nanmedian averages the two middle values via mean(): equal up to float32 rounding.
    np.testing.assert_allclose(result, expected, rtol=2e-7, atol=0, equal_nan=True)
    assert np.array_equal(np.isnan(result), np.isnan(values).all(axis=0))


@settings(max_examples=300, deadline=None)
@given(observations)
def test_network_median_is_bit_identical_to_the_one_sort_median(values: np.ndarray) -> None:
    network = nanmedian_of_dates(values)
    by_sort = nanmedian_of_dates(values, use_network=False)
    np.testing.assert_array_equal(network.view(np.uint32), by_sort.view(np.uint32))


@pytest.mark.parametrize("n_dates", range(1, 10))
def test_all_nan_pixels_and_the_dates_axis(n_dates: int) -> None:
    rng = np.random.default_rng(n_dates)
    values = rng.random((40, 30, n_dates), dtype=np.float32)  # dates last
    values[rng.random(values.shape) < 0.4] = np.nan
    values[3, 4, :] = np.nan
    result = nanmedian_of_dates(values, axis=-1)
    np.testing.assert_allclose(
        result, reference_nanmedian(np.moveaxis(values, -1, 0)), rtol=2e-7, equal_nan=True
    )
    assert np.isnan(result[3, 4])
    # The input is left untouched (the network sorts copies).
    assert np.isnan(values[3, 4]).all()


def test_known_medians_with_gaps() -> None:
    values = np.array(
        [[0.4, np.nan, np.nan], [0.1, 0.2, np.nan], [np.nan, 0.3, np.nan], [0.2, 0.6, np.nan]],
        dtype=np.float32,
    )
    np.testing.assert_array_equal(
        nanmedian_of_dates(values), np.array([0.2, 0.3, np.nan], dtype=np.float32)
    )


def test_no_dates_is_an_error() -> None:
    with pytest.raises(ValueError, match="need >= 1 date"):
        nanmedian_of_dates(np.empty((0, 3, 3), dtype=np.float32))
