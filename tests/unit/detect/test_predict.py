"""Tests of the detect stage's modules: features, tiled prediction, loading, detect_sites."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from scene_builders import save_random_unet, write_composite_bands
from torch import nn

from asmspotter.composite.indices import ndvi, ndwi
from asmspotter.detect import runtime, stage
from asmspotter.detect.features import build_features
from asmspotter.detect.model_card import (
    Architecture,
    ModelCard,
    Normalisation,
    save_card,
)
from asmspotter.detect.predict import predict_probabilities, tiles_per_batch
from asmspotter.detect.runtime import LoadedModel, load_model, run_precision
from asmspotter.detect.stage import PROBABILITY_BAND, detect_sites
from asmspotter.detect.tiling import tile_windows
from asmspotter.errors import ModelMismatchError, ModelNotFoundError

torch.set_num_threads(2)

BANDS = ["red", "green", "blue", "nir", "ndwi", "ndvi"]


def _pixelwise_model(card: ModelCard, weight: list[float], bias: float = 0.0) -> LoadedModel:
    """A net with a 1-pixel receptive field: tiling must not change its output at all."""
    conv = nn.Conv2d(len(card.bands), 1, kernel_size=1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(weight).reshape(1, -1, 1, 1))
        conv.bias.fill_(bias)
    return LoadedModel(card=card, module=conv.eval(), device=torch.device("cpu"))


def _reference(features: np.ndarray, card: ModelCard, model: LoadedModel) -> np.ndarray:
    mean = np.asarray(card.normalisation.mean, np.float32)[:, None, None]
    std = np.asarray(card.normalisation.std, np.float32)[:, None, None]
    x = torch.from_numpy(((features - mean) / std)[None])
    with torch.inference_mode():
        return torch.sigmoid(model.module(x))[0, 0].numpy()


class CountingReader:
    """A lazy (C, H, W) array that records the windows read from it."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = data
        self.reads: list[tuple[int, ...]] = []

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    def __getitem__(self, key: Any) -> np.ndarray:
        tile = self.data[key]
        self.reads.append(tile.shape)
        return tile


def test_build_features_orders_bands_and_derives_indices() -> None:
    rng = np.random.default_rng(0)
    refl = {b: rng.uniform(0.01, 0.5, (5, 6)).astype(np.float32) for b in BANDS[:4]}
    features = build_features(refl, BANDS)
    assert features.shape == (6, 5, 6)
    assert features.dtype == np.float32
    np.testing.assert_array_equal(features[0], refl["red"])
    np.testing.assert_array_equal(features[2], refl["blue"])
    np.testing.assert_allclose(features[4], ndwi(refl["green"], refl["nir"]))
    np.testing.assert_allclose(features[5], ndvi(refl["red"], refl["nir"]))


def test_build_features_accepts_an_xarray_dataset() -> None:
    xr = pytest.importorskip("xarray")
    data = {
        b: (("y", "x"), np.full((2, 3), 0.1 * (i + 1), np.float32)) for i, b in enumerate(BANDS)
    }
    features = build_features(xr.Dataset(data), BANDS)
    np.testing.assert_allclose(features[:, 0, 0], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], rtol=1e-6)


def test_build_features_missing_band_names_the_fix() -> None:
    with pytest.raises(ModelMismatchError, match=r"choose another detection\.model"):
        build_features({"red": np.zeros((2, 2))}, BANDS)


def test_tiled_prediction_equals_single_pass(card_factory: Callable[..., ModelCard]) -> None:
    """A 1x1-conv net on a 45x37 image in 16 px tiles (overlap 5) equals the whole-image pass."""
    rng = np.random.default_rng(1)
    card = card_factory(
        tile_px=16,
        overlap_px=5,
        normalisation=Normalisation(mean=[0.1] * 6, std=[0.5] * 6),
    )
    model = _pixelwise_model(card, [1.0, -2.0, 0.5, 3.0, -1.0, 0.25], bias=-0.3)
    features = rng.normal(0, 1, (6, 45, 37)).astype(np.float32)
    calls: list[tuple[int, int]] = []
    reader = CountingReader(features)
    tiled = predict_probabilities(
        reader, model, batch_size=3, progress=lambda d, n: calls.append((d, n))
    )
    np.testing.assert_allclose(tiled, _reference(features, card, model), atol=1e-5)
    # Memory is bounded by a row of tiles: one read per row of tiles, 16 rows high.
    windows = tile_windows(45, 37, 16, 5)
    assert [(h, w) for _, h, w in reader.reads] == [(16, 37)] * len({w[0] for w in windows})
    assert calls[-1][0] == calls[-1][1] == len(windows)


def test_image_smaller_than_a_tile(card_factory: Callable[..., ModelCard]) -> None:
    card = card_factory(tile_px=32, overlap_px=8)
    model = _pixelwise_model(card, [0.3] * 6)
    features = np.random.default_rng(2).normal(0, 1, (6, 7, 11)).astype(np.float32)
    np.testing.assert_allclose(
        predict_probabilities(features, model), _reference(features, card, model), atol=1e-5
    )


def test_nan_and_invalid_pixels_get_zero(card_factory: Callable[..., ModelCard]) -> None:
    card = card_factory()
    model = _pixelwise_model(card, [0.0] * 6, bias=5.0)  # sigmoid(5) ~ 0.993 everywhere
    features = np.zeros((6, 20, 20), np.float32)
    features[3, 4, 5] = np.nan
    valid = np.ones((20, 20), bool)
    valid[10:12, :] = False
    prob = predict_probabilities(features, model, valid_mask=valid)
    assert prob[4, 5] == 0.0
    assert (prob[10:12] == 0.0).all()
    assert prob.sum() == pytest.approx((400 - 1 - 40) / (1 + np.exp(-5.0)), rel=1e-5)


def test_wrong_band_count_is_a_mismatch(card_factory: Callable[..., ModelCard]) -> None:
    card = card_factory()
    model = _pixelwise_model(card, [0.0] * 6)
    with pytest.raises(ModelMismatchError, match="build_features"):
        predict_probabilities(np.zeros((4, 8, 8), np.float32), model)


def test_load_model_and_predict_with_a_unet(
    tmp_path: Path, card_factory: Callable[..., ModelCard]
) -> None:
    card = card_factory(tile_px=32, overlap_px=8)
    save_random_unet(tmp_path, card)
    model = load_model(tmp_path, device="cpu")
    assert not model.module.training
    assert model.card == card
    features = np.random.default_rng(3).normal(0, 1, (6, 40, 50)).astype(np.float32)
    prob = predict_probabilities(features, model, batch_size=2)
    assert prob.shape == (40, 50)
    assert prob.dtype == np.float32
    assert prob.min() >= 0.0 and prob.max() <= 1.0
    bf16 = predict_probabilities(features, model, precision="bf16")
    assert np.abs(bf16 - prob).max() < 0.1


def test_load_model_missing_weights(tmp_path: Path, card_factory: Callable[..., ModelCard]) -> None:
    save_card(card_factory(), tmp_path)
    with pytest.raises(ModelNotFoundError, match="weights not found"):
        load_model(tmp_path)
    with pytest.raises(ModelNotFoundError, match="asmspotter model train"):
        load_model(tmp_path / "missing")


def test_load_model_weights_of_another_architecture(
    tmp_path: Path, card_factory: Callable[..., ModelCard]
) -> None:
    save_random_unet(tmp_path, card_factory())
    save_card(card_factory(architecture=Architecture(base_channels=8, depth=2)), tmp_path)
    with pytest.raises(ModelMismatchError, match="re-train the model"):
        load_model(tmp_path)


def test_load_model_truncated_weights_names_the_file(
    tmp_path: Path, card_factory: Callable[..., ModelCard]
) -> None:
    card = card_factory()
    save_random_unet(tmp_path, card)
    save_card(card, tmp_path)
    weights = tmp_path / "weights.pt"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelMismatchError, match=r"weights\.pt: cannot read these weights"):
        load_model(tmp_path)


def _write_composite(path: Path, resolution_m: float = 10.0) -> None:
    """A 40x40 composite of forest with one 6x6 pond (24x... known) and a no-data strip.

    Forest: green 0.06 < nir 0.30, so NDWI < 0. Pond at rows 10-15, cols 20-25: green
    0.09 > nir 0.05, so NDWI > 0. Rows 30-39 have valid = 0 (no clear observation).
    """
    height = width = 40
    bands = {
        "blue": np.full((height, width), 0.03, np.float32),
        "green": np.full((height, width), 0.06, np.float32),
        "red": np.full((height, width), 0.035, np.float32),
        "nir": np.full((height, width), 0.30, np.float32),
    }
    bands["green"][10:16, 20:26] = 0.09
    bands["nir"][10:16, 20:26] = 0.05
    bands["ndwi"] = ndwi(bands["green"], bands["nir"])
    bands["ndvi"] = ndvi(bands["red"], bands["nir"])
    valid = np.full((height, width), 5, np.float32)
    valid[30:, :] = 0
    bands["valid"] = valid
    write_composite_bands(path, bands, resolution_m)


def _ndwi_model(card: ModelCard) -> LoadedModel:
    """Logit = 40 * NDWI: water is mining (p ~ 1), forest is not (p ~ 0)."""
    return _pixelwise_model(card, [0, 0, 0, 0, 40.0, 0])


def test_detect_sites_end_to_end(
    tmp_path: Path, card_factory: Callable[..., ModelCard], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 6x6 pond = 36 px at 10 m = 0.36 ha becomes one polygon; no-data rows are -1."""
    composite = tmp_path / "composite.tif"
    _write_composite(composite)
    card = card_factory(tile_px=16, overlap_px=4)
    monkeypatch.setattr(stage, "load_model", lambda *a, **k: _ndwi_model(card))
    out = tmp_path / "out" / "probability.tif"
    sites = detect_sites(composite, tmp_path / "model", out, min_area_ha=0.1)
    assert len(sites) == 1
    assert sites.iloc[0]["area_ha"] == pytest.approx(0.36)
    assert sites.crs.to_epsg() == 32621
    assert sites.iloc[0].geometry.bounds == pytest.approx((600_200, 499_840, 600_260, 499_900))
    with rasterio.open(out) as src:
        assert src.count == 1
        assert src.dtypes[0] == "float32"
        assert src.descriptions[0] == PROBABILITY_BAND
        assert src.nodata == -1
        assert src.transform == Affine(10, 0, 600_000, 0, -10, 500_000)
        assert src.compression.name == "zstd" and src.block_shapes[0] == (512, 512)
        prob = src.read(1)
    assert (prob[30:] == -1).all()
    assert prob[12, 22] > 0.99
    assert prob[0, 0] < 0.01
    assert not (tmp_path / "out" / "partial_probability.tif").exists()
    # The threshold argument overrides the card's: above every probability, nothing.
    assert prob.max() < 0.99999
    model_dir = tmp_path / "model"
    assert len(detect_sites(composite, model_dir, out, threshold=0.99999, min_area_ha=0.1)) == 0
    # The default minimum area, 1 ha, drops the 0.36 ha pond.
    assert len(detect_sites(composite, model_dir, out)) == 0


@pytest.mark.parametrize(
    ("card_precision", "native", "expected"),
    [("bf16", True, "bf16"), ("bf16", False, "fp32"), ("fp32", True, "fp32")],
)
def test_run_precision_falls_back_to_fp32_without_native_bf16(
    card_precision: str, native: bool, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A card's bf16 was measured on a CPU with bf16 instructions; elsewhere it is emulated."""
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: native)
    assert run_precision(card_precision, torch.device("cpu")) == expected  # type: ignore[arg-type]


def test_detect_sites_runs_a_bf16_card_in_fp32_on_a_cpu_without_bf16(
    tmp_path: Path,
    card_factory: Callable[..., ModelCard],
    monkeypatch: pytest.MonkeyPatch,
    precision_spy: Callable[[object, str], list[str]],
) -> None:
    """The U-Net and the verifier get fp32 unless the caller names a precision."""
    composite = tmp_path / "composite.tif"
    _write_composite(composite)
    card = card_factory(tile_px=16, overlap_px=4, precision="bf16")
    monkeypatch.setattr(stage, "load_model", lambda *a, **k: _ndwi_model(card))
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    used = precision_spy(stage, "predict_by_column_blocks")
    verifier_precisions = precision_spy(stage, "verifier_for")
    out = tmp_path / "probability.tif"
    detect_sites(composite, tmp_path / "model", out, min_area_ha=0.1)
    detect_sites(composite, tmp_path / "model", out, min_area_ha=0.1, precision="bf16")
    assert used == ["fp32", "bf16"]
    assert verifier_precisions == ["fp32", "bf16"]


def test_detect_sites_refuses_another_resolution(
    tmp_path: Path, card_factory: Callable[..., ModelCard], monkeypatch: pytest.MonkeyPatch
) -> None:
    composite = tmp_path / "composite.tif"
    _write_composite(composite, resolution_m=30.0)
    card = card_factory()
    monkeypatch.setattr(stage, "load_model", lambda *a, **k: _ndwi_model(card))
    with pytest.raises(ModelMismatchError, match="train one at 30 m"):
        detect_sites(composite, tmp_path / "model", tmp_path / "p.tif")


def test_a_batch_holds_the_same_pixels_whatever_the_tile_size(
    card_factory: Callable[..., ModelCard],
) -> None:
    # Activation memory follows the pixels of a batch: 512 px tiles come 2 at a time.
    assert [tiles_per_batch(card_factory(tile_px=px)) for px in (128, 256, 512, 1024)] == [
        32,
        8,
        2,
        1,
    ]
    card = card_factory(tile_px=16, overlap_px=4)
    model = _pixelwise_model(card, [0.2, -0.1, 0.3, 0.0, 0.5, -0.4])
    reader = CountingReader(np.random.default_rng(5).normal(0, 1, (6, 50, 70)).astype(np.float32))
    batches: list[int] = []
    default = predict_probabilities(reader, model, progress=lambda d, n: batches.append(d))
    # 16 px tiles: 2,048 per pass, so this whole image is one batch.
    assert len(batches) == 1
    np.testing.assert_allclose(
        default, predict_probabilities(reader.data, model, batch_size=3), atol=1e-6
    )
