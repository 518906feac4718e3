"""Windowed probability writing and strip-wise vectorising equal the whole-map versions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from scipy import ndimage

from asmspotter.detect.stage import PROBABILITY_NODATA, write_probability_cog_by_strips
from asmspotter.detect.vectorize import (
    vectorize_detections,
    vectorize_probability_file,
    vectorize_probability_file_at,
)

TRANSFORM = Affine(10.0, 0.0, 500_000.0, 0.0, -10.0, 600_000.0)


def _blobby_map(seed: int, shape: tuple[int, int]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.normal(size=shape), 4)
    return (1 / (1 + np.exp(-field * 25))).astype(np.float32)


def _strips(prob: np.ndarray, nodata: np.ndarray, rows: int):  # type: ignore[no-untyped-def]
    for r in range(0, prob.shape[0], rows):
        yield r, 0, prob[r : r + rows], nodata[r : r + rows]


def _blocks(prob: np.ndarray, nodata: np.ndarray, rows: int, cols: int):  # type: ignore[no-untyped-def]
    """Blocks of rows x cols, right to left (the writer takes them in any order)."""
    for c in reversed(range(0, prob.shape[1], cols)):
        for r in range(0, prob.shape[0], rows):
            yield r, c, prob[r : r + rows, c : c + cols], nodata[r : r + rows, c : c + cols]


@pytest.mark.parametrize("cols", [None, 45])
def test_windowed_cog_equals_the_map(tmp_path: Path, cols: int | None) -> None:
    prob = _blobby_map(0, (300, 200))
    nodata = np.zeros(prob.shape, bool)
    nodata[:10, :30] = True
    path = write_probability_cog_by_strips(
        _strips(prob, nodata, 37) if cols is None else _blocks(prob, nodata, 37, cols),
        tmp_path / "p.tif",
        height=300,
        width=200,
        transform=TRANSFORM,
        crs="EPSG:32621",
    )
    with rasterio.open(path) as src:
        data = src.read(1)
        assert src.descriptions == ("mining_probability",)
        assert src.nodata == PROBABILITY_NODATA
        assert src.overviews(1) or max(src.width, src.height) <= 512
    np.testing.assert_array_equal(data[~nodata], prob[~nodata])
    assert (data[nodata] == PROBABILITY_NODATA).all()
    assert not list(tmp_path.glob("partial_*"))


def _probability_file(tmp_path: Path, prob: np.ndarray, nodata: np.ndarray) -> Path:
    """``prob`` written as the pipeline writes it, in strips of 50 rows."""
    height, width = prob.shape
    return write_probability_cog_by_strips(
        _strips(prob, nodata, 50),
        tmp_path / "p.tif",
        height=height,
        width=width,
        transform=TRANSFORM,
        crs="EPSG:32621",
    )


@pytest.mark.parametrize("strip_px", [7, 64, 1000, None])
def test_strip_vectoriser_equals_whole_map(
    tmp_path: Path, strip_px: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # None: rows from the memory budget; this budget gives 256-row strips (2 strips).
    monkeypatch.setattr("asmspotter.detect.vectorize.STRIP_BUDGET_BYTES", 190 * 20 * 100)
    prob = _blobby_map(1, (257, 190))
    nodata = np.zeros(prob.shape, bool)
    nodata[100:120, :] = True
    path = _probability_file(tmp_path, prob, nodata)
    whole = vectorize_detections(
        np.where(nodata, 0, prob), TRANSFORM, 32621, 0.5, 0.05, valid_mask=~nodata
    )
    strips = vectorize_probability_file(path, 32621, 0.5, 0.05, strip_px=strip_px)
    assert len(whole) > 3
    assert len(strips) == len(whole)
    np.testing.assert_allclose(strips["area_ha"], whole["area_ha"])
    np.testing.assert_allclose(strips["mean_probability"], whole["mean_probability"], rtol=1e-5)
    np.testing.assert_allclose(strips["max_probability"], whole["max_probability"])
    for a, b in zip(strips.geometry, whole.geometry, strict=True):
        assert a.symmetric_difference(b).area < 1e-6


def test_several_thresholds_in_one_pass_equal_one_pass_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prob = _blobby_map(2, (257, 190))
    path = _probability_file(tmp_path, prob, np.zeros(prob.shape, bool))
    apart = {t: vectorize_probability_file(path, 32621, t, 0.05, strip_px=64) for t in (0.5, 0.3)}
    opened: list[_CountingDataset] = []
    real_open = rasterio.open

    def counting_open(*args, **kwargs):  # type: ignore[no-untyped-def]
        opened.append(_CountingDataset(real_open(*args, **kwargs)))
        return opened[-1]

    monkeypatch.setattr("asmspotter.detect.vectorize.rasterio.open", counting_open)
    together = vectorize_probability_file_at(path, 32621, [0.5, 0.3], 0.05, strip_px=64)
    (dataset,) = opened
    assert dataset.reads == [(0, 67), (61, 70), (125, 70), (189, 68), (253, 4)]  # once, + halo
    assert len(apart[0.3]) != len(apart[0.5])
    assert set(together) == {0.5, 0.3}
    for t, frame in together.items():
        assert list(frame["area_ha"]) == list(apart[t]["area_ha"])
        assert list(frame["mean_probability"]) == list(apart[t]["mean_probability"])
        assert all(a.equals(b) for a, b in zip(frame.geometry, apart[t].geometry, strict=True))


class _CountingDataset:
    """A rasterio dataset whose reads are recorded as (row_off, height)."""

    def __init__(self, dataset: rasterio.io.DatasetReader) -> None:
        self._dataset = dataset
        self.reads: list[tuple[int, int]] = []
        self.columns: list[tuple[int, int]] = []

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._dataset, name)

    def __enter__(self) -> _CountingDataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self._dataset.close()

    def read(self, *args, window, **kwargs):  # type: ignore[no-untyped-def]
        self.reads.append((int(window.row_off), int(window.height)))
        self.columns.append((int(window.col_off), int(window.width)))
        return self._dataset.read(*args, window=window, **kwargs)


def test_row_reader_reads_each_row_once_going_down(tmp_path: Path) -> None:
    from asmspotter.detect.features import RowReader

    data = np.arange(3 * 50 * 20, dtype=np.float32).reshape(3, 50, 20)
    data[1, 5, 5] = -9999.0
    path = tmp_path / "r.tif"
    profile = {"driver": "GTiff", "height": 50, "width": 32, "count": 3, "dtype": "float32"}
    profile |= {"tiled": True, "blockxsize": 16, "blockysize": 16}
    data = np.concatenate([data, np.zeros((3, 50, 12), np.float32)], axis=2)
    with rasterio.open(path, "w", **profile, nodata=-9999.0, transform=TRANSFORM) as dst:
        dst.write(data)
    with rasterio.open(path) as src:
        counting = _CountingDataset(src)
        reader = RowReader(counting, [3, 2])  # type: ignore[arg-type]
        for start in range(0, 40, 6):  # overlapping windows of 10 rows, top to bottom
            rows = reader.rows(start, start + 10)
            np.testing.assert_array_equal(rows[0], data[2, start : start + 10])
            assert rows.shape == (2, 10, 32)
        # Rows 0..45 were asked for: read once each, in whole rows of 16 px blocks.
        assert counting.reads == [(0, 16), (16, 16), (32, 16)]
        assert np.isnan(reader.rows(5, 6)[1, 0, 5])  # nodata became NaN
        assert counting.reads[-1] == (5, 11)  # above the kept rows: read again, to a block edge
        # A column block is read over its columns only, and kept separately.
        block = reader.rows(8, 12, (4, 20))
        np.testing.assert_array_equal(block[0], data[2, 8:12, 4:20])
        assert counting.reads[-1] == (8, 8) and counting.columns[-1] == (4, 16)
        reader.rows(10, 14, (4, 20))
        assert len(counting.reads) == 5  # rows 10..14 of those columns were kept
