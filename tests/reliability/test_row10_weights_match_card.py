"""Row 10: 3 m weights under a 10 m card.

Before: accepted (same network shape), and a run mapped 203 ha instead of 28.6 ha.
Now each card carries the SHA-256 of the weights written with it, and loading
refuses other weights with a ModelMismatchError naming the weights, the card and,
when the weights are a sibling model's, that model and its pixel size.
"""

from __future__ import annotations

import shutil

import pytest

from asmspotter.detect.model_card import load_card, weights_digest
from asmspotter.detect.runtime import load_model
from asmspotter.errors import ModelMismatchError
from asmspotter.settings import PROJECT_ROOT

MODELS = PROJECT_ROOT / "models"


def test_shipped_cards_fingerprint_their_own_weights():
    for name in ("s2-unet-v1", "ps-unet-v1"):
        card = load_card(MODELS / name)
        assert card.weights_sha256 == weights_digest(MODELS / name / "weights.pt")


def test_planetscope_weights_under_the_sentinel_card_are_refused(tmp_path):
    for name in ("s2-unet-v1", "ps-unet-v1"):
        shutil.copytree(MODELS / name, tmp_path / name)
    swapped = tmp_path / "s2-unet-v1"
    shutil.copyfile(tmp_path / "ps-unet-v1" / "weights.pt", swapped / "weights.pt")

    with pytest.raises(ModelMismatchError) as caught:
        load_model(swapped, device="cpu")
    message = str(caught.value)
    assert str(swapped / "weights.pt") in message
    assert "s2-unet-v1" in message and "10 m pixels" in message
    assert "ps-unet-v1" in message and "3 m pixels" in message

    # The model's own weights load again.
    shutil.copyfile(MODELS / "s2-unet-v1" / "weights.pt", swapped / "weights.pt")
    assert load_model(swapped, device="cpu").card.name == "s2-unet-v1"
