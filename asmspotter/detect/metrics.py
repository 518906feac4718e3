"""Pixel and object metrics of a predicted mining mask against the truth.

Pixel metrics count pixels; object metrics count mining sites: 4-connected
components, a predicted object matching a true one when their IoU is at least
``iou_match`` (0.3 by default), one-to-one, greedily by decreasing IoU. Used by
:mod:`asmspotter.detect.train` for the model card and by ``model evaluate``.

Empty denominators follow one rule: a ratio with nothing to count is 1.0 when
the other mask has no errors to report and 0.0 otherwise (both masks empty gives
precision = recall = f1 = iou = 1.0).
"""

from __future__ import annotations

import math

import numpy as np
from affine import Affine
from numpy.typing import NDArray
from scipy import ndimage

# 4-connectivity, the same as rasterio.features.shapes' default in vectorize.py.
_STRUCTURE = ndimage.generate_binary_structure(2, 1)


def _ratio(numerator: float, denominator: float, *, empty: float) -> float:
    return numerator / denominator if denominator > 0 else empty


def _check_shapes(pred: NDArray[np.bool_], truth: NDArray[np.bool_]) -> None:
    if pred.shape != truth.shape:
        raise ValueError(f"pred has shape {pred.shape} but truth has {truth.shape}.")


def pixel_metrics(pred: NDArray[np.bool_], truth: NDArray[np.bool_]) -> dict[str, float]:
    """Return pixel precision, recall, F1 and IoU of the positive class.

    Args:
        pred: Predicted mask, any shape, bool.
        truth: True mask, same shape, bool.

    Returns:
        ``{"precision", "recall", "f1", "iou"}`` as floats in [0, 1].

    Raises:
        ValueError: If the shapes differ.
    """
    pred = np.asarray(pred, dtype=bool)
    truth = np.asarray(truth, dtype=bool)
    _check_shapes(pred, truth)
    tp = float(np.count_nonzero(pred & truth))
    fp = float(np.count_nonzero(pred & ~truth))
    fn = float(np.count_nonzero(~pred & truth))
    return {
        "precision": _ratio(tp, tp + fp, empty=1.0 if fn == 0 else 0.0),
        "recall": _ratio(tp, tp + fn, empty=1.0 if fp == 0 else 0.0),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn, empty=1.0),
        "iou": _ratio(tp, tp + fp + fn, empty=1.0),
    }


def precision_recall_f1(n_matched: int, n_pred: int, n_truth: int) -> dict[str, float]:
    """Return object precision, recall and F1 from match counts (summable over chips).

    Args:
        n_matched: Number of matched (predicted, true) pairs.
        n_pred: Number of predicted objects.
        n_truth: Number of true objects.
    """
    precision = _ratio(n_matched, n_pred, empty=1.0 if n_truth == 0 else 0.0)
    recall = _ratio(n_matched, n_truth, empty=1.0 if n_pred == 0 else 0.0)
    f1 = _ratio(2 * n_matched, n_pred + n_truth, empty=1.0)
    return {"precision": precision, "recall": recall, "f1": f1}


def _label(
    mask: NDArray[np.bool_], min_area_px: int, group_px: int = 0
) -> tuple[NDArray[np.int32], int]:
    """Label objects, dropping those smaller than ``min_area_px``.

    An object is a 4-connected component; with ``group_px`` > 0, components closer
    than about ``2 * group_px`` pixels form one object, because a mining site is a
    cluster of ponds and tailings separated by thin strips of forest or dykes, and
    tracking merges them the same way (``TrackingThresholds.match_buffer_m``).
    """
    if group_px > 0:
        grouped = ndimage.binary_dilation(mask, structure=_STRUCTURE, iterations=group_px)
        labels, n = ndimage.label(grouped, structure=_STRUCTURE)
        labels = np.where(mask, labels, 0)
    else:
        labels, n = ndimage.label(mask, structure=_STRUCTURE)
    if n == 0:
        return labels.astype(np.int32), 0
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = sizes >= min_area_px
    keep[0] = False
    relabel = np.zeros(n + 1, dtype=np.int32)
    relabel[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return relabel[labels], int(keep.sum())


SITE_GROUP_M = 20.0
"""Mining pits and ponds closer than about twice this (40 m) count as one site."""

SITE_MIN_AREA_M2 = 400.0
"""Smallest object counted, m² (4 pixels at 10 m)."""


def object_params(resolution_m: float) -> dict[str, int]:
    """``group_px`` and ``min_area_px`` of :func:`object_metrics` for a pixel size.

    A site is defined in metres, so 10 m and 3 m models are scored on the same objects:
    at 10 m this gives the defaults (group 2 px, 4 px minimum), at 3 m 7 px and 45 px.
    """
    return {
        "group_px": max(1, round(SITE_GROUP_M / resolution_m)),
        "min_area_px": max(1, math.ceil(SITE_MIN_AREA_M2 / resolution_m**2 - 1e-9)),
    }


def object_metrics(
    pred_mask: NDArray[np.bool_],
    truth_mask: NDArray[np.bool_],
    *,
    transform: Affine | None = None,
    min_area_px: int = 4,
    min_area_ha: float | None = None,
    iou_match: float = 0.3,
    group_px: int = 2,
) -> dict[str, float]:
    """Match predicted objects to true ones and return object precision, recall, F1.

    Objects are clusters of 4-connected components (see ``group_px``) of at least
    ``min_area_px`` pixels (or, given ``transform`` and ``min_area_ha``, at least that
    many hectares) in either mask.
    Pairs with IoU >= ``iou_match`` are matched one-to-one, best IoU first.

    Args:
        pred_mask: Predicted mask (H, W) bool.
        truth_mask: True mask (H, W) bool.
        transform: Affine transform of the grid, used with ``min_area_ha``.
        min_area_px: Smallest object in pixels; smaller components are ignored.
        min_area_ha: Smallest object in hectares; overrides ``min_area_px`` when
            ``transform`` is given.
        iou_match: IoU a pair needs to match, in (0, 1].
        group_px: Components within about twice this many pixels form one object
            (one mining site); 0 for plain connected components.

    Returns:
        ``{"precision", "recall", "f1", "n_pred", "n_truth", "n_matched",
        "area_abs_error_px", "area_truth_px"}``; the counts are whole numbers (floats),
        so results of several chips can be summed and fed to
        :func:`precision_recall_f1`. ``area_abs_error_px`` sums ``|predicted - true|``
        pixel areas over matched pairs and ``area_truth_px`` their true areas, so
        ``area_abs_error_px / area_truth_px`` is the relative area error of matched sites.

    Raises:
        ValueError: If the shapes differ or the masks are not 2-D.
    """
    pred_mask = np.asarray(pred_mask, dtype=bool)
    truth_mask = np.asarray(truth_mask, dtype=bool)
    _check_shapes(pred_mask, truth_mask)
    if pred_mask.ndim != 2:
        raise ValueError(f"masks must be 2-D (H, W), got shape {pred_mask.shape}.")
    if transform is not None and min_area_ha is not None:
        pixel_area_m2 = abs(transform.a * transform.e - transform.b * transform.d)
        min_area_px = max(1, math.ceil(min_area_ha * 10_000.0 / pixel_area_m2 - 1e-9))
    pred_labels, n_pred = _label(pred_mask, min_area_px, group_px)
    truth_labels, n_truth = _label(truth_mask, min_area_px, group_px)

    n_matched = 0
    area_abs_error_px = 0.0
    area_truth_px = 0.0
    if n_pred and n_truth:
        pred_area = np.bincount(pred_labels.ravel(), minlength=n_pred + 1)
        truth_area = np.bincount(truth_labels.ravel(), minlength=n_truth + 1)
        both = (pred_labels > 0) & (truth_labels > 0)
        pair_code = pred_labels[both].astype(np.int64) * (n_truth + 1) + truth_labels[both]
        codes, intersections = np.unique(pair_code, return_counts=True)
        p_ids, t_ids = np.divmod(codes, n_truth + 1)
        ious = intersections / (pred_area[p_ids] + truth_area[t_ids] - intersections)
        used_p: set[int] = set()
        used_t: set[int] = set()
        for k in np.argsort(-ious, kind="stable"):
            if ious[k] < iou_match:
                break
            p, t = int(p_ids[k]), int(t_ids[k])
            if p not in used_p and t not in used_t:
                used_p.add(p)
                used_t.add(t)
                area_abs_error_px += abs(float(pred_area[p]) - float(truth_area[t]))
                area_truth_px += float(truth_area[t])
        n_matched = len(used_p)
    scores = precision_recall_f1(n_matched, n_pred, n_truth)
    return {
        **scores,
        "n_pred": float(n_pred),
        "n_truth": float(n_truth),
        "n_matched": float(n_matched),
        "area_abs_error_px": area_abs_error_px,
        "area_truth_px": area_truth_px,
    }


def pr_curve_from_histograms(
    positive_counts: NDArray[np.int64], negative_counts: NDArray[np.int64]
) -> dict[str, NDArray[np.float64]]:
    """Precision and recall at every histogram bin edge, from per-class score histograms.

    Histograms of the predicted probability of true-mining and not-mining pixels (same
    bins over [0, 1]) summarise any number of pixels in constant memory; a pixel counts
    as predicted mining at threshold ``edges[i]`` when its bin is ``i`` or higher.

    Args:
        positive_counts: (n_bins,) counts of mining pixels per probability bin.
        negative_counts: (n_bins,) counts of other pixels per probability bin.

    Returns:
        ``{"threshold", "precision", "recall", "f1"}``, each (n_bins,) float64;
        thresholds are the lower bin edges ``i / n_bins``.
    """
    pos = np.asarray(positive_counts, dtype=np.float64)
    neg = np.asarray(negative_counts, dtype=np.float64)
    n_bins = len(pos)
    tp = np.cumsum(pos[::-1])[::-1]
    fp = np.cumsum(neg[::-1])[::-1]
    total_pos = float(pos.sum())
    precision = np.divide(tp, tp + fp, out=np.ones_like(tp), where=(tp + fp) > 0)
    recall = tp / total_pos if total_pos > 0 else np.ones_like(tp)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {
        "threshold": np.arange(n_bins, dtype=np.float64) / n_bins,
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }
