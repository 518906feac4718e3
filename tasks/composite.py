"""Composite task: median of the window's clear pixels on the AOI grid (xarray/dask)."""

from __future__ import annotations

from collections.abc import Sequence

from prefect import task
from prefect.cache_policies import NO_CACHE

from asmspotter import monitor
from asmspotter.composite.composite import CompositeResult
from asmspotter.monitor import RunContext
from asmspotter.scenes import LocalScene


@task(name="composite-scenes", task_run_name="composite-{ctx.aoi.name}", cache_policy=NO_CACHE)
def composite_scenes(ctx: RunContext, scenes: Sequence[LocalScene]) -> CompositeResult:
    """Write the window's cloud-free composite COG into the run folder."""
    return monitor.composite_scenes(ctx, scenes)
