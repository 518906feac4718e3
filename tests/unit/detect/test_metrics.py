"""Tests of asmspotter.detect.metrics with answers known by construction."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine

from asmspotter.detect.metrics import object_metrics, pixel_metrics, precision_recall_f1


def _blob(shape: tuple[int, int], row: int, col: int, size: int) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[row : row + size, col : col + size] = True
    return mask


def test_pixel_metrics_known_answer() -> None:
    """Truth: a 3x3 block (9 px). Prediction: the same block moved right by 1 column.

    Overlap 6 px, 3 false positives, 3 false negatives: precision = recall = f1 = 6/9,
    IoU = 6/12.
    """
    truth = _blob((10, 10), 2, 2, 3)
    pred = _blob((10, 10), 2, 3, 3)
    scores = pixel_metrics(pred, truth)
    assert scores["precision"] == pytest.approx(6 / 9)
    assert scores["recall"] == pytest.approx(6 / 9)
    assert scores["f1"] == pytest.approx(6 / 9)
    assert scores["iou"] == pytest.approx(0.5)


def test_pixel_metrics_empty_masks_are_perfect() -> None:
    empty = np.zeros((4, 4), dtype=bool)
    assert pixel_metrics(empty, empty) == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "iou": 1.0}
    full = ~empty
    assert pixel_metrics(empty, full)["recall"] == 0.0
    assert pixel_metrics(empty, full)["precision"] == 0.0


def test_pixel_metrics_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="shape"):
        pixel_metrics(np.zeros((2, 2), bool), np.zeros((3, 3), bool))


def test_object_metrics_one_of_two_sites_found() -> None:
    """Two true 3x3 sites; the prediction finds one exactly and adds a false 2x2 one."""
    truth = _blob((20, 20), 1, 1, 3) | _blob((20, 20), 10, 10, 3)
    pred = _blob((20, 20), 1, 1, 3) | _blob((20, 20), 16, 1, 2)
    scores = object_metrics(pred, truth)
    assert (scores["n_pred"], scores["n_truth"], scores["n_matched"]) == (2, 2, 1)
    assert scores["precision"] == pytest.approx(0.5)
    assert scores["recall"] == pytest.approx(0.5)
    assert scores["f1"] == pytest.approx(0.5)


def test_object_matching_needs_iou_and_is_one_to_one() -> None:
    """A 4x4 truth (16 px) vs a 2x4 prediction inside it: IoU 8/16 = 0.5."""
    truth = _blob((10, 10), 0, 0, 4)
    pred = np.zeros((10, 10), dtype=bool)
    pred[0:2, 0:4] = True
    assert object_metrics(pred, truth, iou_match=0.5)["n_matched"] == 1
    assert object_metrics(pred, truth, iou_match=0.6)["n_matched"] == 0
    # One large prediction over two truths matches at most one of them.
    truths = _blob((10, 10), 0, 0, 3) | _blob((10, 10), 0, 4, 3)
    big = np.zeros((10, 10), dtype=bool)
    big[0:3, 0:7] = True
    scores = object_metrics(big, truths, iou_match=0.3, group_px=0)
    assert scores["n_matched"] == 1
    assert scores["recall"] == pytest.approx(0.5)


def test_nearby_components_form_one_site() -> None:
    """Two 3x3 ponds one pixel apart are one site with grouping, two without."""
    truth = _blob((10, 10), 0, 0, 3) | _blob((10, 10), 0, 4, 3)
    assert object_metrics(truth, truth, group_px=0)["n_truth"] == 2
    grouped = object_metrics(truth, truth, group_px=1)
    assert (grouped["n_truth"], grouped["n_matched"]) == (1, 1)
    far = _blob((20, 20), 0, 0, 3) | _blob((20, 20), 0, 12, 3)
    assert object_metrics(far, far, group_px=2)["n_truth"] == 2


def test_small_objects_are_ignored_by_pixels_or_hectares() -> None:
    """A 1 px speckle is no site; at 100 m pixels (1 ha each) a 2x2 block is 4 ha."""
    truth = _blob((10, 10), 2, 2, 2)
    pred = truth.copy()
    pred[8, 8] = True
    assert object_metrics(pred, truth, min_area_px=2)["n_pred"] == 2 - 1
    transform = Affine(100.0, 0, 0, 0, -100.0, 0)
    assert object_metrics(pred, truth, transform=transform, min_area_ha=4.0)["n_pred"] == 1
    assert object_metrics(pred, truth, transform=transform, min_area_ha=4.5)["n_truth"] == 0


def test_precision_recall_f1_from_counts() -> None:
    assert precision_recall_f1(3, 4, 6) == pytest.approx(
        {"precision": 0.75, "recall": 0.5, "f1": 0.6}
    )
    assert precision_recall_f1(0, 0, 0) == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
