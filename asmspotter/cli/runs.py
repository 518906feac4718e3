"""The commands that run Prefect flows: ``run``, ``run-all``, ``backfill``, ``demo``, ``serve``.

They load the flows by entrypoint, as a worker does, so the package never imports ``flows/``.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from asmspotter.cli.app import fail, flow_output, load_flow, quiet_prefect_console
from asmspotter.errors import AsmspotterError

MONITOR_AOI_FLOW = "flows.monitor:monitor_aoi"
MONITOR_ALL_FLOW = "flows.monitor:monitor_all"
BACKFILL_FLOW = "flows.backfill:backfill"
"""The flows the CLI runs: ``prefect.yaml``'s entrypoints in module notation."""


EndDate = Annotated[
    dt.datetime | None,
    typer.Option(
        "--end", formats=["%Y-%m-%d"], help="Last day of the window (default: today, UTC)."
    ),
]


def _print_summary(summary: object) -> None:
    from asmspotter.monitor import RunSummary

    assert isinstance(summary, RunSummary)
    typer.echo(
        f"{summary.aoi_name} {summary.window.start}..{summary.window.end}: "
        f"{len(summary.scenes_used)} scenes used, {len(summary.scenes_skipped)} skipped; sites: "
        + ", ".join(
            f"{summary.count(k)} {k}"
            for k in ("new", "expanded", "unchanged", "shrunk", "not_seen")
        )
    )
    typer.echo(f"  composite:       {summary.composite_path}")
    typer.echo(f"  probability map: {summary.probability_path}")
    typer.echo(f"  sites GeoJSON:   {summary.sites_path}")
    for label, status, detail in summary.deliveries:
        typer.echo(f"  alert -> {label}: {status} {detail}")


def run(aoi_name: Annotated[str, typer.Argument(help="AOI slug.")], end: EndDate = None) -> None:
    """Run the monitoring flow for one AOI and window (a Prefect flow run)."""
    monitor_aoi = load_flow(MONITOR_AOI_FLOW)
    try:
        with flow_output():
            summary = monitor_aoi(aoi_name, end.date() if end else None)
    except AsmspotterError as exc:
        raise fail(str(exc)) from exc
    _print_summary(summary)


def run_all(end: EndDate = None) -> None:
    """Run every AOI whose revisit period has elapsed (what the schedule does daily)."""
    monitor_all = load_flow(MONITOR_ALL_FLOW)
    with flow_output():
        state = monitor_all(end.date() if end else None, return_state=True)
    rows = state.result(raise_on_failure=False)
    if isinstance(rows, list):
        for row in rows:
            typer.echo(f"{row['status']:12} {row['aoi']}: {row['detail']}")
    if not state.is_completed():
        raise fail(state.message or "some AOIs failed")


def backfill(
    aoi_name: Annotated[str, typer.Argument(help="AOI slug.")],
    start: Annotated[
        dt.datetime,
        typer.Option("--start", formats=["%Y-%m-%d"], help="First day of the range."),
    ],
    end: Annotated[
        dt.datetime,
        typer.Option("--end", formats=["%Y-%m-%d"], help="Last day of the range."),
    ],
    alerts: Annotated[
        bool, typer.Option("--alerts", help="Also send alerts for past windows.")
    ] = False,
) -> None:
    """Run every revisit window of a past date range in order (resumable)."""
    backfill_flow = load_flow(BACKFILL_FLOW)
    try:
        with flow_output():
            report = backfill_flow(aoi_name, start.date(), end.date(), send_alerts=alerts)
    except AsmspotterError as exc:
        raise fail(str(exc)) from exc
    for row in report:
        typer.echo(f"{row['window_end']}  {row['status']:10} {row['detail']}")


def demo() -> None:
    """Run the full monitoring flow twice on the bundled synthetic AOI and check it."""
    from asmspotter.aoi import find_aoi
    from asmspotter.samples import DEMO_WINDOW_ENDS, compare_with_truth, demo_truth_path
    from asmspotter.settings import get_settings

    monitor_aoi = load_flow(MONITOR_AOI_FLOW)
    settings = get_settings()
    aoi = find_aoi(settings.aoi_dir, "demo")
    summaries = []
    for end in DEMO_WINDOW_ENDS:
        typer.echo(f"\n=== demo run for the window ending {end} ===")
        try:
            with flow_output():
                summary = monitor_aoi("demo", end)
        except AsmspotterError as exc:
            raise fail(str(exc)) from exc
        _print_summary(summary)
        summaries.append(summary)
    matches = compare_with_truth(
        [e for e in summaries[-1].events if e.is_alertable], demo_truth_path(aoi, settings)
    )
    typer.echo("\nSecond run's alerts against the generator's truth:")
    for match in matches:
        verdict = "✓" if match.agrees else "✗"
        typer.echo(
            f"  {verdict} {match.site_id}: {match.event} "
            f"(truth: {match.truth_site} {match.truth_design})"
        )
    typer.echo(f"\nOutbox: {settings.outbox_dir}")
    typer.echo(f"Database: {settings.resolved_database_url}")
    if not any(m.agrees and m.event == "new" for m in matches) or not any(
        m.agrees and m.event == "expanded" for m in matches
    ):
        raise fail("the second demo run did not report both a true new and a true expanded site")


def serve() -> None:
    """Serve monitor-all/served-daily (06:00 UTC) and monitor-aoi/served-on-demand until Ctrl-C.

    A schedule without a work pool or worker. The served deployments have their own
    names: stopping this never pauses or rewrites the worker deployments of
    ``prefect deploy --all``.
    """
    from prefect.utilities.importtools import import_object

    served_daily = import_object("flows.serve:SERVED_DAILY")
    served_on_demand = import_object("flows.serve:SERVED_ON_DEMAND")
    main = import_object("flows.serve:main")
    typer.echo(
        f"Serving monitor-all/{served_daily} and monitor-aoi/{served_on_demand}; "
        "Ctrl-C stops (and pauses these two schedules only)."
    )
    quiet_prefect_console()
    main()
