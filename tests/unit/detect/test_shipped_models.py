"""The bundled models' cards state what issue 4 asks: targets met, baseline beaten."""

from __future__ import annotations

from pathlib import Path

import pytest

from asmspotter.detect.model_card import WEIGHTS_FILENAME, load_card

MODELS = Path(__file__).resolve().parents[3] / "models"


# Each model on the generated splits it was trained for: s2-unet-v1 (v2.0.0) on a mix of
# standard and hard look-alike chips, so it must meet the targets on both.
@pytest.mark.parametrize(
    ("name", "resolution_m", "split"),
    [
        ("s2-unet-v1", 10.0, "generated"),
        ("s2-unet-v1", 10.0, "generated-hard"),
        ("ps-unet-v1", 3.0, "generated-hard"),
    ],
)
def test_card_meets_targets_and_beats_baseline(name: str, resolution_m: float, split: str) -> None:
    card = load_card(MODELS / name)
    assert card.resolution_m == resolution_m
    assert (MODELS / name / WEIGHTS_FILENAME).stat().st_size <= 8.5e6
    evaluations = {e.data: e for e in card.evaluations}
    assert split in evaluations, list(evaluations)
    assert evaluations[split].model.pixel_iou >= 0.80
    assert evaluations[split].model.object_f1 >= 0.90
    for evaluation in evaluations.values():
        assert evaluation.baseline is not None
        assert evaluation.model.pixel_iou > evaluation.baseline.pixel_iou + 0.05
        assert evaluation.model.object_f1 > evaluation.baseline.object_f1 + 0.05
        assert evaluation.pr_curve_png and (MODELS / name / evaluation.pr_curve_png).is_file()
    check = card.precision_check
    assert check is not None
    if card.precision == "bf16":
        assert abs(check.bf16_iou - check.fp32_iou) <= 0.01
