"""The dataset flow end to end on the fake STAC API: labels -> chips -> a trained model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asmspotter.detect.model_card import load_card
from fakes.labelled_stac import (
    mask_polygons_lonlat,
    serve_scene_items,
    write_labelled_scene,
)
from fakes.stac_server import FakeStacApi
from flows.dataset import build_dataset_flow


def test_flow_builds_chips_and_trains_a_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASMSPOTTER_MODELS_DIR", str(tmp_path / "models"))
    scene, mask = write_labelled_scene(tmp_path / "cogs", seed=23)
    labels = tmp_path / "labels.geojson"
    mask_polygons_lonlat(mask, scene).to_file(labels, driver="GeoJSON")
    out = tmp_path / "dataset"
    with FakeStacApi(files_dir=scene.files["blue"].parent) as api:
        serve_scene_items(api, scene)
        model_dir = build_dataset_flow(
            str(labels),
            str(out),
            config={
                "stac_url": api.base_url,
                "start": "2024-03-01",
                "end": "2024-03-31",
                "chip_px": 64,
                "http_tries": 1,
                "retry_backoff_s": 0.0,
            },
            model_name="flow-chips",
            epochs=1,
            n_train=16,
            patch_px=32,
        )
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["written"] >= 4
    assert manifest["failed_areas"] == []
    assert Path(model_dir) == tmp_path / "models" / "flow-chips"
    card = load_card(Path(model_dir))
    assert (Path(model_dir) / "weights.pt").is_file()
    assert str(out / "chips") in card.training.data
    assert card.training.epochs == 1


def test_flow_lists_a_failing_area_and_fails(tmp_path: Path) -> None:
    scene, mask = write_labelled_scene(tmp_path / "cogs", seed=23)
    labels = tmp_path / "labels.geojson"
    mask_polygons_lonlat(mask, scene).to_file(labels, driver="GeoJSON")
    out = tmp_path / "dataset"
    with FakeStacApi(files_dir=scene.files["blue"].parent) as api:
        serve_scene_items(api, scene)
        api.inject(401, route="search", times=None)
        state = build_dataset_flow(
            str(labels),
            str(out),
            config={
                "stac_url": api.base_url,
                "start": "2024-03-01",
                "end": "2024-03-31",
                "chip_px": 64,
                "http_tries": 1,
                "retry_backoff_s": 0.0,
            },
            return_state=True,
        )
    assert state.is_failed()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["failed_areas"] and "401" in manifest["failed_areas"][0]
