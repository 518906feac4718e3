"""Site tracking: match a run's detections to known sites and classify what happened.

Pure functions, no database and no I/O. The store (:mod:`asmspotter.storage`) supplies
the known sites (``Store.known_sites``), the previous run's clear footprint
(``Store.previous_completed_run``) and fresh ids (``Store.next_site_ids``), and
records the events this module returns (``Store.record_events``). Alerts
(:mod:`asmspotter.alerts`) render the ``new`` and ``expanded`` ones. The event
contract is :class:`asmspotter.events.SiteEvent`.

Two rules from the architecture shape everything here: clouds are not evidence (a
site mostly hidden by cloud is ``not_seen``, never gone), and growth is measured only
where both composites had a clear look.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from asmspotter.events import CONFIDENCE_LEVELS, ConfidenceLevel, EventKind, SiteEvent
from asmspotter.grid import to_lonlat

logger = logging.getLogger(__name__)

M2_PER_HA = 10_000.0
"""Square metres in a hectare."""

# Areas are computed in float64 square metres; intersections of the same polygon can
# differ from the polygon by ~1e-9 m². This tolerance (hectares) keeps a growth of
# exactly the threshold on the right side of it.
_TOLERANCE_HA = 1e-9


@dataclass(frozen=True)
class KnownSite:
    """A site known before this run, as tracking needs it.

    Attributes:
        site_id: Persistent site id, e.g. ``demo-0003``.
        geometry: Latest known outline in the AOI CRS (metres).
        area_ha: Latest mapped area in hectares (0 after it was seen clear and absent).
        first_seen: Window end of the run that first detected it.
        status: ``active`` or ``dismissed``; dismissed sites are still tracked.
        last_confidence: Confidence level at its latest observation where it was seen,
            None if never recorded.
        outline_threshold: Probability its latest outline was cut at (see
            :attr:`asmspotter.events.SiteEvent.outline_threshold`); None if unknown.
    """

    site_id: str
    geometry: BaseGeometry
    area_ha: float
    first_seen: dt.date
    status: str
    last_confidence: ConfidenceLevel | None = None
    outline_threshold: float | None = None


@dataclass(frozen=True)
class TrackingThresholds:
    """When a change counts, per AOI (``detection`` section of the AOI YAML).

    Attributes:
        match_buffer_m: A detection within this distance (metres) of a known site's
            outline belongs to that site; unmatched detections this close to each
            other form one new site.
        min_growth_ha: Smallest area change, in hectares, that counts as expanded or
            shrunk.
        min_growth_pct: Smallest area change, in percent of the comparable previous
            area, that counts as expanded or shrunk. Both minima must be met.
        min_visible_fraction: Fraction (0..1) of a site's outline that must be clear
            in this composite for an absent detection to mean the site shrank;
            below it the site is ``not_seen``.
    """

    match_buffer_m: float = 30.0
    min_growth_ha: float = 1.0
    min_growth_pct: float = 20.0
    min_visible_fraction: float = 0.5

    def __post_init__(self) -> None:
        """Reject negative thresholds and fractions outside 0..1."""
        for name in ("match_buffer_m", "min_growth_ha", "min_growth_pct"):
            value = getattr(self, name)
            if not value >= 0:
                raise ValueError(f"TrackingThresholds.{name} must be >= 0, got {value}.")
        if not 0.0 <= self.min_visible_fraction <= 1.0:
            raise ValueError(
                "TrackingThresholds.min_visible_fraction must be in 0..1, got "
                f"{self.min_visible_fraction}."
            )


def _area_ha(geometry: BaseGeometry) -> float:
    """Area of a geometry in hectares (CRS units are metres)."""
    return float(geometry.area) / M2_PER_HA


def _next_id(source: Iterator[str] | Callable[[], str]) -> str:
    """Draw one id from an iterator or a callable."""
    if callable(source):
        return source()
    try:
        return next(source)
    except StopIteration:
        raise ValueError(
            "new_site_ids ran out of ids; pass at least one id per detection, e.g. "
            "iter(store.next_site_ids(aoi, len(detections), window_end=window_end))."
        ) from None


def _weighted_probability(
    geometries: Sequence[BaseGeometry], probabilities: Sequence[float]
) -> float | None:
    """Area-weighted mean of per-detection mean probabilities, ignoring NaN."""
    weights = np.array([g.area for g in geometries], dtype=np.float64)
    values = np.array(probabilities, dtype=np.float64)
    ok = np.isfinite(values)
    if not ok.any():
        return None
    if weights[ok].sum() <= 0:
        return float(values[ok].mean())
    return float(np.average(values[ok], weights=weights[ok]))


def _site_confidence(
    scores: Sequence[float], levels: Sequence[ConfidenceLevel], previous: ConfidenceLevel | None
) -> tuple[float | None, ConfidenceLevel]:
    """A site's verifier score (the best of its detections) and confidence level.

    The level is the best of its detections' levels; ``high`` becomes ``highest`` when
    the site was ``high`` or ``highest`` at its previous look too (confirmed again).
    """
    finite = [s for s in scores if math.isfinite(s)]
    score = max(finite) if finite else None
    level = max(levels, key=CONFIDENCE_LEVELS.index) if levels else "nominal"
    if level == "high" and previous in ("high", "highest"):
        level = "highest"
    return score, level


def _visible_fraction(geometry: BaseGeometry, clear: BaseGeometry) -> float:
    """Fraction of ``geometry`` inside the clear footprint (0..1)."""
    if geometry.is_empty:
        return 0.0
    if geometry.area <= 0:
        return 1.0 if geometry.intersects(clear) else 0.0
    return float(geometry.intersection(clear).area / geometry.area)


def _growth(
    old: BaseGeometry, old_area_ha: float, new: BaseGeometry | None, common: BaseGeometry
) -> tuple[float | None, float | None]:
    """Growth in ha and percent, measured only inside the common clear area.

    Returns (None, None) when neither outline has any area in the common clear area:
    nothing comparable was seen twice. A previous area of zero (the site had vanished)
    compares as empty; its percentage growth is undefined (None).
    """
    old_clear_ha = _area_ha(old.intersection(common)) if old_area_ha > 0 else 0.0
    new_clear_ha = 0.0 if new is None else _area_ha(new.intersection(common))
    if old_clear_ha <= 0 and new_clear_ha <= 0:
        return None, None
    growth_ha = new_clear_ha - old_clear_ha
    growth_pct = 100.0 * growth_ha / old_clear_ha if old_clear_ha > 0 else None
    return growth_ha, growth_pct


def _comparable(
    members: Sequence[int], cuts: Sequence[float | None], previous_cut: float | None
) -> list[int]:
    """The detections whose outlines were cut where the site's previous outline was.

    Unknown cuts (None) on either side compare with everything, as before cuts were kept.
    """
    if previous_cut is None:
        return list(members)
    return [i for i in members if _same_cut(cuts[i], previous_cut)]


def _same_cut(cut: float | None, previous_cut: float) -> bool:
    return cut is None or math.isclose(cut, previous_cut)


def _outline_threshold(members: Sequence[int], cuts: Sequence[float | None]) -> float | None:
    """The cut a site's merged outline is compared at next: its detections' highest.

    A site that has a detection at the card's threshold is measured at that threshold
    next run, whatever candidates joined it; one seen only as a candidate at its cut.
    """
    known = [cut for cut in (cuts[i] for i in members) if cut is not None]
    return max(known) if known else None


def _classify(
    growth_ha: float | None, growth_pct: float | None, thresholds: TrackingThresholds
) -> EventKind:
    """Classify growth as expanded, shrunk or unchanged; both minima must be met."""
    if growth_ha is None:
        return "unchanged"
    pct_up = growth_pct is None or growth_pct >= thresholds.min_growth_pct - _TOLERANCE_HA
    pct_down = growth_pct is None or growth_pct <= -thresholds.min_growth_pct + _TOLERANCE_HA
    if growth_ha >= thresholds.min_growth_ha - _TOLERANCE_HA and pct_up:
        return "expanded"
    if growth_ha <= -thresholds.min_growth_ha + _TOLERANCE_HA and pct_down:
        return "shrunk"
    return "unchanged"


def _clusters(geometries: Sequence[BaseGeometry], distance_m: float) -> list[list[int]]:
    """Group geometries closer than ``distance_m`` (single linkage), in input order."""
    parent = list(range(len(geometries)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    if len(geometries) > 1:
        tree = shapely.STRtree(geometries)
        left, right = tree.query(geometries, predicate="dwithin", distance=distance_m)
        for a, b in zip(left.tolist(), right.tolist(), strict=True):
            root_a, root_b = find(a), find(b)
            if root_a != root_b:
                parent[max(root_a, root_b)] = min(root_a, root_b)
    groups: dict[int, list[int]] = {}
    for i in range(len(geometries)):
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values(), key=lambda members: members[0])


def track_sites(
    detections: gpd.GeoDataFrame,
    known: Sequence[KnownSite],
    *,
    clear_now: BaseGeometry,
    clear_before: BaseGeometry | None,
    window_end: dt.date,
    epsg: int,
    new_site_ids: Iterator[str] | Callable[[], str],
    thresholds: TrackingThresholds,
    clear_counts: Callable[[Sequence[BaseGeometry]], Sequence[int]] | None = None,
) -> list[SiteEvent]:
    """Match this run's detections to known sites and classify one event per site.

    Rules:

    - A detection belongs to a known site if it intersects the site's outline
      buffered by ``match_buffer_m``; a detection touching several sites goes to the
      one it overlaps most (unbuffered overlap first, then buffered). All detections
      of a site are merged (unary union) into its new outline.
    - Unmatched detections are ``new`` sites (``first_seen = window_end``); unmatched
      detections within ``match_buffer_m`` of each other form one site, just as they
      would match one site in the next run.
    - A matched site's growth is measured inside ``clear_now ∩ clear_before`` only:
      ``growth_ha = area(new ∩ C) − area(old ∩ C)``, ``growth_pct = 100·growth_ha /
      area(old ∩ C)``. ``expanded`` needs both ``growth_ha >= min_growth_ha`` and
      ``growth_pct >= min_growth_pct``; ``shrunk`` the mirror image; else
      ``unchanged``. Growth is None (``unchanged``) when neither outline lies in C.
    - Growth compares outlines cut at one probability threshold (column
      ``outline_threshold``; a verifier-confirmed candidate is cut lower than a
      detection, so its outline is larger for the same ground): only the site's
      detections cut where its previous outline was are measured against it, and a site
      seen only at another cut is ``unchanged`` with growth None. Its outline and area
      are still the new ones. Without thresholds on either side every detection counts.
    - A known site without a detection is ``not_seen`` (last outline and area kept)
      if less than ``min_visible_fraction`` of it is clear now; otherwise it was seen
      clear and absent: ``shrunk`` to 0 ha, keeping its last outline for matching.
    - Dismissed sites get events like the others; alert policy is decided elsewhere.
    - A seen site's confidence is the best level of its detections (column
      ``confidence``, with ``verifier_score``; ``nominal`` without them), raised from
      ``high`` to ``highest`` when its previous look was ``high`` or better. Unseen
      sites keep their last level.

    Args:
        detections: This run's polygons in the AOI CRS (metres), with columns
            ``geometry``, ``area_ha`` and ``mean_probability``
            (from ``asmspotter.detect.vectorize``), optionally ``verifier_score``,
            ``confidence`` and ``outline_threshold``.
        known: Sites known before this run (``Store.known_sites(aoi, window_end)``).
        clear_now: Pixels of this composite with at least one clear observation, as a
            geometry in the AOI CRS.
        clear_before: The same footprint of the previous completed run; None (first
            run, or not recorded) measures growth inside ``clear_now`` alone.
        window_end: Last day of this run's composite window.
        epsg: EPSG code of the AOI CRS.
        new_site_ids: Source of ids for new sites, an iterator
            (``iter(store.next_site_ids(aoi, len(detections), window_end=window_end))``)
            or a zero-argument callable.
        thresholds: The AOI's tracking thresholds.
        clear_counts: Returns the median number of clear observations behind each of
            the outlines it is given (all events' at once, so a reader can take them
            in the file's order); ``clear_observations`` is 0 without it.

    Returns:
        One event per known site (in ``known`` order), then one per new site (in
        order of their first detection).

    Raises:
        ValueError: ``detections`` lacks a geometry, is in another CRS, or
            ``new_site_ids`` runs out or repeats a known id.

    Example:
        >>> import datetime as dt
        >>> from shapely.geometry import box
        >>> frame = gpd.GeoDataFrame(
        ...     {"area_ha": [4.0], "mean_probability": [0.9]},
        ...     geometry=[box(500_000, 0, 500_200, 200)], crs="EPSG:32621")
        >>> [e.kind for e in track_sites(
        ...     frame, [], clear_now=box(499_000, -1_000, 501_000, 1_000), clear_before=None,
        ...     window_end=dt.date(2024, 1, 30), epsg=32621, new_site_ids=iter(["demo-0001"]),
        ...     thresholds=TrackingThresholds())]
        ['new']
    """
    if detections.crs is not None and detections.crs.to_epsg() != epsg:
        raise ValueError(
            f"detections are in {detections.crs.to_string()} but epsg is {epsg}; "
            "vectorise on the AOI grid or pass the grid's epsg."
        )
    geometries: list[BaseGeometry] = []
    probabilities: list[float] = []
    scores: list[float] = []
    levels: list[ConfidenceLevel] = []
    cuts: list[float | None] = []
    has_probability = "mean_probability" in detections.columns
    has_score = "verifier_score" in detections.columns
    has_level = "confidence" in detections.columns
    has_cut = "outline_threshold" in detections.columns
    for index, geometry in enumerate(detections.geometry):
        if geometry is None or geometry.is_empty:
            continue
        geometries.append(geometry)
        probabilities.append(
            float(detections["mean_probability"].iloc[index]) if has_probability else math.nan
        )
        score = detections["verifier_score"].iloc[index] if has_score else None
        scores.append(math.nan if score is None else float(score))
        level = str(detections["confidence"].iloc[index]) if has_level else "nominal"
        levels.append(level if level in CONFIDENCE_LEVELS else "nominal")  # type: ignore[arg-type]
        cut = detections["outline_threshold"].iloc[index] if has_cut else None
        cuts.append(None if cut is None or math.isnan(float(cut)) else float(cut))
    common = clear_now if clear_before is None else clear_now.intersection(clear_before)
    known_ids = {site.site_id for site in known}

    def centroid_lonlat(geometry: BaseGeometry) -> tuple[float, float]:
        point = to_lonlat(geometry.centroid, epsg)
        return float(point.x), float(point.y)

    # Assign each detection to at most one known site.
    assigned: dict[int, list[int]] = {}
    unmatched: list[int] = []
    if known:
        buffered = [site.geometry.buffer(thresholds.match_buffer_m) for site in known]
        tree = shapely.STRtree(buffered)
    for i, geometry in enumerate(geometries):
        candidates = tree.query(geometry, predicate="intersects").tolist() if known else []
        if not candidates:
            unmatched.append(i)
            continue
        best = max(
            candidates,
            key=lambda k: (
                known[k].geometry.intersection(geometry).area,
                buffered[k].intersection(geometry).area,
                -k,
            ),
        )
        assigned.setdefault(best, []).append(i)

    events: list[SiteEvent] = []
    for k, site in enumerate(known):
        members = assigned.get(k)
        if members:
            outline = shapely.union_all([geometries[i] for i in members])
            comparable = _comparable(members, cuts, site.outline_threshold)
            if comparable:
                compared = shapely.union_all([geometries[i] for i in comparable])
                growth_ha, growth_pct = _growth(site.geometry, site.area_ha, compared, common)
            else:
                growth_ha, growth_pct = None, None
            kind = _classify(growth_ha, growth_pct, thresholds)
            area_ha = _area_ha(outline)
            probability = _weighted_probability(
                [geometries[i] for i in members], [probabilities[i] for i in members]
            )
            score, level = _site_confidence(
                [scores[i] for i in members], [levels[i] for i in members], site.last_confidence
            )
        elif _visible_fraction(site.geometry, clear_now) < thresholds.min_visible_fraction:
            outline, kind, area_ha, probability = site.geometry, "not_seen", site.area_ha, None
            growth_ha, growth_pct = None, None
            score, level = None, site.last_confidence or "nominal"
        else:
            # Seen clear, not detected: the outline is kept so a reappearance matches.
            outline, kind, area_ha, probability = site.geometry, "shrunk", 0.0, None
            growth_ha, growth_pct = _growth(site.geometry, site.area_ha, None, common)
            score, level = None, site.last_confidence or "nominal"
        lon, lat = centroid_lonlat(outline)
        events.append(
            SiteEvent(
                site_id=site.site_id,
                kind=kind,
                geometry=outline,
                area_ha=area_ha,
                previous_area_ha=site.area_ha,
                growth_ha=growth_ha,
                growth_pct=growth_pct,
                mean_probability=probability,
                centroid_lon=lon,
                centroid_lat=lat,
                first_seen=site.first_seen,
                clear_observations=0,
                verifier_score=score,
                confidence=level,
                outline_threshold=_outline_threshold(members, cuts)
                if members
                else site.outline_threshold,
            )
        )

    for cluster in _clusters([geometries[i] for i in unmatched], thresholds.match_buffer_m):
        members = [unmatched[j] for j in cluster]
        outline = shapely.union_all([geometries[i] for i in members])
        site_id = _next_id(new_site_ids)
        if site_id in known_ids:
            raise ValueError(
                f"new_site_ids gave {site_id!r}, the id of a known site; take ids from "
                "Store.next_site_ids."
            )
        known_ids.add(site_id)
        lon, lat = centroid_lonlat(outline)
        score, level = _site_confidence(
            [scores[i] for i in members], [levels[i] for i in members], None
        )
        events.append(
            SiteEvent(
                site_id=site_id,
                kind="new",
                geometry=outline,
                area_ha=_area_ha(outline),
                previous_area_ha=None,
                growth_ha=None,
                growth_pct=None,
                mean_probability=_weighted_probability(
                    [geometries[i] for i in members], [probabilities[i] for i in members]
                ),
                centroid_lon=lon,
                centroid_lat=lat,
                first_seen=window_end,
                clear_observations=0,
                verifier_score=score,
                confidence=level,
                outline_threshold=_outline_threshold(members, cuts),
            )
        )

    if clear_counts is not None and events:
        observations = clear_counts([event.geometry for event in events])
        events = [
            replace(event, clear_observations=int(n))
            for event, n in zip(events, observations, strict=True)
        ]

    counts: dict[str, int] = {}
    for e in events:
        counts[e.kind] = counts.get(e.kind, 0) + 1
    logger.info(
        "tracked %d detection(s) against %d known site(s) for %s: %s",
        len(geometries),
        len(known),
        window_end,
        ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "no events",
    )
    return events


def assign_new_site_ids(
    events: Sequence[SiteEvent],
    later_sites: Sequence[KnownSite],
    fresh_ids: Callable[[int], Sequence[str]],
) -> list[SiteEvent]:
    """Give each ``new`` event a site id: a later-found site it overlaps, else a fresh id.

    A backfill runs windows before ones already monitored: a mine it finds may be a
    site a later window found first. Such a detection takes that site's id (the site's
    first sighting moves earlier) instead of becoming a second site of the same mine.
    Each later site is adopted once, by the new detection overlapping it most.

    Args:
        events: From :func:`track_sites` (new events may carry placeholder ids).
        later_sites: Sites first seen after this window (``Store.later_sites``), AOI CRS.
        fresh_ids: ``n`` -> ``n`` unused ids (``Store.next_site_ids``), called once.

    Returns:
        The events with final ids, in the same order.
    """
    adopted: dict[int, str] = {}
    taken: set[str] = set()
    for index, event in enumerate(events):
        if event.kind != "new":
            continue
        overlaps = [
            (event.geometry.intersection(site.geometry).area, site.site_id)
            for site in later_sites
            if site.site_id not in taken and event.geometry.intersects(site.geometry)
        ]
        overlaps = [item for item in overlaps if item[0] > 0]
        if overlaps:
            _, site_id = max(overlaps)
            adopted[index] = site_id
            taken.add(site_id)
    n_fresh = sum(1 for i, e in enumerate(events) if e.kind == "new" and i not in adopted)
    fresh = iter(fresh_ids(n_fresh))
    result = []
    for index, event in enumerate(events):
        if event.kind == "new":
            site_id = adopted[index] if index in adopted else next(fresh)
            event = replace(event, site_id=site_id)
        result.append(event)
    if adopted:
        logger.info(
            "%d new detection(s) are sites first found in a later window: %s",
            len(adopted),
            ", ".join(sorted(adopted.values())),
        )
    return result
