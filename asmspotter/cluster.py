"""Where the heavy stages compute: a ``dask.distributed`` cluster, or local threads.

With the setting ``ASMSPOTTER_DASK_SCHEDULER`` (e.g. ``tcp://dask-scheduler:8786``)
compositing (:mod:`asmspotter.composite.composite`) computes its chunks on that
cluster and U-Net inference (:func:`asmspotter.detect.stage.detect_sites`) predicts
blocks of the composite on all its workers; without it both run on the local
threaded scheduler. Memory per worker is bounded by the chunk size (1024 px
composite chunks), a block (at most 3,072 px square) and GDAL's capped block cache
(:mod:`asmspotter.memory`), not by the AOI's area.

Code already running on a Dask worker (``monitor_all`` fanning AOIs out with
prefect-dask's ``DaskTaskRunner``: one AOI per worker) computes on that worker's
own threads, so AOI tasks never wait on chunks queued behind other AOI tasks.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from asmspotter.memory import gdal_cache_limit_mb

logger = logging.getLogger(__name__)

SCHEDULER_SETTING = "ASMSPOTTER_DASK_SCHEDULER"
"""Environment variable naming the scheduler address; named in connection errors."""


def is_on_dask_worker() -> bool:
    """True inside a task running on a ``dask.distributed`` worker."""
    try:
        from distributed import get_worker
    except ImportError:
        return False
    try:
        get_worker()
    except ValueError:
        return False
    return True


def available_cpu_count() -> int:
    """Return the number of CPU cores this process may run on (affinity-aware)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS and Windows have no sched_getaffinity
        return max(1, os.cpu_count() or 1)


def dask_worker_threads() -> int | None:
    """Threads of the Dask worker this code runs on, or None off a worker.

    A worker runs that many tasks at once, so a task should use that many cores:
    two single-threaded workers on a 2-core machine must not each start 2 threads.
    """
    if not is_on_dask_worker():
        return None
    from distributed import get_worker

    return int(get_worker().state.nthreads)


def task_core_budget() -> int:
    """Cores one task may use: those available, at most its Dask worker's threads.

    torch's intra-op threads and GDAL's decoding threads both take this budget, so two
    one-thread workers on two cores use one core each.
    """
    n = available_cpu_count()
    worker_threads = dask_worker_threads()
    if worker_threads is not None:
        n = max(1, min(n, worker_threads))
    return n


@contextmanager
def dask_client(address: str | None) -> Iterator[Any | None]:
    """Yield a ``distributed.Client`` for ``address``, or None for local threads.

    Args:
        address: Scheduler address (``tcp://host:8786``); None or empty: no cluster.

    Yields:
        A client (closed on exit), or None: compute on local threads (no cluster, or
        already on a cluster worker).

    Raises:
        ConnectionError: The scheduler cannot be reached (names the setting to fix).
    """
    if not address:
        yield None
        return
    if is_on_dask_worker():
        # This AOI already runs on a cluster worker (monitor_all's DaskTaskRunner): its
        # chunks compute on that worker's threads. Graphs submitted from inside a
        # prefect-dask task fail to serialise (they capture the run's context).
        yield None
        return
    from distributed import Client

    try:
        client = Client(address, set_as_default=False, timeout="30s")  # type: ignore[no-untyped-call]
    except OSError as exc:
        raise ConnectionError(
            f"cannot reach the Dask scheduler at {address!r} ({exc}); start it, or unset "
            f"{SCHEDULER_SETTING} to compute on local threads."
        ) from exc
    try:
        logger.info("computing on the Dask cluster at %s", address)
        cache_mb = gdal_cache_limit_mb()
        if cache_mb is not None:
            # Workers read and write the AOI's rasters too: same flat memory budget.
            from asmspotter.dask_plugins import GdalCachePlugin

            client.register_plugin(GdalCachePlugin(cache_mb))
        yield client
    finally:
        client.close()  # type: ignore[no-untyped-call]
