"""Inference split into blocks: exact against a whole-image run, locally and on Dask.

A composite predicted as blocks on a ``LocalCluster`` of two worker processes, or
column block by column block in one process, must give the probability map and
polygons that one whole-image pass gives, since every pixel blends the same tiles
(``row_range``/``col_range`` and ``split_axis``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import torch
from scene_builders import save_random_unet, write_composite_bands

from asmspotter.composite.indices import ndvi, ndwi
from asmspotter.detect.model_card import Architecture, ModelCard
from asmspotter.detect.predict import predict_probabilities, predict_strips
from asmspotter.detect.runtime import load_model
from asmspotter.detect.stage import detect_sites
from asmspotter.detect.tiling import split_axis, tile_windows


@pytest.mark.parametrize(("height", "n_strips"), [(900, 3), (901, 8), (200, 4), (40, 2)])
def test_split_axis_covers_the_image_and_cuts_where_one_tile_row_covers(
    height: int, n_strips: int
) -> None:
    tile_px, overlap_px = 64, 16
    strips = split_axis(height, tile_px, overlap_px, n_strips)
    assert strips[0][0] == 0 and strips[-1][1] == height
    assert all(a < b for a, b in strips)
    assert all(prev[1] == nxt[0] for prev, nxt in itertools.pairwise(strips))
    assert len(strips) <= n_strips
    rows = sorted({w[0] for w in tile_windows(height, 8, tile_px, overlap_px)})
    for _, boundary in strips[:-1]:
        covering = [
            r for r in rows if r <= boundary - 1 < r + tile_px or r <= boundary < r + tile_px
        ]
        # One tile row spans both sides of the cut: the cut costs one extra tile row.
        assert len([r for r in covering if r <= boundary - 1 and boundary < r + tile_px]) == 1


def test_split_axis_gives_more_parts_on_longer_axes() -> None:
    assert len(split_axis(900, 64, 16, 4)) == 4
    assert split_axis(50, 64, 16, 4) == [(0, 50)]
    with pytest.raises(ValueError, match="n_parts"):
        split_axis(900, 64, 16, 0)


def test_blocks_predicted_apart_equal_the_whole_image(
    tmp_path: Path, card_factory: Callable[..., ModelCard]
) -> None:
    card = card_factory(
        tile_px=32, overlap_px=8, architecture=Architecture(base_channels=4, depth=2)
    )
    model = load_model(save_random_unet(tmp_path / "m", card), device="cpu")
    features = np.random.default_rng(1).normal(size=(6, 150, 70)).astype(np.float32)
    whole = predict_probabilities(features, model, batch_size=3)
    joined = np.full(whole.shape, np.nan, np.float32)
    # Arbitrary cuts, not only split_axis's, in both directions.
    for rows, cols in itertools.product([(0, 1), (1, 61), (61, 150)], [(0, 29), (29, 70)]):
        for row, col, prob, _ in predict_strips(
            features,
            model,
            valid_mask=None,
            batch_size=3,
            progress=None,
            precision="fp32",
            row_range=rows,
            col_range=cols,
        ):
            assert rows[0] <= row and row + prob.shape[0] <= rows[1]
            assert (col, col + prob.shape[1]) == cols
            block = joined[row : row + prob.shape[0], col : col + prob.shape[1]]
            assert np.isnan(block).all(), "a pixel came twice"
            block[:] = prob
    np.testing.assert_array_equal(joined, whole)
    for bad_range in ({"row_range": (10, 151)}, {"col_range": (5, 5)}):
        with pytest.raises(ValueError, match=next(iter(bad_range))):
            next(
                predict_strips(
                    features,
                    model,
                    valid_mask=None,
                    batch_size=3,
                    progress=None,
                    precision="fp32",
                    **bad_range,  # type: ignore[arg-type]
                )
            )


def _write_composite(path: Path, height: int, width: int) -> None:
    """Forest with scattered ponds (NDWI > 0) and a stripe never observed (valid 0)."""
    rng = np.random.default_rng(5)
    green = np.full((height, width), 0.06, np.float32)
    nir = np.full((height, width), 0.30, np.float32)
    for _ in range(12):
        r, c = rng.integers(0, height - 12), rng.integers(0, width - 12)
        green[r : r + 10, c : c + 9] = 0.09
        nir[r : r + 10, c : c + 9] = 0.05
    bands = {
        "blue": np.full((height, width), 0.03, np.float32),
        "green": green,
        "red": np.full((height, width), 0.035, np.float32),
        "nir": nir,
    }
    bands["ndwi"] = ndwi(green, nir)
    bands["ndvi"] = ndvi(bands["red"], nir)
    valid = np.full((height, width), 3, np.float32)
    valid[:, 50:53] = 0
    bands["valid"] = valid
    write_composite_bands(path, bands)


def _reference_run(
    tmp_path: Path, card_factory: Callable[..., ModelCard], height: int, width: int
) -> tuple[Path, Path, float, gpd.GeoDataFrame]:
    """A random net and composite, and one whole run's polygons at a threshold giving some.

    Returns (model folder, composite, threshold, polygons); the map is ``local.tif``.
    """
    card = card_factory(
        tile_px=32, overlap_px=8, threshold=0.5, architecture=Architecture(base_channels=4, depth=2)
    )
    model_dir = save_random_unet(tmp_path / "model", card)
    composite = tmp_path / "composite.tif"
    _write_composite(composite, height=height, width=width)
    detect_sites(composite, model_dir, tmp_path / "local.tif", min_area_ha=0.0)
    with rasterio.open(tmp_path / "local.tif") as src:
        probability = src.read(1)
    # An untrained net: threshold at its top decile so that there are polygons to compare.
    threshold = float(np.quantile(probability[probability >= 0], 0.9))
    local = detect_sites(
        composite, model_dir, tmp_path / "local.tif", threshold=threshold, min_area_ha=0.0
    )
    return model_dir, composite, threshold, local


@pytest.mark.slow
def test_detect_sites_on_a_local_cluster_equals_one_process(
    tmp_path: Path, card_factory: Callable[..., ModelCard]
) -> None:
    from distributed import Client, LocalCluster

    model_dir, composite, threshold, local = _reference_run(
        tmp_path, card_factory, height=300, width=120
    )
    progress: list[tuple[int, int]] = []
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster, set_as_default=False) as client,  # as dask_client() makes it
    ):
        distributed = detect_sites(
            composite,
            model_dir,
            tmp_path / "cluster.tif",
            threshold=threshold,
            min_area_ha=0.0,
            client=client,
            progress=lambda done, total: progress.append((done, total)),
        )
        # Both workers predicted blocks; each loaded the model once, with one torch thread.
        threads = client.run(torch.get_num_threads)
    assert set(threads.values()) == {1}
    with rasterio.open(tmp_path / "local.tif") as a, rasterio.open(tmp_path / "cluster.tif") as b:
        # Equal to float rounding: batches and torch threads differ (1 per worker).
        np.testing.assert_allclose(a.read(1), b.read(1), rtol=0, atol=1e-6)
        assert a.transform == b.transform and a.crs == b.crs
    assert len(local) > 0
    assert len(local) == len(distributed)
    assert local.geometry.geom_equals(distributed.geometry).all()
    np.testing.assert_allclose(local["area_ha"], distributed["area_ha"])
    # Four blocks (two per worker thread), progress counted in tiles up to the total.
    assert len(progress) == 4
    assert progress[-1][0] == progress[-1][1] >= len(tile_windows(300, 120, 32, 8))


def test_detect_sites_in_column_blocks_equals_one_pass(
    tmp_path: Path, card_factory: Callable[..., ModelCard], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wide AOI predicted in column blocks writes the map one full-width pass writes."""
    model_dir, composite, threshold, one_pass = _reference_run(
        tmp_path, card_factory, height=70, width=300
    )
    monkeypatch.setattr("asmspotter.detect.blocks.BLOCK_PX", 64)
    progress: list[tuple[int, int]] = []
    blocked = detect_sites(
        composite,
        model_dir,
        tmp_path / "blocked.tif",
        threshold=threshold,
        min_area_ha=0.0,
        progress=lambda done, total: progress.append((done, total)),
    )
    with rasterio.open(tmp_path / "local.tif") as a, rasterio.open(tmp_path / "blocked.tif") as b:
        # Equal to float rounding: the batches of tiles differ.
        np.testing.assert_allclose(a.read(1), b.read(1), rtol=0, atol=1e-6)
    assert len(blocked) == len(one_pass) > 0
    assert blocked.geometry.geom_equals(one_pass.geometry).all()
    # Five blocks of about 64 columns: each inner edge repeats one column of tiles.
    n_tiles = len(tile_windows(70, 300, 32, 8))
    assert progress[-1][0] == progress[-1][1] == n_tiles + 4 * 3
    assert [done for done, _ in progress] == sorted(done for done, _ in progress)


def _bf16_model_and_composite(
    tmp_path: Path, card_factory: Callable[..., ModelCard]
) -> tuple[Path, Path]:
    """A small random U-Net whose card picks bf16, and a 40 x 60 px composite."""
    card = card_factory(
        tile_px=32,
        overlap_px=8,
        precision="bf16",
        architecture=Architecture(base_channels=4, depth=2),
    )
    model_dir = save_random_unet(tmp_path / "model", card)
    composite = tmp_path / "composite.tif"
    _write_composite(composite, height=40, width=60)
    return model_dir, composite


@pytest.mark.parametrize(
    ("named", "native", "expected"),
    [(None, False, "fp32"), (None, True, "bf16"), ("bf16", False, "bf16")],
)
def test_a_worker_decides_the_precision_for_its_own_cpu(
    tmp_path: Path,
    card_factory: Callable[..., ModelCard],
    monkeypatch: pytest.MonkeyPatch,
    precision_spy: Callable[[object, str], list[str]],
    named: str | None,
    native: bool,
    expected: str,
) -> None:
    """A bf16 card runs in fp32 on a worker without native bf16, unless the run named one."""
    from asmspotter.detect import blocks, runtime

    model_dir, composite = _bf16_model_and_composite(tmp_path, card_factory)
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: native)
    used = precision_spy(blocks, "predict_block")
    row, col, probability, _ = blocks.predict_composite_block(
        composite,
        model_dir,
        (0, 40),
        (0, 60),
        device="cpu",
        precision=named,  # type: ignore[arg-type]
    )
    assert used == [expected]
    assert (row, col, probability.shape) == (0, 0, (40, 60))


def test_a_cluster_run_lets_workers_decide_and_the_verifier_decide_for_the_cpu(
    tmp_path: Path,
    card_factory: Callable[..., ModelCard],
    monkeypatch: pytest.MonkeyPatch,
    precision_spy: Callable[[object, str], list[str]],
) -> None:
    """detect_sites sends no precision to the workers; the verifier's is decided for the CPU."""
    from asmspotter.detect import blocks, runtime, stage

    model_dir, composite = _bf16_model_and_composite(tmp_path, card_factory)
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    sent: list[object] = []

    def one_worker(client: object, path: Path, model: Path, **kwargs: object) -> object:
        sent.append(kwargs["precision"])  # what the workers are told
        yield blocks.predict_composite_block(
            path,
            model,
            (0, 40),
            (0, 60),
            precision=kwargs["precision"],  # type: ignore[arg-type]
        )

    monkeypatch.setattr(stage, "predict_on_cluster", one_worker)
    verifier_precisions = precision_spy(stage, "verifier_for")
    detect_sites(composite, model_dir, tmp_path / "p.tif", min_area_ha=0.0, client=object())
    assert sent == [None]
    assert verifier_precisions == ["fp32"]
    assert (tmp_path / "p.tif").is_file()
