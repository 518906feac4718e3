"""Seeded builders of tiny labelled scene folders for the detect tests (made by code)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio.features
import torch
from affine import Affine
from shapely.geometry import shape

from asmspotter.detect.model_card import WEIGHTS_FILENAME, ModelCard, save_card
from asmspotter.detect.runtime import build_model
from asmspotter.grid import AOIGrid
from asmspotter.scene_io import write_scene
from asmspotter.synthetic import render_labelled_chip

GRID = AOIGrid(
    epsg=32621, resolution_m=10.0, left_m=500_000.0, top_m=600_000.0, width_px=256, height_px=256
)
"""A 2.56 km square at 10 m in UTM 21N (Suriname)."""


def mask_polygons(mask: np.ndarray, grid: AOIGrid) -> gpd.GeoDataFrame:
    """Polygons of a mask's True pixels, in EPSG:4326."""
    geoms = [
        shape(g)
        for g, v in rasterio.features.shapes(
            mask.astype(np.uint8), mask=mask, connectivity=4, transform=grid.transform
        )
        if v
    ]
    return gpd.GeoDataFrame(geometry=geoms, crs=f"EPSG:{grid.epsg}").to_crs("EPSG:4326")


def build_scene_folder(folder: Path, seed: int = 0, n_scenes: int = 1) -> np.ndarray:
    """Write ``n_scenes`` 256 px scenes of one generated landscape and labels.geojson.

    Each scene is four 128 px generated chips with mining side by side (so every
    split block has mines); returns the (256, 256) truth mask.
    """
    rng = np.random.default_rng(seed)
    refl = np.zeros((4, 256, 256), np.float32)
    mask = np.zeros((256, 256), bool)
    for i in range(2):
        for j in range(2):
            chip = render_labelled_chip(rng, size_px=128, resolution_m=10.0, mining_probability=1.0)
            refl[:, i * 128 : (i + 1) * 128, j * 128 : (j + 1) * 128] = chip.reflectance
            mask[i * 128 : (i + 1) * 128, j * 128 : (j + 1) * 128] = chip.mining_mask
    for k in range(n_scenes):
        write_scene(
            folder / f"scene_2024010{k + 1}.tif",
            GRID,
            refl,
            dt.datetime(2024, 1, k + 1, tzinfo=dt.UTC),
        )
    frame = mask_polygons(mask, GRID)
    frame["class"] = "mine"
    (folder / "labels.geojson").write_text(frame.to_json(), encoding="utf-8")
    return mask


def labelbox_row(external_id: str, polygons: list[list[tuple[float, float]]], name: str) -> str:
    """One LabelBox export v2 NDJSON line with pixel polygons."""
    objects = [
        {
            "feature_id": f"f{i}",
            "name": name,
            "annotation_kind": "ImagePolygon",
            "polygon": [{"x": x, "y": y} for x, y in ring],
        }
        for i, ring in enumerate(polygons)
    ]
    record = {
        "data_row": {"id": "dr1", "external_id": external_id},
        "projects": {"p1": {"labels": [{"annotations": {"objects": objects}}]}},
    }
    return json.dumps(record)


def save_random_unet(model_dir: Path, card: ModelCard, seed: int = 0) -> Path:
    """A model directory: ``card`` and the seeded, untrained U-Net it describes."""
    torch.manual_seed(seed)
    model_dir.mkdir(parents=True, exist_ok=True)
    save_card(card, model_dir)
    torch.save(build_model(card).state_dict(), model_dir / WEIGHTS_FILENAME)
    return model_dir


def write_composite_bands(
    path: Path, bands: dict[str, np.ndarray], resolution_m: float = 10.0
) -> None:
    """A composite-like float32 GeoTIFF in UTM 21N, one band per entry, described by name."""
    height, width = next(iter(bands.values())).shape
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=height,
        width=width,
        count=len(bands),
        dtype="float32",
        crs="EPSG:32621",
        transform=Affine(resolution_m, 0, 600_000, 0, -resolution_m, 500_000),
    ) as dst:
        for i, (name, data) in enumerate(bands.items(), start=1):
            dst.write(data, i)
            dst.set_band_description(i, name)
