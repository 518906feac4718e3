"""The monitoring loop end to end under Prefect: scenes -> composite -> U-Net -> sites -> email.

A small synthetic AOI (2.56 km square, six dates, one static, one growing and one
new mining site) runs through ``monitor_aoi`` with the bundled model, a SQLite
store and a real SMTP server on 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from shapely.geometry import box

from asmspotter.settings import PROJECT_ROOT
from fakes.aois import write_tiny_aoi
from fakes.smtp import serve_smtp

DATES = [dt.date(2024, 1, d) for d in (5, 15, 25)] + [dt.date(2024, 2, d) for d in (9, 19, 27)]
FIRST_END, SECOND_END = dt.date(2024, 1, 31), dt.date(2024, 2, 29)


@pytest.fixture(scope="module")
def smtp_inbox():
    with serve_smtp() as (port, inbox):
        yield inbox, port


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, smtp_inbox):
    """An AOI folder with one small synthetic AOI and one broken AOI file."""
    _, port = smtp_inbox
    root = tmp_path_factory.mktemp("workspace")
    aoi_dir = root / "aois"
    series = write_tiny_aoi(
        aoi_dir,
        root / "scenes",
        "tiny",
        DATES,
        seed=3,
        n_new=1,
        new_from=DATES[3],
        max_cloud_fraction=0.2,
        title="Tiny test forest",
        alert_urls=[
            f"mailto://127.0.0.1:{port}/field-team@example.org?from=asmspotter@example.org"
        ],
    )
    (aoi_dir / "broken.yaml").write_text("name: broken\ntitle: Broken\nsources: [oops\n")
    return root, aoi_dir, series


@pytest.fixture
def env(workspace, monkeypatch):
    root, aoi_dir, _ = workspace
    monkeypatch.setenv("ASMSPOTTER_AOI_DIR", str(aoi_dir))
    monkeypatch.setenv("ASMSPOTTER_DATA_DIR", str(root / "data"))
    monkeypatch.setenv("ASMSPOTTER_MODELS_DIR", str(PROJECT_ROOT / "models"))
    return root


def table_counts(root: Path) -> dict[str, int]:
    engine = sa.create_engine(f"sqlite:///{root / 'data' / 'asmspotter.db'}")
    with engine.connect() as conn:
        return {
            table: conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
            for table in ("scene", "run", "site", "observation", "alert_delivery")
        }


def test_two_windows_then_a_repeat(env, workspace, smtp_inbox):
    from flows.monitor import monitor_aoi

    _, _, series = workspace
    inbox, _ = smtp_inbox

    first = monitor_aoi("tiny", FIRST_END)
    assert len(first.scenes_used) == 3
    assert first.composite_path.exists() and first.probability_path.exists()
    kinds_first = {e.kind for e in first.events}
    assert kinds_first == {"new"}, "every site is new in the first window"
    assert first.count("new") >= 2  # the static and the growing site
    assert len(inbox.messages) == 1

    second = monitor_aoi("tiny", SECOND_END)
    assert second.count("new") >= 1 and second.count("expanded") >= 1
    truth = {s.design: s for s in series.sites}
    new_site = next(e for e in second.events if e.kind == "new")
    grown = next(e for e in second.events if e.kind == "expanded")
    assert (
        new_site.geometry.distance(
            box(
                truth["new"].centroid_x_m - 1,
                truth["new"].centroid_y_m - 1,
                truth["new"].centroid_x_m + 1,
                truth["new"].centroid_y_m + 1,
            )
        )
        < 300
    )
    assert (
        grown.geometry.distance(
            box(
                truth["growing"].centroid_x_m - 1,
                truth["growing"].centroid_y_m - 1,
                truth["growing"].centroid_x_m + 1,
                truth["growing"].centroid_y_m + 1,
            )
        )
        < 300
    )
    assert len(inbox.messages) == 2
    message = inbox.messages[-1]
    assert "new" in message["Subject"] and "Tiny test forest" in message["Subject"]
    assert message["To"] == "field-team@example.org"
    attachments = [part.get_filename() for part in message.iter_attachments()]
    assert any(name and name.endswith(".geojson") for name in attachments)
    sites = json.loads(second.sites_path.read_text())
    assert {f["properties"]["site_id"] for f in sites["features"]} >= {new_site.site_id}

    counts_before = table_counts(env)
    repeat = monitor_aoi("tiny", SECOND_END)
    assert table_counts(env) == counts_before, "a repeated window adds no rows"
    assert len(inbox.messages) == 2, "a repeated window sends nothing twice"
    assert {(e.site_id, e.kind) for e in repeat.events} == {
        (e.site_id, e.kind) for e in second.events
    }


def test_monitor_all_runs_the_valid_aoi_despite_a_broken_file(env):
    from flows.monitor import monitor_all

    state = monitor_all(dt.date(2024, 3, 10), return_state=True)
    assert state.is_failed(), "a broken AOI file must be visible as a failed check"
    assert "broken.yaml" in state.message
    from asmspotter.monitor import open_store
    from asmspotter.settings import get_settings

    last = open_store(get_settings().resolved_database_url).last_successful_run("tiny")
    assert last is not None and last.window_end == dt.date(2024, 3, 10)


def test_artifacts_and_run_names_are_readable(env):
    from prefect import get_client
    from prefect.client.schemas.filters import (
        ArtifactCollectionFilter,
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
        TaskRunFilter,
    )
    from prefect.client.schemas.sorting import ArtifactCollectionSort, FlowRunSort

    from flows.monitor import monitor_aoi

    monitor_aoi("tiny", dt.date(2024, 3, 20))

    async def read():
        async with get_client() as client:
            runs = await client.read_flow_runs(limit=200, sort=FlowRunSort.START_TIME_DESC)
            artifacts = await client.read_latest_artifacts(
                artifact_filter=ArtifactCollectionFilter(),
                flow_run_filter=FlowRunFilter(),
                task_run_filter=TaskRunFilter(),
                sort=ArtifactCollectionSort.CREATED_DESC,
                limit=200,
            )
            run = next(r for r in runs if r.name == "tiny/2024-03-20")
            task_runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id]))
            )
            await asyncio.sleep(2)  # logs are shipped in batches
            logs = await client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id]))
            )
            return (
                [r.name for r in runs],
                {a.key for a in artifacts if a.key},
                [t.name for t in task_runs],
                logs,
            )

    import asyncio
    import re

    names, keys, task_names, logs = asyncio.run(read())
    assert "tiny/2024-03-20" in names
    assert {"tiny-run-summary", "tiny-sites"} <= keys
    # Every task run is named after what it did, never Prefect's random suffix.
    assert {"record-scenes-tiny", "finish-tiny-completed", "search-tiny"} <= set(task_names)
    assert not [n for n in task_names if re.search(r"-[0-9a-f]{3}$", n)], task_names
    # asmspotter's own log lines are in the run's logs (the UI's Logs tab).
    project = [log for log in logs if log.name.startswith("asmspotter")]
    messages = [log.message for log in project]
    assert any(m.startswith("Found ") and "scenes from local" in m for m in messages), messages
    assert any(m.startswith("Composite of ") for m in messages), messages
    assert any(m.startswith("Detected ") for m in messages), messages
    assert any(m.startswith("Sites: ") for m in messages), messages
    assert all(log.task_run_id is not None for log in project)
