"""Who gets told what: choose each channel's events, skip what it already got, send, record.

Delivery is exactly-once per (event, channel): the store remembers every
delivered event key per channel id (a hash of the URL, never the URL), so a
repeated run sends nothing twice. An AOI without alert URLs writes its alerts to
the outbox folder instead, with the same bookkeeping.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from asmspotter.alerts.deliver import Channel, channel_from_url, send_alert, write_outbox
from asmspotter.alerts.render import event_key, render_alert, write_events_geojson
from asmspotter.aoi import AOI, AlertChannelConfig
from asmspotter.errors import AOIConfigError
from asmspotter.events import SiteEvent
from asmspotter.storage import Store

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryOutcome:
    """What happened to one channel in one run.

    Attributes:
        channel_label: The channel URL with secrets redacted (or ``outbox:<path>``).
        status: ``delivered``, ``outbox``, ``failed`` or ``nothing-new``.
        n_events: Events carried by the message.
        detail: Error text, or where the outbox message went.
    """

    channel_label: str
    status: str
    n_events: int
    detail: str | None = None


def outbox_channel(outbox_dir: Path) -> Channel:
    """The pseudo-channel that writes messages to a folder."""
    label = f"outbox:{outbox_dir}"
    return Channel(url=label, label=label, channel_id=hashlib.sha256(label.encode()).hexdigest())


def events_for_channel(
    events: Sequence[SiteEvent], config: AlertChannelConfig | None
) -> list[SiteEvent]:
    """The alertable events a channel subscribed to, at or above its minimum area."""
    wanted = set(config.events) if config else {"new", "expanded"}
    min_area = config.min_area_ha if config else 0.0
    return [e for e in events if e.kind in wanted and e.area_ha >= min_area]


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

    Returns:
        One outcome per channel; a failing channel never stops the others.
    """
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
            )
        )
    return outcomes


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
) -> DeliveryOutcome:
    already = store.delivered_event_keys(channel.channel_id)
    pending = [e for e in events if event_key(e, window_end) not in already]
    if not pending:
        return DeliveryOutcome(channel.label, "nothing-new", 0)
    message = render_alert(
        aoi.name,
        aoi.title,
        window_start,
        window_end,
        pending,
        files_note=f"Outputs of this run: {alert_dir.parent}",
    )
    alert_dir.mkdir(parents=True, exist_ok=True)
    geojson = write_events_geojson(
        pending, epsg, alert_dir / f"{aoi.name}-{window_end}-events.geojson"
    )
    error: str | None = None
    detail: str | None
    if is_outbox:
        folder = write_outbox(message, [geojson], outbox_dir)
        status, detail = "outbox", str(folder)
    else:
        result = send_alert(message, channel, [geojson])
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
    if status == "failed":
        logger.error("Alert to %s failed: %s", channel.label, error)
    else:
        logger.info("Alert with %d events: %s -> %s", len(pending), status, detail or channel.label)
    return DeliveryOutcome(channel.label, status, len(pending), detail)
