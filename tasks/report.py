"""Report task: publish a run's summary and site table as Prefect artifacts.

Artifact keys are stable per AOI (``<aoi>-run-summary``, ``<aoi>-sites``), so the
Prefect UI shows each AOI's latest state with its history one click away.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from asmspotter.alerts.dispatch import DeliveryOutcome
from asmspotter.monitor import RunSummary
from asmspotter.report import render_run_markdown, site_table_rows


def artifact_key(aoi_name: str, suffix: str) -> str:
    """A valid artifact key (lowercase letters, digits, dashes) for an AOI."""
    return re.sub(r"[^a-z0-9-]", "-", f"{aoi_name}-{suffix}".lower())


@task(name="publish-report", task_run_name="report-{summary.aoi_name}", cache_policy=NO_CACHE)
def publish_report(summary: RunSummary, outcomes: Sequence[DeliveryOutcome]) -> str:
    """Create the markdown summary and the site-table artifacts; return the markdown."""
    markdown = render_run_markdown(summary, outcomes)
    create_markdown_artifact(
        key=artifact_key(summary.aoi_name, "run-summary"),
        markdown=markdown,
        description=f"{summary.aoi_name} run for window ending {summary.window.end}",
    )
    rows = site_table_rows(summary)
    if rows:
        create_table_artifact(
            key=artifact_key(summary.aoi_name, "sites"),
            table=rows,
            description=f"Sites of {summary.aoi_name} as of {summary.window.end}",
        )
    return markdown
