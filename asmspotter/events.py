"""What tracking tells the rest of the system: one event per site per run.

Tracking (``asmspotter.track``) produces these; storage records them; alerts
(``asmspotter.alerts``) render and deliver the ``new`` and ``expanded`` ones.
Geometries are in the AOI grid's projected CRS (metres), with a lon/lat
centroid precomputed for messages.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from shapely.geometry.base import BaseGeometry

if TYPE_CHECKING:
    from asmspotter.context_layers import ContextTag

EventKind = Literal["new", "expanded", "unchanged", "shrunk", "not_seen"]
"""new: first detection of a site. expanded: grew by more than the AOI's thresholds,
measured where both composites were clear. unchanged: seen, growth under thresholds.
shrunk: seen clear but smaller (or not detected at all). not_seen: hidden by cloud."""

ALERT_KINDS: tuple[EventKind, ...] = ("new", "expanded")
"""Event kinds that trigger an alert."""

ConfidenceLevel = Literal["nominal", "high", "highest"]
"""How sure the system is that a site is mining (like GFW's alert levels).
nominal: the U-Net found it, the verifier (trained on real pixels) does not agree.
high: the verifier agrees. highest: the verifier is very sure, or the site was high
again in its next composite. The model card gives each level's expected sensitivity
and specificity on real imagery (``asmspotter.detect.site_verification``)."""

CONFIDENCE_LEVELS: tuple[ConfidenceLevel, ...] = ("nominal", "high", "highest")
"""Confidence levels, lowest first."""

DEFAULT_ALERT_LEVELS: tuple[ConfidenceLevel, ...] = ("high", "highest")
"""Levels that alert unless an AOI's alert route says otherwise."""


@dataclass(frozen=True)
class SiteEvent:
    """The state of one mining site in one run.

    Attributes:
        site_id: Persistent site id, e.g. ``demo-0003``; stable across runs.
        kind: What happened to the site in this run.
        geometry: Current outline in the AOI CRS (for ``not_seen``: last known outline).
        area_ha: Current mapped area in hectares (last known for ``not_seen``).
        previous_area_ha: Area at the previous observation, None for ``new``.
        growth_ha: Area gained, measured only where both composites were clear; None if
            not measurable.
        growth_pct: ``growth_ha`` as a percentage of the comparable previous area.
        mean_probability: Mean model probability inside the outline, None if not seen.
        centroid_lon: Centroid longitude, decimal degrees (EPSG:4326).
        centroid_lat: Centroid latitude, decimal degrees (EPSG:4326).
        first_seen: Window end date of the run that first detected the site.
        clear_observations: Median count of clear observations behind the outline.
        verifier_score: The verifier's score of the site's surroundings (0..1), None
            when not seen or when the model has no verifier.
        confidence: The site's confidence level in this run.
        outline_threshold: Model probability the outline was cut at (the card's
            ``threshold``, or its lower ``candidate_threshold`` for a verifier-confirmed
            candidate); growth is only measured between outlines cut at the same one.
            None when unknown (recorded before it was kept).
        context_tags: The AOI's context layers the outline intersects (protected
            areas, territories, concessions), set by the alerts from the AOI file's
            ``context_layers`` (``asmspotter.context_layers.tag_sites``), not by tracking.
    """

    site_id: str
    kind: EventKind
    geometry: BaseGeometry
    area_ha: float
    previous_area_ha: float | None
    growth_ha: float | None
    growth_pct: float | None
    mean_probability: float | None
    centroid_lon: float
    centroid_lat: float
    first_seen: dt.date
    clear_observations: int
    verifier_score: float | None = None
    confidence: ConfidenceLevel = "nominal"
    outline_threshold: float | None = None
    context_tags: tuple[ContextTag, ...] = ()

    @property
    def is_alertable(self) -> bool:
        """True for the event kinds that send alerts (new, expanded)."""
        return self.kind in ALERT_KINDS
