"""GDAL's block cache is capped per process and on Dask workers (asmspotter.memory)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.env import get_gdal_config, set_gdal_config
from rasterio.windows import Window

from asmspotter.memory import CACHE_OPTION, gdal_cache_limit_mb, limit_gdal_cache


@pytest.fixture
def restore_gdal_cache(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Undo a cap after the test (the config option is process-wide)."""
    before_option = get_gdal_config(CACHE_OPTION)
    monkeypatch.delenv(CACHE_OPTION, raising=False)
    yield
    set_gdal_config(CACHE_OPTION, before_option)


def _rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _write_raster(path: Path, size_px: int) -> None:
    profile = {
        "driver": "GTiff",
        "width": size_px,
        "height": size_px,
        "count": 4,
        "dtype": "float32",
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "crs": "EPSG:32621",
        "transform": Affine(10, 0, 600_000, 0, -10, 500_000),
    }
    with rasterio.open(path, "w", **profile) as dst:
        for row in range(0, size_px, 512):
            block = np.random.default_rng(row).random((4, 512, size_px), dtype=np.float32)
            dst.write(block, window=Window(0, row, size_px, 512))


@pytest.mark.usefixtures("restore_gdal_cache")
def test_limit_sets_this_process_and_children() -> None:
    assert gdal_cache_limit_mb() is None or gdal_cache_limit_mb() != 48
    limit_gdal_cache(48)
    assert gdal_cache_limit_mb() == 48
    assert os.environ[CACHE_OPTION] == "48"  # processes started from here inherit it
    with pytest.raises(ValueError, match=">= 1 MB"):
        limit_gdal_cache(0)


def test_percent_or_byte_values_are_not_copied(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_OPTION, "10%")
    assert gdal_cache_limit_mb() is None
    monkeypatch.setenv(CACHE_OPTION, "500000000")
    assert gdal_cache_limit_mb() is None
    monkeypatch.setenv(CACHE_OPTION, "300")
    assert gdal_cache_limit_mb() == 300


@pytest.mark.usefixtures("restore_gdal_cache")
def test_reading_a_large_raster_stays_within_the_cap(tmp_path: Path) -> None:
    """256 MB read block by block: with a 16 MB cap the process does not keep it."""
    path = tmp_path / "big.tif"
    limit_gdal_cache(16)
    _write_raster(path, 4096)
    before = _rss_mib()
    with rasterio.open(path) as src:
        for row in range(0, src.height, 512):
            src.read(window=Window(0, row, src.width, 512))
    grown = _rss_mib() - before
    # Uncapped, GDAL keeps every block (5 % of RAM allows it): ~256 MB more.
    assert grown < 100, f"RSS grew {grown:.0f} MiB reading 256 MB with a 16 MB cache"


@pytest.mark.slow
@pytest.mark.usefixtures("restore_gdal_cache")
def test_dask_client_copies_the_cap_to_running_workers() -> None:
    from distributed import LocalCluster

    from asmspotter.cluster import dask_client

    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        limit_gdal_cache(40)  # after the worker started: it did not inherit the variable
        with dask_client(cluster.scheduler_address) as client:
            assert client is not None
            caps = client.run(gdal_cache_limit_mb)
    assert list(caps.values()) == [40]


def test_reuse_freed_memory_applies_once_on_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    import platform

    from asmspotter.memory import reuse_freed_memory

    reuse_freed_memory.cache_clear()
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1000")
    assert reuse_freed_memory() is False  # the operator's variables rule
    reuse_freed_memory.cache_clear()
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    expected = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert reuse_freed_memory() is expected
    reuse_freed_memory.cache_clear()
