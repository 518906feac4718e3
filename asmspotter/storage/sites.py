"""Sites and their observations: id hand-out, tracking input, recorded events.

Tracking (:mod:`asmspotter.track`) reads :meth:`SiteStore.known_sites` and
:meth:`SiteStore.later_sites` and produces the events :meth:`SiteStore.record_events`
stores; each site row is a summary recomputed from its observations.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Sequence
from typing import Any

from shapely import wkt as shapely_wkt
from sqlalchemy import ColumnElement, and_, case, delete, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql import Subquery

from asmspotter.events import CONFIDENCE_LEVELS, SiteEvent
from asmspotter.storage.engine import StoreBase, chunks, finite_or_none
from asmspotter.storage.errors import RecordNotFoundError, StorageError
from asmspotter.storage.records import (
    ObservationRecord,
    SiteRecord,
    observation_record,
    site_record,
)
from asmspotter.storage.schema import ObservationRow, RunRow, SiteRow
from asmspotter.track import KnownSite

logger = logging.getLogger(__name__)


def _is_detected() -> ColumnElement[bool]:
    """SQL condition: the observation saw the site (not hidden, not vanished)."""
    return or_(
        ObservationRow.kind.in_(("new", "expanded", "unchanged")),
        and_(ObservationRow.kind == "shrunk", ObservationRow.area_ha > 0),
    )


class SiteStore(StoreBase):
    """Sites and observations of :class:`~asmspotter.storage.store.Store`."""

    def next_site_ids(
        self, aoi_name: str, n: int, *, window_end: dt.date | None = None
    ) -> list[str]:
        """Return ``n`` ids for new sites: ``<aoi>-0001``, … after the highest existing.

        Pass the run's ``window_end`` when tracking: the ids of sites first seen in that
        same window (left by an earlier attempt of the run) are handed out first, in
        order, so a re-run that finds the same detections gives them the same ids and
        :meth:`record_events` overwrites rather than duplicates.

        Ids are not reserved: call this inside :meth:`tracking_lock` together with
        :meth:`record_events`, so two runs of the same AOI never hand out the same id.

        Args:
            aoi_name: AOI slug.
            n: How many ids.
            window_end: Window end of the run that will use them, to reuse its ids.

        Returns:
            ``n`` ids, zero-padded to 4 digits (more digits past 9999).

        Raises:
            ValueError: ``n`` is negative.
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}.")
        pattern = re.compile(rf"^{re.escape(aoi_name)}-(\d+)$")
        with self._transaction(read_only=True) as session:
            rows = session.execute(
                select(SiteRow.id, SiteRow.first_seen).where(SiteRow.aoi_name == aoi_name)
            ).all()
        highest = 0
        reusable: list[tuple[int, str]] = []
        for site_id, first_seen in rows:
            match = pattern.match(site_id)
            if match is None:
                continue
            number = int(match.group(1))
            highest = max(highest, number)
            if window_end is not None and first_seen == window_end:
                reusable.append((number, site_id))
        ids = [site_id for _, site_id in sorted(reusable)][:n]
        ids += [f"{aoi_name}-{highest + k:04d}" for k in range(1, n - len(ids) + 1)]
        return ids

    def known_sites(self, aoi_name: str, as_of: dt.date) -> list[KnownSite]:
        """Return the sites a run for window end ``as_of`` must match against.

        Args:
            aoi_name: AOI slug.
            as_of: Window end of the run being tracked.

        Returns:
            Sites first seen before ``as_of`` (dismissed ones too), each with the
            outline, area, confidence level and outline cut of its latest observation in
            a run whose window ended before ``as_of``, ordered by id.
        """
        ranked = _ranked_observations(
            (
                ObservationRow.site_id,
                ObservationRow.geometry_wkt,
                ObservationRow.area_ha,
                ObservationRow.confidence,
                ObservationRow.outline_threshold,
            ),
            RunRow.aoi_name == aoi_name,
            RunRow.window_end < as_of,
        )
        stmt = (
            select(
                SiteRow.id,
                SiteRow.first_seen,
                SiteRow.status,
                SiteRow.geometry_wkt,
                SiteRow.area_ha,
                ranked.c.geometry_wkt,
                ranked.c.area_ha,
                ranked.c.confidence,
                ranked.c.outline_threshold,
            )
            .outerjoin(ranked, and_(ranked.c.site_id == SiteRow.id, ranked.c.rank == 1))
            .where(SiteRow.aoi_name == aoi_name, SiteRow.first_seen < as_of)
            .order_by(SiteRow.id)
        )
        with self._transaction(read_only=True) as session:
            rows = session.execute(stmt).all()
        known = []
        for (
            site_id,
            first_seen,
            status,
            site_wkt,
            site_area,
            obs_wkt,
            obs_area,
            level,
            cut,
        ) in rows:
            known.append(
                KnownSite(
                    site_id=site_id,
                    geometry=shapely_wkt.loads(obs_wkt if obs_wkt is not None else site_wkt),
                    area_ha=float(obs_area if obs_area is not None else site_area),
                    first_seen=first_seen,
                    status=status,
                    last_confidence=level if level in CONFIDENCE_LEVELS else None,
                    outline_threshold=None if cut is None else float(cut),
                )
            )
        return known

    def later_sites(self, aoi_name: str, after: dt.date) -> list[KnownSite]:
        """Return the sites first seen in a window ending after ``after``, by id.

        A backfill tracking an earlier window matches its new detections against them
        (:func:`asmspotter.track.assign_new_site_ids`), so a mine keeps one id.

        Args:
            aoi_name: AOI slug.
            after: Window end of the run being tracked.

        Returns:
            Each site with its latest outline (AOI CRS) and area.
        """
        stmt = (
            select(SiteRow)
            .where(SiteRow.aoi_name == aoi_name, SiteRow.first_seen > after)
            .order_by(SiteRow.id)
        )
        with self._transaction(read_only=True) as session:
            rows = session.scalars(stmt).all()
            return [
                KnownSite(
                    site_id=row.id,
                    geometry=shapely_wkt.loads(row.geometry_wkt),
                    area_ha=float(row.area_ha),
                    first_seen=row.first_seen,
                    status=row.status,
                )
                for row in rows
            ]

    def record_events(self, aoi_name: str, run_id: int, events: Sequence[SiteEvent]) -> None:
        """Record the tracking events of a run: create/update sites, write observations.

        Idempotent: the run's earlier observations are replaced, sites created by an
        earlier attempt of the same run and absent now are removed, and each touched
        site's summary (latest outline, area, centroid, first/last seen) is recomputed
        from its observations, so recording runs out of order is safe too.

        Args:
            aoi_name: AOI slug.
            run_id: Id from :meth:`start_run` for this AOI.
            events: One event per site (from :func:`asmspotter.track.track_sites`).

        Raises:
            ValueError: Two events name the same site.
            RecordNotFoundError: The run, or the site of a non-``new`` event, is unknown.
            StorageError: A ``new`` event reuses the id of a site of another AOI or of an
                earlier window (ids must come from :meth:`next_site_ids`, or be a site
                of :meth:`later_sites`, which a backfill adopts).
        """
        ids = [e.site_id for e in events]
        if len(set(ids)) != len(ids):
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"events name these sites more than once: {', '.join(dupes)}.")
        with self._transaction() as session:
            run = session.get(RunRow, run_id)
            if run is None or run.aoi_name != aoi_name:
                raise RecordNotFoundError(
                    f"run {run_id} of AOI {aoi_name!r} is not in the store; use the id "
                    "returned by Store.start_run for this AOI."
                )
            aoi = self._require_aoi(session, aoi_name)
            window_end = run.window_end

            touched = set(ids)
            touched.update(
                session.scalars(
                    select(ObservationRow.site_id).where(ObservationRow.run_id == run_id)
                )
            )
            session.execute(delete(ObservationRow).where(ObservationRow.run_id == run_id))

            existing: dict[str, SiteRow] = {}
            for chunk in chunks(ids):
                for site_row in session.scalars(select(SiteRow).where(SiteRow.id.in_(chunk))):
                    existing[site_row.id] = site_row
            new_sites: list[dict[str, Any]] = []
            for e in events:
                row = existing.get(e.site_id)
                if row is None:
                    if e.kind != "new":
                        raise RecordNotFoundError(
                            f"event {e.kind!r} names site {e.site_id!r}, which is not in the "
                            "store; only 'new' events create sites."
                        )
                    new_sites.append(self._site_values(aoi_name, aoi.epsg, e, window_end))
                elif row.aoi_name != aoi_name or (e.kind == "new" and row.first_seen < window_end):
                    raise StorageError(
                        f"new site id {e.site_id!r} already belongs to a site of AOI "
                        f"{row.aoi_name!r} first seen {row.first_seen}; take ids for new "
                        "sites from Store.next_site_ids and track one run per AOI at a time."
                    )
            for chunk in chunks(new_sites):
                stmt = self._insert(SiteRow).values(list(chunk))
                session.execute(stmt.on_conflict_do_nothing(index_elements=["id"]))

            observations = [
                {
                    "site_id": e.site_id,
                    "run_id": run_id,
                    "kind": e.kind,
                    "area_ha": float(e.area_ha),
                    "previous_area_ha": finite_or_none(e.previous_area_ha),
                    "growth_ha": finite_or_none(e.growth_ha),
                    "growth_pct": finite_or_none(e.growth_pct),
                    "mean_probability": finite_or_none(e.mean_probability),
                    "verifier_score": finite_or_none(e.verifier_score),
                    "confidence": e.confidence,
                    "outline_threshold": finite_or_none(e.outline_threshold),
                    "clear_observations": int(e.clear_observations),
                    "geometry_wkt": e.geometry.wkt,
                    "epsg": aoi.epsg,
                    "centroid_lon": float(e.centroid_lon),
                    "centroid_lat": float(e.centroid_lat),
                }
                for e in events
            ]
            for chunk in chunks(observations):
                stmt = self._insert(ObservationRow).values(list(chunk))
                columns = [c for c in observations[0] if c not in ("site_id", "run_id")]
                session.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["site_id", "run_id"],
                        set_={c: stmt.excluded[c] for c in columns},
                    )
                )

            # Sites an earlier attempt of this run created and this attempt did not.
            orphans = select(ObservationRow.id).where(ObservationRow.site_id == SiteRow.id)
            removed = session.execute(
                delete(SiteRow)
                .where(
                    SiteRow.aoi_name == aoi_name,
                    SiteRow.first_seen == window_end,
                    ~orphans.exists(),
                )
                .returning(SiteRow.id)
            ).all()
            touched.difference_update(site_id for (site_id,) in removed)
            self._refresh_sites(session, sorted(touched))
        logger.info(
            "recorded %d event(s) for run %d of %s%s",
            len(events),
            run_id,
            aoi_name,
            f"; removed {len(removed)} site(s) of an earlier attempt" if removed else "",
        )

    @staticmethod
    def _site_values(aoi_name: str, epsg: int, e: SiteEvent, window_end: dt.date) -> dict[str, Any]:
        """Column values of a site created by a ``new`` event."""
        return {
            "id": e.site_id,
            "aoi_name": aoi_name,
            "first_seen": window_end,
            "last_seen": window_end,
            "status": "active",
            "geometry_wkt": e.geometry.wkt,
            "epsg": epsg,
            "area_ha": float(e.area_ha),
            "centroid_lon": float(e.centroid_lon),
            "centroid_lat": float(e.centroid_lat),
        }

    @staticmethod
    def _refresh_sites(session: Session, site_ids: Sequence[str]) -> None:
        """Recompute the denormalised summary of sites from their observations."""
        for chunk in chunks(site_ids):
            ranked = _ranked_observations(
                (
                    ObservationRow.site_id,
                    ObservationRow.geometry_wkt,
                    ObservationRow.epsg,
                    ObservationRow.area_ha,
                    ObservationRow.centroid_lon,
                    ObservationRow.centroid_lat,
                ),
                ObservationRow.site_id.in_(chunk),
            )
            latest = {
                row.site_id: row
                for row in session.execute(select(ranked).where(ranked.c.rank == 1))
            }
            spans = {
                site_id: (first, last)
                for site_id, first, last in session.execute(
                    select(
                        ObservationRow.site_id,
                        func.min(RunRow.window_end),
                        func.max(case((_is_detected(), RunRow.window_end), else_=None)),
                    )
                    .join(RunRow, RunRow.id == ObservationRow.run_id)
                    .where(ObservationRow.site_id.in_(chunk))
                    .group_by(ObservationRow.site_id)
                )
            }
            for site in session.scalars(select(SiteRow).where(SiteRow.id.in_(chunk))):
                obs = latest.get(site.id)
                if obs is None:
                    continue
                first, last = spans[site.id]
                site.geometry_wkt = obs.geometry_wkt
                site.epsg = obs.epsg
                site.area_ha = obs.area_ha
                site.centroid_lon = obs.centroid_lon
                site.centroid_lat = obs.centroid_lat
                site.first_seen = first
                site.last_seen = last if last is not None else first

    def sites(self, aoi_name: str, *, status: str | None = None) -> list[SiteRecord]:
        """Return the sites of an AOI by id, optionally only ``active`` or ``dismissed``."""
        stmt = select(SiteRow).where(SiteRow.aoi_name == aoi_name)
        if status is not None:
            stmt = stmt.where(SiteRow.status == status)
        with self._transaction(read_only=True) as session:
            return [site_record(row) for row in session.scalars(stmt.order_by(SiteRow.id))]

    def site(self, site_id: str) -> SiteRecord:
        """Return one site.

        Raises:
            RecordNotFoundError: No site has this id.
        """
        with self._transaction(read_only=True) as session:
            return site_record(self._require_site(session, site_id))

    def site_history(self, site_id: str) -> list[ObservationRecord]:
        """Return every observation of a site, oldest window first.

        Raises:
            RecordNotFoundError: No site has this id.
        """
        stmt = (
            select(ObservationRow, RunRow.window_end)
            .join(RunRow, RunRow.id == ObservationRow.run_id)
            .where(ObservationRow.site_id == site_id)
            .order_by(RunRow.window_end)
        )
        with self._transaction(read_only=True) as session:
            self._require_site(session, site_id)
            return [
                observation_record(obs, window_end) for obs, window_end in session.execute(stmt)
            ]

    def latest_observations(self, aoi_name: str) -> dict[str, ObservationRecord]:
        """Return each site's latest observation (last event, confidence), by site id."""
        ranked = _ranked_observations(
            (ObservationRow.id, RunRow.window_end), RunRow.aoi_name == aoi_name
        )
        stmt = select(ObservationRow, ranked.c.window_end).join(
            ranked, and_(ranked.c.id == ObservationRow.id, ranked.c.rank == 1)
        )
        with self._transaction(read_only=True) as session:
            return {
                obs.site_id: observation_record(obs, window_end)
                for obs, window_end in session.execute(stmt)
            }

    def area_histories(self, aoi_name: str) -> dict[str, list[tuple[dt.date, str, float]]]:
        """Return every site's (window end, event kind, area ha) per run, oldest first."""
        stmt = (
            select(
                ObservationRow.site_id,
                RunRow.window_end,
                ObservationRow.kind,
                ObservationRow.area_ha,
            )
            .join(RunRow, RunRow.id == ObservationRow.run_id)
            .where(RunRow.aoi_name == aoi_name)
            .order_by(ObservationRow.site_id, RunRow.window_end)
        )
        histories: dict[str, list[tuple[dt.date, str, float]]] = {}
        with self._transaction(read_only=True) as session:
            for site_id, window_end, kind, area_ha in session.execute(stmt):
                histories.setdefault(site_id, []).append((window_end, kind, float(area_ha)))
        return histories


def _ranked_observations(
    columns: Sequence[InstrumentedAttribute[Any]], *conditions: ColumnElement[bool]
) -> Subquery:
    """Observations matching ``conditions`` with a ``rank`` column, 1 for each site's newest.

    "Newest" is by the window end of the observation's run; select ``rank == 1`` from
    the subquery for each site's latest observation.
    """
    return (
        select(
            *columns,
            func.row_number()
            .over(partition_by=ObservationRow.site_id, order_by=RunRow.window_end.desc())
            .label("rank"),
        )
        .join(RunRow, RunRow.id == ObservationRow.run_id)
        .where(*conditions)
        .subquery()
    )
