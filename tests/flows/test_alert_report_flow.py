"""Run history in Prefect: run name, tags and artifacts of ``monitor_aoi``, read back by the client.

Reuses the small synthetic AOI of ``test_monitor_flow`` (its ``workspace`` fixture).
"""

from __future__ import annotations

import asyncio
import datetime as dt

from tests.flows.test_monitor_flow import env, smtp_inbox, workspace  # noqa: F401


def test_run_has_name_tags_and_artifacts(env):  # noqa: F811
    from prefect import get_client
    from prefect.client.schemas.filters import (
        ArtifactCollectionFilter,
        ArtifactFilter,
        ArtifactFilterKey,
        FlowRunFilter,
        FlowRunFilterName,
        TaskRunFilter,
    )
    from prefect.client.schemas.sorting import ArtifactCollectionSort, ArtifactSort, FlowRunSort

    from flows.monitor import monitor_aoi

    summary = monitor_aoi("tiny", dt.date(2024, 2, 19))
    assert summary.quicklooks and summary.quicklooks[0].is_file()

    async def read():  # type: ignore[no-untyped-def]
        async with get_client() as client:
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=["tiny/2024-02-19"])),
                limit=10,
                sort=FlowRunSort.START_TIME_DESC,
            )
            latest = await client.read_latest_artifacts(
                artifact_filter=ArtifactCollectionFilter(),
                flow_run_filter=FlowRunFilter(),
                task_run_filter=TaskRunFilter(),
                sort=ArtifactCollectionSort.CREATED_DESC,
                limit=200,
            )
            summaries = await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["tiny-run-summary"])),
                flow_run_filter=FlowRunFilter(),
                task_run_filter=TaskRunFilter(),
                sort=ArtifactSort.CREATED_DESC,
                limit=50,
            )
            return runs, {a.key: a for a in latest if a.key}, summaries

    runs, latest, summaries = asyncio.run(read())
    assert runs, "the run is named <aoi>/<window end>"
    assert {"aoi:tiny", "source:local"} <= set(runs[0].tags)
    run_summary = next(a for a in summaries if a.flow_run_id == runs[0].id)
    markdown = str(run_summary.data)
    assert "![quicklook](data:image/png;base64," in markdown
    assert "## Site events" in markdown and "## Alert deliveries" in markdown
    assert "composite.tif" in markdown
    sites = latest["tiny-sites"]
    assert sites.type == "table"
    assert "area_history_ha" in str(sites.data) and "first_seen" in str(sites.data)
