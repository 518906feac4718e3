"""The ``dataset`` commands: build real training chips from label polygons."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from asmspotter.cli.app import fail
from asmspotter.errors import AsmspotterError

dataset_app = typer.Typer(
    help="Real training data: chips from label polygons through a STAC catalogue.",
    no_args_is_help=True,
)


@dataset_app.command("build")
def dataset_build(
    labels: Annotated[
        Path,
        typer.Argument(
            help="Label polygons or points: GeoJSON, GeoPackage (annotated tiles: layers "
            "tiles + polygons_annotated) or LabelBox NDJSON export."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Dataset folder (chips/, masks/, manifest).")],
    catalog: Annotated[
        str, typer.Option(help="STAC preset: earth-search, cdse or planetary-computer.")
    ] = "earth-search",
    stac_url: Annotated[
        str | None, typer.Option(help="STAC API root URL (default: the preset's).")
    ] = None,
    collection: Annotated[
        str | None, typer.Option(help="Collection id (default: the preset's S2 L2A).")
    ] = None,
    token_env: Annotated[
        str | None, typer.Option(help="Environment variable holding a catalogue token.")
    ] = None,
    start: Annotated[
        dt.datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="First day of the imagery window."),
    ] = None,
    end: Annotated[
        dt.datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="Last day of the imagery window."),
    ] = None,
    chip_px: Annotated[int, typer.Option(help="Chip side, pixels.")] = 256,
    max_cloud_pct: Annotated[float, typer.Option(help="Skip scenes cloudier than this.")] = 30.0,
    max_scenes: Annotated[int, typer.Option(help="Least cloudy scenes per area.")] = 8,
    min_clear_pct: Annotated[
        float, typer.Option(help="Skip chips with fewer clear pixels (percent).")
    ] = 50.0,
    point_radius_m: Annotated[
        float, typer.Option(help="Radius of the disc a point label stands for, m.")
    ] = 30.0,
    layer: Annotated[
        str | None, typer.Option(help="Label layer of a GeoPackage (tiles: polygons_annotated).")
    ] = None,
    tiles_layer: Annotated[
        str, typer.Option(help="GeoPackage layer of annotated tiles (chip extents).")
    ] = "tiles",
    labels_licence: Annotated[str, typer.Option(help="Licence of the labels.")] = "",
    labels_attribution: Annotated[
        str, typer.Option(help="Attribution the labels' licence asks for.")
    ] = "",
    keep_cache: Annotated[
        bool, typer.Option(help="Keep downloaded scenes under OUT/.cache.")
    ] = False,
) -> None:
    """Fetch real Sentinel-2 chips for labels; chips already built are kept (resumable)."""
    from pydantic import ValidationError

    from asmspotter.detect.real_dataset import DatasetBuildConfig, build_dataset

    try:
        config = DatasetBuildConfig(
            catalog=catalog,  # type: ignore[arg-type]
            stac_url=stac_url,
            collection=collection,
            token_env=token_env,
            start=start.date() if start else None,
            end=end.date() if end else None,
            chip_px=chip_px,
            max_cloud_pct=max_cloud_pct,
            max_scenes=max_scenes,
            min_clear_pct=min_clear_pct,
            point_radius_m=point_radius_m,
            layer=layer,
            tiles_layer=tiles_layer,
            labels_licence=labels_licence,
            labels_attribution=labels_attribution,
            keep_cache=keep_cache,
        )
    except ValidationError as exc:
        raise fail(f"dataset build: invalid options: {exc}") from exc
    try:
        summary = build_dataset(labels, out, config)
    except AsmspotterError as exc:
        raise fail(str(exc)) from exc
    typer.echo(
        f"{summary.count('written')} chips written, {summary.count('existing')} already there, "
        f"{summary.count('skipped')} skipped "
        f"(reasons in {summary.manifest_path.with_suffix('.csv')})"
    )
    typer.echo(f"Train on them: asmspotter model train NAME --chips {out}")
