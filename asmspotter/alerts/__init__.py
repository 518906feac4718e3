"""Alerts: render site events into messages and deliver them to people.

``render`` turns the ``new`` and ``expanded`` :class:`~asmspotter.events.SiteEvent`s
of a run into an :class:`AlertMessage` (text, HTML, Markdown) and a GeoJSON file;
it does no I/O but writing that file. ``deliver`` sends a message to one apprise
channel (email, Slack, any apprise URL) or writes it to an outbox folder; it is the
only network code here. ``dispatch`` decides which channel gets which events and
records deliveries in the store, so nothing is sent twice.
"""

from asmspotter.alerts.deliver import (
    Channel,
    DeliveryResult,
    channel_from_url,
    send_alert,
    write_outbox,
)
from asmspotter.alerts.render import AlertMessage, event_key, render_alert, write_events_geojson

__all__ = [
    "AlertMessage",
    "Channel",
    "DeliveryResult",
    "channel_from_url",
    "event_key",
    "render_alert",
    "send_alert",
    "write_events_geojson",
    "write_outbox",
]
