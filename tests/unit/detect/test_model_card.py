"""Tests of asmspotter.detect.model_card: validation, files, fitting a composite."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from asmspotter.detect.model_card import (
    CARD_FILENAME,
    ModelCard,
    Normalisation,
    check_model_fits,
    load_card,
    save_card,
)
from asmspotter.errors import ModelMismatchError, ModelNotFoundError

COMPOSITE_BANDS = ["blue", "green", "red", "nir", "ndwi", "ndvi", "valid"]


def test_round_trip(tmp_path: Path, card_factory: Callable[..., ModelCard]) -> None:
    card = card_factory()
    path = save_card(card, tmp_path / "m")
    assert path == tmp_path / "m" / CARD_FILENAME
    assert '"created": "' in path.read_text()
    assert load_card(tmp_path / "m") == card


def test_defaults(card_factory: Callable[..., ModelCard]) -> None:
    card = card_factory()
    assert card.bands == ["red", "green", "blue", "nir", "ndwi", "ndvi"]
    assert card.resolution_tolerance_pct == 25
    assert card.architecture.name == "unet"


def test_missing_model_names_path_and_how_to_train(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="asmspotter model train") as info:
        load_card(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(info.value)


def test_invalid_card_is_not_reported_as_missing(
    tmp_path: Path, card_factory: Callable[..., ModelCard]
) -> None:
    save_card(card_factory(), tmp_path)
    text = (tmp_path / CARD_FILENAME).read_text().replace('"name"', '"colour": "red", "name"', 1)
    (tmp_path / CARD_FILENAME).write_text(text)
    with pytest.raises(ModelMismatchError, match="re-train the model") as info:
        load_card(tmp_path)
    assert "invalid model card" in str(info.value)
    assert "colour" in str(info.value)


def test_normalisation_must_have_one_value_per_band(
    card_factory: Callable[..., ModelCard],
) -> None:
    with pytest.raises(ValidationError, match="one per band"):
        card_factory(
            bands=["red", "green"], normalisation=Normalisation(mean=[0.0] * 6, std=[1.0] * 6)
        )


def test_extra_fields_are_forbidden(card_factory: Callable[..., ModelCard]) -> None:
    data = card_factory().model_dump()
    data["architecture"]["width"] = 3
    with pytest.raises(ValidationError, match="width"):
        ModelCard.model_validate(data)


def test_fits_composite_bands_and_tolerance(card_factory: Callable[..., ModelCard]) -> None:
    card = card_factory()
    check_model_fits(card, COMPOSITE_BANDS, 10.0)
    check_model_fits(card, COMPOSITE_BANDS, 12.5)  # +25 % is the edge of the tolerance
    # ndwi and ndvi can be computed from green, red and nir.
    check_model_fits(card, ["blue", "green", "red", "nir"], 10.0)


def test_missing_band_names_model_bands_and_fix(
    tmp_path: Path, card_factory: Callable[..., ModelCard]
) -> None:
    card = card_factory()
    with pytest.raises(ModelMismatchError, match=r"choose another detection\.model") as info:
        check_model_fits(card, ["blue", "green", "red"], 10.0, model_dir=tmp_path)
    message = str(info.value)
    assert "'test-unet'" in message
    assert str(tmp_path) in message
    assert "missing ['nir', 'ndwi', 'ndvi']" in message


def test_resolution_mismatch_names_found_expected_and_fix(
    card_factory: Callable[..., ModelCard],
) -> None:
    card = card_factory()
    with pytest.raises(ModelMismatchError, match="train one at 3 m") as info:
        check_model_fits(card, COMPOSITE_BANDS, 3.0)
    assert "trained at 10 m" in str(info.value)
    assert "composite has 3 m" in str(info.value)
    assert "detection.model" in str(info.value)


def test_card_modules_do_not_import_torch() -> None:
    """Validating AOIs and cards must stay instant: no torch behind these imports."""
    code = (
        "import sys, asmspotter, asmspotter.detect, asmspotter.detect.model_card, "
        "asmspotter.detect.tiling, asmspotter.detect.metrics, asmspotter.detect.vectorize; "
        "sys.exit('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_candidate_threshold_must_be_below_the_threshold() -> None:
    card = json.loads(
        (Path(__file__).resolve().parents[3] / "models/s2-unet-v1/model_card.json").read_text()
    )
    card["candidate_threshold"] = card["threshold"]
    with pytest.raises(ValidationError, match="candidate_threshold"):
        ModelCard.model_validate(card)
    card["candidate_threshold"] = card["threshold"] / 2
    assert ModelCard.model_validate(card).candidate_threshold == card["threshold"] / 2
