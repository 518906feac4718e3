"""Alerts delivered by the real apprise client to loopback servers: SMTP (aiosmtpd), JSON webhook.

Everything listens on 127.0.0.1; connect timeouts are short (``cto``/``rto`` URL args).
"""

from __future__ import annotations

import base64
import datetime as dt
import email
import email.policy
import json
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pyproj import Transformer
from shapely.geometry import box

from asmspotter.alerts import (
    DeliveryResult,
    channel_from_url,
    render_alert,
    send_alert,
    write_events_geojson,
)
from asmspotter.alerts.render import AlertMessage
from asmspotter.events import SiteEvent
from fakes.smtp import Inbox, free_port, serve_smtp

EPSG = 32621
START = dt.date(2024, 1, 1)
END = dt.date(2024, 1, 30)


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, Inbox]]:
    with serve_smtp() as (port, inbox):
        yield port, inbox


class _Webhook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.received.append(
            {"path": self.path, "body": json.loads(self.rfile.read(length) or b"{}")}
        )
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def webhook_server() -> Iterator[tuple[int, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []
    handler = type("Handler", (_Webhook,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _event(i: int, kind: str = "new") -> SiteEvent:
    x0, y0 = 700_000.0 + 1_000.0 * i, 550_000.0
    geom = box(x0, y0, x0 + 200, y0 + 200)
    lon, lat = Transformer.from_crs(EPSG, 4326, always_xy=True).transform(
        geom.centroid.x, geom.centroid.y
    )
    return SiteEvent(
        site_id=f"demo-{i:04d}",
        kind="new" if kind == "new" else "expanded",
        geometry=geom,
        area_ha=4.0,
        previous_area_ha=None if kind == "new" else 3.0,
        growth_ha=None if kind == "new" else 1.0,
        growth_pct=None if kind == "new" else 33.3,
        mean_probability=0.9,
        centroid_lon=lon,
        centroid_lat=lat,
        first_seen=END,
        clear_observations=5,
    )


@pytest.fixture
def alert(tmp_path: Path) -> tuple[AlertMessage, Path]:
    events = [_event(0), _event(1), _event(2, "expanded")]
    geojson = write_events_geojson(events, EPSG, tmp_path / "ne-suriname-events.geojson")
    message = render_alert("ne-suriname", "Northeast Suriname", START, END, events)
    return message, geojson


def test_email_reaches_smtp_server(
    smtp_server: tuple[int, Inbox], alert: tuple[AlertMessage, Path]
) -> None:
    port, handler = smtp_server
    message, geojson = alert
    channel = channel_from_url(
        f"mailto://127.0.0.1:{port}/alerts@example.org?from=asmspotter@example.org&cto=5"
    )

    result = send_alert(message, channel, [geojson])

    assert result == DeliveryResult(channel=channel, ok=True, error=None), result.error
    (rcpt, raw) = handler.received[0]
    assert rcpt == ["alerts@example.org"]
    mail = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(mail, EmailMessage)
    assert mail["Subject"] == message.title
    assert "alerts@example.org" in mail["To"]

    html_part = mail.get_body(preferencelist=("html",))
    assert html_part is not None, "the email carries an HTML part"
    html_text = html_part.get_content()
    assert "<table" in html_text and "demo-0002" in html_text

    attachments = list(mail.iter_attachments())
    geo = [a for a in attachments if a.get_filename() == geojson.name]
    assert geo, [a.get_filename() for a in attachments]
    assert geo[0].get_content_type() == "application/geo+json"
    payload = geo[0].get_payload(decode=True)
    assert isinstance(payload, bytes)
    data = json.loads(payload)
    assert [f["properties"]["site_id"] for f in data["features"]] == [
        "demo-0000",
        "demo-0001",
        "demo-0002",
    ]


def test_json_webhook_gets_title_body_and_attachment(
    webhook_server: tuple[int, list[dict[str, Any]]], alert: tuple[AlertMessage, Path]
) -> None:
    port, received = webhook_server
    message, geojson = alert
    channel = channel_from_url(f"json://127.0.0.1:{port}/hook?cto=5&rto=5")

    result = send_alert(message, channel, [geojson])

    assert result.ok, result.error
    (request,) = received
    assert request["path"] == "/hook"
    body = request["body"]
    assert body["title"] == message.title
    assert body["message"].strip() == message.body_text.strip(), "text channels get the text body"
    (attachment,) = body["attachments"]
    assert attachment["filename"] == geojson.name
    assert attachment["mimetype"] == "application/geo+json"
    data = json.loads(base64.b64decode(attachment["base64"]))
    assert data["type"] == "FeatureCollection" and len(data["features"]) == 3


def test_down_channel_fails_alone(
    webhook_server: tuple[int, list[dict[str, Any]]], alert: tuple[AlertMessage, Path]
) -> None:
    """A closed port gives ok=False naming the channel; the next channel still gets it."""
    port, received = webhook_server
    message, geojson = alert
    down = channel_from_url(f"json://bot:pa55word@127.0.0.1:{free_port()}/hook?cto=2&rto=2")
    up = channel_from_url(f"json://127.0.0.1:{port}/hook?cto=5&rto=5")

    results = [send_alert(message, channel, [geojson]) for channel in (down, up)]

    assert not results[0].ok
    assert results[0].error is not None
    assert down.label in results[0].error
    assert "***" in down.label
    assert "pa55word" not in results[0].error
    assert "Connection" in results[0].error or "refused" in results[0].error, results[0].error
    assert results[1].ok, results[1].error
    assert len(received) == 1
