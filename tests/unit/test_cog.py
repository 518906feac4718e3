"""The chunked COG writer: tiles compressed where they are computed, laid out as GDAL's COG."""

from __future__ import annotations

import struct
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import rasterio
import tifffile
from affine import Affine
from rasterio.enums import Resampling

from asmspotter.cog import ChunkedCogWriter, TileAssembler, overview_factors

NAMES = ["blue", "green", "red", "nir", "ndwi", "ndvi", "valid"]
TRANSFORM = Affine(10, 0, 600_000, 0, -10, 700_000)


@pytest.mark.parametrize(
    ("size", "factors"),
    [((400, 300), []), ((1024, 100), [2]), ((10954, 10954), [2, 4, 8, 16, 32])],
)
def test_overviews_go_down_to_one_block(size: tuple[int, int], factors: list[int]) -> None:
    assert overview_factors(*size) == factors


def _image(height: int = 1300, width: int = 1100) -> np.ndarray:
    rng = np.random.default_rng(0)
    image = rng.random((len(NAMES), height, width), dtype=np.float32)
    image[:, 100:301, 201:700] = np.nan  # never clear
    image[2, 5, 7] = np.nan  # one band missing in one pixel
    return image


def _writer(
    folder: Path, height: int = 600, width: int = 600, chunk_px: int = 1024
) -> ChunkedCogWriter:
    """A writer of a 7-band image of ``height`` x ``width`` px at ``folder/c.tif``."""
    return ChunkedCogWriter(
        folder / "c.tif",
        width=width,
        height=height,
        band_names=NAMES,
        transform=TRANSFORM,
        epsg=32621,
        chunk_px=chunk_px,
    )


def _write(path: Path, image: np.ndarray, chunk_px: int = 1024, reverse: bool = False) -> Path:
    _, height, width = image.shape
    writer = ChunkedCogWriter(
        path,
        width=width,
        height=height,
        band_names=NAMES,
        transform=TRANSFORM,
        epsg=32621,
        chunk_px=chunk_px,
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
    """IFDs first; the chunks' levels as computed, then the rest smallest first, row-major."""
    image = _image(2100, 2300)  # overview levels 1-3: level 1 from the 1,024 px chunks
    path = _write(tmp_path / "c.tif", image, reverse=True)
    raw = path.read_bytes()
    assert b"LAYOUT=IFDS_BEFORE_DATA" in raw[:400]
    with tifffile.TiffFile(path) as tif:
        levels = [(page.dataoffsets, page.databytecounts) for page in tif.pages]
        last_ifd = tif.pages[-1].offset
    assert len(levels) == 4
    first_tile = min(offset for offsets, _ in levels for offset in offsets)
    assert last_ifd < first_tile  # every IFD before any tile
    from_chunks = [offset for offsets, _ in levels[:2] for offset in offsets]
    from_finish = [offsets[0] for offsets, _ in levels[2:]]
    assert max(from_chunks) < min(from_finish)  # the chunks' tiles first
    assert from_finish == sorted(from_finish, reverse=True)  # then smallest first
    for level, (offsets, counts) in enumerate(levels):
        if level >= 2:
            assert list(offsets) == sorted(offsets)
        for offset, count in zip(offsets, counts, strict=True):
            assert struct.unpack("<I", raw[offset - 4 : offset])[0] == count
            end = offset + count
            assert raw[end : end + 4] == raw[end - 4 : end]
    with rasterio.open(path) as src:
        np.testing.assert_array_equal(src.read(), image)


def test_a_missing_chunk_is_refused_and_nothing_is_left(tmp_path: Path) -> None:
    image = _image(600, 600)
    writer = _writer(tmp_path, chunk_px=512)
    records = writer.write_chunk(image[:, :512, :512], 0, 0)
    with pytest.raises(ValueError, match="tiles missing"):
        writer.finish(records)
    writer.discard()
    assert list(tmp_path.iterdir()) == []


def test_chunks_must_start_on_a_tile(tmp_path: Path) -> None:
    writer = _writer(tmp_path)
    with pytest.raises(ValueError, match="1024 px squares on a grid"):
        writer.write_chunk(_image(600, 600)[:, :100, :100], 100, 0)
    writer.discard()


def test_pieces_in_any_order_become_whole_tiles_with_a_nodata_value(tmp_path: Path) -> None:
    """The probability map's path: strips cut anywhere, nodata -1, one band."""
    rng = np.random.default_rng(1)
    image = rng.random((1, 1100, 1300), dtype=np.float32)
    image[0, :, :40] = -1.0  # no data on the left
    writer = ChunkedCogWriter(
        tmp_path / "p.tif",
        width=1300,
        height=1100,
        band_names=["mining_probability"],
        transform=TRANSFORM,
        epsg=32621,
        nodata=-1.0,
    )
    tiles = TileAssembler(writer)
    cuts = [0, 300, 448, 896, 1100]  # where U-Net tile rows end, not on 512
    pieces = [(rows, cols) for rows in pairwise(cuts) for cols in ((0, 700), (700, 1300))]
    for (r0, r1), (c0, c1) in reversed(pieces):
        tiles.add(r0, c0, image[:, r0:r1, c0:c1])
        assert len(tiles.pending) <= 6  # only partly filled tiles are held
    path = tiles.finish()
    with rasterio.open(path) as src:
        assert src.nodata == -1 and src.count == 1
        np.testing.assert_array_equal(src.read(), image)
    with rasterio.open(path, OVERVIEW_LEVEL=0) as src:
        half = src.read(1)
    assert (half[:, :20] == -1).all()  # nodata stays nodata, never averaged in
    expected = image[0, :2, 40:42].mean()
    assert half[0, 20] == pytest.approx(expected, rel=1e-6)


def test_a_missing_piece_is_named(tmp_path: Path) -> None:
    writer = ChunkedCogWriter(
        tmp_path / "p.tif", width=600, height=600, band_names=["p"], transform=TRANSFORM, epsg=32621
    )
    tiles = TileAssembler(writer)
    tiles.add(0, 0, np.zeros((1, 600, 300), np.float32))
    with pytest.raises(ValueError, match="pieces missing"):
        tiles.finish()
    writer.discard()
    assert list(tmp_path.iterdir()) == []


def test_odd_sizes_average_exact_2x2_blocks_cut_at_the_edge() -> None:
    from asmspotter.cog import average_2x2

    block = np.arange(35, dtype=np.float32).reshape(5, 7, 1)
    block[0, 0, 0] = np.nan
    half = average_2x2(block)[..., 0]
    assert half.shape == (3, 4)
    assert half[0, 0] == pytest.approx((1 + 7 + 8) / 3)  # the NaN is left out
    assert half[0, 3] == pytest.approx((6 + 13) / 2)  # the last column has one pixel
    assert half[2, 3] == 34  # the corner has one pixel
    assert np.isnan(average_2x2(np.full((2, 2, 1), np.nan, np.float32))).all()


def test_a_chunk_that_is_not_whole_tiles_is_refused(tmp_path: Path) -> None:
    writer = _writer(tmp_path, width=1100)
    image = _image(600, 1100)
    with pytest.raises(ValueError, match="does not cover whole 512 px tiles"):
        writer.write_chunk(image[:, :, :700], 0, 0)  # ends inside a tile
    with pytest.raises(ValueError, match="does not cover whole 512 px tiles"):
        writer.write_chunk(image[:3, :, :512], 0, 0)  # 3 bands of 7
    writer.discard()


def test_a_tile_overwritten_on_disk_is_caught_before_the_file_is_named(tmp_path: Path) -> None:
    """Two appenders at once, or storage that lost a write: no COG with wrong offsets."""
    from asmspotter.errors import OutputWriteError

    image = _image(600, 600)
    writer = _writer(tmp_path)
    records = writer.write_chunk(image, 0, 0)
    with open(writer.partial, "r+b") as damaged:
        damaged.seek(records[1].offset - 4)
        damaged.write(b"\0\0\0\0")
    with pytest.raises(OutputWriteError, match="is not where it was written"):
        writer.finish(records)
    writer.discard()
    assert list(tmp_path.iterdir()) == []


def test_a_chunk_finishing_after_the_write_was_abandoned_leaves_no_file(tmp_path: Path) -> None:
    writer = _writer(tmp_path)
    writer.discard()  # another chunk failed and the write was cleaned up
    with pytest.raises(FileNotFoundError):
        writer.write_chunk(_image(600, 600), 0, 0)
    assert list(tmp_path.iterdir()) == []


def test_rotated_grids_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="north-up"):
        ChunkedCogWriter(
            tmp_path / "c.tif",
            width=600,
            height=600,
            band_names=NAMES,
            transform=Affine(10, 1, 600_000, 0, -10, 700_000),
            epsg=32621,
        )
    assert list(tmp_path.iterdir()) == []


def test_pieces_that_overlap_or_stick_out_are_refused(tmp_path: Path) -> None:
    writer = _writer(tmp_path, chunk_px=512)
    tiles = TileAssembler(writer)
    tiles.add(0, 0, np.zeros((7, 512, 512), np.float32))
    with pytest.raises(ValueError, match="pieces overlap"):
        tiles.add(500, 500, np.zeros((7, 20, 20), np.float32))  # into the complete tile
    with pytest.raises(ValueError, match="lies outside"):
        tiles.add(590, 0, np.zeros((7, 20, 20), np.float32))
    writer.discard()
