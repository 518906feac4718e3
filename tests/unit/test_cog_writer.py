"""The chunked COG writer: tiles compressed where they are computed, laid out as GDAL's COG."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import rasterio
import tifffile
from affine import Affine
from rasterio.enums import Resampling

from asmspotter.cog_writer import ChunkedCogWriter

NAMES = ["blue", "green", "red", "nir", "ndwi", "ndvi", "valid"]
TRANSFORM = Affine(10, 0, 600_000, 0, -10, 700_000)


def _image(height: int = 1300, width: int = 1100) -> np.ndarray:
    rng = np.random.default_rng(0)
    image = rng.random((len(NAMES), height, width), dtype=np.float32)
    image[:, 100:301, 201:700] = np.nan  # never clear
    image[2, 5, 7] = np.nan  # one band missing in one pixel
    return image


def _write(path: Path, image: np.ndarray, chunk_px: int = 1024, reverse: bool = False) -> Path:
    _, height, width = image.shape
    writer = ChunkedCogWriter(
        path, width=width, height=height, band_names=NAMES, transform=TRANSFORM, epsg=32621
    )
    origins = [(r, c) for r in range(0, height, chunk_px) for c in range(0, width, chunk_px)]
    records = []
    for row0, col0 in reversed(origins) if reverse else origins:
        chunk = image[:, row0 : row0 + chunk_px, col0 : col0 + chunk_px]
        records += writer.write_chunk(chunk, row0, col0)
    return writer.finish(records)


def test_gdal_reads_back_every_pixel_bit_for_bit(tmp_path: Path) -> None:
    image = _image()
    path = _write(tmp_path / "c.tif", image)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.tif"]  # temporaries gone
    with rasterio.open(path) as src:
        assert src.descriptions == tuple(NAMES)
        assert src.crs.to_epsg() == 32621 and src.transform == TRANSFORM
        assert np.isnan(src.nodata)
        # No LAYOUT=COG: GDAL says so only for full-resolution tiles in row-major order.
        assert src.tags(ns="IMAGE_STRUCTURE") == {
            "COMPRESSION": "ZSTD",
            "INTERLEAVE": "PIXEL",
            "PREDICTOR": "3",
        }
        assert src.block_shapes[0] == (512, 512)
        assert src.overviews(1) == [2, 4]
        np.testing.assert_array_equal(src.read(), image)


def test_chunk_order_does_not_change_the_pixels(tmp_path: Path) -> None:
    image = _image(700, 1600)
    forward = _write(tmp_path / "a.tif", image, chunk_px=512)
    backward = _write(tmp_path / "b.tif", image, chunk_px=512, reverse=True)
    for level in (0, 1):
        with (
            rasterio.open(forward, OVERVIEW_LEVEL=level) as one,
            rasterio.open(backward, OVERVIEW_LEVEL=level) as other,
        ):
            np.testing.assert_array_equal(one.read(), other.read())
    assert forward.stat().st_size == backward.stat().st_size


def test_overviews_average_clear_pixels_as_gdal_does(tmp_path: Path) -> None:
    image = _image()
    path = _write(tmp_path / "c.tif", image)
    reference = tmp_path / "gdal.tif"
    profile = {"driver": "GTiff", "count": len(NAMES), "dtype": "float32", "nodata": np.nan}
    profile |= {"crs": "EPSG:32621", "transform": TRANSFORM}
    with rasterio.open(
        reference, "w", width=image.shape[2], height=image.shape[1], **profile
    ) as dst:
        dst.write(image)
        dst.build_overviews([2, 4], Resampling.average)
    for level in (0, 1):
        with rasterio.open(path, OVERVIEW_LEVEL=level) as ours:
            got = ours.read()
        with rasterio.open(reference, OVERVIEW_LEVEL=level) as theirs:
            expected = theirs.read()
        assert got.shape == expected.shape  # 650 x 550, then 325 x 275
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        np.testing.assert_allclose(got, expected, rtol=1e-5, equal_nan=True)


def test_tiles_are_laid_out_after_the_ifds_with_gdal_leaders_and_trailers(tmp_path: Path) -> None:
    """IFDs first; full resolution as computed, then overviews smallest first, row-major."""
    path = _write(tmp_path / "c.tif", _image(), reverse=True)
    raw = path.read_bytes()
    assert b"LAYOUT=IFDS_BEFORE_DATA" in raw[:400]
    with tifffile.TiffFile(path) as tif:
        levels = [(page.dataoffsets, page.databytecounts) for page in tif.pages]
        last_ifd = tif.pages[-1].offset
    first_tile = min(offset for offsets, _ in levels for offset in offsets)
    assert last_ifd < first_tile  # every IFD before any tile
    overview_starts = [offsets[0] for offsets, _ in levels[1:]]
    assert overview_starts == sorted(overview_starts, reverse=True)  # smallest first
    assert max(levels[0][0]) < min(overview_starts)  # full resolution before them
    for level, (offsets, counts) in enumerate(levels):
        if level:
            assert list(offsets) == sorted(offsets)
        for offset, count in zip(offsets, counts, strict=True):
            assert struct.unpack("<I", raw[offset - 4 : offset])[0] == count
            end = offset + count
            assert raw[end : end + 4] == raw[end - 4 : end]


def test_a_missing_chunk_is_refused_and_nothing_is_left(tmp_path: Path) -> None:
    image = _image(600, 600)
    writer = ChunkedCogWriter(
        tmp_path / "c.tif", width=600, height=600, band_names=NAMES, transform=TRANSFORM, epsg=32621
    )
    records = writer.write_chunk(image[:, :512, :512], 0, 0)
    with pytest.raises(ValueError, match="tiles missing"):
        writer.finish(records)
    writer.discard()
    assert list(tmp_path.iterdir()) == []


def test_chunks_must_start_on_a_tile(tmp_path: Path) -> None:
    writer = ChunkedCogWriter(
        tmp_path / "c.tif", width=600, height=600, band_names=NAMES, transform=TRANSFORM, epsg=32621
    )
    with pytest.raises(ValueError, match="multiples of 512"):
        writer.write_chunk(_image(600, 600)[:, :100, :100], 100, 0)
    writer.discard()
