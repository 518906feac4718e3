"""Alert tasks: quicklooks, one message per channel per run, and run-failure alerts.

Each task wraps one call of ``asmspotter.alerts``; deliveries are recorded in the
store, so a re-run never sends an event twice and a failed one is retried later.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from asmspotter.alerts.dispatch import (
    DeliveryOutcome,
    dispatch_alerts,
    send_failure_alert,
    stale_data_reason,
)
from asmspotter.alerts.evidence import ModelInfo
from asmspotter.alerts.facts import prefect_run_url
from asmspotter.alerts.quicklook import Quicklook, build_run_quicklooks
from asmspotter.events import SiteEvent
from asmspotter.monitor import RunContext, open_store, previous_composite_path


@task(name="render-quicklooks", task_run_name="quicklook-{ctx.aoi.name}", cache_policy=NO_CACHE)
def render_quicklooks(
    ctx: RunContext, events: Sequence[SiteEvent], composite_path: Path
) -> Quicklook:
    """Draw the AOI quicklook and a before/after pair per expanded site into the run folder."""
    previous = previous_composite_path(ctx)
    store = open_store(ctx.settings.resolved_database_url)
    before = store.previous_completed_run(ctx.aoi.name, ctx.window.end)
    return build_run_quicklooks(
        composite_path,
        events,
        ctx.grid.epsg,
        ctx.run_dir / "quicklooks",
        title=f"{ctx.aoi.title}: {ctx.window.start} – {ctx.window.end}",
        previous_composite=previous,
        labels=(
            f"before ({before.window_end})" if before else "before",
            f"after ({ctx.window.end})",
        ),
    )


@task(name="send-alerts", task_run_name="alert-{ctx.aoi.name}", cache_policy=NO_CACHE)
def send_alerts(
    ctx: RunContext, events: Sequence[SiteEvent], quicklook: Quicklook | None = None
) -> list[DeliveryOutcome]:
    """Deliver the run's alertable events (and due retries) to every channel (or the outbox)."""
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
        quicklook=quicklook,
        run_url=_public_run_url(),
        model=_model_info(ctx),
    )


def _model_info(ctx: RunContext) -> ModelInfo | None:
    """The AOI's detector as its evidence packets record it; None if its card is unreadable."""
    from asmspotter.detect.model_card import load_card
    from asmspotter.errors import AsmspotterError

    detection = ctx.aoi.config.detection
    try:
        card = load_card(ctx.settings.models_dir / detection.model)
    except AsmspotterError:
        return None
    threshold = detection.threshold if detection.threshold is not None else card.threshold
    return ModelInfo(card.name, card.version, threshold)


def _public_run_url() -> str | None:
    """This flow run's page in the Prefect UI, when that UI is reachable by readers."""
    from prefect.runtime import flow_run
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

    return prefect_run_url(PREFECT_UI_URL.value(), PREFECT_API_URL.value(), flow_run.id)


@task(name="alert-no-data", task_run_name="no-data-{ctx.aoi.name}", cache_policy=NO_CACHE)
def alert_if_stale(ctx: RunContext) -> list[DeliveryOutcome]:
    """Tell ``run_failed`` channels if the AOI has gone too many periods without a composite."""
    reason = stale_data_reason(
        open_store(ctx.settings.resolved_database_url), ctx.aoi, ctx.window.end
    )
    if reason is None:
        return []
    return send_failure_alert(
        ctx.aoi, reason, window_end=ctx.window.end, outbox_dir=ctx.settings.outbox_dir
    )


def notify_run_failed(
    aoi_name: str, end_date: dt.date | None, reason: str
) -> list[DeliveryOutcome]:
    """Send the run-failure alert of an AOI; never raises (used from a flow hook)."""
    import logging

    from asmspotter.aoi import find_aoi
    from asmspotter.errors import AsmspotterError
    from asmspotter.settings import get_settings

    logger = logging.getLogger("asmspotter.alerts")
    try:
        settings = get_settings()
        aoi = find_aoi(settings.aoi_dir, aoi_name)
    except AsmspotterError as exc:
        # The run failed on this very error, which the run's own error already names:
        # an AOI that cannot be loaded has no channels to tell.
        logger.debug("No run-failure alert for AOI %s: %s", aoi_name, exc)
        return []
    try:
        return send_failure_alert(aoi, reason, window_end=end_date, outbox_dir=settings.outbox_dir)
    except Exception:
        logger.exception("Could not send the run-failure alert for AOI %s", aoi_name)
        return []
