"""Track task: match detections to known sites and record the run's events."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from asmspotter import monitor
from asmspotter.composite.composite import CompositeResult
from asmspotter.events import SiteEvent
from asmspotter.monitor import DetectionResult, RunContext


@task(name="track-sites", task_run_name="track-{ctx.aoi.name}", cache_policy=NO_CACHE)
def track_sites(
    ctx: RunContext, detection: DetectionResult, composite: CompositeResult
) -> list[SiteEvent]:
    """Classify each site as new, expanded, unchanged, shrunk or not seen."""
    return monitor.track_sites(ctx, detection, composite)
