"""Shared builders for the detect tests: model cards and tiny model directories."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

from asmspotter.detect.model_card import (
    Architecture,
    Metrics,
    ModelCard,
    Normalisation,
    SoftwareVersions,
    TrainingInfo,
)


def build_card(**overrides: Any) -> ModelCard:
    """A valid card for a 6-band 10 m model, with fields overridden by keyword."""
    n_bands = len(overrides.get("bands", ["red", "green", "blue", "nir", "ndwi", "ndvi"]))
    fields: dict[str, Any] = {
        "name": "test-unet",
        "architecture": Architecture(
            base_channels=4, depth=2, upsampling="transpose", space_to_depth=2
        ),
        "normalisation": Normalisation(mean=[0.0] * n_bands, std=[1.0] * n_bands),
        "resolution_m": 10.0,
        "threshold": 0.5,
        "tile_px": 32,
        "overlap_px": 8,
        "metrics": Metrics(
            pixel_iou=0.8,
            pixel_precision=0.9,
            pixel_recall=0.88,
            pixel_f1=0.89,
            object_precision=0.9,
            object_recall=0.9,
            object_f1=0.9,
            n_test_chips=10,
        ),
        "training": TrainingInfo(
            data="hand-made for tests",
            seed=0,
            epochs=1,
            best_epoch=1,
            chip_px=32,
            n_train_chips=1,
            n_val_chips=1,
            n_test_chips=1,
            batch_size=1,
            lr=1e-3,
            software=SoftwareVersions(torch="0", numpy="0"),
        ),
    }
    fields.update(overrides)
    return ModelCard(**fields)


@pytest.fixture
def card_factory() -> Callable[..., ModelCard]:
    return build_card


PrecisionSpy = Callable[[object, str], list[str]]
"""``spy(module, function_name)``: the precisions that function is called with, in order."""


@pytest.fixture
def precision_spy(monkeypatch: pytest.MonkeyPatch) -> PrecisionSpy:
    """Wrap a module's function so that each call records its ``precision`` argument.

    The wrapped function still runs; positional and keyword calls are both seen.
    """

    def spy(module: object, name: str) -> list[str]:
        original = getattr(module, name)
        signature = inspect.signature(original)
        seen: list[str] = []

        def recording(*args: Any, **kwargs: Any) -> Any:
            seen.append(str(signature.bind(*args, **kwargs).arguments["precision"]))
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, recording)
        return seen

    return spy
