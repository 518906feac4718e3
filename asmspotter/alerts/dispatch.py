"""Who gets told what: choose each channel's events, skip what it already got, send, record.

Delivery is exactly-once per (event, channel): the store remembers every
delivered event key per channel id (a hash of the URL, never the URL), so a
repeated run sends nothing twice. An AOI without alert URLs writes its alerts to
the outbox folder instead, with the same bookkeeping.

A delivery that failed is retried on later runs of the AOI, inside that run's
message to the same channel ("resent"), backing off by attempts: after ``n``
failed attempts it waits until ``min(2**(n-1), 8)`` runs of the AOI have started
since the last attempt (the next run, then every 2nd, 4th, 8th run). A dismissed
site is never alerted again unless it grows beyond the AOI's expansion thresholds
(both ``min_growth_ha`` and ``min_growth_pct``) over its area when dismissed.
Run failures and long stretches without a clear composite go to the channels
subscribed to ``run_failed`` (:func:`send_failure_alert`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from shapely import wkt as shapely_wkt

from asmspotter.alerts.deliver import Channel, channel_from_url, send_alert, write_outbox
from asmspotter.alerts.evidence import ModelInfo, SceneInfo, write_evidence_packet
from asmspotter.alerts.field_exports import write_field_exports
from asmspotter.alerts.i18n import gettext_, ngettext_, use_language
from asmspotter.alerts.quicklook import EMAIL_BUDGET_BYTES, Quicklook, fit_images_to_budget
from asmspotter.alerts.render import (
    AlertMessage,
    DigestSite,
    digest_key,
    event_key,
    render_alert,
    render_digest,
    render_notice_html,
    write_events_geojson,
)
from asmspotter.aoi import AOI, AlertChannelConfig
from asmspotter.context_layers import ContextTag, tag_events, tag_sites
from asmspotter.errors import AOIConfigError
from asmspotter.events import CONFIDENCE_LEVELS, DEFAULT_ALERT_LEVELS, SiteEvent
from asmspotter.storage import Store
from asmspotter.storage.records import FailedDelivery, ObservationRecord

_BODY_BYTES = 80_000
"""Room kept in an e-mail for the HTML and text bodies and MIME headers."""

MAX_BACKOFF_RUNS = 8
"""A failed delivery is retried at least every this many runs of its AOI."""

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryOutcome:
    """What happened to one channel in one run.

    Attributes:
        channel_label: The channel URL with secrets redacted (or ``outbox:<path>``).
        status: ``delivered``, ``outbox``, ``failed`` or ``nothing-new``.
        n_events: Events carried by the message (resent ones included).
        detail: Error text, or where the outbox message went.
        n_resent: Of ``n_events``, earlier failed deliveries retried in this message.
        n_waiting: Failed deliveries held back by the backoff, retried on a later run.
        max_attempts: Most attempts of any event in this message (1 = first try).
    """

    channel_label: str
    status: str
    n_events: int
    detail: str | None = None
    n_resent: int = 0
    n_waiting: int = 0
    max_attempts: int = 1


def outbox_channel(outbox_dir: Path) -> Channel:
    """The pseudo-channel that writes messages to a folder."""
    label = f"outbox:{outbox_dir}"
    return Channel(url=label, label=label, channel_id=hashlib.sha256(label.encode()).hexdigest())


def events_for_channel(
    events: Sequence[SiteEvent], config: AlertChannelConfig | None
) -> list[SiteEvent]:
    """The alertable events a channel subscribed to, at its levels, minimum area and tags.

    Without a channel (the outbox) the default levels apply. Events no verifier scored
    (a model without one, such as ``ps-unet-v1``) pass the level filter: they have no
    level to judge them by, and dropping them would silence that model's AOIs. A
    channel with ``tags`` gets only sites in one of those context layers, one with
    ``exclude_tags`` only sites in none of those (the events must carry their
    ``context_tags``, :func:`asmspotter.context_layers.tag_events`).
    """
    wanted = set(config.events) if config else {"new", "expanded"}
    min_area = config.min_area_ha if config else 0.0
    levels = set(config.levels) if config else set(DEFAULT_ALERT_LEVELS)
    return [
        e
        for e in events
        if e.is_alertable
        and e.kind in wanted
        and e.area_ha >= min_area
        and (e.confidence in levels or e.verifier_score is None)
        and has_channel_tag(e.context_tags, config)
    ]


def has_channel_tag(tags: Sequence[ContextTag], config: AlertChannelConfig | None) -> bool:
    """True if a site with these tags goes to the channel.

    It must lie in one of the channel's ``tags`` (if it has any) and in none of its
    ``exclude_tags``: ``exclude_tags: [known_mining_2024]`` is the channel for new
    frontiers, sites away from the mining districts already known.
    """
    if config is None:
        return True
    layers = {tag.layer for tag in tags}
    if config.tags is not None and not layers & set(config.tags):
        return False
    return not layers & set(config.exclude_tags or ())


def is_dismissal_overridden(area_ha: float, dismissed_area_ha: float | None, aoi: AOI) -> bool:
    """True if a dismissed site grew enough to alert again.

    It must exceed its area at dismissal by more than both of the AOI's expansion
    thresholds (``detection.expansion.min_growth_ha`` and ``min_growth_pct``), the
    same rule that makes a tracked site ``expanded``.
    """
    if dismissed_area_ha is None or dismissed_area_ha <= 0:
        return False
    expansion = aoi.config.detection.expansion
    growth_ha = area_ha - dismissed_area_ha
    return (
        growth_ha > expansion.min_growth_ha
        and 100.0 * growth_ha / dismissed_area_ha > expansion.min_growth_pct
    )


def drop_dismissed(store: Store, aoi: AOI, events: Sequence[SiteEvent]) -> list[SiteEvent]:
    """Remove events of dismissed sites, unless the site outgrew its dismissal."""
    dismissed = {d.site.site_id: d.dismissed_area_ha for d in store.dismissed_sites(aoi.name)}
    kept = []
    for event in events:
        if event.site_id in dismissed and not is_dismissal_overridden(
            event.area_ha, dismissed[event.site_id], aoi
        ):
            logger.info(
                "Site %s is dismissed; its %s event is not alerted", event.site_id, event.kind
            )
            continue
        kept.append(event)
    return kept


def _event_from_observation(record: ObservationRecord, first_seen: dt.date) -> SiteEvent:
    """Rebuild the event an observation recorded, to re-render a failed delivery."""
    return SiteEvent(
        site_id=record.site_id,
        kind=record.kind,  # type: ignore[arg-type]
        geometry=shapely_wkt.loads(record.geometry_wkt),
        area_ha=record.area_ha,
        previous_area_ha=record.previous_area_ha,
        growth_ha=record.growth_ha,
        growth_pct=record.growth_pct,
        mean_probability=record.mean_probability,
        centroid_lon=record.centroid_lon,
        centroid_lat=record.centroid_lat,
        first_seen=first_seen,
        clear_observations=record.clear_observations,
        verifier_score=record.verifier_score,
        confidence=record.confidence if record.confidence in CONFIDENCE_LEVELS else "nominal",  # type: ignore[arg-type]
    )


def backoff_runs(attempts: int) -> int:
    """Runs of the AOI that must start after a failed attempt before the next one."""
    return int(min(2 ** max(attempts - 1, 0), MAX_BACKOFF_RUNS))


def dispatch_alerts(
    store: Store,
    aoi: AOI,
    run_id: int,
    window_start: dt.date,
    window_end: dt.date,
    events: Sequence[SiteEvent],
    *,
    epsg: int,
    alert_dir: Path,
    outbox_dir: Path,
    quicklook: Quicklook | None = None,
    run_url: str | None = None,
    model: ModelInfo | None = None,
) -> list[DeliveryOutcome]:
    """Send one message per channel with the events it has not received yet.

    Args:
        store: The asmspotter store (delivery records).
        aoi: The AOI whose channels are used.
        run_id: The run the events belong to.
        window_start: First date of the run's window.
        window_end: Last date of the run's window (part of each event's key).
        events: All events of the run; only new/expanded ones are sent.
        epsg: CRS of the event geometries.
        alert_dir: Where this run's attachments are written.
        outbox_dir: Where messages go when the AOI has no alert URL.
        quicklook: The run's quicklook PNGs, attached (and inline in email).
        run_url: Public link to this run (Prefect UI), shown in the messages; None
            when the UI is not public.
        model: The detector, recorded in each alert's evidence packet.

    Returns:
        One outcome per channel; a failing channel never stops the others.
    """
    events = tag_events(drop_dismissed(store, aoi, events), epsg, aoi.context_layers)
    targets: list[tuple[AlertChannelConfig | None, Channel | None, str | None]] = []
    if aoi.config.alerts:
        for channel_config in aoi.config.alerts:
            try:
                url = channel_config.resolved_url()
                targets.append((channel_config, channel_from_url(url), None))
            except AOIConfigError as exc:
                targets.append((channel_config, None, str(exc)))
    else:
        targets.append((None, outbox_channel(outbox_dir), None))

    current_ids = [channel.channel_id for _, channel, _ in targets if channel is not None]
    outcomes = []
    for config, channel, config_error in targets:
        if channel is None:
            logger.error("Alert channel not usable: %s", config_error)
            outcomes.append(
                DeliveryOutcome(config.url if config else "?", "failed", 0, config_error)
            )
            continue
        outcomes.append(
            _deliver_to_channel(
                store,
                aoi,
                run_id,
                window_start,
                window_end,
                events_for_channel(events, config),
                channel=channel,
                epsg=epsg,
                alert_dir=alert_dir,
                outbox_dir=outbox_dir,
                is_outbox=config is None,
                config=config,
                quicklook=quicklook,
                current_channel_ids=current_ids,
                run_url=run_url,
                model=model,
            )
        )
    return [*outcomes, *send_weekly_digests(store, aoi, window_end, alert_dir.parent)]


def send_weekly_digests(
    store: Store, aoi: AOI, window_end: dt.date, run_dir: Path
) -> list[DeliveryOutcome]:
    """Send each ``weekly_digest`` channel the AOI's active sites, once per ISO week.

    The first run of an ISO week sends the digest; later runs in the same week send
    nothing to a channel that got it, and retry one that did not. Each channel gets
    it in its language, and a channel with ``tags`` or ``exclude_tags`` only the sites
    in (or outside) those context layers. The run's ``sites.geojson`` is attached where it exists.

    Returns:
        One outcome per subscribed channel that was due.
    """
    subscribed = [c for c in aoi.config.alerts if "weekly_digest" in c.events]
    if not subscribed:
        return []
    key = digest_key(aoi.name, window_end)
    records = store.sites(aoi.name, status="active")
    tags = (
        tag_sites({s.site_id: s.geometry for s in records}, records[0].epsg, aoi.context_layers)
        if records and aoi.context_layers
        else {}
    )
    sites = [
        DigestSite(
            s.site_id,
            s.area_ha,
            s.centroid_lat,
            s.centroid_lon,
            s.first_seen,
            s.last_seen,
            tags.get(s.site_id, ()),
        )
        for s in records
    ]
    sites_geojson = run_dir / "sites.geojson"
    attachments = [sites_geojson] if sites_geojson.exists() else []
    outcomes = []
    for config in subscribed:
        try:
            channel = channel_from_url(config.resolved_url())
        except AOIConfigError as exc:
            outcomes.append(DeliveryOutcome(config.url, "failed", 0, str(exc)))
            continue
        if store.is_digest_delivered(key, channel.channel_id):
            continue
        listed = [s for s in sites if has_channel_tag(s.context_tags, config)]
        message = render_digest(
            aoi.name,
            aoi.title,
            window_end,
            listed,
            max_sites=aoi.config.alerts_policy.max_sites_listed,
            language=config.language,
        )
        result = send_alert(message, channel, attachments)
        status = "delivered" if result.ok else "failed"
        store.record_digest(
            aoi.name, key, channel.channel_id, channel.label, status, error=result.error
        )
        logger.info("Weekly digest %s -> %s: %s", key, channel.label, status)
        detail = f"weekly digest {key}" + (f": {result.error}" if result.error else "")
        outcomes.append(DeliveryOutcome(channel.label, status, len(listed), detail))
    return outcomes


def _due_retries(
    store: Store,
    aoi: AOI,
    channel: Channel,
    config: AlertChannelConfig | None,
    skip_keys: set[str],
    *,
    window_end: dt.date,
    current_channel_ids: Sequence[str] = (),
    epsg: int,
) -> tuple[list[tuple[SiteEvent, dt.date, str, int, int]], int]:
    """Failed deliveries due for a retry on this channel now, and how many must wait.

    Two kinds: this channel's own failures, after the backoff (counted in run attempts
    of the AOI, re-runs of a window included), and failures on channels the AOI no
    longer has (a broken URL since corrected), at once, unless this channel already
    tried them. Failures whose window ended more than ``alerts_policy.retry_for_days``
    before ``window_end`` have expired and are not retried.

    Returns:
        ([(event, window_end, event_key, run_id, attempts)], number waiting for backoff).
    """
    due: list[tuple[SiteEvent, dt.date, str, int, int]] = []
    waiting = 0
    own = store.failed_deliveries(aoi.name, channel.channel_id)
    orphaned = (
        store.failed_deliveries_elsewhere(aoi.name, current_channel_ids)
        if current_channel_ids
        else []
    )
    if orphaned:
        tried_here = store.attempted_event_keys(channel.channel_id)
        orphaned = [item for item in orphaned if item.delivery.event_key not in tried_here]
    if not own and not orphaned:
        return due, waiting
    first_seen = {s.site_id: s.first_seen for s in store.sites(aoi.name)}
    dismissed = {d.site.site_id: d.dismissed_area_ha for d in store.dismissed_sites(aoi.name)}
    attempts_now = store.run_attempts(aoi.name)
    oldest = window_end - dt.timedelta(days=aoi.config.alerts_policy.retry_for_days)
    seen_keys: set[str] = set()
    for item in [*own, *orphaned]:
        key = item.delivery.event_key
        if key in skip_keys or key in seen_keys:
            continue
        seen_keys.add(key)
        if item.observation.window_end < oldest:
            logger.warning(
                "Alert %s to %s expired undelivered (window more than %d days old)",
                key,
                item.delivery.channel_label,
                aoi.config.alerts_policy.retry_for_days,
            )
            continue
        obs = item.observation
        event = _event_from_observation(obs, first_seen.get(obs.site_id, obs.window_end))
        (event,) = tag_events([event], epsg, aoi.context_layers)
        if not events_for_channel([event], config):
            continue
        if obs.site_id in dismissed and not is_dismissal_overridden(
            obs.area_ha, dismissed[obs.site_id], aoi
        ):
            continue
        is_own = item.delivery.channel_id == channel.channel_id
        if is_own and _runs_since(store, aoi, item, attempts_now) < backoff_runs(
            item.delivery.attempts
        ):
            waiting += 1
            continue
        attempts = item.delivery.attempts if is_own else 0
        due.append((event, obs.window_end, key, item.delivery.run_id, attempts))
    return due, waiting


def _runs_since(store: Store, aoi: AOI, item: FailedDelivery, attempts_now: int) -> int:
    """Run attempts of the AOI since a delivery's latest try (re-runs count)."""
    if item.aoi_run_attempts is not None:
        return attempts_now - item.aoi_run_attempts
    if item.last_attempt_at is None:
        return MAX_BACKOFF_RUNS
    return store.runs_started_since(aoi.name, item.last_attempt_at)


def _deliver_to_channel(
    store: Store,
    aoi: AOI,
    run_id: int,
    window_start: dt.date,
    window_end: dt.date,
    events: Sequence[SiteEvent],
    *,
    channel: Channel,
    epsg: int,
    alert_dir: Path,
    outbox_dir: Path,
    is_outbox: bool,
    config: AlertChannelConfig | None = None,
    quicklook: Quicklook | None = None,
    current_channel_ids: Sequence[str] = (),
    run_url: str | None = None,
    model: ModelInfo | None = None,
) -> DeliveryOutcome:
    already = store.delivered_event_keys(channel.channel_id)
    pending = [e for e in events if event_key(e, window_end) not in already]
    pending_keys = {event_key(e, window_end) for e in pending}
    retries: list[tuple[SiteEvent, dt.date, str, int, int]] = []
    n_waiting = 0
    if not is_outbox:
        retries, n_waiting = _due_retries(
            store,
            aoi,
            channel,
            config,
            pending_keys | already,
            window_end=window_end,
            current_channel_ids=current_channel_ids,
            epsg=epsg,
        )
    if not pending and not retries:
        return DeliveryOutcome(channel.label, "nothing-new", 0, n_waiting=n_waiting)
    images: list[Path] = []
    if quicklook is not None:
        images.append(quicklook.overview)
        listed = {e.site_id for e in pending} | {r[0].site_id for r in retries}
        images += [p for site, p in quicklook.before_after.items() if site in listed]
    images = [p for p in images if p.is_file()]
    alert_dir.mkdir(parents=True, exist_ok=True)
    alerted = [*pending, *(r[0] for r in retries)]
    before_run = store.previous_completed_run(aoi.name, window_end)
    packet = write_evidence_packet(
        alert_dir / f"{aoi.name}-{window_end}-evidence-{channel.channel_id[:8]}.zip",
        aoi_name=aoi.name,
        aoi_title=aoi.title,
        window_start=window_start,
        window_end=window_end,
        before_window_end=before_run.window_end if before_run else None,
        events=alerted,
        epsg=epsg,
        images=images,
        scenes_after=_used_scenes(store, aoi.name, window_start, window_end),
        scenes_before=(
            _used_scenes(store, aoi.name, before_run.window_start, before_run.window_end)
            if before_run
            else []
        ),
        model=model,
    )
    geojson = write_events_geojson(
        alerted, epsg, alert_dir / f"{aoi.name}-{window_end}-events.geojson"
    )
    site_files = [
        geojson,
        *write_field_exports(alerted, epsg, alert_dir, f"{aoi.name}-{window_end}-sites"),
    ]
    files_bytes = sum(p.stat().st_size for p in site_files) * 4 // 3
    images, left_out = fit_images_to_budget(
        images, EMAIL_BUDGET_BYTES - _BODY_BYTES - files_bytes, alert_dir / "email-images"
    )
    images_bytes = sum(p.stat().st_size for p in images) * 4 // 3
    room = EMAIL_BUDGET_BYTES - _BODY_BYTES - files_bytes - images_bytes
    language = config.language if config else "en"
    packet_fits = is_outbox or packet.stat().st_size * 4 // 3 <= room
    if packet_fits:
        site_files.append(packet)
    with use_language(language):
        files_note = _attached_note([*images, *site_files], left_out)
        if not packet_fits:
            files_note += " " + gettext_(
                "The evidence packet {name} ({kb} KB: images, scenes, model, outlines, "
                "SHA-256) is too big for this message; the operator has it in the run's "
                "alert files."
            ).format(name=packet.name, kb=packet.stat().st_size // 1000)
    message = render_alert(
        aoi.name,
        aoi.title,
        window_start,
        window_end,
        pending,
        files_note=files_note,
        labels=aoi.config.labels,
        resent=[(event, end) for event, end, _, _, _ in retries],
        image_names=[p.name for p in images],
        max_sites=aoi.config.alerts_policy.max_sites_listed,
        imagery_before=before_run.window_end if before_run else None,
        run_url=run_url,
        language=language,
    )
    attachments = [*images, *site_files]
    error: str | None = None
    detail: str | None
    if is_outbox:
        folder = write_outbox(message, attachments, outbox_dir)
        status, detail = "outbox", str(folder)
    else:
        result = send_alert(message, channel, attachments)
        status = "delivered" if result.ok else "failed"
        error = result.error
        detail = error
    for event in pending:
        store.record_delivery(
            run_id,
            event,
            event_key(event, window_end),
            channel.channel_id,
            channel.label,
            status,
            error=error,
        )
    for event, _, key, first_run_id, _ in retries:
        store.record_delivery(
            first_run_id, event, key, channel.channel_id, channel.label, status, error=error
        )
    max_attempts = max([1, *(attempts + 1 for *_, attempts in retries)])
    if status == "failed":
        logger.error("Alert to %s failed: %s", channel.label, error)
    else:
        logger.info(
            "Alert with %d events (%d resent): %s -> %s",
            len(pending) + len(retries),
            len(retries),
            status,
            detail or channel.label,
        )
    return DeliveryOutcome(
        channel.label,
        status,
        len(pending) + len(retries),
        detail,
        n_resent=len(retries),
        n_waiting=n_waiting,
        max_attempts=max_attempts,
    )


def _used_scenes(store: Store, aoi_name: str, start: dt.date, end: dt.date) -> list[SceneInfo]:
    """The scenes a window's composite was built from (acquired within it, used)."""
    return [
        SceneInfo(s.provider, s.scene_id, s.acquired, s.cloud_pct)
        for s in store.scenes(aoi_name)
        if s.status == "used" and start <= s.acquired.date() <= end
    ]


def _attached_note(files: Sequence[Path], left_out: Sequence[Path] = ()) -> str:
    """Name the attached files (names only: a server path means nothing to a reader)."""
    note = gettext_("Attached: {files}.").format(files=", ".join(p.name for p in files))
    if left_out:
        note += " " + ngettext_(
            "{n} more image left out to keep this message under {kb} KB: {files}.",
            "{n} more images left out to keep this message under {kb} KB: {files}.",
            len(left_out),
        ).format(
            n=len(left_out),
            kb=EMAIL_BUDGET_BYTES // 1000,
            files=", ".join(p.name for p in left_out),
        )
    return note


def render_failure_message(
    aoi: AOI, window_end: dt.date | None, reason: str, *, language: str = "en"
) -> AlertMessage:
    """Build the ``run_failed`` message: what failed, why, and where to look.

    The sentences are in ``language`` (the channel's); ``reason`` is the error as the
    run recorded it (names of files, fields and fixes), quoted as it is.
    """
    with use_language(language):
        when = (
            " " + gettext_("(window ending {date})").format(date=window_end.isoformat())
            if window_end
            else ""
        )
        title = gettext_("asmspotter: monitoring of {aoi} needs attention").format(aoi=aoi.title)
        title += when
        lines = [
            gettext_("Area of interest: {title} ({name}){when}.").format(
                title=aoi.title, name=aoi.name, when=when
            ),
            gettext_("Reason: {reason}").format(reason=reason),
            gettext_(
                "Sites are not being updated for this AOI until this is fixed. Check the run "
                "in the Prefect UI (flow run {run}) and the AOI file {path}."
            ).format(run=f"{aoi.name}/{window_end or '…'}", path=aoi.path),
        ]
    text = "\n".join([lines[0], lines[1], "", lines[2]]) + "\n"
    key_hash = hashlib.sha256(f"{aoi.name}|{window_end}|{reason}".encode()).hexdigest()[:12]
    return AlertMessage(
        title=title,
        body_text=text,
        body_html=render_notice_html(title, lines),
        body_markdown=text,
        event_keys=(f"{aoi.name}:run_failed:{key_hash}",),
        body_compact=f"{reason}\n",
    )


def send_failure_alert(
    aoi: AOI, reason: str, *, window_end: dt.date | None, outbox_dir: Path
) -> list[DeliveryOutcome]:
    """Tell the channels subscribed to ``run_failed`` that monitoring of an AOI is in trouble.

    An AOI without alert URLs gets the message in the outbox. Not recorded in the
    store (there is no event to key it on); every call sends, so call it once per
    failed run. A failing channel never stops the others; nothing is raised.

    Returns:
        One outcome per channel that received (or failed to receive) the message.
    """
    outcomes: list[DeliveryOutcome] = []
    if not aoi.config.alerts:
        folder = write_outbox(render_failure_message(aoi, window_end, reason), [], outbox_dir)
        return [DeliveryOutcome(f"outbox:{outbox_dir}", "outbox", 0, str(folder))]
    for config in aoi.config.alerts:
        if "run_failed" not in config.events:
            continue
        try:
            channel = channel_from_url(config.resolved_url())
        except AOIConfigError as exc:
            outcomes.append(DeliveryOutcome(config.url, "failed", 0, str(exc)))
            continue
        message = render_failure_message(aoi, window_end, reason, language=config.language)
        result = send_alert(message, channel, [])
        outcomes.append(
            DeliveryOutcome(channel.label, "delivered" if result.ok else "failed", 0, result.error)
        )
    logger.warning("Run-failure alert for %s (%s): %d channel(s)", aoi.name, reason, len(outcomes))
    return outcomes


def stale_data_reason(store: Store, aoi: AOI, window_end: dt.date) -> str | None:
    """Say why an AOI counts as without data, or None if it had a clear composite recently.

    Stale means: the last completed run with a composite ended more than
    ``alerts_policy.max_periods_without_data`` revisit periods before ``window_end``
    (or, if there was none, the schedule's start date did).
    """
    schedule = aoi.config.schedule
    limit = aoi.config.alerts_policy.max_periods_without_data
    last = store.previous_completed_run(aoi.name, window_end + dt.timedelta(days=1))
    since = last.window_end if last is not None else schedule.start_date
    periods = (window_end - since).days / schedule.revisit_days
    if periods <= limit:
        return None
    what = (
        f"the last clear composite was for the window ending {since}"
        if last
        else (f"no clear composite since monitoring started on {since}")
    )
    return (
        f"no usable (clear) composite for {periods:.0f} revisit periods of {schedule.revisit_days} "
        f"days ({what}; alerts_policy.max_periods_without_data is {limit}). Check the "
        "AOI's sources (provider reachable, max_cloud_pct) or add another source."
    )


def render_test_message(aoi: AOI, *, language: str = "en") -> AlertMessage:
    """The short message ``asmspotter alerts test`` sends, in a channel's language."""
    with use_language(language):
        title = gettext_("asmspotter: test message for {aoi}").format(aoi=aoi.title)
        text = (
            gettext_(
                "This is a test of the alert channels of {title} ({name}). If you read it, "
                "alerts about new and expanding mining sites will reach you here."
            ).format(title=aoi.title, name=aoi.name)
            + "\n"
        )
    return AlertMessage(
        title=title,
        body_text=text,
        body_html=render_notice_html(title, [text.strip()]),
        body_markdown=text,
        event_keys=(),
        body_compact=text,
    )


def send_test_alert(aoi: AOI, outbox_dir: Path) -> list[tuple[str, bool, str | None]]:
    """Send a short test message to every alert channel of an AOI (or the outbox).

    Each channel gets it in its own language. Nothing is recorded in the store. Used
    by ``asmspotter alerts test AOI``.

    Returns:
        One (channel label, ok, error) per channel, in the AOI file's order.
    """
    if not aoi.config.alerts:
        folder = write_outbox(render_test_message(aoi), [], outbox_dir)
        return [(f"outbox:{folder}", True, None)]
    results: list[tuple[str, bool, str | None]] = []
    for config in aoi.config.alerts:
        try:
            channel = channel_from_url(config.resolved_url())
        except AOIConfigError as exc:
            results.append((config.url, False, str(exc)))
            continue
        result = send_alert(render_test_message(aoi, language=config.language), channel, [])
        results.append((channel.label, result.ok, result.error))
    return results
