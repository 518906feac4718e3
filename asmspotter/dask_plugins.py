"""Dask worker plugins that give cluster workers the settings of the process that connects.

Kept apart from :mod:`asmspotter.cluster` so that importing it (and ``distributed``)
happens only when a cluster is used.
"""

from __future__ import annotations

from distributed import Worker, WorkerPlugin

from asmspotter.memory import limit_gdal_cache


class GdalCachePlugin(WorkerPlugin):
    """Cap GDAL's block cache on every worker, present and future (:mod:`asmspotter.memory`).

    Registered by :func:`asmspotter.cluster.dask_client`; registering again under the
    same ``name`` replaces it, so reconnecting never stacks copies.
    """

    name = "asmspotter-gdal-cache"

    def __init__(self, megabytes: int) -> None:
        self.megabytes = megabytes

    def setup(self, worker: Worker) -> None:
        """Apply the cap in the worker's process."""
        limit_gdal_cache(self.megabytes)
