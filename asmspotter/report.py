"""Run reports, site timelines and dismissed-site exports: text, tables and files.

``render_run_markdown`` and ``active_site_rows`` build what ``tasks/report.py``
publishes as Prefect artifacts; ``write_site_timeline`` (``asmspotter sites show``)
and ``write_negatives_geojson`` (``asmspotter sites export-negatives``, and the
file every dismissal refreshes) write files for people and for training.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asmspotter.alerts.dispatch import DeliveryOutcome
from asmspotter.alerts.render import describe_confidence, nearest_label
from asmspotter.exports import geojson_feature, lonlat_reprojector, write_geojson

if TYPE_CHECKING:
    from asmspotter.monitor import RunSummary
    from asmspotter.storage import Store
    from asmspotter.storage.records import DismissedSite, ObservationRecord, SiteRecord

logger = logging.getLogger(__name__)

EVENT_ORDER = ("new", "expanded", "unchanged", "shrunk", "not_seen")
MAX_EVENT_ROWS = 50
"""Most site rows in the markdown artifact; the rest are counted (the table artifact has all)."""


def _file_link(label: str, path: Path) -> str:
    """A markdown link to a local file (``file://``), with the path shown."""
    resolved = path.resolve()
    return f"- {label}: [`{resolved}`]({resolved.as_uri()})"


def _event_text(kind: str, growth_ha: float | None, growth_pct: float | None) -> str:
    if kind != "expanded" or growth_ha is None:
        return kind
    pct = f" ({growth_pct:+.0f}%)" if growth_pct is not None else ""
    return f"expanded {growth_ha:+.1f} ha{pct}"


def render_run_markdown(
    summary: RunSummary,
    outcomes: Sequence[DeliveryOutcome],
    *,
    labels: dict[str, list[float]] | None = None,
) -> str:
    """Markdown summary of a run: scenes, quicklook, site events, deliveries, output files.

    The quicklook is embedded as a small ``data:`` PNG (the Prefect UI renders it),
    with a link to the full-size file.
    """
    from asmspotter.alerts.quicklook import render_thumbnail_data_uri

    lines = [
        f"# {summary.aoi_name}: window {summary.window.start} – {summary.window.end}",
        "",
        f"**Sites:** {summary.count('new')} new, {summary.count('expanded')} expanded, "
        f"{summary.count('unchanged')} unchanged, {summary.count('shrunk')} shrunk, "
        f"{summary.count('not_seen')} not seen (cloud).",
        "",
        f"**Scenes used:** {len(summary.scenes_used)}"
        + (f" ({', '.join(summary.scenes_used)})" if summary.scenes_used else ""),
    ]
    if not summary.composite_path:
        lines += ["", "**No usable composite in this window**; sites keep their last state."]
    if summary.scenes_skipped:
        lines.append(f"**Scenes skipped:** {len(summary.scenes_skipped)}")
        lines += [f"- `{scene_id}`: {reason}" for scene_id, reason in summary.scenes_skipped]
    if summary.quicklooks:
        overview = summary.quicklooks[0]
        lines += ["", "## Quicklook", ""]
        try:
            lines.append(f"![quicklook]({render_thumbnail_data_uri(overview)})")
        except (OSError, ValueError) as exc:
            logger.warning("No quicklook thumbnail from %s: %s", overview, exc)
        lines.append("")
        lines += [_file_link(p.name, p) for p in summary.quicklooks]
    lines += ["", "## Site events", ""]
    lines += ["| site | event | area ha | lat | lon | confidence | first seen | clear obs. |"]
    lines += ["|---|---|---|---|---|---|---|---|"]
    ordered = sorted(
        summary.events, key=lambda e: (EVENT_ORDER.index(e.kind), -e.area_ha, e.site_id)
    )
    for e in ordered[:MAX_EVENT_ROWS]:
        confidence = describe_confidence(e)
        near = nearest_label(e.centroid_lat, e.centroid_lon, labels)
        lines.append(
            f"| {e.site_id} | {_event_text(e.kind, e.growth_ha, e.growth_pct)} | "
            f"{e.area_ha:.1f} | {e.centroid_lat:.5f} | {e.centroid_lon:.5f}"
            f"{' (' + near + ')' if near else ''} | {confidence} | {e.first_seen} | "
            f"{e.clear_observations} |"
        )
    if len(ordered) > MAX_EVENT_ROWS:
        lines.append(
            f"\n… and {len(ordered) - MAX_EVENT_ROWS} more sites (see the sites table artifact)."
        )
    if not ordered:
        lines.append("| – | no sites | | | | | | |")
    lines += ["", "## Alert deliveries", ""]
    if outcomes:
        lines += [
            "| channel | status | events | resent | waiting (backoff) | attempts | detail |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {o.channel_label} | {o.status} | {o.n_events} | {o.n_resent} | {o.n_waiting} | "
            f"{o.max_attempts} | {(o.detail or '').replace('|', '/')} |"
            for o in outcomes
        ]
    else:
        lines.append("No alerts in this run.")
    lines += ["", "## Outputs", ""]
    for label, path in (
        ("Composite", summary.composite_path),
        ("Previous composite", summary.previous_composite_path),
        ("Probability map", summary.probability_path),
        ("Sites (GeoJSON)", summary.sites_path),
    ):
        if path:
            lines.append(_file_link(label, path))
    if summary.run_dir is not None and (summary.run_dir / "alerts").is_dir():
        lines.append(_file_link("Alert attachments", summary.run_dir / "alerts"))
    return "\n".join(lines)


def site_table_rows(summary: RunSummary) -> list[dict[str, Any]]:
    """One row per site event of the run, biggest news first."""
    ordered = sorted(
        summary.events, key=lambda e: (EVENT_ORDER.index(e.kind), -e.area_ha, e.site_id)
    )
    return [
        {
            "site_id": e.site_id,
            "event": e.kind,
            "area_ha": round(e.area_ha, 2),
            "growth_ha": None if e.growth_ha is None else round(e.growth_ha, 2),
            "growth_pct": None if e.growth_pct is None else round(e.growth_pct, 1),
            "lat": round(e.centroid_lat, 5),
            "lon": round(e.centroid_lon, 5),
            "mean_probability": None
            if e.mean_probability is None
            else round(e.mean_probability, 3),
            "confidence": e.confidence,
            "verifier_score": None if e.verifier_score is None else round(e.verifier_score, 3),
            "first_seen": e.first_seen.isoformat(),
            "clear_observations": e.clear_observations,
        }
        for e in ordered
    ]


def format_area_history(history: Sequence[tuple[dt.date, str, float]]) -> str:
    """``2024-01-31 3.2 (new) → 2024-02-29 4.1 (expanded)``, areas in ha."""
    return " → ".join(f"{end} {area:.1f} ({kind})" for end, kind, area in history)


def active_site_rows(store: Store, aoi_name: str) -> list[dict[str, Any]]:
    """One row per active site of an AOI: first/last seen, area now and per run."""
    histories = store.area_histories(aoi_name)
    rows = []
    for site in store.sites(aoi_name, status="active"):
        history = histories.get(site.site_id, [])
        last_event = history[-1][1] if history else ""
        rows.append(
            {
                "site_id": site.site_id,
                "area_ha": round(site.area_ha, 2),
                "last_event": last_event,
                "first_seen": site.first_seen.isoformat(),
                "last_seen": site.last_seen.isoformat(),
                "lat": round(site.centroid_lat, 5),
                "lon": round(site.centroid_lon, 5),
                "area_history_ha": format_area_history(history),
            }
        )
    return rows


def write_site_timeline(
    site_id: str, history: Sequence[ObservationRecord], out_dir: Path
) -> tuple[Path, Path]:
    """Write a site's area-over-time chart (PNG) and its outlines per run (GeoPackage).

    Args:
        site_id: Site id (file names).
        history: The site's observations, oldest first (``Store.site_history``).
        out_dir: Output folder; created if needed. Files are overwritten (derived data).

    Returns:
        (chart PNG, GeoPackage with one EPSG:<site CRS> polygon per run, layer ``outlines``).

    Raises:
        ValueError: ``history`` is empty.
    """
    import geopandas as gpd
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from shapely import wkt

    from asmspotter.alerts.quicklook import EVENT_COLOURS

    if not history:
        raise ValueError(f"site {site_id} has no observations; nothing to draw.")
    out_dir.mkdir(parents=True, exist_ok=True)
    png = out_dir / f"{site_id}-area.png"
    gpkg = out_dir / f"{site_id}-outlines.gpkg"
    dates = [h.window_end for h in history]
    areas = [h.area_ha for h in history]
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    ax.plot(dates, areas, color="#555555", linewidth=1.5, zorder=1)  # type: ignore[arg-type]
    for h in history:
        ax.scatter(
            [h.window_end],  # type: ignore[arg-type]
            [h.area_ha],
            color=EVENT_COLOURS.get(h.kind, "#000"),
            zorder=2,
            label=h.kind,
        )
    handles, names = ax.get_legend_handles_labels()
    unique = dict(zip(names, handles, strict=True))
    ax.legend(unique.values(), unique.keys(), fontsize=8)
    ax.set_ylabel("area (ha)")
    ax.set_title(f"{site_id}: mapped area per run (window end)")
    ax.set_ylim(bottom=0)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)
    frame = gpd.GeoDataFrame(
        {
            "site_id": [h.site_id for h in history],
            "window_end": [h.window_end.isoformat() for h in history],
            "event": [h.kind for h in history],
            "area_ha": areas,
        },
        geometry=[wkt.loads(h.geometry_wkt) for h in history],
        crs=f"EPSG:{history[-1].epsg}",
    )
    gpkg.unlink(missing_ok=True)
    frame.to_file(gpkg, layer="outlines", driver="GPKG")
    return png, gpkg


def _site_feature_lonlat(site: SiteRecord, properties: dict[str, Any]) -> dict[str, Any]:
    """A GeoJSON feature of a site's latest outline in EPSG:4326."""
    return geojson_feature(site.site_id, lonlat_reprojector(site.epsg)(site.geometry), properties)


def write_negatives_geojson(dismissed: Sequence[DismissedSite], path: Path) -> Path:
    """Write dismissed sites as negative training areas: EPSG:4326 GeoJSON polygons.

    Properties: ``site_id``, ``class`` (``negative``), ``aoi``, ``reason``,
    ``dismissed_at`` (ISO 8601 UTC or null), ``area_ha``. The training side reads it as
    "negative areas" (never mining).

    Returns:
        ``path`` (written even when there is no dismissed site: an empty collection).
    """
    features = [
        _site_feature_lonlat(
            item.site,
            {
                "site_id": item.site.site_id,
                "class": "negative",
                "aoi": item.site.aoi_name,
                "reason": item.site.dismissed_reason,
                "dismissed_at": item.dismissed_at.isoformat() if item.dismissed_at else None,
                "area_ha": round(item.site.area_ha, 4),
            },
        )
        for item in dismissed
    ]
    write_geojson(features, path)
    logger.info("Wrote %d negative areas to %s", len(features), path)
    return path


def write_positives_geojson(confirmed: Sequence[SiteRecord], path: Path) -> Path:
    """Write confirmed sites as mining labels for training: EPSG:4326 GeoJSON polygons.

    The counterpart of :func:`write_negatives_geojson`. Properties: ``site_id``,
    ``class`` (``mining``, which ``detect.labels.load_labels`` reads as a positive),
    ``aoi``, ``confirmed_at`` (ISO 8601 UTC), ``area_ha``.

    Returns:
        ``path`` (written even when there is no confirmed site: an empty collection).
    """
    features = [
        _site_feature_lonlat(
            site,
            {
                "site_id": site.site_id,
                "class": "mining",
                "aoi": site.aoi_name,
                "confirmed_at": site.confirmed_at.isoformat() if site.confirmed_at else None,
                "area_ha": round(site.area_ha, 4),
            },
        )
        for site in confirmed
    ]
    write_geojson(features, path)
    logger.info("Wrote %d confirmed mining areas to %s", len(features), path)
    return path


NEGATIVES_FILENAME = "negatives.geojson"
"""Every dismissed site, in the training folder."""

POSITIVES_FILENAME = "positives.geojson"
"""Every confirmed site, in the training folder."""


def refresh_training_examples(store: Store, training_dir: Path) -> tuple[Path, Path]:
    """Rewrite both training files from the store after any review decision.

    A decision can move a site from one side to the other (a confirmation lifts a
    dismissal and the reverse), so both files are rewritten every time.

    Returns:
        The negatives and positives paths.
    """
    negatives = write_negatives_geojson(store.dismissed_sites(), training_dir / NEGATIVES_FILENAME)
    positives = write_positives_geojson(store.confirmed_sites(), training_dir / POSITIVES_FILENAME)
    return negatives, positives
