"""The evidence packet of an alert: one zip an enforcement agency can be handed.

Modelled on MapBiomas Alerta's per-alert report: the before/after images, the
scenes (ids and acquisition dates) the composites were built from, the model
(name, version, threshold) that found the sites, the site outlines in EPSG:4326,
and a ``SHA256SUMS`` file (``sha256sum -c`` format) over every other file, so a
recipient can show the packet was not altered after it left the system. Entry
times are the window end, so the same alert gives a byte-identical zip.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asmspotter.atomic_write import atomic_write
from asmspotter.events import SiteEvent
from asmspotter.exports import render_geojson, sites_from_events

logger = logging.getLogger(__name__)

__all__ = ["ModelInfo", "SceneInfo", "write_evidence_packet"]

CHECKSUMS_NAME = "SHA256SUMS"


@dataclass(frozen=True)
class ModelInfo:
    """The detector that found the sites.

    Attributes:
        name: Model name (folder under ``models/``), e.g. ``s2-unet-v1``.
        version: The model card's version.
        threshold: Probability threshold applied (the AOI's, else the card's).
    """

    name: str
    version: str
    threshold: float


@dataclass(frozen=True)
class SceneInfo:
    """One scene a composite was built from.

    Attributes:
        provider: Provider name, e.g. ``earth-search``.
        scene_id: The provider's scene id.
        acquired: Acquisition time (UTC).
        cloud_pct: Scene cloud cover in percent, if known.
    """

    provider: str
    scene_id: str
    acquired: dt.datetime
    cloud_pct: float | None


def _scene_json(scene: SceneInfo) -> dict[str, Any]:
    return {
        "provider": scene.provider,
        "scene_id": scene.scene_id,
        "acquired": scene.acquired.isoformat(),
        "cloud_pct": scene.cloud_pct,
    }


def _site_json(event: SiteEvent) -> dict[str, Any]:
    return {
        "site_id": event.site_id,
        "event": event.kind,
        "area_ha": round(event.area_ha, 4),
        "growth_ha": None if event.growth_ha is None else round(event.growth_ha, 4),
        "growth_pct": None if event.growth_pct is None else round(event.growth_pct, 2),
        "confidence": event.confidence,
        "verifier_score": event.verifier_score,
        "mean_probability": event.mean_probability,
        "centroid_lat": round(event.centroid_lat, 7),
        "centroid_lon": round(event.centroid_lon, 7),
        "first_seen": event.first_seen.isoformat(),
        "clear_observations": event.clear_observations,
        "context_layers": [
            {"layer": tag.layer, "features": list(tag.features)} for tag in event.context_tags
        ],
    }


def _readme(aoi_title: str, window_start: dt.date, window_end: dt.date) -> str:
    return (
        f"asmspotter evidence packet: {aoi_title}, composite window {window_start} to "
        f"{window_end}.\n\n"
        "alert.json      sites (area, growth, confidence, centroid, context layers such as\n"
        "                protected areas they lie in), the model, and the\n"
        "                scenes behind the before and after composites\n"
        "sites.geojson   site outlines, EPSG:4326 (RFC 7946)\n"
        "images/         quicklook and before/after images (true-colour composites)\n"
        f"{CHECKSUMS_NAME:<16}SHA-256 of every other file; check with "
        f"`sha256sum -c {CHECKSUMS_NAME}`\n"
    )


def write_evidence_packet(
    path: Path,
    *,
    aoi_name: str,
    aoi_title: str,
    window_start: dt.date,
    window_end: dt.date,
    before_window_end: dt.date | None,
    events: Sequence[SiteEvent],
    epsg: int,
    images: Sequence[Path],
    scenes_after: Sequence[SceneInfo],
    scenes_before: Sequence[SceneInfo],
    model: ModelInfo | None,
) -> Path:
    """Write the evidence zip of one alert.

    Args:
        path: The zip to write (atomically; parents created).
        aoi_name: AOI slug.
        aoi_title: AOI name for people.
        window_start: First day of this composite's window.
        window_end: Last day of this composite's window (the "after" imagery).
        before_window_end: Window end of the composite compared against, if any.
        events: The alert's site events, geometries in ``EPSG:<epsg>``.
        epsg: CRS of the geometries.
        images: PNGs to include (missing ones are skipped with a warning).
        scenes_after: Scenes of this window's composite.
        scenes_before: Scenes of the previous composite.
        model: The detector, or None when its card could not be read (recorded so).

    Returns:
        ``path``.
    """
    files: dict[str, bytes] = {"README.txt": _readme(aoi_title, window_start, window_end).encode()}
    record = {
        "aoi": {"name": aoi_name, "title": aoi_title},
        "window": {"start": window_start.isoformat(), "end": window_end.isoformat()},
        "imagery": {
            "before": {
                "window_end": before_window_end.isoformat() if before_window_end else None,
                "scenes": [_scene_json(s) for s in scenes_before],
            },
            "after": {
                "window_end": window_end.isoformat(),
                "scenes": [_scene_json(s) for s in scenes_after],
            },
        },
        "model": (
            {"name": model.name, "version": model.version, "threshold": model.threshold}
            if model
            else {"name": "unknown", "version": "unknown", "threshold": None}
        ),
        "sites": [_site_json(e) for e in events],
    }
    files["alert.json"] = (json.dumps(record, indent=2, ensure_ascii=False) + "\n").encode()
    files["sites.geojson"] = render_geojson(sites_from_events(events, epsg)).encode()
    for image in images:
        if not image.is_file():
            logger.warning("Evidence packet %s: image %s is missing; left out", path, image)
            continue
        files[f"images/{image.name}"] = image.read_bytes()
    files[CHECKSUMS_NAME] = "".join(
        f"{hashlib.sha256(content).hexdigest()}  {name}\n" for name, content in files.items()
    ).encode()
    _write_zip(path, files, window_end)
    logger.debug("Wrote evidence packet %s (%d files)", path, len(files))
    return path


def _write_zip(path: Path, files: Mapping[str, bytes], stamp: dt.date) -> None:
    """Write a zip with fixed entry times, atomically and with a normal file mode."""
    with (
        atomic_write(path) as scratch,
        zipfile.ZipFile(scratch, "w", compression=zipfile.ZIP_DEFLATED) as archive,
    ):
        for name, content in files.items():
            info = zipfile.ZipInfo(name, date_time=(stamp.year, stamp.month, stamp.day, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, content)
