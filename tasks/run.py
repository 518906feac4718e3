"""Tasks that open and close the run record of one AOI window."""

from __future__ import annotations

import datetime as dt

from prefect import task
from prefect.cache_policies import NO_CACHE

from asmspotter import monitor
from asmspotter.composite.composite import CompositeResult
from asmspotter.monitor import DetectionResult, MonitoringPlan, RunContext
from asmspotter.storage.records import RunStatus


@task(name="prepare-run", task_run_name="prepare-{aoi_name}", cache_policy=NO_CACHE)
def prepare_run(aoi_name: str, end_date: dt.date | None) -> RunContext:
    """Load and validate the AOI, resolve its window and grid, open the run record."""
    return monitor.prepare_run(aoi_name, end_date)


@task(name="finish-run", task_run_name="finish-{ctx.aoi.name}-{status}", cache_policy=NO_CACHE)
def finish_run(
    ctx: RunContext,
    status: RunStatus,
    *,
    n_scenes: int = 0,
    composite: CompositeResult | None = None,
    detection: DetectionResult | None = None,
    message: str | None = None,
) -> None:
    """Close the run record as completed, failed or no_data, with its outputs."""
    monitor.finish_run(
        ctx, status, n_scenes=n_scenes, composite=composite, detection=detection, message=message
    )


@task(name="plan-monitoring", task_run_name="plan-{today}", cache_policy=NO_CACHE)
def plan_monitoring(today: dt.date) -> MonitoringPlan:
    """Decide which AOIs are due today; invalid AOI files are listed, never raised."""
    return monitor.plan_monitoring(today)
