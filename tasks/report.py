"""Report task: publish a run's summary and site table as Prefect artifacts, tag the run.

Artifact keys are stable per AOI (``<aoi>-run-summary``, ``<aoi>-sites``), so the
Prefect UI shows each AOI's latest state with its history one click away. The
flow run gets the tags ``aoi:<name>`` and ``source:<provider>`` for filtering.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from asmspotter import monitor
from asmspotter.alerts.dispatch import DeliveryOutcome
from asmspotter.monitor import RunContext, RunSummary

logger = logging.getLogger(__name__)


def artifact_key(aoi_name: str, suffix: str) -> str:
    """A valid artifact key (lowercase letters, digits, dashes) for an AOI."""
    return re.sub(r"[^a-z0-9-]", "-", f"{aoi_name}-{suffix}".lower())


def run_tags(ctx: RunContext) -> list[str]:
    """The tags of an AOI's flow run: ``aoi:<name>`` and ``source:<provider>``."""
    return [f"aoi:{ctx.aoi.name}", f"source:{ctx.source.provider}"]


def tag_flow_run(tags: Sequence[str]) -> None:
    """Add tags to the current flow run (its source is known only once scenes are found).

    Prefect sets tags when a run is created; ``prefect.tags`` cannot change a run
    that already started, so the tags are added through the API. A failure only logs.
    """
    from prefect import get_client
    from prefect.runtime import flow_run

    if not flow_run.id:
        return
    try:
        with get_client(sync_client=True) as client:
            current = client.read_flow_run(flow_run.id).tags
            merged = list(dict.fromkeys([*current, *tags]))
            client.update_flow_run(flow_run.id, tags=merged)
    except Exception as exc:  # the UI loses a filter, the run goes on
        logger.warning("Could not tag flow run %s with %s: %s", flow_run.id, list(tags), exc)


@task(name="publish-report", task_run_name="report-{summary.aoi_name}", cache_policy=NO_CACHE)
def publish_report(
    summary: RunSummary,
    outcomes: Sequence[DeliveryOutcome],
    ctx: RunContext | None = None,
) -> str:
    """Create the markdown summary and the active-sites table artifacts; return the markdown.

    Args:
        summary: What the run did (quicklooks included).
        outcomes: Alert deliveries of the run (run-failure alerts included).
        ctx: The run context; with it the sites table lists every active site of the
            AOI with its area history, without it only this run's events.
    """
    report = monitor.build_report(summary, outcomes, ctx)
    create_markdown_artifact(
        key=artifact_key(summary.aoi_name, "run-summary"),
        markdown=report.markdown,
        description=f"{summary.aoi_name} run for window ending {summary.window.end}",
    )
    if report.site_rows:
        create_table_artifact(
            key=artifact_key(summary.aoi_name, "sites"),
            table=report.site_rows,
            description=f"Active sites of {summary.aoi_name} as of {summary.window.end}",
        )
    return report.markdown
