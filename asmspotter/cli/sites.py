"""The ``sites`` commands: list, show, review (confirm / dismiss) and export tracked sites."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from asmspotter.cli.app import TRAINING_DIR, fail
from asmspotter.errors import AsmspotterError

sites_app = typer.Typer(help="Tracked mining sites.", no_args_is_help=True)


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


@sites_app.command("show")
def sites_show(site_id: Annotated[str, typer.Argument(help="Site id, e.g. demo-0003.")]) -> None:
    """Print a site's area per run; write its area chart (PNG) and outlines (GeoPackage)."""
    from asmspotter.monitor import open_store
    from asmspotter.report import write_site_timeline
    from asmspotter.settings import get_settings

    settings = get_settings()
    store = open_store(settings.resolved_database_url)
    try:
        site = store.site(site_id)
        history = store.site_history(site_id)
    except AsmspotterError as exc:
        raise fail(str(exc)) from exc
    status = site.status + (f" ({site.dismissed_reason})" if site.dismissed_reason else "")
    typer.echo(
        f"{site.site_id} in {site.aoi_name}: {status}, {site.area_ha:.1f} ha at "
        f"{site.centroid_lat:.5f}, {site.centroid_lon:.5f}; first seen {site.first_seen}, "
        f"last seen {site.last_seen}"
    )
    typer.echo(f"{'window end':10}  {'event':9} {'area_ha':>8} {'growth_ha':>9} {'clear obs':>9}")
    for h in history:
        growth = "" if h.growth_ha is None else f"{h.growth_ha:+.1f}"
        typer.echo(
            f"{h.window_end!s:10}  {h.kind:9} {h.area_ha:8.1f} {growth:>9} "
            f"{h.clear_observations:9d}"
        )
    if history:
        png, gpkg = write_site_timeline(
            site_id, history, settings.outputs_dir / site.aoi_name / "sites" / site_id
        )
        typer.echo(f"Area chart: {png}\nOutlines:   {gpkg}")


@sites_app.command("dismiss")
def sites_dismiss(
    site_id: Annotated[str, typer.Argument(help="Site id, e.g. demo-0003.")],
    reason: Annotated[str, typer.Option("--reason", help="Why, e.g. 'river sandbar'.")],
) -> None:
    """Mark a site as a false positive: no more alerts, exported as a negative example."""
    from asmspotter.aoi import find_aoi
    from asmspotter.monitor import open_store
    from asmspotter.report import refresh_training_examples
    from asmspotter.settings import get_settings

    settings = get_settings()
    store = open_store(settings.resolved_database_url)
    try:
        store.dismiss_site(site_id, reason)
        site = store.site(site_id)
    except (AsmspotterError, ValueError) as exc:
        raise fail(str(exc)) from exc
    try:
        expansion = find_aoi(settings.aoi_dir, site.aoi_name).config.detection.expansion
        rule = (
            f"more than {expansion.min_growth_ha:g} ha and more than "
            f"{expansion.min_growth_pct:g}% (detection.expansion in {site.aoi_name}.yaml)"
        )
    except AsmspotterError:
        rule = f"more than the expansion thresholds in {site.aoi_name}.yaml"
    negatives, _ = refresh_training_examples(store, settings.data_dir / TRAINING_DIR)
    typer.echo(
        f"{site_id} dismissed ({reason}) at {site.area_ha:.1f} ha. It will not be alerted "
        f"again unless it grows by {rule} over that area.\n"
        f"Negative examples for training: {negatives}"
    )


@sites_app.command("export-negatives")
def sites_export_negatives(
    aoi_name: Annotated[str, typer.Argument(help="AOI slug.")],
    out: Annotated[Path, typer.Argument(help="GeoJSON file to write (EPSG:4326).")],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUT.")] = False,
) -> None:
    """Write an AOI's dismissed sites as negative training areas (GeoJSON polygons)."""
    _export_reviewed_sites(aoi_name, out, overwrite, "dismissed")


def _export_reviewed_sites(
    aoi_name: str, out: Path, overwrite: bool, decision: Literal["dismissed", "confirmed"]
) -> None:
    """Write one AOI's dismissed (negatives) or confirmed (positives) sites to ``out``."""
    from asmspotter.monitor import open_store
    from asmspotter.report import write_negatives_geojson, write_positives_geojson
    from asmspotter.settings import get_settings

    if out.exists() and not overwrite:
        raise fail(f"{out} exists; pass --overwrite to replace it.")
    store = open_store(get_settings().resolved_database_url)
    if decision == "dismissed":
        dismissed = store.dismissed_sites(aoi_name)
        write_negatives_geojson(dismissed, out)
        count = len(dismissed)
    else:
        confirmed = store.confirmed_sites(aoi_name)
        write_positives_geojson(confirmed, out)
        count = len(confirmed)
    typer.echo(f"{count} {decision} site(s) of {aoi_name} written to {out}")


@sites_app.command("confirm")
def sites_confirm(
    site_id: Annotated[str, typer.Argument(help="Site id, e.g. demo-0003.")],
    reason: Annotated[str, typer.Option("--reason", help="What settled it, e.g. 'field visit'.")],
) -> None:
    """Mark a site as a confirmed mine: it keeps alerting and becomes a training positive."""
    from asmspotter.monitor import open_store
    from asmspotter.report import refresh_training_examples
    from asmspotter.settings import get_settings

    settings = get_settings()
    store = open_store(settings.resolved_database_url)
    try:
        site = store.confirm_site(site_id, reason)
    except (AsmspotterError, ValueError) as exc:
        raise fail(str(exc)) from exc
    # A confirmation lifts an earlier dismissal: the site leaves the negatives too.
    _, positives = refresh_training_examples(store, settings.data_dir / TRAINING_DIR)
    typer.echo(
        f"{site_id} confirmed ({reason}) at {site.area_ha:.1f} ha.\n"
        f"Positive examples for training: {positives}"
    )


@sites_app.command("export-positives")
def sites_export_positives(
    aoi_name: Annotated[str, typer.Argument(help="AOI slug.")],
    out: Annotated[Path, typer.Argument(help="GeoJSON file to write (EPSG:4326).")],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUT.")] = False,
) -> None:
    """Write an AOI's confirmed sites as mining labels for training (GeoJSON polygons)."""
    _export_reviewed_sites(aoi_name, out, overwrite, "confirmed")


@sites_app.command("export-chips")
def sites_export_chips(
    out: Annotated[Path, typer.Argument(help="Chips file to write (.npz).")],
    aoi_name: Annotated[
        str | None, typer.Option("--aoi", help="Only this AOI's sites (default: all).")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUT.")] = False,
) -> None:
    """Write the verifier's patches of every confirmed and dismissed site, for retraining.

    Train with them: python scripts/train_verifier.py --extra-chips OUT.npz
    """
    from asmspotter.detect.review_chips import review_chips, save_review_chips
    from asmspotter.monitor import open_store
    from asmspotter.settings import get_settings

    if out.exists() and not overwrite:
        raise fail(f"{out} exists; pass --overwrite to replace it.")
    chips = review_chips(open_store(get_settings().resolved_database_url), aoi_name)
    if not len(chips):
        raise fail(
            "no reviewed site with a composite on disk: confirm or dismiss sites first "
            "(`asmspotter sites confirm|dismiss` or the review page)."
        )
    save_review_chips(chips, out)
    sites = len(set(chips.site_id.tolist()))
    typer.echo(
        f"{len(chips)} chips of {sites} reviewed site(s) ({int(chips.label.sum())} of "
        f"confirmed mines, {int((chips.label == 0).sum())} of dismissed look-alikes) "
        f"written to {out}"
    )
