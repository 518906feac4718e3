"""The asmspotter database schema as SQLAlchemy 2.0 declarative models.

These models are private to :mod:`asmspotter.storage`: :class:`~asmspotter.storage.store.Store`
turns rows into frozen dataclasses before they leave the package. Every change here
needs a migration in ``migrations/versions/`` (the test suite compares the two).

Geometries are WKT text in the AOI's projected CRS (metres), with the EPSG code beside
them, so SQLite and PostgreSQL both work without PostGIS. Natural keys carry UNIQUE
constraints; the store's upserts rely on them to make re-runs idempotent.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Constraint names fixed by convention, so migrations can refer to them on every dialect."""

RUN_STATUSES = ("running", "completed", "failed", "no_data")
"""Values of ``run.status`` (``no_data``: no usable scene or no clear pixel; migration 0008)."""

SCENE_STATUSES = ("used", "skipped")
"""Values of ``scene.status``."""

SITE_STATUSES = ("active", "dismissed")
"""Values of ``site.status``."""

EVENT_KINDS = ("new", "expanded", "unchanged", "shrunk", "not_seen")
"""Values of ``observation.kind`` and ``alert_delivery.kind`` (see asmspotter.events)."""

DELIVERY_STATUSES = ("delivered", "failed", "outbox")
"""Values of ``alert_delivery.status``."""

REVIEW_DECISIONS = ("confirmed", "dismissed")
"""Values of ``site_review.decision``: a person's verdict on a site (migration 0006)."""


def _in(column: str, values: tuple[str, ...]) -> str:
    """SQL check expression ``column IN ('a', 'b')`` for a fixed list of literals."""
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


class Base(DeclarativeBase):
    """Declarative base holding the metadata with the naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class AOIRow(Base):
    """An area of interest, keyed by its slug (the YAML file stem)."""

    __tablename__ = "aoi"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    """AOI slug, e.g. ``brokopondo``."""
    title: Mapped[str] = mapped_column(Text)
    """Human-readable title."""
    epsg: Mapped[int] = mapped_column(Integer)
    """EPSG code of the AOI grid's projected CRS; all geometries of the AOI use it."""
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    """When the row was last written (UTC)."""
    run_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Run attempts of the AOI so far, re-runs included: the clock of alert retries
    (migration 0005)."""


class SceneRow(Base):
    """A scene found for an AOI, used in a composite or skipped with a reason."""

    __tablename__ = "scene"
    __table_args__ = (
        UniqueConstraint("provider", "scene_id", "aoi_name"),
        CheckConstraint(_in("status", SCENE_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    """Surrogate key."""
    provider: Mapped[str] = mapped_column(String(100))
    """Provider name, e.g. ``sentinel-2-stac``."""
    scene_id: Mapped[str] = mapped_column(String(255))
    """The provider's scene id."""
    aoi_name: Mapped[str] = mapped_column(ForeignKey("aoi.name", ondelete="CASCADE"), index=True)
    """AOI the scene was searched for."""
    acquired: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    """Acquisition time (UTC)."""
    cloud_pct: Mapped[float | None] = mapped_column(Float)
    """Scene cloud cover in percent, if the provider reports it."""
    status: Mapped[str] = mapped_column(String(16))
    """``used`` or ``skipped``."""
    reason: Mapped[str | None] = mapped_column(Text)
    """Why the scene was skipped."""
    local_path: Mapped[str | None] = mapped_column(Text)
    """Where the downloaded scene lies on disk, if downloaded."""


class RunRow(Base):
    """One monitoring run of one AOI for one composite window; reused on re-runs."""

    __tablename__ = "run"
    __table_args__ = (
        UniqueConstraint("aoi_name", "window_end"),
        CheckConstraint(_in("status", RUN_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    """Surrogate key."""
    aoi_name: Mapped[str] = mapped_column(ForeignKey("aoi.name", ondelete="CASCADE"))
    """AOI slug."""
    window_start: Mapped[dt.date] = mapped_column(Date)
    """First day of the composite window."""
    window_end: Mapped[dt.date] = mapped_column(Date)
    """Last day of the composite window; with ``aoi_name`` the natural key."""
    status: Mapped[str] = mapped_column(String(16))
    """``running``, ``completed`` or ``failed``."""
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    """How many times the run was started."""
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    """Start of the latest attempt (UTC)."""
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    """End of the latest attempt (UTC), None while running."""
    n_scenes: Mapped[int | None] = mapped_column(Integer)
    """Number of scenes in the composite."""
    composite_path: Mapped[str | None] = mapped_column(Text)
    """Composite COG."""
    probability_path: Mapped[str | None] = mapped_column(Text)
    """Probability COG."""
    sites_path: Mapped[str | None] = mapped_column(Text)
    """GeoJSON of the detected sites."""
    clear_wkt: Mapped[str | None] = mapped_column(Text)
    """Clear-observation footprint of the composite (>= 1 clear look), WKT in the AOI CRS."""
    epsg: Mapped[int | None] = mapped_column(Integer)
    """EPSG code of ``clear_wkt``."""
    message: Mapped[str | None] = mapped_column(Text)
    """Error or summary message."""


class SiteRow(Base):
    """A mining site with a persistent id; its latest outline is denormalised here."""

    __tablename__ = "site"
    __table_args__ = (
        CheckConstraint(_in("status", SITE_STATUSES), name="status"),
        Index("ix_site_aoi_name_first_seen", "aoi_name", "first_seen"),
    )

    id: Mapped[str] = mapped_column(String(120), primary_key=True)
    """Persistent id, ``<aoi>-0001``."""
    aoi_name: Mapped[str] = mapped_column(ForeignKey("aoi.name", ondelete="CASCADE"))
    """AOI slug."""
    first_seen: Mapped[dt.date] = mapped_column(Date)
    """Window end of the run that first detected the site."""
    last_seen: Mapped[dt.date] = mapped_column(Date)
    """Window end of the latest run that detected the site."""
    status: Mapped[str] = mapped_column(String(16), default="active")
    """``active`` or ``dismissed``."""
    dismissed_reason: Mapped[str | None] = mapped_column(Text)
    """Why a person dismissed the site (false positive, ...)."""
    dismissed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    """When the site was dismissed (UTC); migration 0002."""
    dismissed_area_ha: Mapped[float | None] = mapped_column(Float)
    """Area when dismissed; it alerts again only beyond the expansion thresholds; 0002."""
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    """When a person confirmed the site as a mine (UTC), None if not; migration 0006."""
    geometry_wkt: Mapped[str] = mapped_column(Text)
    """Latest outline, WKT in the AOI CRS."""
    epsg: Mapped[int] = mapped_column(Integer)
    """EPSG code of ``geometry_wkt``."""
    area_ha: Mapped[float] = mapped_column(Float)
    """Latest mapped area in hectares."""
    centroid_lon: Mapped[float] = mapped_column(Float)
    """Latest centroid longitude (EPSG:4326)."""
    centroid_lat: Mapped[float] = mapped_column(Float)
    """Latest centroid latitude (EPSG:4326)."""


class ObservationRow(Base):
    """The state of one site in one run: a recorded :class:`asmspotter.events.SiteEvent`."""

    __tablename__ = "observation"
    __table_args__ = (
        UniqueConstraint("site_id", "run_id"),
        CheckConstraint(_in("kind", EVENT_KINDS), name="kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    """Surrogate key."""
    site_id: Mapped[str] = mapped_column(ForeignKey("site.id", ondelete="CASCADE"))
    """Site observed."""
    run_id: Mapped[int] = mapped_column(ForeignKey("run.id", ondelete="CASCADE"), index=True)
    """Run that observed it."""
    kind: Mapped[str] = mapped_column(String(16))
    """Event kind."""
    area_ha: Mapped[float] = mapped_column(Float)
    """Mapped area in hectares (last known for ``not_seen``)."""
    previous_area_ha: Mapped[float | None] = mapped_column(Float)
    """Area at the previous observation."""
    growth_ha: Mapped[float | None] = mapped_column(Float)
    """Growth measured where both composites were clear, hectares."""
    growth_pct: Mapped[float | None] = mapped_column(Float)
    """Growth in percent of the comparable previous area."""
    mean_probability: Mapped[float | None] = mapped_column(Float)
    """Mean model probability inside the outline."""
    verifier_score: Mapped[float | None] = mapped_column(Float)
    """The verifier's score of the site's surroundings (0..1)."""
    confidence: Mapped[str | None] = mapped_column(String(16))
    """Confidence level (``nominal``, ``high``, ``highest``); None before 0004."""
    outline_threshold: Mapped[float | None] = mapped_column(Float)
    """Model probability the outline was cut at; None before 0008."""
    clear_observations: Mapped[int] = mapped_column(Integer, default=0)
    """Clear observations behind the outline."""
    geometry_wkt: Mapped[str] = mapped_column(Text)
    """Outline, WKT in the AOI CRS."""
    epsg: Mapped[int] = mapped_column(Integer)
    """EPSG code of ``geometry_wkt``."""
    centroid_lon: Mapped[float] = mapped_column(Float)
    """Centroid longitude (EPSG:4326)."""
    centroid_lat: Mapped[float] = mapped_column(Float)
    """Centroid latitude (EPSG:4326)."""


class AlertDeliveryRow(Base):
    """One alert for one event on one channel; never delivered twice."""

    __tablename__ = "alert_delivery"
    __table_args__ = (
        UniqueConstraint("event_key", "channel_id"),
        CheckConstraint(_in("kind", EVENT_KINDS), name="kind"),
        CheckConstraint(_in("status", DELIVERY_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    """Surrogate key."""
    run_id: Mapped[int] = mapped_column(ForeignKey("run.id", ondelete="CASCADE"), index=True)
    """Run whose event is alerted (the first run that tried)."""
    site_id: Mapped[str] = mapped_column(String(120))
    """Site id (no foreign key: delivery history outlives site clean-ups)."""
    kind: Mapped[str] = mapped_column(String(16))
    """Event kind."""
    event_key: Mapped[str] = mapped_column(String(255))
    """Stable key of the event, e.g. ``demo-0003:expanded:2024-03-01``."""
    channel_id: Mapped[str] = mapped_column(String(64))
    """sha256 hex digest of the channel URL; the URL itself is never stored."""
    channel_label: Mapped[str] = mapped_column(Text)
    """The channel URL with secrets redacted, for people."""
    status: Mapped[str] = mapped_column(String(16))
    """``delivered``, ``failed`` or ``outbox``."""
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    """Delivery attempts so far."""
    last_error: Mapped[str | None] = mapped_column(Text)
    """Error of the latest failed attempt."""
    delivered_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    """When the delivery succeeded (UTC)."""
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    """When the latest attempt was made (UTC), for retry backoff; migration 0002."""
    aoi_run_attempts: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """The AOI's ``run_attempts`` at the latest attempt: backoff counts run attempts
    since then, re-runs of a window included (migration 0005; NULL before it)."""


class DigestDeliveryRow(Base):
    """One weekly digest of one AOI on one channel; at most one per ISO week."""

    __tablename__ = "digest_delivery"
    __table_args__ = (
        UniqueConstraint("digest_key", "channel_id"),
        CheckConstraint(_in("status", DELIVERY_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    """Surrogate key."""
    aoi_name: Mapped[str] = mapped_column(ForeignKey("aoi.name", ondelete="CASCADE"), index=True)
    """AOI the digest summarises."""
    digest_key: Mapped[str] = mapped_column(String(255))
    """``<aoi>:digest:<ISO year>-W<ISO week>``, e.g. ``demo:digest:2024-W09``."""
    channel_id: Mapped[str] = mapped_column(String(64))
    """sha256 hex digest of the channel URL; the URL itself is never stored."""
    channel_label: Mapped[str] = mapped_column(Text)
    """The channel URL with secrets redacted, for people."""
    status: Mapped[str] = mapped_column(String(16))
    """``delivered`` or ``failed``."""
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    """Delivery attempts so far."""
    last_error: Mapped[str | None] = mapped_column(Text)
    """Error of the latest failed attempt."""
    delivered_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    """When the delivery succeeded (UTC)."""


class SiteReviewRow(Base):
    """One review decision on a site (confirm or dismiss), kept as history; migration 0006."""

    __tablename__ = "site_review"
    __table_args__ = (CheckConstraint(_in("decision", REVIEW_DECISIONS), name="decision"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    """Surrogate key; also the order of decisions."""
    site_id: Mapped[str] = mapped_column(ForeignKey("site.id", ondelete="CASCADE"), index=True)
    """Site reviewed."""
    decision: Mapped[str] = mapped_column(String(16))
    """``confirmed`` or ``dismissed``."""
    reason: Mapped[str] = mapped_column(Text)
    """Why: for a dismissal the look-alike (``river bar``, ``town``, ...), for a confirmation
    what settled it (``field visit``, ...)."""
    note: Mapped[str | None] = mapped_column(Text)
    """Free-text comment of the reviewer."""
    area_ha: Mapped[float] = mapped_column(Float)
    """The site's area when reviewed, hectares."""
    source: Mapped[str] = mapped_column(String(16))
    """Where the decision was made: ``web`` or ``cli``."""
    reviewed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    """When (UTC)."""
