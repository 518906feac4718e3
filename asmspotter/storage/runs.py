"""AOIs, their runs and the scenes found for them.

A run row per (AOI, window end), reused on re-runs (``attempts`` counted), ends
``completed``, ``failed`` or ``no_data`` (nothing clear to look at); only completed
runs are the "previous look" tracking and the no-data alert clock measure from.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from shapely import wkt as shapely_wkt
from shapely.errors import ShapelyError
from shapely.geometry.base import BaseGeometry
from sqlalchemy import func, select, update

from asmspotter.scenes import SceneRef
from asmspotter.storage.engine import StoreBase, check_choice, chunks, finite_or_none, utcnow
from asmspotter.storage.records import (
    AOIRecord,
    RunRecord,
    RunStatus,
    SceneRecord,
    SceneStatus,
    as_utc,
    run_record,
)
from asmspotter.storage.schema import RUN_STATUSES, SCENE_STATUSES, AOIRow, RunRow, SceneRow

logger = logging.getLogger(__name__)


class RunStore(StoreBase):
    """AOIs, runs and scenes of :class:`~asmspotter.storage.store.Store`."""

    def upsert_aoi(self, name: str, title: str, epsg: int) -> None:
        """Create or update an AOI.

        Args:
            name: AOI slug (the YAML file stem).
            title: Human-readable title.
            epsg: EPSG code of the AOI grid's projected CRS.

        Raises:
            ValueError: ``name`` is empty or ``epsg`` is not positive.
        """
        if not name:
            raise ValueError("name must be the AOI slug, got an empty string.")
        if epsg <= 0:
            raise ValueError(f"epsg must be a positive EPSG code, got {epsg}.")
        stmt = self._insert(AOIRow).values(
            name=name, title=title, epsg=int(epsg), updated_at=utcnow()
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["name"],
            set_={
                "title": stmt.excluded.title,
                "epsg": stmt.excluded.epsg,
                "updated_at": stmt.excluded.updated_at,
            },
        )
        with self._transaction() as session:
            session.execute(stmt)

    def aois(self) -> list[AOIRecord]:
        """Return every AOI the store knows, by name."""
        with self._transaction(read_only=True) as session:
            return [
                AOIRecord(name=row.name, title=row.title, epsg=row.epsg)
                for row in session.scalars(select(AOIRow).order_by(AOIRow.name))
            ]

    def start_run(self, aoi_name: str, window_start: dt.date, window_end: dt.date) -> int:
        """Start (or restart) the run of an AOI for a window.

        Re-running the same AOI and ``window_end`` reuses the row: status goes back to
        ``running``, ``attempts`` grows by one and ``finished_at``/``message`` clear.

        Args:
            aoi_name: AOI slug; the AOI must be stored (:meth:`upsert_aoi`).
            window_start: First day of the composite window.
            window_end: Last day of the composite window.

        Returns:
            The run id, the same on every attempt.

        Raises:
            ValueError: ``window_start`` is after ``window_end``.
            RecordNotFoundError: The AOI is not stored.
        """
        if window_start > window_end:
            raise ValueError(
                f"window_start {window_start} is after window_end {window_end}; "
                "give the window's first day, then its last."
            )
        stmt = self._insert(RunRow).values(
            aoi_name=aoi_name,
            window_start=window_start,
            window_end=window_end,
            status="running",
            attempts=1,
            started_at=utcnow(),
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["aoi_name", "window_end"],
            set_={
                "window_start": stmt.excluded.window_start,
                "status": "running",
                "attempts": RunRow.attempts + 1,
                "started_at": stmt.excluded.started_at,
                "finished_at": None,
                "message": None,
            },
        )
        with self._transaction() as session:
            self._require_aoi(session, aoi_name)
            run_id = int(session.execute(stmt.returning(RunRow.id)).scalar_one())
            session.execute(
                update(AOIRow)
                .where(AOIRow.name == aoi_name)
                .values(run_attempts=AOIRow.run_attempts + 1)
            )
        logger.info("run %d of %s for %s..%s started", run_id, aoi_name, window_start, window_end)
        return run_id

    def finish_run(
        self,
        run_id: int,
        status: RunStatus | str,
        *,
        n_scenes: int | None = None,
        composite_path: Path | str | None = None,
        probability_path: Path | str | None = None,
        sites_path: Path | str | None = None,
        clear_wkt: BaseGeometry | str | None = None,
        message: str | None = None,
    ) -> None:
        """Record the outcome of a run's latest attempt.

        Args:
            run_id: Id from :meth:`start_run`.
            status: ``completed``, ``failed`` or ``no_data`` (``running`` is allowed but
                unusual).
            n_scenes: Scenes in the composite.
            composite_path: Composite COG.
            probability_path: Probability COG.
            sites_path: Detected-sites GeoJSON.
            clear_wkt: Clear-observation footprint of the composite (pixels with at
                least one clear observation) in the AOI CRS, as WKT or a geometry.
                The next run measures growth only inside it.
            message: Error or summary text.

        Raises:
            ValueError: ``status`` is unknown or ``clear_wkt`` is not valid WKT.
            RecordNotFoundError: No run has this id.
        """
        check_choice("status", status, RUN_STATUSES)
        if isinstance(clear_wkt, BaseGeometry):
            clear_text: str | None = clear_wkt.wkt
        elif clear_wkt is not None:
            try:
                shapely_wkt.loads(clear_wkt)
            except ShapelyError as exc:
                raise ValueError(
                    f"clear_wkt of run {run_id} is not valid WKT ({exc}); pass the clear "
                    "footprint as a shapely geometry or its .wkt."
                ) from exc
            clear_text = clear_wkt
        else:
            clear_text = None
        with self._transaction() as session:
            run = self._require_run(session, run_id)
            aoi = session.get(AOIRow, run.aoi_name)
            run.status = status
            run.finished_at = utcnow()
            run.n_scenes = n_scenes
            run.composite_path = None if composite_path is None else str(composite_path)
            run.probability_path = None if probability_path is None else str(probability_path)
            run.sites_path = None if sites_path is None else str(sites_path)
            run.clear_wkt = clear_text
            run.epsg = None if aoi is None else aoi.epsg
            run.message = message
        logger.info("run %d finished: %s", run_id, status)

    def run(self, run_id: int) -> RunRecord:
        """Return one run.

        Raises:
            RecordNotFoundError: No run has this id.
        """
        with self._transaction(read_only=True) as session:
            return run_record(self._require_run(session, run_id))

    def runs(self, aoi_name: str) -> list[RunRecord]:
        """Return every run of an AOI, oldest window first."""
        with self._transaction(read_only=True) as session:
            rows = session.scalars(
                select(RunRow).where(RunRow.aoi_name == aoi_name).order_by(RunRow.window_end)
            )
            return [run_record(row) for row in rows]

    def last_successful_run(self, aoi_name: str) -> RunRecord | None:
        """Return the completed run of an AOI with the latest window end, or None."""
        return self._latest_completed(aoi_name, None)

    def previous_completed_run(self, aoi_name: str, before: dt.date) -> RunRecord | None:
        """Return the prior detections to diff a window against.

        Args:
            aoi_name: AOI slug.
            before: Window end of the run being made; only runs whose window ends
                strictly earlier count, so re-running a window never compares it with
                itself.

        Returns:
            The latest completed run with ``window_end < before``, or None.
        """
        return self._latest_completed(aoi_name, before)

    def _latest_completed(self, aoi_name: str, before: dt.date | None) -> RunRecord | None:
        """Latest completed run of an AOI, optionally ending before a date."""
        stmt = select(RunRow).where(RunRow.aoi_name == aoi_name, RunRow.status == "completed")
        if before is not None:
            stmt = stmt.where(RunRow.window_end < before)
        stmt = stmt.order_by(RunRow.window_end.desc()).limit(1)
        with self._transaction(read_only=True) as session:
            row = session.scalars(stmt).first()
            return None if row is None else run_record(row)

    def run_attempts(self, aoi_name: str) -> int:
        """Run attempts of the AOI so far, re-runs included (the alert retry clock)."""
        with self._transaction(read_only=True) as session:
            return int(
                session.scalar(select(AOIRow.run_attempts).where(AOIRow.name == aoi_name)) or 0
            )

    def runs_started_since(self, aoi_name: str, since: dt.datetime) -> int:
        """Count the AOI's runs whose latest attempt started after ``since`` (UTC)."""
        with self._transaction(read_only=True) as session:
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(RunRow)
                    .where(RunRow.aoi_name == aoi_name, RunRow.started_at > since)
                )
                or 0
            )

    def record_scenes(
        self,
        aoi_name: str,
        refs: Sequence[SceneRef],
        status: SceneStatus | str,
        reason: str | None = None,
        local_paths: Sequence[Path | str | None] | Mapping[str, Path | str] | None = None,
    ) -> int:
        """Record scenes found for an AOI, used or skipped; re-recording updates them.

        Args:
            aoi_name: AOI slug; the AOI must be stored.
            refs: The scenes.
            status: ``used`` or ``skipped``.
            reason: Why they were skipped (one reason for all ``refs``).
            local_paths: Download locations, either one per ref in the same order or a
                mapping from scene id; a missing path keeps the one already stored.

        Returns:
            The number of distinct scenes written.

        Raises:
            ValueError: ``status`` is unknown or ``local_paths`` has the wrong length.
            RecordNotFoundError: The AOI is not stored.
        """
        check_choice("status", status, SCENE_STATUSES)
        if local_paths is None:
            paths: list[Path | str | None] = [None] * len(refs)
        elif isinstance(local_paths, Mapping):
            paths = [local_paths.get(ref.scene_id) for ref in refs]
        else:
            if len(local_paths) != len(refs):
                raise ValueError(
                    f"local_paths has {len(local_paths)} entries for {len(refs)} scenes; "
                    "give one path (or None) per ref, or a mapping scene_id -> path."
                )
            paths = list(local_paths)
        # One row per natural key: PostgreSQL refuses to upsert the same row twice in
        # one statement.
        values: dict[tuple[str, str], dict[str, Any]] = {}
        for ref, path in zip(refs, paths, strict=True):
            values[(ref.provider, ref.scene_id)] = {
                "provider": ref.provider,
                "scene_id": ref.scene_id,
                "aoi_name": aoi_name,
                "acquired": as_utc(ref.acquired),
                "cloud_pct": finite_or_none(ref.cloud_pct),
                "status": status,
                "reason": reason,
                "local_path": None if path is None else str(path),
            }
        rows = list(values.values())
        with self._transaction() as session:
            self._require_aoi(session, aoi_name)
            for chunk in chunks(rows):
                stmt = self._insert(SceneRow).values(list(chunk))
                stmt = stmt.on_conflict_do_update(
                    index_elements=["provider", "scene_id", "aoi_name"],
                    set_={
                        "acquired": stmt.excluded.acquired,
                        "cloud_pct": stmt.excluded.cloud_pct,
                        "status": stmt.excluded.status,
                        "reason": stmt.excluded.reason,
                        "local_path": func.coalesce(stmt.excluded.local_path, SceneRow.local_path),
                    },
                )
                session.execute(stmt)
        logger.info("recorded %d %s scene(s) for %s", len(rows), status, aoi_name)
        return len(rows)

    def scenes(self, aoi_name: str) -> list[SceneRecord]:
        """Return the scenes recorded for an AOI, by acquisition time."""
        with self._transaction(read_only=True) as session:
            rows = session.scalars(
                select(SceneRow)
                .where(SceneRow.aoi_name == aoi_name)
                .order_by(SceneRow.acquired, SceneRow.provider, SceneRow.scene_id)
            )
            return [
                SceneRecord(
                    provider=row.provider,
                    scene_id=row.scene_id,
                    aoi_name=row.aoi_name,
                    acquired=as_utc(row.acquired),
                    cloud_pct=row.cloud_pct,
                    status=row.status,
                    reason=row.reason,
                    local_path=row.local_path,
                )
                for row in rows
            ]
