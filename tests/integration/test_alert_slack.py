"""Slack through apprise's real plugin against a fake Slack on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from apprise.plugins.slack import NotifySlack

from asmspotter.alerts.deliver import channel_from_url, send_alert
from asmspotter.alerts.render import render_alert
from fakes.events import square_site
from fakes.slack import SlackInbox, serve_slack


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[SlackInbox]:
    with serve_slack() as (base, inbox):
        monkeypatch.setattr(NotifySlack, "webhook_url", f"{base}/services")
        monkeypatch.setattr(NotifySlack, "api_url", f"{base}/api/{{}}")
        yield inbox


def _message():  # type: ignore[no-untyped-def]
    event = square_site(
        "ne-0003",
        600_000,
        559_800,
        200,
        mean_probability=0.8,
        # The place labels the tests look up lie around this point, not the square.
        centroid_lon=-54.09,
        centroid_lat=5.06,
    )
    return render_alert(
        "ne",
        "Northeast",
        dt.date(2024, 2, 1),
        dt.date(2024, 2, 29),
        [event],
        labels={"Albina": [-54.1, 5.05]},
    )


def _text(payload: dict) -> str:  # type: ignore[type-arg]
    parts = [str(payload.get("text", ""))]
    parts += [
        str(a.get("title", "")) + "\n" + str(a.get("text", ""))
        for a in payload.get("attachments", [])
    ]
    parts += [str(b) for b in payload.get("blocks", [])]
    return "\n".join(parts)


def test_webhook_shows_one_title_slack_markdown_and_says_it_cannot_carry_images(
    slack: SlackInbox, tmp_path: Path
) -> None:
    image = tmp_path / "quicklook.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    message = _message()
    url = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#mining"
    result = send_alert(message, channel_from_url(url), [image])
    assert result.ok, result.error
    (payload,) = slack.messages
    text = _text(payload)
    assert text.count(message.title) == 1, "the title once"
    assert "*ne-0003*" in text and "**" not in text, "bold in Slack mrkdwn"
    assert "<https://www.openstreetmap.org/" in text and "|5.06000, -54.09000>" in text
    assert "Slack webhooks cannot carry images" in text and "`quicklook.png`" in text
    assert str(tmp_path) not in text, "no server paths"
    assert slack.files == {}


def test_bot_token_uploads_the_images(slack: SlackInbox, tmp_path: Path) -> None:
    image = tmp_path / "quicklook.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\nfake-quicklook")
    message = _message()
    url = "slack://xoxb-1234-1234-abc124/#mining"
    result = send_alert(message, channel_from_url(url), [image])
    assert result.ok, result.error
    (payload,) = slack.messages
    assert _text(payload).count(message.title) == 1
    assert "cannot carry" not in _text(payload)
    assert list(slack.files) == ["quicklook.png"]
    assert b"fake-quicklook" in slack.files["quicklook.png"]
    assert slack.shared[0]["channel_id"] == "C0MINING"
