"""The ``aoi`` commands: validate and list AOI YAML files."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from asmspotter.cli.app import fail
from asmspotter.errors import AsmspotterError

if TYPE_CHECKING:
    from asmspotter.aoi import AOI


aoi_app = typer.Typer(
    help="Areas of interest: validate and list AOI YAML files.", no_args_is_help=True
)


def _missing_model_message(aoi: AOI) -> str | None:
    """Why the AOI's model cannot be loaded (no card in the models folder), or None."""
    from asmspotter.settings import get_settings

    models_dir = get_settings().models_dir
    model = aoi.config.detection.model
    if (models_dir / model / "model_card.json").is_file():
        return None
    available = sorted(p.parent.name for p in models_dir.glob("*/model_card.json"))
    return (
        f"detection.model: found {model!r}, but {models_dir} has no such model; "
        f"use one of {', '.join(available) or 'none'} or train one (asmspotter model train)."
    )


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
        raise fail(f"no AOI files found in {get_settings().aoi_dir}")
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
        missing_model = _missing_model_message(aoi)
        if missing_model:
            bad += 1
            typer.echo(f"✗ {path}: {missing_model}")
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
