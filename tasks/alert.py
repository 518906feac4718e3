"""Alert tasks: quicklooks, one message per channel per run, and the no-data alert.

Each task wraps one stage function of ``asmspotter.monitor`` of the same name;
deliveries are recorded in the store, so a re-run never sends an event twice and a
failed one is retried later. Only the Prefect run link is found here, because the
core knows nothing of Prefect.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from asmspotter import monitor
from asmspotter.alerts.dispatch import DeliveryOutcome
from asmspotter.alerts.facts import prefect_run_url
from asmspotter.alerts.quicklook import Quicklook
from asmspotter.events import SiteEvent
from asmspotter.monitor import RunContext


@task(name="render-quicklooks", task_run_name="quicklook-{ctx.aoi.name}", cache_policy=NO_CACHE)
def render_quicklooks(
    ctx: RunContext, events: Sequence[SiteEvent], composite_path: Path
) -> Quicklook:
    """Draw the AOI quicklook and a before/after pair per expanded site into the run folder."""
    return monitor.render_quicklooks(ctx, events, composite_path)


@task(name="send-alerts", task_run_name="alert-{ctx.aoi.name}", cache_policy=NO_CACHE)
def send_alerts(
    ctx: RunContext, events: Sequence[SiteEvent], quicklook: Quicklook | None = None
) -> list[DeliveryOutcome]:
    """Deliver the run's alertable events (and due retries) to every channel (or the outbox)."""
    return monitor.send_alerts(ctx, events, quicklook, run_url=_public_run_url())


def _public_run_url() -> str | None:
    """This flow run's page in the Prefect UI, when that UI is reachable by readers."""
    from prefect.runtime import flow_run
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

    return prefect_run_url(PREFECT_UI_URL.value(), PREFECT_API_URL.value(), flow_run.id)


@task(name="alert-if-stale", task_run_name="no-data-{ctx.aoi.name}", cache_policy=NO_CACHE)
def alert_if_stale(ctx: RunContext) -> list[DeliveryOutcome]:
    """Tell ``run_failed`` channels if the AOI has gone too many periods without a composite."""
    return monitor.alert_if_stale(ctx)
