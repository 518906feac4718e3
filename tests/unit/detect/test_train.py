"""Tests of asmspotter.detect.train: a CI-sized run, the files it writes, resuming, the config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from asmspotter.composite.indices import ndvi, ndwi
from asmspotter.detect.model_card import CARD_FILENAME, WEIGHTS_FILENAME, Architecture, load_card
from asmspotter.detect.predict import predict_probabilities
from asmspotter.detect.runtime import load_model
from asmspotter.detect.train.config import TrainConfig
from asmspotter.detect.train.detector import train_detector
from asmspotter.detect.train.inputs import reflectance_to_features
from asmspotter.detect.train.loop import CHECKPOINT_FILENAME

torch.set_num_threads(2)

# 24 chips of 64 px, 2 epochs, a small net of the shipped layout: about 2 s on 2 cores.
TINY_NET = Architecture(base_channels=8, depth=2, upsampling="transpose", space_to_depth=2)
TINY: dict[str, Any] = {
    "name": "tiny",
    "n_train": 16,
    "n_val": 4,
    "n_test": 4,
    "patch_px": 64,
    "epochs": 2,
    "batch_size": 8,
    "architecture": TINY_NET,
    "seed": 3,
    "hard_fraction": 0.0,
}


class Interrupt(Exception):
    pass


def test_tiny_training_writes_weights_and_card(tmp_path: Path) -> None:
    records: list[dict[str, Any]] = []
    card = train_detector(TrainConfig(out_dir=tmp_path, **TINY), records.append)
    assert (tmp_path / WEIGHTS_FILENAME).is_file()
    assert not (tmp_path / CHECKPOINT_FILENAME).exists()
    assert load_card(tmp_path) == card
    assert (tmp_path / CARD_FILENAME).stat().st_size > 0
    assert [r["epoch"] for r in records] == [1, 2]
    assert all(np.isfinite(r["loss"]) and 0 <= r["val_iou"] <= 1 for r in records)
    assert card.bands == ["red", "green", "blue", "nir", "ndwi", "ndvi"]
    assert card.architecture == TINY_NET
    assert 0.3 <= card.threshold <= 0.7
    assert card.metrics.n_test_chips == 4
    assert 0 <= card.metrics.pixel_iou <= 1
    assert card.training.software.torch == torch.__version__
    assert 1 <= card.training.best_epoch <= 2
    # The written model loads and predicts.
    model = load_model(tmp_path, device="cpu")
    prob = predict_probabilities(np.zeros((6, 20, 30), np.float32), model)
    assert prob.shape == (20, 30)


def test_interrupted_training_resumes_from_checkpoint(tmp_path: Path) -> None:
    def stop_after_first_epoch(record: dict[str, Any]) -> None:
        if record["epoch"] == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        train_detector(TrainConfig(out_dir=tmp_path, **TINY), stop_after_first_epoch)
    assert (tmp_path / CHECKPOINT_FILENAME).is_file()
    assert not (tmp_path / WEIGHTS_FILENAME).exists()

    records: list[dict[str, Any]] = []
    config = TrainConfig(out_dir=tmp_path, keep_checkpoint=True, **TINY)
    card = train_detector(config, records.append)
    assert [r["epoch"] for r in records] == [2]
    assert card.training.epochs == 2
    checkpoint = torch.load(tmp_path / CHECKPOINT_FILENAME, weights_only=True)
    assert checkpoint["epoch"] == 2
    assert [h["epoch"] for h in checkpoint["history"]] == [1, 2]

    # Other settings never silently continue an old run.
    with pytest.raises(ValueError, match="resume=False"):
        train_detector(TrainConfig(out_dir=tmp_path, **{**TINY, "lr": 1e-2}))


def test_features_match_the_composite_indices() -> None:
    """Training sees the same NDWI/NDVI as inference (asmspotter.composite.indices)."""
    rng = np.random.default_rng(0)
    refl = rng.uniform(0.0, 0.5, (2, 4, 8, 8)).astype(np.float32)
    refl[0, :, 0, 0] = 0.0  # sums of 0 give 0, as in the composite
    features = reflectance_to_features(torch.from_numpy(refl), ["nir", "ndwi", "ndvi"]).numpy()
    _blue, green, red, nir = (refl[:, i] for i in range(4))
    np.testing.assert_array_equal(features[:, 0], nir)
    np.testing.assert_allclose(features[:, 1], ndwi(green, nir), atol=1e-6)
    np.testing.assert_allclose(features[:, 2], ndvi(red, nir), atol=1e-6)


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"patch_px": 60}, "multiple of the net's size multiple 8"),
        ({"n_val": 0}, "n_val must be >= 1"),
    ],
)
def test_bad_arguments(tmp_path: Path, override: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TrainConfig(out_dir=tmp_path, **{**TINY, **override})
