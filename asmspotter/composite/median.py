"""NaN-aware median of the few observations a revisit window gives each pixel.

A composite's median runs over 2-8 dates per pixel, hundreds of millions of times.
``numpy.nanmedian`` goes through masked arrays for such short axes, and even one
``numpy.sort`` along a short last axis spends most of its time per pixel, not per
value. Here the dates are separate whole-image planes: a fixed sorting network
(min/max of whole planes, vectorised over every pixel at once) orders them with
NaN treated as +inf, then the middle of each pixel's valid values is picked with a
few masked copies. For more than ``MAX_NETWORK_DATES`` dates it falls back to one
sort, which gives the same values.

The result equals the previous one-sort implementation bit for bit: both order
the same values and average the same two middle float32 values as ``(a + b) / 2``
in float32. Against ``numpy.nanmedian`` it agrees within float32 rounding of that
average (nanmedian averages the two middles through ``mean``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

SORTING_NETWORKS: dict[int, tuple[tuple[int, int], ...]] = {
    1: (),
    2: ((0, 1),),
    3: ((0, 2), (0, 1), (1, 2)),
    4: ((0, 2), (1, 3), (0, 1), (2, 3), (1, 2)),
    5: ((0, 3), (1, 4), (0, 2), (1, 3), (0, 1), (2, 4), (1, 2), (3, 4), (2, 3)),
    6: (
        (0, 5), (1, 3), (2, 4), (1, 2), (3, 4), (0, 3), (2, 5), (0, 1), (2, 3), (4, 5),
        (1, 2), (3, 4),
    ),
    7: (
        (0, 6), (2, 3), (4, 5), (0, 2), (1, 4), (3, 6), (0, 1), (2, 5), (3, 4), (1, 2),
        (4, 6), (2, 3), (4, 5), (1, 2), (3, 4), (5, 6),
    ),
    8: (
        (0, 2), (1, 3), (4, 6), (5, 7), (0, 4), (1, 5), (2, 6), (3, 7), (0, 1), (2, 3),
        (4, 5), (6, 7), (2, 4), (3, 5), (1, 4), (3, 6), (1, 2), (3, 4), (5, 6),
    ),
}  # fmt: skip
"""Optimal-size sorting networks (Knuth, TAOCP vol. 3, 5.3.4): pairs (i, j), i < j,
after which plane i holds the smaller value; verified by the 0-1 principle in the tests."""

MAX_NETWORK_DATES = max(SORTING_NETWORKS)


def sort_planes(planes: list[NDArray[np.float32]], network: tuple[tuple[int, int], ...]) -> None:
    """Order ``planes`` in place, pixel by pixel, with the comparators of ``network``.

    NaN must already be replaced by +inf: ``minimum``/``maximum`` propagate NaN.
    """
    scratch = np.empty_like(planes[0])
    for i, j in network:
        np.minimum(planes[i], planes[j], out=scratch)
        np.maximum(planes[i], planes[j], out=planes[j])
        planes[i], scratch = scratch, planes[i]


def _pick(
    planes: list[NDArray[np.float32]], index: NDArray[np.integer], max_index: int
) -> NDArray[np.float32]:
    """Per pixel, the value of plane ``index`` (<= ``max_index``): one masked copy per plane."""
    picked = planes[0].copy()
    for k in range(1, max_index + 1):
        np.copyto(picked, planes[k], where=index == k)
    return picked


def nanmedian_of_dates(
    values: NDArray[np.floating], axis: int = 0, *, use_network: bool = True
) -> NDArray[np.float32]:
    """Median over ``axis`` (the dates) ignoring NaN, as float32; NaN where all are NaN.

    Args:
        values: Observations, any shape; ``axis`` runs over the dates.
        axis: The dates' axis.
        use_network: False orders the dates with one ``numpy.sort`` instead (the
            previous implementation; kept as the reference the network is tested against).

    Returns:
        ``values.shape`` without ``axis``: the mean of the two middle valid values
        (the middle one for an odd count), computed in float32.
    """
    stack = np.moveaxis(np.asarray(values, dtype=np.float32), axis, 0)
    return nanmedian_of_planes(list(stack), use_network=use_network)


def nanmedian_of_planes(
    planes: Sequence[NDArray[np.float32]], *, use_network: bool = True
) -> NDArray[np.float32]:
    """Per-pixel median of equally shaped float32 ``planes`` (one per date), ignoring NaN.

    Same as :func:`nanmedian_of_dates` over a stack of ``planes``, without the stack.
    The planes are not modified.
    """
    if len(planes) == 0:
        raise ValueError("nanmedian_of_dates: the dates' axis is empty; need >= 1 date.")
    n_valid = np.zeros(planes[0].shape, dtype=np.uint8 if len(planes) < 256 else np.intp)
    for plane in planes:
        n_valid += ~np.isnan(plane)
    if len(planes) > MAX_NETWORK_DATES or not use_network:
        ordered = list(np.sort(np.stack(planes), axis=0))  # NaN last, like +inf below
        return _middle_of_ordered(ordered, n_valid)
    # Copies (the caller's planes stay as they are); NaN -> +inf sorts it last.
    missing_as_inf = [np.where(np.isnan(plane), np.float32(np.inf), plane) for plane in planes]
    return median_of_planes_in_place(missing_as_inf, n_valid)


def median_of_planes_in_place(
    planes: list[NDArray[np.float32]], n_valid: NDArray[np.integer]
) -> NDArray[np.float32]:
    """Per-pixel median of the first ``n_valid`` values once ``planes`` are ordered.

    For callers that already hold their own float32 planes with every missing value
    set to +inf and know the count of valid values per pixel (a composite's clear
    count): no NaN scan and no copies. ``planes`` are reordered in place.
    """
    if len(planes) > MAX_NETWORK_DATES:
        ordered = list(np.sort(np.stack(planes), axis=0))
    else:
        sort_planes(planes, SORTING_NETWORKS[len(planes)])
        ordered = planes
    return _middle_of_ordered(ordered, n_valid)


def _middle_of_ordered(
    ordered: list[NDArray[np.float32]], n_valid: NDArray[np.integer]
) -> NDArray[np.float32]:
    """Mean of the two middle valid values of ordered planes (valid values first)."""
    n_dates = len(ordered)
    low = (np.maximum(n_valid, 1) - 1) // 2
    high = n_valid // 2
    middle = _pick(ordered, low, (n_dates - 1) // 2)
    middle += _pick(ordered, high, n_dates // 2)
    middle /= np.float32(2)
    middle[n_valid == 0] = np.nan
    return middle
