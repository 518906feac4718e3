"""The ``asmspotter`` command line.

Sub-commands are grouped by noun: ``aoi validate|list``, ``run``, ``run-all``,
``sites list``, ``model train``, ``demo``. The CLI holds no logic: it calls the
core library or the Prefect flows, prints results to stdout and logs to stderr.
Prefect and torch are imported only inside the commands that need them.
"""

from __future__ import annotations

import datetime as dt
import logging
import warnings
from pathlib import Path
from typing import Annotated

import typer

from asmspotter import __version__
from asmspotter.errors import AsmspotterError

NOISY_LOGGERS = ("httpx", "alembic", "pyogrio", "rasterio")
"""Libraries whose INFO lines drown ours; shown again with -vv."""

app = typer.Typer(help="Monitor artisanal gold mining from space.", no_args_is_help=True)
aoi_app = typer.Typer(
    help="Areas of interest: validate and list AOI YAML files.", no_args_is_help=True
)
sites_app = typer.Typer(help="Tracked mining sites.", no_args_is_help=True)
model_app = typer.Typer(help="Detection models: train.", no_args_is_help=True)
app.add_typer(aoi_app, name="aoi")
app.add_typer(sites_app, name="sites")
app.add_typer(model_app, name="model")

EndDate = Annotated[
    dt.datetime | None,
    typer.Option(
        "--end", formats=["%Y-%m-%d"], help="Last day of the window (default: today, UTC)."
    ),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"asmspotter {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More logs.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    """Monitor artisanal and small-scale gold mining from space."""
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if verbose < 2:
        for chatty in NOISY_LOGGERS:
            logging.getLogger(chatty).setLevel(logging.WARNING)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(code=1)


@aoi_app.command("validate")
def aoi_validate(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="AOI YAML files (default: every file in the AOI folder)."),
    ] = None,
) -> None:
    """Validate AOI files; report every bad one and exit 1 if any is invalid."""
    from asmspotter.aoi import list_aoi_files, load_aoi
    from asmspotter.settings import get_settings

    files = paths or list_aoi_files(get_settings().aoi_dir)
    if not files:
        raise _fail(f"no AOI files found in {get_settings().aoi_dir}")
    bad = 0
    for path in files:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                aoi = load_aoi(path)
            except AsmspotterError as exc:
                bad += 1
                typer.echo(f"✗ {exc}")
                continue
        typer.echo(f"✓ {path}: {aoi.name} ({aoi.title}, {aoi.area_km2:.0f} km²)")
        for warning in caught:
            typer.echo(f"  warning: {warning.message}")
    if bad:
        raise typer.Exit(code=1)


@aoi_app.command("list")
def aoi_list() -> None:
    """List registered AOIs with their sources, schedule and last completed run."""
    from asmspotter.aoi import load_registry
    from asmspotter.monitor import open_store
    from asmspotter.settings import get_settings

    settings = get_settings()
    registry = load_registry(settings.aoi_dir)
    store = open_store(settings.resolved_database_url)
    for name, aoi in sorted(registry.aois.items()):
        schedule = aoi.config.schedule
        last = store.last_successful_run(name)
        sources = ", ".join(source.provider for source in aoi.config.sources)
        typer.echo(
            f"{name:24} {aoi.area_km2:8.0f} km²  sources: {sources:18} every "
            f"{schedule.revisit_days} d, window {schedule.window_days} d  last run: "
            f"{last.window_end if last else 'never'}  — {aoi.title}"
        )
    for path, error in registry.errors.items():
        typer.echo(f"✗ {path}: invalid ({str(error).splitlines()[0]})")


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


@app.command("run")
def run(aoi_name: Annotated[str, typer.Argument(help="AOI slug.")], end: EndDate = None) -> None:
    """Run the monitoring flow for one AOI and window (a Prefect flow run)."""
    from flows.monitor import monitor_aoi

    try:
        summary = monitor_aoi(aoi_name, end.date() if end else None)
    except AsmspotterError as exc:
        raise _fail(str(exc)) from exc
    _print_summary(summary)


@app.command("run-all")
def run_all(end: EndDate = None) -> None:
    """Run every AOI whose revisit period has elapsed (what the schedule does daily)."""
    from flows.monitor import monitor_all

    state = monitor_all(end.date() if end else None, return_state=True)
    rows = state.result(raise_on_failure=False)
    if isinstance(rows, list):
        for row in rows:
            typer.echo(f"{row['status']:12} {row['aoi']}: {row['detail']}")
    if not state.is_completed():
        raise _fail(state.message or "some AOIs failed")


@sites_app.command("list")
def sites_list(aoi_name: Annotated[str, typer.Argument(help="AOI slug.")]) -> None:
    """List the tracked sites of an AOI."""
    from asmspotter.monitor import open_store
    from asmspotter.settings import get_settings

    sites = open_store(get_settings().resolved_database_url).sites(aoi_name)
    if not sites:
        typer.echo(f"No sites tracked for {aoi_name} yet.")
        return
    typer.echo(
        f"{'site':14} {'status':9} {'area_ha':>8} {'lat':>10} {'lon':>10}  first seen  last seen"
    )
    for site in sites:
        typer.echo(
            f"{site.site_id:14} {site.status:9} {site.area_ha:8.1f} {site.centroid_lat:10.5f} "
            f"{site.centroid_lon:10.5f}  {site.first_seen}  {site.last_seen}"
        )


@model_app.command("train")
def model_train(
    name: Annotated[str, typer.Argument(help="Model folder name under models/.")] = "s2-unet-v1",
    resolution_m: Annotated[float, typer.Option(help="Pixel size, metres.")] = 10.0,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 14,
    train_chips: Annotated[int, typer.Option(help="Generated training chips.")] = 1400,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing model.")] = False,
) -> None:
    """Train a U-Net on generated scenes and write weights + model card."""
    from asmspotter.detect.train import train_model
    from asmspotter.settings import get_settings

    out_dir = get_settings().models_dir / name
    if (out_dir / "weights.pt").exists() and not overwrite:
        raise _fail(f"{out_dir} already holds a model; pass --overwrite to replace it.")
    card = train_model(
        out_dir,
        name=name,
        resolution_m=resolution_m,
        n_train_chips=train_chips,
        n_val_chips=max(32, train_chips // 9),
        n_test_chips=max(64, train_chips // 6),
        epochs=epochs,
        seed=seed,
        progress=lambda p: typer.echo(
            f"epoch {p['epoch']}: loss {p['loss']:.4f} val IoU {p['val_iou']:.3f}"
        ),
    )
    typer.echo(f"Model written to {out_dir}: test metrics {card.metrics}")


@app.command("demo")
def demo() -> None:
    """Run the full monitoring flow twice on the bundled synthetic AOI and check it."""
    from asmspotter.aoi import find_aoi
    from asmspotter.samples import DEMO_WINDOW_ENDS, compare_with_truth, demo_truth_path
    from asmspotter.settings import get_settings
    from flows.monitor import monitor_aoi

    settings = get_settings()
    aoi = find_aoi(settings.aoi_dir, "demo")
    summaries = []
    for end in DEMO_WINDOW_ENDS:
        typer.echo(f"\n=== demo run for the window ending {end} ===")
        summary = monitor_aoi("demo", end)
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
        raise _fail("the second demo run did not report both a true new and a true expanded site")


if __name__ == "__main__":
    app()
