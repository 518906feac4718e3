"""Run reports: the markdown summary and the site table of one run.

Pure text building; ``tasks/report.py`` publishes them as Prefect artifacts and
the CLI prints them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from asmspotter.alerts.dispatch import DeliveryOutcome
from asmspotter.monitor import RunSummary

EVENT_ORDER = ("new", "expanded", "unchanged", "shrunk", "not_seen")


def render_run_markdown(summary: RunSummary, outcomes: Sequence[DeliveryOutcome]) -> str:
    """Markdown summary of a run: scenes, sites by event, deliveries, output files."""
    lines = [
        f"# {summary.aoi_name}: window {summary.window.start} – {summary.window.end}",
        "",
        f"**Scenes used:** {len(summary.scenes_used)}"
        + (f" ({', '.join(summary.scenes_used)})" if summary.scenes_used else ""),
    ]
    if summary.scenes_skipped:
        lines.append(f"**Scenes skipped:** {len(summary.scenes_skipped)}")
        lines += [f"- `{scene_id}`: {reason}" for scene_id, reason in summary.scenes_skipped]
    lines += ["", "## Sites", "", "| event | sites |", "|---|---|"]
    lines += [f"| {kind} | {summary.count(kind)} |" for kind in EVENT_ORDER]
    lines += ["", "## Alert deliveries", ""]
    if outcomes:
        lines += ["| channel | status | events | detail |", "|---|---|---|---|"]
        lines += [
            f"| {o.channel_label} | {o.status} | {o.n_events} | {o.detail or ''} |"
            for o in outcomes
        ]
    else:
        lines.append("No alerts in this run.")
    lines += ["", "## Outputs", ""]
    for label, path in (
        ("Composite", summary.composite_path),
        ("Probability map", summary.probability_path),
        ("Sites (GeoJSON)", summary.sites_path),
    ):
        if path:
            lines.append(f"- {label}: `{path}`")
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
            "first_seen": e.first_seen.isoformat(),
            "clear_observations": e.clear_observations,
        }
        for e in ordered
    ]
