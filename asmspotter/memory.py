"""The memory budget of a process that reads and writes rasters: GDAL's block cache.

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
