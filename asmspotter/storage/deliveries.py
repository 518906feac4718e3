"""Alert deliveries: one row per (event, channel) and per (digest, channel).

A channel is known by the SHA-256 of its URL (:func:`channel_id_for`), never by the
URL, which may hold credentials. Every attempt is an upsert that counts attempts and
never downgrades a delivery; failed rows are what the next run retries.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, case, select

from asmspotter.events import SiteEvent
from asmspotter.storage.engine import StoreBase, check_choice, utcnow
from asmspotter.storage.records import (
    DeliveryRecord,
    DeliveryStatus,
    FailedDelivery,
    as_utc_or_none,
    delivery_record,
    observation_record,
)
from asmspotter.storage.schema import (
    DELIVERY_STATUSES,
    AlertDeliveryRow,
    AOIRow,
    DigestDeliveryRow,
    ObservationRow,
    RunRow,
)

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def channel_id_for(channel_url: str) -> str:
    """Return the key under which deliveries to a channel are stored.

    The URL may hold credentials, so the store keeps only its sha256 digest.

    Args:
        channel_url: The apprise URL of the channel, secrets expanded.

    Returns:
        64 lowercase hex characters.
    """
    return hashlib.sha256(channel_url.encode("utf-8")).hexdigest()


def _first_attempt(status: str, error: str | None, now: dt.datetime) -> dict[str, Any]:
    """Insert values of a delivery's first attempt; a delivered one keeps no error.

    :func:`_attempt_updates` turns a repeated attempt into the update of these columns.
    """
    delivered = status == "delivered"
    return {
        "status": status,
        "attempts": 1,
        "last_error": None if delivered else error,
        "delivered_at": now if delivered else None,
    }


def _attempt_updates(
    row: type[AlertDeliveryRow] | type[DigestDeliveryRow], excluded: Any
) -> dict[str, Any]:
    """Upsert values for one more delivery attempt: count it, never downgrade a delivery.

    A row already ``delivered`` keeps its status, time and (empty) error whatever a
    later attempt reports; otherwise the new attempt's values win.
    """
    was_delivered = row.status == "delivered"
    return {
        "status": case((was_delivered, "delivered"), else_=excluded.status),
        "attempts": row.attempts + 1,
        "last_error": case((was_delivered, row.last_error), else_=excluded.last_error),
        "delivered_at": case((was_delivered, row.delivered_at), else_=excluded.delivered_at),
    }


class DeliveryStore(StoreBase):
    """Alert and digest deliveries of :class:`~asmspotter.storage.store.Store`."""

    def delivered_event_keys(self, channel_id: str) -> set[str]:
        """Return the event keys already delivered to a channel (never send them again)."""
        with self._transaction(read_only=True) as session:
            return set(
                session.scalars(
                    select(AlertDeliveryRow.event_key).where(
                        AlertDeliveryRow.channel_id == channel_id,
                        AlertDeliveryRow.status == "delivered",
                    )
                )
            )

    def record_delivery(
        self,
        run_id: int,
        event: SiteEvent,
        event_key: str,
        channel_id: str,
        channel_label: str,
        status: DeliveryStatus | str,
        error: str | None = None,
    ) -> None:
        """Record an attempt to deliver one event to one channel.

        Upsert on ``(event_key, channel_id)``: ``attempts`` grows by one each call, and
        a ``delivered`` row stays delivered (with its time) whatever is recorded later.

        Args:
            run_id: Run whose event it is.
            event: The event.
            event_key: Stable key of the event, e.g. ``demo-0003:expanded:2024-03-01``.
            channel_id: :func:`channel_id_for` of the channel URL (never the URL).
            channel_label: The channel URL with secrets redacted.
            status: ``delivered``, ``failed`` or ``outbox``.
            error: Error message of a failed attempt.

        Raises:
            ValueError: ``status`` is unknown or ``channel_id`` is not a sha256 hex digest.
        """
        check_choice("status", status, DELIVERY_STATUSES)
        if not _SHA256_HEX.match(channel_id):
            # Never echo the value: it may be a URL holding credentials.
            raise ValueError(
                f"channel_id must be the sha256 hex digest of the channel URL (64 lowercase "
                f"hex characters, see channel_id_for); got a {len(channel_id)}-character value."
            )
        now = utcnow()
        stmt = self._insert(AlertDeliveryRow).values(
            run_id=run_id,
            site_id=event.site_id,
            kind=event.kind,
            event_key=event_key,
            channel_id=channel_id,
            channel_label=channel_label,
            **_first_attempt(status, error, now),
            last_attempt_at=now,
            aoi_run_attempts=(
                select(AOIRow.run_attempts)
                .join(RunRow, RunRow.aoi_name == AOIRow.name)
                .where(RunRow.id == run_id)
                .scalar_subquery()
            ),
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["event_key", "channel_id"],
            set_={
                **_attempt_updates(AlertDeliveryRow, stmt.excluded),
                "channel_label": stmt.excluded.channel_label,
                "last_attempt_at": stmt.excluded.last_attempt_at,
                "aoi_run_attempts": stmt.excluded.aoi_run_attempts,
            },
        )
        with self._transaction() as session:
            session.execute(stmt)

    def deliveries(self, run_id: int) -> list[DeliveryRecord]:
        """Return the deliveries recorded for a run's events, in recording order."""
        return self._deliveries_where(AlertDeliveryRow.run_id == run_id)

    def site_deliveries(self, site_id: str) -> list[DeliveryRecord]:
        """Return every alert delivery of a site's events, in recording order."""
        return self._deliveries_where(AlertDeliveryRow.site_id == site_id)

    def _deliveries_where(self, condition: ColumnElement[bool]) -> list[DeliveryRecord]:
        """The delivery records matching ``condition``, in recording order."""
        with self._transaction(read_only=True) as session:
            rows = session.scalars(
                select(AlertDeliveryRow).where(condition).order_by(AlertDeliveryRow.id)
            )
            return [delivery_record(row) for row in rows]

    def attempted_event_keys(self, channel_id: str) -> set[str]:
        """Event keys with any delivery record (delivered, failed, outbox) on a channel."""
        with self._transaction(read_only=True) as session:
            return set(
                session.scalars(
                    select(AlertDeliveryRow.event_key).where(
                        AlertDeliveryRow.channel_id == channel_id
                    )
                )
            )

    def failed_deliveries_elsewhere(
        self, aoi_name: str, channel_ids: Sequence[str]
    ) -> list[FailedDelivery]:
        """Failed deliveries of an AOI on channels it no longer has (e.g. a fixed URL).

        A channel's identity is a hash of its URL, so correcting a broken URL makes a
        new channel: what failed on the old one is handed to the current channels.

        Args:
            aoi_name: AOI slug.
            channel_ids: The AOI's current channel ids.
        """
        return self._failed_deliveries(
            aoi_name, AlertDeliveryRow.channel_id.not_in(list(channel_ids))
        )

    def failed_deliveries(self, aoi_name: str, channel_id: str) -> list[FailedDelivery]:
        """Return an AOI's events whose delivery to a channel failed and is not yet done.

        Each comes with the observation it alerted (to re-render it) and the time of
        its latest attempt (for backoff). Oldest window first.

        Args:
            aoi_name: AOI slug.
            channel_id: :func:`channel_id_for` of the channel URL.
        """
        return self._failed_deliveries(aoi_name, AlertDeliveryRow.channel_id == channel_id)

    def _failed_deliveries(
        self, aoi_name: str, channel_filter: ColumnElement[bool]
    ) -> list[FailedDelivery]:
        """Failed deliveries of an AOI on the channels ``channel_filter`` selects."""
        stmt = (
            select(AlertDeliveryRow, ObservationRow, RunRow.window_end)
            .join(RunRow, RunRow.id == AlertDeliveryRow.run_id)
            .join(
                ObservationRow,
                and_(
                    ObservationRow.run_id == AlertDeliveryRow.run_id,
                    ObservationRow.site_id == AlertDeliveryRow.site_id,
                ),
            )
            .where(
                RunRow.aoi_name == aoi_name,
                channel_filter,
                AlertDeliveryRow.status == "failed",
            )
            .order_by(RunRow.window_end, AlertDeliveryRow.id)
        )
        with self._transaction(read_only=True) as session:
            return [
                FailedDelivery(
                    delivery=delivery_record(row),
                    observation=observation_record(obs, window_end),
                    last_attempt_at=as_utc_or_none(row.last_attempt_at),
                    aoi_run_attempts=row.aoi_run_attempts,
                )
                for row, obs, window_end in session.execute(stmt)
            ]

    def is_digest_delivered(self, digest_key: str, channel_id: str) -> bool:
        """True if the digest ``digest_key`` already reached the channel ``channel_id``."""
        stmt = select(DigestDeliveryRow.status).where(
            DigestDeliveryRow.digest_key == digest_key,
            DigestDeliveryRow.channel_id == channel_id,
        )
        with self._transaction(read_only=True) as session:
            return session.scalar(stmt) == "delivered"

    def record_digest(
        self,
        aoi_name: str,
        digest_key: str,
        channel_id: str,
        channel_label: str,
        status: DeliveryStatus | str,
        error: str | None = None,
    ) -> None:
        """Record an attempt to send a weekly digest; ``delivered`` is never downgraded.

        Args:
            aoi_name: AOI the digest summarises.
            digest_key: ``<aoi>:digest:<ISO year>-W<ISO week>``.
            channel_id: :func:`channel_id_for` of the channel URL (never the URL).
            channel_label: The channel URL with secrets redacted.
            status: ``delivered`` or ``failed``.
            error: Error message of a failed attempt.
        """
        check_choice("status", status, DELIVERY_STATUSES)
        stmt = self._insert(DigestDeliveryRow).values(
            aoi_name=aoi_name,
            digest_key=digest_key,
            channel_id=channel_id,
            channel_label=channel_label,
            **_first_attempt(status, error, utcnow()),
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["digest_key", "channel_id"],
            set_=_attempt_updates(DigestDeliveryRow, stmt.excluded),
        )
        with self._transaction() as session:
            self._require_aoi(session, aoi_name)
            session.execute(stmt)
