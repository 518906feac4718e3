"""What the store returns: frozen dataclasses copied from rows, never ORM rows.

Each ``*_record`` function copies one row into its dataclass; times leave the store
timezone-aware UTC (SQLite hands them back naive).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from shapely import wkt as shapely_wkt
from shapely.geometry.base import BaseGeometry

from asmspotter.storage.schema import (
    AlertDeliveryRow,
    ObservationRow,
    RunRow,
    SiteReviewRow,
    SiteRow,
)

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_Record = TypeVar("_Record", bound="DataclassInstance")

RunStatus = Literal["running", "completed", "failed", "no_data"]
SceneStatus = Literal["used", "skipped"]
DeliveryStatus = Literal["delivered", "failed", "outbox"]


@dataclass(frozen=True)
class RunRecord:
    """One monitoring run of one AOI and window.

    Attributes:
        id: Run id (database key).
        aoi_name: AOI slug.
        window_start: First day of the composite window.
        window_end: Last day of the composite window.
        status: ``running``, ``completed``, ``failed`` or ``no_data``.
        attempts: How many times the run was started.
        started_at: Start of the latest attempt (UTC).
        finished_at: End of the latest attempt (UTC), None while running.
        n_scenes: Scenes in the composite, if finished.
        composite_path: Composite COG path.
        probability_path: Probability COG path.
        sites_path: Detected-sites GeoJSON path.
        clear_wkt: Clear-observation footprint (>= 1 clear look), WKT in the AOI CRS.
        epsg: EPSG code of ``clear_wkt``.
        message: Error or summary message.
    """

    id: int
    aoi_name: str
    window_start: dt.date
    window_end: dt.date
    status: str
    attempts: int
    started_at: dt.datetime
    finished_at: dt.datetime | None
    n_scenes: int | None
    composite_path: str | None
    probability_path: str | None
    sites_path: str | None
    clear_wkt: str | None
    epsg: int | None
    message: str | None

    @property
    def clear_geometry(self) -> BaseGeometry | None:
        """The clear-observation footprint as a shapely geometry, None if not recorded."""
        return None if self.clear_wkt is None else shapely_wkt.loads(self.clear_wkt)


@dataclass(frozen=True)
class SceneRecord:
    """A scene recorded for an AOI.

    Attributes:
        provider: Provider name.
        scene_id: The provider's scene id.
        aoi_name: AOI slug.
        acquired: Acquisition time (UTC).
        cloud_pct: Scene cloud cover in percent, if known.
        status: ``used`` or ``skipped``.
        reason: Why it was skipped.
        local_path: Where it lies on disk, if downloaded.
    """

    provider: str
    scene_id: str
    aoi_name: str
    acquired: dt.datetime
    cloud_pct: float | None
    status: str
    reason: str | None
    local_path: str | None


@dataclass(frozen=True)
class SiteRecord:
    """A mining site with its latest state.

    Attributes:
        site_id: Persistent site id, e.g. ``demo-0003`` (also as ``id``).
        aoi_name: AOI slug.
        first_seen: Window end of the run that first detected it.
        last_seen: Window end of the latest run that detected it.
        status: ``active`` or ``dismissed``.
        dismissed_reason: Why it was dismissed.
        geometry_wkt: Latest outline, WKT in the AOI CRS (metres).
        epsg: EPSG code of ``geometry_wkt``.
        area_ha: Latest mapped area in hectares.
        centroid_lon: Centroid longitude (EPSG:4326).
        centroid_lat: Centroid latitude (EPSG:4326).
        confirmed_at: When a person confirmed it as a mine (UTC); None if not confirmed.
    """

    site_id: str
    aoi_name: str
    first_seen: dt.date
    last_seen: dt.date
    status: str
    dismissed_reason: str | None
    geometry_wkt: str
    epsg: int
    area_ha: float
    centroid_lon: float
    centroid_lat: float
    confirmed_at: dt.datetime | None = None

    @property
    def review_state(self) -> str:
        """``dismissed``, ``confirmed`` or ``unreviewed``: what a person decided last."""
        if self.status == "dismissed":
            return "dismissed"
        return "confirmed" if self.confirmed_at is not None else "unreviewed"

    @property
    def id(self) -> str:
        """The site id (the table's primary key), same as ``site_id``."""
        return self.site_id

    @property
    def geometry(self) -> BaseGeometry:
        """The latest outline as a shapely geometry in EPSG:``epsg``."""
        return shapely_wkt.loads(self.geometry_wkt)


@dataclass(frozen=True)
class ObservationRecord:
    """One recorded event of one site in one run (a row of a site's history).

    Attributes:
        site_id: Site id.
        run_id: Run id.
        window_end: Window end of the run.
        kind: Event kind (see :data:`asmspotter.events.EventKind`).
        area_ha: Mapped area in hectares (last known for ``not_seen``).
        previous_area_ha: Area at the previous observation.
        growth_ha: Growth measured where both composites were clear, hectares.
        growth_pct: Growth in percent of the comparable previous area.
        mean_probability: Mean model probability inside the outline.
        clear_observations: Clear observations behind the outline.
        verifier_score: The verifier's score of the surroundings (None: not scored).
        confidence: Confidence level; None for observations recorded before levels.
        outline_threshold: Model probability the outline was cut at; None if unknown.
        geometry_wkt: Outline, WKT in the AOI CRS.
        epsg: EPSG code of ``geometry_wkt``.
        centroid_lon: Centroid longitude (EPSG:4326).
        centroid_lat: Centroid latitude (EPSG:4326).
    """

    site_id: str
    run_id: int
    window_end: dt.date
    kind: str
    area_ha: float
    previous_area_ha: float | None
    growth_ha: float | None
    growth_pct: float | None
    mean_probability: float | None
    clear_observations: int
    geometry_wkt: str
    epsg: int
    centroid_lon: float
    centroid_lat: float
    verifier_score: float | None = None
    confidence: str | None = None
    outline_threshold: float | None = None


@dataclass(frozen=True)
class DeliveryRecord:
    """The delivery state of one event on one channel.

    Attributes:
        id: Delivery id (database key).
        run_id: Run whose event this is.
        site_id: Site id.
        kind: Event kind.
        event_key: Stable event key, e.g. ``demo-0003:expanded:2024-03-01``.
        channel_id: sha256 hex digest of the channel URL.
        channel_label: Channel URL with secrets redacted.
        status: ``delivered``, ``failed`` or ``outbox``.
        attempts: Attempts so far.
        last_error: Error of the latest failed attempt.
        delivered_at: When delivery succeeded (UTC).
    """

    id: int
    run_id: int
    site_id: str
    kind: str
    event_key: str
    channel_id: str
    channel_label: str
    status: str
    attempts: int
    last_error: str | None
    delivered_at: dt.datetime | None


@dataclass(frozen=True)
class FailedDelivery:
    """A failed (event, channel) delivery to retry, with what it alerted.

    Attributes:
        delivery: The delivery row (attempts, last error, event key).
        observation: The observation of the alerted event (to re-render it).
        last_attempt_at: When it was last tried (UTC); None for rows from before 0002.
        aoi_run_attempts: The AOI's run attempts at that try; None before 0005.
    """

    delivery: DeliveryRecord
    observation: ObservationRecord
    last_attempt_at: dt.datetime | None
    aoi_run_attempts: int | None = None


@dataclass(frozen=True)
class DismissedSite:
    """A site a person dismissed as a false positive.

    Attributes:
        site: The site's latest state.
        dismissed_at: When it was dismissed (UTC); None if dismissed before migration 0002.
        dismissed_area_ha: Its area when dismissed; None if unknown.
    """

    site: SiteRecord
    dismissed_at: dt.datetime | None
    dismissed_area_ha: float | None


@dataclass(frozen=True)
class SiteReview:
    """One review decision on a site.

    Attributes:
        site_id: Site id.
        decision: ``confirmed`` or ``dismissed``.
        reason: Why (a look-alike for dismissals, the evidence for confirmations).
        note: Free-text comment, if any.
        area_ha: The site's area when reviewed.
        source: ``web`` or ``cli``.
        reviewed_at: When (UTC).
    """

    site_id: str
    decision: str
    reason: str
    note: str | None
    area_ha: float
    source: str
    reviewed_at: dt.datetime


@dataclass(frozen=True)
class AOIRecord:
    """An AOI as the store knows it (the YAML holds the rest).

    Attributes:
        name: AOI slug.
        title: Human-readable title.
        epsg: EPSG code of its grid's projected CRS.
    """

    name: str
    title: str
    epsg: int


def as_utc(value: dt.datetime) -> dt.datetime:
    """Attach UTC to naive datetimes (SQLite returns them naive); convert aware ones."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def as_utc_or_none(value: dt.datetime | None) -> dt.datetime | None:
    """:func:`as_utc` that passes None through."""
    return None if value is None else as_utc(value)


def copy_row(record_type: type[_Record], row: object, **converted: Any) -> _Record:
    """Build ``record_type`` from the row attributes of the same names.

    Fields given in ``converted`` (renamed or converted values) are taken from there;
    every other dataclass field is read from ``row`` under its own name, so a field
    added to a record and its table is copied without touching the copy functions.
    """
    copied = {
        field.name: getattr(row, field.name)
        for field in fields(record_type)
        if field.name not in converted
    }
    return record_type(**copied, **converted)


def run_record(row: RunRow) -> RunRecord:
    """Copy a run row into its dataclass."""
    return copy_row(
        RunRecord,
        row,
        started_at=as_utc(row.started_at),
        finished_at=as_utc_or_none(row.finished_at),
    )


def observation_record(obs: ObservationRow, window_end: dt.date) -> ObservationRecord:
    """Copy an observation row, with its run's window end, into its dataclass."""
    return copy_row(ObservationRecord, obs, window_end=window_end)


def site_record(row: SiteRow) -> SiteRecord:
    """Copy a site row into its dataclass."""
    return copy_row(SiteRecord, row, site_id=row.id, confirmed_at=as_utc_or_none(row.confirmed_at))


def delivery_record(row: AlertDeliveryRow) -> DeliveryRecord:
    """Copy a delivery row into its dataclass."""
    return copy_row(DeliveryRecord, row, delivered_at=as_utc_or_none(row.delivered_at))


def site_review_record(row: SiteReviewRow) -> SiteReview:
    """Copy a site review row into its dataclass."""
    return copy_row(SiteReview, row, reviewed_at=as_utc(row.reviewed_at))
