"""Golden hashes of generated chips and a scene series: the generator's output is frozen.

Models, their cards' IoU figures and every seeded test are built on generated data, so
a refactor of :mod:`asmspotter.synthetic` must give the same bytes for the same seed.
If a change to the generator is meant, re-train the models and update these hashes in
the same commit.

The scene series' bytes differ between CPUs with AVX-512 and AVX2-only CPUs with the
same packages (numpy 2.4.5 and 2.4.6 alike), most likely in the last bit of the float32
``tanh`` and ``**`` its clouds go through, which numpy computes with other code on
AVX-512 (not isolated further). So the series has one golden hash per code path, the
second measured on an AVX2-only AMD EPYC (2026-12-08); its ``sites.json`` is the same
on both.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import numpy as np
import pytest
import rasterio

from asmspotter.grid import AOIGrid
from asmspotter.synthetic import generate_scene_series, render_labelled_chip, render_training_pair

# Hashes of the output before the module became the synthetic/ package.
PAIR_SEED_1 = "28cf905470015e413c12d2608cf8d4e37331f5d2832eb76746e3634de0064b4d"
CHIP_SEED_107 = "a887356fd44a79885cda42f28be7bcdf8ff93998cacc05ea953c295a30f9bdfb"
SERIES_SEED_3_BY_SIMD = {
    "AVX512_SKX": "adcd6d70aa486ad4ba1a5186a655fb9d996279b92c5e6c0ed612f9e331103688",
    "AVX2": "add1e644af423390d018e9a2a589fb8168ccf0907829cd6cc0cfa3bfa4a37320",
}
"""Numpy's widest float code path on this CPU -> golden hash of the scene series."""
SITES_JSON_SEED_3 = "85109c420d75f9ce07d81d4726bf33c9c029845518d66dd4d83803d28b403128"


def _sha256(*arrays: np.ndarray) -> str:
    """Hash of the arrays' dtypes, shapes and bytes."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def test_training_pair_of_a_seed_is_unchanged() -> None:
    reflectance, mask = render_training_pair(np.random.default_rng(1), 128, 10.0, 1.0)
    assert _sha256(reflectance, mask) == PAIR_SEED_1


def test_labelled_chip_with_hard_lookalikes_is_unchanged() -> None:
    chip = render_labelled_chip(np.random.default_rng(107), 96, 3.0, 0.5, hard_lookalikes=True)
    assert _sha256(chip.reflectance, chip.mining_mask, chip.land_cover) == CHIP_SEED_107


def _numpy_simd_path() -> str | None:
    """The widest of numpy's x86 code paths that ``SERIES_SEED_3_BY_SIMD`` knows, if any."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # numpy < 2
        from numpy.core._multiarray_umath import __cpu_features__ as features
    return next((name for name in SERIES_SEED_3_BY_SIMD if features.get(name)), None)


def test_scene_series_of_a_seed_is_unchanged(tmp_path: Path) -> None:
    grid = AOIGrid(32621, 10.0, 500000.0, 600000.0, 256, 256)
    days = [dt.date(2024, 1, 5), dt.date(2024, 2, 5), dt.date(2024, 3, 5)]
    series = generate_scene_series(tmp_path, grid, days, seed=3, n_static=1, n_growing=1, n_new=1)
    arrays = []
    for scene in series.scenes:
        for path in (scene.reflectance_path, scene.cloud_mask_path, scene.truth_path):
            with rasterio.open(path) as src:
                arrays.append(src.read())
    truth = hashlib.sha256(series.truth_json_path.read_bytes()).hexdigest()
    assert truth == SITES_JSON_SEED_3  # the same on every CPU
    simd = _numpy_simd_path()
    if simd is None:
        pytest.skip("no golden hash of the series' pixels for this CPU's numpy code path")
    assert _sha256(*arrays) == SERIES_SEED_3_BY_SIMD[simd]
