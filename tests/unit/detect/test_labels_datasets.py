"""Tests of label parsing (GeoJSON, LabelBox NDJSON), rasterising and the spatial split."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from scene_builders import GRID, build_scene_folder, labelbox_row

from asmspotter.detect.datasets import (
    load_labelled_scenes,
    patches_overlap,
    plan_patches,
    sample_training_patches,
)
from asmspotter.detect.labels import LabelReadError, load_labels, rasterize_labels


def test_labelbox_pixel_polygons_rasterise_exactly(tmp_path: Path) -> None:
    """A 3x3 px square around pixel centres (2..4, 5..7) burns 9 pixels; a negative 4."""
    path = tmp_path / "export.ndjson"
    square = [(5.0, 2.0), (8.0, 2.0), (8.0, 5.0), (5.0, 5.0)]
    small = [(0.0, 0.0), (2.0, 0.0), (2.0, 2.0), (0.0, 2.0)]
    path.write_text(
        labelbox_row("scene_a.tif", [square], "Mine")
        + "\n"
        + labelbox_row("scene_a.tif", [small], "false_positive")
        + "\n\n"
        + labelbox_row("scene_b.tif", [small], "mine")
        + "\n",
        encoding="utf-8",
    )
    labels = load_labels(path)
    assert len(labels) == 3
    assert [lab.negative for lab in labels] == [False, True, False]
    assert all(lab.crs is None for lab in labels)
    mining, negative = rasterize_labels(
        labels, scene_id="scene_a", transform=GRID.transform, crs="EPSG:32621", shape_px=(10, 10)
    )
    assert mining.sum() == 9
    assert mining[2:5, 5:8].all()
    assert negative.sum() == 4


def test_labelbox_bad_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.ndjson"
    path.write_text('{"data_row": {}}\nnot json\n', encoding="utf-8")
    with pytest.raises(LabelReadError, match=r"bad.ndjson:2: not valid JSON"):
        load_labels(path)


def test_missing_label_file_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(LabelReadError, match="--labels"):
        load_labels(tmp_path / "nope.geojson")


@pytest.fixture(scope="module")
def scene_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    folder = tmp_path_factory.mktemp("scenes")
    mask = build_scene_folder(folder, seed=1, n_scenes=2)
    return folder, mask


def test_geojson_labels_rasterise_back_to_the_mask(scene_folder: tuple[Path, np.ndarray]) -> None:
    folder, mask = scene_folder
    scenes = load_labelled_scenes(folder, load_labels(folder / "labels.geojson"))
    assert len(scenes) == 2
    # Reprojecting to EPSG:4326 and back moves edges by far less than a pixel.
    agreement = (scenes[0].mining == mask).mean()
    assert agreement > 0.995
    assert scenes[0].reflectance.shape == (4, 256, 256)
    assert scenes[0].resolution_m == pytest.approx(10.0)


def test_spatial_split_has_no_overlap(scene_folder: tuple[Path, np.ndarray]) -> None:
    folder, _ = scene_folder
    scenes = load_labelled_scenes(folder, load_labels(folder / "labels.geojson"))
    patches = plan_patches(scenes, patch_px=32, block_px=64, seed=0)
    by_split = {s: [p for p in patches if p.split == s] for s in ("train", "val", "test")}
    assert all(by_split.values()), {k: len(v) for k, v in by_split.items()}
    # A block belongs to one split, in every scene of the same place.
    split_of_block: dict[object, str] = {}
    for p in patches:
        assert split_of_block.setdefault(p.block, p.split) == p.split
    # No test or val patch shares a pixel with a training patch, in any scene: both
    # scenes are the same area, so compare positions regardless of scene.
    for a, b in itertools.product(by_split["train"], by_split["test"] + by_split["val"]):
        moved = type(b)(a.scene, b.row, b.col, b.size_px, b.split, b.kind, b.block)
        assert not patches_overlap(a, moved)
    drawn = sample_training_patches(patches, 50, np.random.default_rng(0))
    assert all(p.split == "train" for p in drawn)
    assert any(p.kind == "mining" for p in drawn)
