"""The memory budget of a process that reads and writes rasters, and runs the U-Net.

GDAL's block cache (:func:`limit_gdal_cache`) and glibc's handling of large freed
blocks (:func:`reuse_freed_memory`).

GDAL keeps recently read and written raster blocks in a process-wide cache whose
default size is 5 % of the machine's RAM (1.2 GiB on a 24 GiB machine, per process).
Compositing and inference stream an AOI block by block, so that cache fills with
blocks that are never read again and a process's peak memory grows with the AOI
until the cache is full: measured at 3,000 km², peak RSS 2.99 GiB with GDAL's
default and 1.36 GiB with 128 MB (``benchmarks/README.md``). A fixed budget keeps
peak memory flat in the AOI size.

The budget is process-wide (``GDALSetCacheMax`` through the ``GDAL_CACHEMAX``
config option, https://gdal.org/user/configoptions.html#performance-and-caching),
so it is set once by the stage that runs, and copied to the workers of a Dask
cluster by :func:`asmspotter.cluster.dask_client`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os

from rasterio.env import set_gdal_config

logger = logging.getLogger(__name__)

CACHE_OPTION = "GDAL_CACHEMAX"


def limit_gdal_cache(megabytes: int) -> None:
    """Cap GDAL's block cache of this process (and of processes it starts) at ``megabytes``.

    The environment variable makes child processes started afterwards (a
    ``LocalCluster``'s workers) start with the same cap; the config option changes
    it in this process now, even after GDAL has read rasters.
    """
    if megabytes < 1:
        raise ValueError(f"GDAL cache must be >= 1 MB, got {megabytes}.")
    os.environ[CACHE_OPTION] = str(megabytes)
    set_gdal_config(CACHE_OPTION, megabytes)
    logger.debug("GDAL block cache capped at %d MB", megabytes)


def gdal_cache_limit_mb() -> int | None:
    """The cap in MB set by :func:`limit_gdal_cache` (or the ``GDAL_CACHEMAX`` variable).

    None when no cap in MB was set (GDAL's default of 5 % of RAM applies); a
    variable GDAL reads as bytes (>= 100,000) or as a percentage (``"10%"``) gives
    None too: only a cap in MB is copied to Dask workers.
    """
    try:
        megabytes = int(os.environ.get(CACHE_OPTION, ""))
    except ValueError:
        return None
    return megabytes if 1 <= megabytes < 100_000 else None


M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
"""``mallopt`` parameters, from glibc's ``malloc.h``."""

MMAP_THRESHOLD_BYTES = 32 * 2**20
"""Blocks from this size up are mmapped; 32 MB is the largest glibc accepts."""

TRIM_THRESHOLD_BYTES = 256 * 2**20
"""Free memory at the top of the heap kept for reuse instead of returned to the OS."""


@functools.cache
def reuse_freed_memory() -> bool:
    """Make glibc's malloc keep the large blocks the stages free, for the next batch or chunk.

    A forward pass of the U-Net allocates and frees tens of MB of activations per
    batch; a composite chunk task tens of MB of date planes, medians and encoded
    tiles. With glibc's defaults a block that large is a fresh ``mmap`` each time,
    and every page of it faults in (zeroed by the kernel) on first touch: about 20 %
    of a bf16 forward pass on a 2-core CPU. With blocks up to 32 MB served from the
    heap, and up to 256 MB of freed heap kept rather than trimmed, batches and chunks
    reuse the same memory (``benchmarks/inference.py``, end to end: 64 -> 72 % of the
    bf16 GEMM rate; ``benchmarks/composite.py`` at 12,000 km² on an AVX2 EPYC:
    compute 21.1 / 18.7 -> 13.3 s, the composite 41.0 / 38.4 -> 33.5 s).
    The price is that a process may hold up to 256 MB of freed memory.

    Process-wide and applied once (``mallopt``,
    https://man7.org/linux/man-pages/man3/mallopt.3.html); the environment variables
    ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_``, if set, are left to rule.

    Returns:
        True where applied; False where the C library is not glibc or the variables
        are set.
    """
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):  # not glibc (macOS, musl without it)
        logger.debug("no mallopt in the C library %s; malloc left as it is", name)
        return False
    applied = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
    logger.debug("malloc keeps freed blocks for reuse: %s", applied)
    return applied
