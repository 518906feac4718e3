"""Monitoring flows: ``monitor_aoi`` (one AOI, one window) and ``monitor_all`` (every due AOI).

Thin wiring of the tasks in ``tasks/``; every decision lives in ``asmspotter``.
Run one AOI with ``asmspotter run demo --end 2024-01-31`` or
``python -m flows.monitor demo 2024-01-31``.
"""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

from prefect import Flow, flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import FlowRun, State
from prefect.runtime import flow_run
from prefect.states import Failed
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from asmspotter.interruption import mark_open_runs_interrupted
from asmspotter.monitor import (
    RunContext,
    RunSummary,
    SkippedScene,
    build_summary,
    check_alerts_delivered,
    describe_error,
    hold_run_lock,
    notify_run_failed,
)
from asmspotter.progress import progress_bar
from asmspotter.scenes import LocalScene, SceneRef
from asmspotter.schedule import today_utc
from asmspotter.settings import get_settings
from flows.logs import send_project_logs_to_prefect
from tasks.alert import alert_if_stale, render_quicklooks, send_alerts
from tasks.composite import composite_scenes
from tasks.detect import detect_sites
from tasks.download import download_scene, record_scenes
from tasks.report import publish_report, run_tags, tag_flow_run
from tasks.run import finish_run, plan_monitoring, prepare_run
from tasks.search import search_scenes
from tasks.track import track_sites

# A worker loads this file by path (prefect.yaml's entrypoint), not as `flows.<name>`,
# so `flows/__init__` never runs there: attach the project's run-log handler here too.
send_project_logs_to_prefect()


def download_all(
    ctx: RunContext, refs: list[SceneRef]
) -> tuple[list[LocalScene], list[SkippedScene]]:
    """Download scenes concurrently; a scene that fails is skipped with its reason.

    Downloads carry the tag ``download-<provider>``: a Prefect tag concurrency limit
    of that name (``prefect concurrency-limit create download-sentinel-2-stac 4``)
    caps parallel downloads per provider across all runs.
    """
    download = download_scene.with_options(tags=[f"download-{ctx.source.provider}"])
    futures = [(ref, download.submit(ctx, ref)) for ref in refs]
    used: list[LocalScene] = []
    skipped: list[SkippedScene] = []
    with progress_bar(f"{ctx.aoi.name}: download {len(refs)} scenes", total=len(refs)) as update:
        for done, (ref, future) in enumerate(futures, start=1):
            future.wait()
            if future.state.is_completed():
                used.append(future.result())
            else:
                reason = describe_error(future.state.result(raise_on_failure=False))
                skipped.append(SkippedScene(ref, reason))
            update(done)
    return used, skipped


def monitor_run_name() -> str:
    """Flow run name ``<aoi>/<window end>``, readable in the Prefect UI."""
    parameters = flow_run.parameters
    end = parameters.get("end_date") or today_utc()
    return f"{parameters['aoi_name']}/{end}"


def alert_on_failure(flow: Flow[..., Any], flow_run: FlowRun, state: State) -> None:
    """``on_failure`` hook: tell the AOI's ``run_failed`` channels why the run failed."""
    run = flow_run
    parameters = run.parameters or {}
    end = parameters.get("end_date")
    end_date = dt.date.fromisoformat(str(end)) if end else None
    notify_run_failed(
        str(parameters.get("aoi_name")),
        end_date,
        f"flow run {run.name} failed: {state.message or 'no message'}",
    )


def _finish_without_data(
    ctx: RunContext, used: list[LocalScene], skipped: list[SkippedScene], reason: str
) -> RunSummary:
    """End a run that saw nothing: ``no_data``, sites keep their last state, stale alert."""
    finish_run(ctx, "no_data", message=reason)
    stale = alert_if_stale(ctx)
    summary = build_summary(ctx, used, skipped, outcomes=stale)
    publish_report(summary, stale, ctx)
    get_run_logger().warning("AOI %s: %s; sites keep their last state", ctx.aoi.name, reason)
    return summary


@flow(
    name="monitor-aoi",
    flow_run_name=monitor_run_name,
    validate_parameters=True,
    on_failure=[alert_on_failure],
)
def monitor_aoi(aoi_name: str, end_date: dt.date | None = None, alerts: bool = True) -> RunSummary:
    """Search, download, composite, detect, track and alert for one AOI window.

    Args:
        aoi_name: AOI slug (file stem in ``aoi_definitions/``).
        end_date: Last day of the composite window; default today (UTC).
        alerts: Send alerts for this window's events (a backfill of the past turns
            this off: sites and events are still stored).

    Returns:
        The run summary (scenes, events, deliveries, output paths).
    """
    logger = get_run_logger()
    # One run per AOI window at a time: a second caller is refused before it touches
    # the run record or the run folder (RunInProgressError).
    with hold_run_lock(aoi_name, end_date):
        ctx = prepare_run(aoi_name, end_date)
        try:
            ctx, refs = search_scenes(ctx)
            tag_flow_run(run_tags(ctx))
            used, skipped = download_all(ctx, refs)
            record_scenes(ctx, used, skipped)
            logger.info("%d scenes used, %d skipped", len(used), len(skipped))
            if not used:
                reason = f"no usable scene in {ctx.window.start}..{ctx.window.end}"
                return _finish_without_data(ctx, used, skipped, reason)
            composite = composite_scenes(ctx, used)
            if composite.clear_fraction <= 0.0:
                # Scenes were found but every pixel is cloud: not a look at the sites, so the
                # run must not count as completed (that would reset the no-data alert clock).
                reason = (
                    f"{len(used)} scenes in {ctx.window.start}..{ctx.window.end}, "
                    "but not one clear pixel (all cloud or shadow)"
                )
                return _finish_without_data(ctx, used, skipped, reason)
            detection = detect_sites(ctx, composite.path)
            events = track_sites(ctx, detection, composite)
            quicklook = render_quicklooks(ctx, events, composite.path)
            outcomes = send_alerts(ctx, events, quicklook) if alerts else []
            finish_run(
                ctx, "completed", n_scenes=len(used), composite=composite, detection=detection
            )
        except KeyboardInterrupt:
            # Ctrl-C: straight to the store, no Prefect task (the API may be what is gone).
            mark_open_runs_interrupted()
            raise
        except Exception as exc:
            finish_run(ctx, "failed", message=describe_error(exc))
            raise
        summary = build_summary(
            ctx, used, skipped, composite, detection, events, outcomes, quicklooks=quicklook.paths
        )
        publish_report(summary, outcomes, ctx)
        # Stored and reported; but if no channel got its alert, the run shows failed.
        check_alerts_delivered(ctx, outcomes)
        return summary


@task(name="monitor-aoi-in-all", task_run_name="monitor-{aoi_name}", cache_policy=NO_CACHE)
def monitor_aoi_task(aoi_name: str, end_date: dt.date) -> State:
    """One AOI of ``monitor_all``: its ``monitor_aoi`` subflow's final state, never raised."""
    # Looked up in the imported module: on a Dask worker this function arrives
    # cloudpickled by value, without the module globals the flow's annotations need.
    import flows.monitor

    return flows.monitor.monitor_aoi(aoi_name, end_date=end_date, return_state=True)


def fan_out_runner(max_aois: int) -> TaskRunner[Any]:
    """The task runner ``monitor_all`` fans AOIs out on.

    With ``ASMSPOTTER_DASK_SCHEDULER`` set: prefect-dask's ``DaskTaskRunner`` on that
    cluster (each AOI runs on a Dask worker; its composite and inference use the same
    cluster). Otherwise a thread pool of up to ``ASMSPOTTER_MAX_CONCURRENT_AOIS`` AOIs.
    """
    settings = get_settings()
    if settings.dask_scheduler:
        from prefect_dask.task_runners import DaskTaskRunner

        return DaskTaskRunner(address=settings.dask_scheduler)
    return ThreadPoolTaskRunner(max_workers=max(1, min(max_aois, settings.max_concurrent_aois)))


def monitor_all_run_name() -> str:
    """Flow run name ``monitor-all/<date>``."""
    return f"monitor-all/{flow_run.parameters.get('today') or today_utc()}"


@flow(name="monitor-all", flow_run_name=monitor_all_run_name)
def monitor_all(today: dt.date | None = None) -> list[dict[str, str]] | State:
    """Run ``monitor_aoi`` for every AOI whose revisit period has elapsed.

    One AOI failing, or one AOI file being invalid, never stops the others; the
    flow ends Failed afterwards if any did, so the problem is visible in the UI.

    Args:
        today: The date to plan for (default today, UTC); also each run's window end.
    """
    logger = get_run_logger()
    today = today or today_utc()
    plan = plan_monitoring(today)
    rows: list[dict[str, str]] = []
    for path, error in plan.invalid.items():
        rows.append({"aoi": path, "status": "✗ invalid", "detail": error})
    for name in plan.disabled:
        rows.append({"aoi": name, "status": "– disabled", "detail": "enabled: false in its YAML"})
    for name, next_due in plan.waiting.items():
        rows.append({"aoi": name, "status": "– not due", "detail": f"next due {next_due}"})
    # AOIs run concurrently; each one's failure stays its own (its state is collected).
    with fan_out_runner(len(plan.due)) as runner:
        futures = {
            name: runner.submit(monitor_aoi_task, {"aoi_name": name, "end_date": today})
            for name in plan.due
        }
        states = {}
        for name, future in futures.items():
            # The task's result is the subflow's state; a task that failed itself gives
            # its exception instead.
            try:
                outcome = future.result(raise_on_failure=False)
            except Exception as exc:  # a failure that cannot even be unpickled
                outcome = exc
            if not isinstance(outcome, State):
                outcome = Failed(message=str(outcome), data=outcome)
            states[name] = outcome
    for name in plan.due:
        state = states[name]
        if state.is_completed():
            summary = state.result()
            status = "✓ completed" if summary.composite_path else "– no data"
            detail = (
                f"{len(summary.scenes_used)} scenes, {summary.count('new')} new, "
                f"{summary.count('expanded')} expanded"
            )
            rows.append({"aoi": name, "status": status, "detail": detail})
        else:
            failure = state.result(raise_on_failure=False)
            reason = describe_error(failure) if isinstance(failure, BaseException) else str(failure)
            rows.append({"aoi": name, "status": "✗ failed", "detail": reason})
    create_table_artifact(key="monitor-all", table=rows, description=f"AOIs on {today}")
    logger.info(
        "monitor_all on %s: %d due, %d waiting, %d invalid",
        today,
        len(plan.due),
        len(plan.waiting),
        len(plan.invalid),
    )
    problems = [row for row in rows if row["status"].startswith("✗")]
    if problems:
        return Failed(message="; ".join(f"{r['aoi']}: {r['status']}" for r in problems))
    return rows


if __name__ == "__main__":
    end = dt.date.fromisoformat(sys.argv[2]) if len(sys.argv) > 2 else None
    monitor_aoi(sys.argv[1], end)
