"""A person's verdicts on sites: confirm or dismiss, kept as history.

A review is a ``site_review`` row plus the site's state: dismissed (``site.status``;
alerts suppressed until it outgrows its dismissed area; a training negative) or
confirmed (``site.confirmed_at``; stays active; a training positive).
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from asmspotter.storage.engine import StoreBase, check_choice, utcnow
from asmspotter.storage.records import (
    DismissedSite,
    SiteRecord,
    SiteReview,
    as_utc_or_none,
    site_record,
    site_review_record,
)
from asmspotter.storage.schema import REVIEW_DECISIONS, SiteReviewRow, SiteRow

logger = logging.getLogger(__name__)


class ReviewStore(StoreBase):
    """Site reviews of :class:`~asmspotter.storage.store.Store`."""

    def dismiss_site(
        self, site_id: str, reason: str, *, note: str | None = None, source: str = "cli"
    ) -> SiteRecord:
        """Mark a site as dismissed (e.g. a false positive); it keeps being tracked.

        Its alerts stop until it outgrows its area at dismissal (see
        ``asmspotter.alerts.dispatch``); it becomes a training negative. ``reason`` says
        why, for the record (``river bar``, ``town``, ...); the arguments, the returned
        site and the errors are those of :meth:`review_site`.
        """
        return self.review_site(site_id, "dismissed", reason, note=note, source=source)

    def confirm_site(
        self, site_id: str, reason: str, *, note: str | None = None, source: str = "cli"
    ) -> SiteRecord:
        """Mark a site as a confirmed mine; it stays active and becomes a training positive.

        A confirmation lifts an earlier dismissal, so the site alerts again. ``reason``
        says what settled it (``field visit``, ``high-resolution image``, ...); the
        arguments, the returned site and the errors are those of :meth:`review_site`.
        """
        return self.review_site(site_id, "confirmed", reason, note=note, source=source)

    def review_site(
        self,
        site_id: str,
        decision: str,
        reason: str,
        *,
        note: str | None = None,
        source: str = "cli",
    ) -> SiteRecord:
        """Record a person's decision on a site and set its state to match.

        Args:
            site_id: Site id.
            decision: ``confirmed`` or ``dismissed``.
            reason: Why; must not be empty.
            note: Optional comment.
            source: Where the decision was made (``cli`` or ``web``).

        Returns:
            The site as it is now.

        Raises:
            ValueError: ``decision`` is unknown or ``reason`` is empty.
            RecordNotFoundError: No site has this id.
        """
        check_choice("decision", decision, REVIEW_DECISIONS)
        reason = reason.strip()
        if not reason:
            raise ValueError(
                f"give a reason for {'dismissing' if decision == 'dismissed' else 'confirming'} "
                f"site {site_id!r}."
            )
        note = note.strip() if note and note.strip() else None
        now = utcnow()
        with self._transaction() as session:
            row = self._require_site(session, site_id, for_update=True)
            if decision == "dismissed":
                row.status = "dismissed"
                row.dismissed_reason = reason
                row.dismissed_at = now
                row.dismissed_area_ha = row.area_ha
                row.confirmed_at = None
            else:
                row.status = "active"
                row.dismissed_reason = None
                row.dismissed_at = None
                row.dismissed_area_ha = None
                row.confirmed_at = now
            session.add(
                SiteReviewRow(
                    site_id=site_id,
                    decision=decision,
                    reason=reason,
                    note=note,
                    area_ha=row.area_ha,
                    source=source,
                    reviewed_at=now,
                )
            )
            session.flush()
            record = site_record(row)
        logger.info("site %s %s (%s): %s", site_id, decision, source, reason)
        return record

    def site_reviews(self, site_id: str) -> list[SiteReview]:
        """Return every review decision on a site, oldest first."""
        stmt = (
            select(SiteReviewRow).where(SiteReviewRow.site_id == site_id).order_by(SiteReviewRow.id)
        )
        with self._transaction(read_only=True) as session:
            return [site_review_record(row) for row in session.scalars(stmt)]

    def confirmed_sites(self, aoi_name: str | None = None) -> list[SiteRecord]:
        """Return the sites a person confirmed as mines (of one AOI, or all), by id."""
        stmt = select(SiteRow).where(SiteRow.status == "active", SiteRow.confirmed_at.is_not(None))
        if aoi_name is not None:
            stmt = stmt.where(SiteRow.aoi_name == aoi_name)
        with self._transaction(read_only=True) as session:
            return [site_record(row) for row in session.scalars(stmt.order_by(SiteRow.id))]

    def dismissed_sites(self, aoi_name: str | None = None) -> list[DismissedSite]:
        """Return dismissed sites (of one AOI, or all) with when and at what area."""
        stmt = select(SiteRow).where(SiteRow.status == "dismissed")
        if aoi_name is not None:
            stmt = stmt.where(SiteRow.aoi_name == aoi_name)
        with self._transaction(read_only=True) as session:
            return [
                DismissedSite(
                    site=site_record(row),
                    dismissed_at=as_utc_or_none(row.dismissed_at),
                    dismissed_area_ha=row.dismissed_area_ha,
                )
                for row in session.scalars(stmt.order_by(SiteRow.id))
            ]
