"""Row 9 (rest): band count, dtype and reflectance scale of downloaded scenes.

Before: uint8 scenes were accepted and gave 0 detections without a warning (local
8-bit files are refused since; this covers what any provider downloads). Every
downloaded scene now passes one check, whichever provider wrote it: a scene
whose values are 8-bit display numbers, unscaled DN or not 4 bands is skipped,
naming the scene and the file.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from shapely.geometry import box

from asmspotter.errors import SceneReadError
from asmspotter.grid import build_grid
from asmspotter.scene_io import check_scene, write_scene
from asmspotter.scenes import LocalScene, SceneRef

ACQUIRED = dt.datetime(2024, 1, 20, 14, tzinfo=dt.UTC)


def _grid():
    from asmspotter.grid import to_lonlat

    return build_grid(to_lonlat(box(600_000, 557_440, 602_560, 560_000), 32621), 10.0)


def _forest(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    base = np.array([0.03, 0.06, 0.04, 0.32], dtype=np.float32)[:, None, None]
    return base * (1 + 0.1 * rng.standard_normal((4, *shape)).astype(np.float32))


def test_a_good_scene_passes(tmp_path):
    grid = _grid()
    path = write_scene(
        tmp_path / "ok.tif", grid, _forest(np.random.default_rng(0), grid.shape), ACQUIRED
    )
    check_scene(path, "OK")


def test_eight_bit_display_values_are_refused(tmp_path):
    """A provider converting a uint8 'visual' asset as if DN x 1e-4: near-black reflectance."""
    grid = _grid()
    display = np.random.default_rng(1).integers(20, 255, (4, *grid.shape)).astype(np.float32)
    path = write_scene(tmp_path / "visual.tif", grid, display * 1e-4, ACQUIRED)
    with pytest.raises(SceneReadError, match=r"scene VIS: .*visual.tif.*reaches only"):
        check_scene(path, "VIS")


def test_unscaled_dn_is_refused(tmp_path):
    path = tmp_path / "dn.tif"
    dn = np.random.default_rng(2).integers(200, 4000, (4, 64, 64)).astype(np.uint16)
    profile = dict(driver="GTiff", width=64, height=64, count=4, dtype="uint16", nodata=0)
    transform = Affine(10, 0, 600_000, 0, -10, 560_000)
    with rasterio.open(path, "w", crs="EPSG:32621", transform=transform, **profile) as dst:
        dst.write(dn)  # no band scale: DN read as reflectance
    with pytest.raises(SceneReadError, match=r"band scale is missing or wrong"):
        check_scene(path, "DN")


def _tiled_dn_scene(path: Path, dn: np.ndarray, *, overviews: bool) -> Path:
    """A scene of many 64 px blocks, DN without a band scale (read as reflectance)."""
    _, height, width = dn.shape
    transform = Affine(10, 0, 600_000, 0, -10, 560_000)
    profile = dict(
        driver="GTiff", width=width, height=height, count=4, dtype="uint16", nodata=0,
        tiled=True, blockxsize=64, blockysize=64,
    )  # fmt: skip
    with rasterio.open(path, "w", crs="EPSG:32621", transform=transform, **profile) as dst:
        dst.write(dn)
    if overviews:
        with rasterio.open(path, "r+") as dst:
            dst.build_overviews([2, 4])
    return path


@pytest.mark.parametrize("overviews", [False, True])
def test_the_range_is_measured_on_samples_of_a_large_scene(tmp_path, overviews):
    """12 x 12 blocks: a grid of 8 x 8 of them (or, with overviews, a decimated read)
    still sees unscaled DN, and the same DN with their band scale pass."""
    rng = np.random.default_rng(3)
    dn = rng.integers(200, 4000, (4, 768, 768)).astype(np.uint16)
    path = _tiled_dn_scene(tmp_path / "big.tif", dn, overviews=overviews)
    with pytest.raises(SceneReadError, match=r"band scale is missing or wrong"):
        check_scene(path, "DN")
    scaled = tmp_path / "scaled.tif"
    with rasterio.open(path) as src:
        profile = src.profile
    with rasterio.open(scaled, "w", **profile) as dst:
        dst.write(dn)
        dst.scales = [1e-4] * 4
    check_scene(scaled, "OK")


@pytest.mark.parametrize(
    ("count", "dtype", "match"), [(3, "uint16", "3 bands"), (4, "uint8", "8-bit")]
)
def test_wrong_bands_or_dtype_are_refused(tmp_path, count, dtype, match):
    path = tmp_path / "bad.tif"
    transform = Affine(10, 0, 600_000, 0, -10, 560_000)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=32,
        height=32,
        count=count,
        dtype=dtype,
        crs="EPSG:32621",
        transform=transform,
    ) as dst:
        dst.write(np.full((count, 32, 32), 100, dtype=dtype))
    with pytest.raises(SceneReadError, match=match):
        check_scene(path, "BAD")


@dataclass
class _FakeDownloadProvider:
    """Stands in for STAC / Planet / DHuS: writes what it downloaded through write_scene."""

    reflectance: np.ndarray
    name: str = "fake"

    def search(self, *_args: object) -> list[SceneRef]:
        return []

    def download(self, ref: SceneRef, cache_dir: Path) -> LocalScene:
        path = write_scene(
            cache_dir / ref.scene_id / "reflectance.tif", _grid(), self.reflectance, ACQUIRED
        )
        return LocalScene(ref=ref, reflectance_path=path, cloud_mask_path=None)


def test_every_provider_download_is_checked(tmp_path, monkeypatch):
    from asmspotter import monitor

    grid = _grid()
    eight_bit = (
        np.random.default_rng(3).integers(20, 255, (4, *grid.shape)).astype(np.float32) * 1e-4
    )
    provider = _FakeDownloadProvider(eight_bit)
    monkeypatch.setattr(monitor.RunContext, "provider", property(lambda self: provider))

    @dataclass
    class _Settings:
        cache_dir: Path

    ctx = type("Ctx", (), {"provider": provider, "settings": _Settings(tmp_path)})()
    ref = SceneRef("fake", "S2X_20240120", ACQUIRED, box(0, 0, 1, 1), 0.0, {})
    with pytest.raises(SceneReadError, match=r"scene S2X_20240120: .*reflectance.tif"):
        monitor.download_scene(ctx, ref)  # type: ignore[arg-type]
