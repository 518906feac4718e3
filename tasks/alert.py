"""Alert task: one message per channel for new and expanded sites, never sent twice."""

from __future__ import annotations

from collections.abc import Sequence

from prefect import task
from prefect.cache_policies import NO_CACHE

from asmspotter.alerts.dispatch import DeliveryOutcome, dispatch_alerts
from asmspotter.events import SiteEvent
from asmspotter.monitor import RunContext, open_store


@task(name="send-alerts", task_run_name="alert-{ctx.aoi.name}", cache_policy=NO_CACHE)
def send_alerts(ctx: RunContext, events: Sequence[SiteEvent]) -> list[DeliveryOutcome]:
    """Deliver the run's alertable events to every configured channel (or the outbox)."""
    return dispatch_alerts(
        open_store(ctx.settings.resolved_database_url),
        ctx.aoi,
        ctx.run_id,
        ctx.window.start,
        ctx.window.end,
        events,
        epsg=ctx.grid.epsg,
        alert_dir=ctx.run_dir / "alerts",
        outbox_dir=ctx.settings.outbox_dir,
    )
