"""Staging GeoTIFF -> COG: overviews built in place, values kept, staging removed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from asmspotter.cog import overview_factors, staging_profile, staging_to_cog


@pytest.mark.parametrize(
    ("size", "factors"),
    [((400, 300), []), ((1024, 100), [2]), ((10954, 10954), [2, 4, 8, 16, 32])],
)
def test_overviews_go_down_to_one_block(size: tuple[int, int], factors: list[int]) -> None:
    assert overview_factors(*size) == factors


def test_staging_becomes_a_compressed_cog_with_overviews(tmp_path: Path) -> None:
    height, width, count = 700, 1300, 3
    data = np.random.default_rng(0).random((count, height, width), dtype=np.float32)
    staging = tmp_path / "partial_x.staging.tif"
    profile = staging_profile(
        height=height,
        width=width,
        count=count,
        dtype="float32",
        crs="EPSG:32621",
        transform=Affine(10, 0, 600_000, 0, -10, 500_000),
    )
    with rasterio.open(staging, "w", **profile) as dst:
        for row in range(0, height, 256):  # strips, as the writers stream them
            dst.write(data[:, row : row + 256], window=((row, min(row + 256, height)), (0, width)))
    out = staging_to_cog(staging, tmp_path / "x.tif")
    assert out == tmp_path / "x.tif"
    assert not staging.exists() and not (tmp_path / "partial_x.tif").exists()
    with rasterio.open(out) as src:
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert src.compression.name == "zstd"
        assert src.overviews(1) == [2, 4]
        assert src.block_shapes[0] == (512, 512)
        np.testing.assert_array_equal(src.read(), data)
        # The half-resolution overview is the 2x2 average of the data.
        half = src.read(1, out_shape=(height // 2, width // 2))
    expected = data[0, : height // 2 * 2, : width // 2 * 2].reshape(height // 2, 2, width // 2, 2)
    np.testing.assert_allclose(half, expected.mean(axis=(1, 3)), atol=1e-6)
