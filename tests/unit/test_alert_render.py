"""Unit tests of asmspotter.alerts: rendering, GeoJSON, outbox, channel labels. No network."""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import json
import logging
import os
from html.parser import HTMLParser
from pathlib import Path

import apprise
import geopandas as gpd
import pytest
from pyproj import Transformer
from shapely.geometry import box, shape

from asmspotter.alerts import (
    AlertMessage,
    channel_from_url,
    event_key,
    render_alert,
    send_alert,
    write_events_geojson,
    write_outbox,
)
from asmspotter.errors import AlertDeliveryError
from asmspotter.events import EventKind, SiteEvent

EPSG = 32621  # UTM zone 21N: Suriname
TO_LONLAT = Transformer.from_crs(EPSG, 4326, always_xy=True)
START = dt.date(2024, 1, 1)
END = dt.date(2024, 1, 30)


def make_event(
    i: int,
    kind: EventKind = "new",
    *,
    side_m: float = 100.0,
    site_id: str | None = None,
    growth_ha: float | None = None,
    growth_pct: float | None = None,
) -> SiteEvent:
    """A square site of ``side_m`` metres near Brokopondo, 1 km east per index.

    A 100 m square is 1 ha, so ``area_ha == side_m**2 / 10_000`` by construction.
    """
    x0, y0 = 700_000.0 + 1_000.0 * i, 550_000.0
    geom = box(x0, y0, x0 + side_m, y0 + side_m)
    lon, lat = TO_LONLAT.transform(geom.centroid.x, geom.centroid.y)
    return SiteEvent(
        site_id=site_id or f"demo-{i:04d}",
        kind=kind,
        geometry=geom,
        area_ha=side_m**2 / 10_000,
        previous_area_ha=None if kind == "new" else side_m**2 / 10_000 - (growth_ha or 0.0),
        growth_ha=growth_ha,
        growth_pct=growth_pct,
        mean_probability=0.87,
        centroid_lon=lon,
        centroid_lat=lat,
        first_seen=dt.date(2023, 12, 1) if kind != "new" else END,
        clear_observations=4,
    )


def mixed_events() -> list[SiteEvent]:
    """3 new, 1 expanded, 2 unchanged, 1 shrunk, 1 not seen."""
    return [
        make_event(0, "new", side_m=300),
        make_event(1, "new", side_m=100),
        make_event(2, "new", side_m=200),
        make_event(3, "expanded", side_m=150, growth_ha=0.45, growth_pct=25.0),
        make_event(4, "unchanged"),
        make_event(5, "unchanged"),
        make_event(6, "shrunk"),
        make_event(7, "not_seen"),
    ]


class _TableRows(HTMLParser):
    """Counts table rows and cells of an HTML document."""

    def __init__(self) -> None:
        super().__init__()
        self.rows = 0
        self.headers = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows += 1
        elif tag == "th":
            self.headers += 1


def test_event_key() -> None:
    assert event_key(make_event(3), END) == "demo-0003:new:2024-01-30"


def test_title_counts_new_and_expanding() -> None:
    msg = render_alert("ne-suriname", "Northeast Suriname", START, END, mixed_events())
    assert msg.title == (
        "asmspotter: 3 new, 1 expanding mining sites in Northeast Suriname "
        "(window 2024-01-01 – 2024-01-30)"
    )
    assert msg.event_keys == (
        "demo-0000:new:2024-01-30",
        "demo-0002:new:2024-01-30",
        "demo-0001:new:2024-01-30",
        "demo-0003:expanded:2024-01-30",
    ), "new first, then largest first"


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([make_event(0)], "asmspotter: 1 new mining site in X"),
        (
            [make_event(0, "expanded", growth_ha=1.0, growth_pct=5.0)],
            "asmspotter: 1 expanding mining site in X",
        ),
        ([make_event(0, "unchanged")], "asmspotter: no new or expanding mining sites in X"),
        ([], "asmspotter: no new or expanding mining sites in X"),
    ],
)
def test_title_singular_and_empty(events: list[SiteEvent], expected: str) -> None:
    msg = render_alert("x", "X", START, END, events)
    assert msg.title.startswith(expected + " (window 2024-01-01 – 2024-01-30)"), msg.title


def test_only_new_and_expanded_are_listed() -> None:
    msg = render_alert("ne-suriname", "Northeast Suriname", START, END, mixed_events())
    for body in (msg.body_text, msg.body_html, msg.body_markdown):
        for listed in ("demo-0000", "demo-0001", "demo-0002", "demo-0003"):
            assert listed in body
        for unlisted in ("demo-0004", "demo-0005", "demo-0006", "demo-0007"):
            assert unlisted not in body
    assert "2 unchanged, 1 shrunk, 1 not seen" in msg.body_text
    parser = _TableRows()
    parser.feed(msg.body_html)
    assert parser.rows == 1 + 4, "one header row and one row per alertable site"
    # site, event, area, location, confidence, imagery, first seen, obs, place/river
    assert parser.headers == 9


def test_site_line_content() -> None:
    event = make_event(3, "expanded", side_m=150, growth_ha=0.45, growth_pct=25.0)
    event = dataclasses.replace(event, confidence="high", verifier_score=0.873)
    msg = render_alert("x", "X", START, END, [event])
    lat, lon = f"{event.centroid_lat:.5f}", f"{event.centroid_lon:.5f}"
    url = f"https://www.openstreetmap.org/?mlat={lat}&mlon={lon}#map=15/{lat}/{lon}"
    assert 4.9 < event.centroid_lat < 5.1 and -55.3 < event.centroid_lon < -55.0
    assert url in msg.body_text
    assert f"({url})" in msg.body_markdown
    assert html.escape(url) in msg.body_html, "the & in the link is escaped in HTML"
    lines = msg.body_text.splitlines()
    first = lines.index(next(ln for ln in lines if ln.startswith("- demo-0003")))
    line = lines[first]
    assert "expanded +0.5 ha (+25%)" in line
    assert "area 2.2 ha" in line, "150 m square = 2.25 ha, one decimal"
    assert "confidence high (verifier 0.87)" in line
    block = "\n".join(lines[first : first + 8])
    assert "first seen 2023-12-01" in block
    assert "4 clear observations" in block


def test_growth_not_measurable_and_missing_probability() -> None:
    event = make_event(0, "expanded", growth_ha=None, growth_pct=None)
    event = SiteEvent(**{**event.__dict__, "mean_probability": None})
    msg = render_alert("x", "X", START, END, [event])
    assert "expanded (growth not measurable)" in msg.body_text
    assert "confidence nominal\n" in msg.body_text  # no verifier score: the level alone


def test_truncation_says_how_many_were_cut() -> None:
    """37 new sites, 25 listed: 12 more, named in every body; all 37 keys kept."""
    events = [make_event(i, side_m=100 + i) for i in range(37)]
    msg = render_alert("x", "X", START, END, events, max_sites=25)
    note = "… and 12 more sites, see the attached GeoJSON"
    assert note in msg.body_text
    assert note in msg.body_html
    assert note in msg.body_markdown
    assert len(msg.event_keys) == 37
    # Largest first: sites 36..12 are listed, 11..0 are cut.
    assert "demo-0036" in msg.body_text and "demo-0012" in msg.body_text
    assert "demo-0011" not in msg.body_text
    parser = _TableRows()
    parser.feed(msg.body_html)
    assert parser.rows == 1 + 25


def test_truncation_singular_and_no_note_when_all_fit() -> None:
    events = [make_event(i) for i in range(3)]
    assert (
        "… and 1 more site, see"
        in render_alert("x", "X", START, END, events, max_sites=2).body_text
    )
    assert "more site" not in render_alert("x", "X", START, END, events, max_sites=3).body_text


def test_html_escapes_every_string() -> None:
    evil = '<script>alert("x")</script> & Co'
    msg = render_alert(
        "evil", evil, START, END, [make_event(0, site_id="<b>s1</b>")], files_note="<i>files</i>"
    )
    assert "<script>" not in msg.body_html
    assert "<b>s1</b>" not in msg.body_html and "<i>files</i>" not in msg.body_html
    # Jinja2 (markupsafe) writes " as &#34;, html.escape as &quot;: both are escaped.
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co" in msg.body_html
    assert "&lt;b&gt;s1&lt;/b&gt;" in msg.body_html
    assert "&lt;i&gt;files&lt;/i&gt;" in msg.body_html
    assert "\\<b\\>s1\\</b\\>" in msg.body_markdown
    assert "style=" in msg.body_html and "<table" in msg.body_html, "inline CSS table"


def test_files_note_in_every_body() -> None:
    msg = render_alert("x", "X", START, END, [make_event(0)], files_note="Files: /srv/out")
    assert all("Files: /srv/out" in b for b in (msg.body_text, msg.body_html, msg.body_markdown))


def test_render_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_sites must be >= 0"):
        render_alert("x", "X", START, END, [], max_sites=-1)
    with pytest.raises(ValueError, match=r"window_end .* before window_start"):
        render_alert("x", "X", END, START, [])


def test_geojson_is_epsg4326_with_properties(tmp_path: Path) -> None:
    events = [
        make_event(0, side_m=300),
        make_event(3, "expanded", side_m=150, growth_ha=0.45, growth_pct=25.0),
    ]
    path = write_events_geojson(events, EPSG, tmp_path / "sub" / "events.geojson")
    assert path == tmp_path / "sub" / "events.geojson"
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["type"] == "FeatureCollection"
    assert "crs" not in data, "RFC 7946: lon/lat WGS84, no crs member"
    assert len(data["features"]) == 2
    props = data["features"][1]["properties"]
    assert set(props) == {
        "site_id",
        "event",
        "area_ha",
        "growth_ha",
        "growth_pct",
        "mean_probability",
        "verifier_score",
        "confidence",
        "centroid_lon",
        "centroid_lat",
        "first_seen",
        "clear_observations",
        "context_layers",
    }
    assert props["site_id"] == "demo-0003"
    assert props["event"] == "expanded"
    assert props["area_ha"] == pytest.approx(2.25)
    assert props["growth_ha"] == pytest.approx(0.45)
    assert props["growth_pct"] == pytest.approx(25.0)
    assert props["mean_probability"] == pytest.approx(0.87)
    assert props["first_seen"] == "2023-12-01"
    assert props["clear_observations"] == 4
    assert data["features"][0]["properties"]["growth_ha"] is None

    for feature, event in zip(data["features"], events, strict=True):
        geom = shape(feature["geometry"])
        # Coordinates are lon/lat degrees near the precomputed centroid.
        assert geom.centroid.x == pytest.approx(event.centroid_lon, abs=1e-5)
        assert geom.centroid.y == pytest.approx(event.centroid_lat, abs=1e-5)

    frame = gpd.read_file(path)
    assert frame.crs is not None and frame.crs.to_epsg() == 4326
    back = frame.to_crs(EPSG)
    # 300 m square = 9 ha; reprojection round trip keeps it within 0.01 ha.
    assert back.geometry.area.iloc[0] / 10_000 == pytest.approx(9.0, abs=0.01)


def test_geojson_empty_and_bad_epsg(tmp_path: Path) -> None:
    path = write_events_geojson([], EPSG, tmp_path / "empty.geojson")
    assert json.loads(path.read_text()) == {"type": "FeatureCollection", "features": []}
    with pytest.raises(ValueError, match="not a known EPSG code"):
        write_events_geojson([], 999_999, tmp_path / "bad.geojson")


def _message(*keys: str) -> AlertMessage:
    return AlertMessage(
        title="asmspotter: 1 new mining site in X",
        body_text="text\n",
        body_html="<p>html</p>\n",
        body_markdown="*md*\n",
        event_keys=keys,
    )


def test_outbox_is_idempotent(tmp_path: Path) -> None:
    attachment = tmp_path / "events.geojson"
    attachment.write_text('{"type": "FeatureCollection", "features": []}')
    outbox = tmp_path / "outbox"
    message = _message("demo-0001:new:2024-01-30")

    first = write_outbox(message, [attachment], outbox)
    second = write_outbox(message, [attachment], outbox)

    assert first == second
    assert [p.name for p in outbox.iterdir()] == [first.name]
    assert first.name.startswith("2024-01-30-")
    assert sorted(p.name for p in first.iterdir()) == [
        "events.geojson",
        "message.html",
        "message.json",
        "message.md",
        "message.txt",
    ]
    assert (first / "message.html").read_text() == "<p>html</p>\n"
    assert (first / "message.txt").read_text().startswith(message.title + "\n\ntext")
    assert (first / "events.geojson").read_text() == attachment.read_text()
    manifest = json.loads((first / "message.json").read_text())
    assert manifest["event_keys"] == ["demo-0001:new:2024-01-30"]
    assert manifest["attachments"] == ["events.geojson"]

    other = write_outbox(_message("demo-0002:new:2024-01-30"), [], outbox)
    assert other != first
    assert len(list(outbox.iterdir())) == 2


def test_outbox_records_missing_attachment(tmp_path: Path) -> None:
    folder = write_outbox(_message(), [tmp_path / "nope.png"], tmp_path / "outbox")
    assert folder.name.startswith("alert-")
    manifest = json.loads((folder / "message.json").read_text())
    assert manifest["missing_attachments"] == [str(tmp_path / "nope.png")]


@pytest.mark.parametrize(
    ("url", "label", "secret"),
    [
        (
            "mailtos://user:hunter22@smtp.example.org/to@example.org?from=me@example.org",
            "mailtos://user:***@smtp.example.org/to@example.org?from=me@example.org",
            "hunter22",
        ),
        ("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#mining", "slack://***", "TIiaj"),
        (
            "https://hooks.slack.com/services/T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ",
            "https://hooks.slack.com/***",
            "TIiaj",
        ),
        (
            "json://127.0.0.1:8080/hook?token=abcdef123&timeout=5",
            "json://127.0.0.1:8080/hook?token=***&timeout=5",
            "abcdef123",
        ),
        ("tgram://123456789:AAEsecretbottoken/12345", "tgram://***", "AAEsecret"),
    ],
)
def test_channel_label_redacts_secrets(url: str, label: str, secret: str) -> None:
    channel = channel_from_url(url)
    assert channel.label == label
    assert secret not in channel.label
    assert secret not in repr(channel)
    assert len(channel.channel_id) == 64
    assert channel.channel_id == channel_from_url(url).channel_id


def test_invalid_url_is_a_failed_result_not_an_exception() -> None:
    channel = channel_from_url("nosuchservice://s3cr3t-token-value/x")
    result = send_alert(_message("a:new:2024-01-30"), channel, [])
    assert not result.ok
    assert result.error is not None
    assert "nosuchservice://*** is not a URL apprise understands" in result.error
    assert "https://github.com/caronc/apprise/wiki" in result.error
    assert "s3cr3t" not in result.error
    with pytest.raises(AlertDeliveryError, match="not a URL apprise understands"):
        result.raise_for_error()


def test_slack_webhook_gets_markdown_and_a_files_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """apprise's notify is replaced, so nothing leaves the machine."""
    calls: list[dict[str, object]] = []

    def fake_notify(self: apprise.Apprise, **kwargs: object) -> bool:
        calls.append(kwargs)
        return True

    monkeypatch.setattr(apprise.Apprise, "notify", fake_notify)
    attachment = tmp_path / "events.geojson"
    attachment.write_text("{}")
    msg = render_alert("x", "X", START, END, [make_event(0)])
    channel = channel_from_url("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ")

    result = send_alert(msg, channel, [attachment])

    assert result.ok and result.error is None
    (call,) = calls
    assert call["attach"] is None, "Slack webhooks drop attachments; none are passed"
    assert call["body_format"] == apprise.NotifyFormat.MARKDOWN
    body = str(call["body"])
    assert body.startswith(msg.body_compact), "Slack gets the compact block"
    assert "Slack webhooks cannot carry images or files" in body
    assert "`events.geojson`" in body and str(tmp_path) not in body, "names, no server paths"


def test_email_gets_html(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, object]] = []

    def fake_notify(self: apprise.Apprise, **kwargs: object) -> bool:
        calls.append(kwargs)
        return True

    monkeypatch.setattr(apprise.Apprise, "notify", fake_notify)
    msg = render_alert("x", "X", START, END, [make_event(0)])
    channel = channel_from_url("mailto://127.0.0.1:2525/to@example.org?from=me@example.org")
    assert send_alert(msg, channel, [tmp_path / "missing.png"]).ok
    (call,) = calls
    assert call["body"] == msg.body_html
    assert call["body_format"] == apprise.NotifyFormat.HTML
    assert call["attach"] is None, "the missing file is skipped"


def test_log_capture_restores_apprise_logger_level() -> None:
    apprise_logger = logging.getLogger("apprise")
    before = apprise_logger.level
    send_alert(_message(), channel_from_url("nosuchservice://x"), [])
    assert apprise_logger.level == before
    assert not apprise_logger.filters


def test_outbox_html_links_its_image_files_and_files_have_normal_modes(tmp_path: Path) -> None:
    """Opened from the outbox in a browser, the images load; files are 0644 like other outputs."""
    import stat
    from html.parser import HTMLParser

    image = tmp_path / "quicklook.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n")
    events = [make_event(0)]
    geojson = write_events_geojson(events, 32621, tmp_path / "events.geojson")
    message = render_alert("x", "X", START, END, events, image_names=[image.name])
    assert 'src="cid:quicklook.png"' in message.body_html  # the e-mail keeps cid: links
    old_umask = os.umask(0o022)
    try:
        folder = write_outbox(message, [image, geojson], tmp_path / "outbox")
        geojson2 = write_events_geojson(events, 32621, tmp_path / "again.geojson")
    finally:
        os.umask(old_umask)

    class Images(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.sources: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "img":
                self.sources.append(dict(attrs)["src"] or "")

    parser = Images()
    parser.feed((folder / "message.html").read_text(encoding="utf-8"))
    assert parser.sources == ["quicklook.png"]
    assert all((folder / src).is_file() for src in parser.sources)
    for path in [*folder.iterdir(), geojson2]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_digest_label_and_range_are_the_same_iso_week() -> None:
    from asmspotter.alerts.render import DigestSite, iso_week_range, render_digest

    thursday = dt.date(2024, 2, 29)  # ISO 2024-W09 runs Monday 02-26 to Sunday 03-03
    assert iso_week_range(thursday) == (dt.date(2024, 2, 26), dt.date(2024, 3, 3))
    sites = [
        DigestSite("s-1", 2.0, 5.0, -54.0, dt.date(2024, 2, 26), thursday),  # this week
        DigestSite("s-2", 1.0, 5.0, -54.0, dt.date(2024, 2, 25), thursday),  # W08
    ]
    msg = render_digest("x", "X", thursday, sites)
    assert "2024-W09" in msg.title
    assert "1 site first seen in 2024-W09 (2024-02-26 – 2024-03-03)" in msg.body_text


def test_digest_lists_observation_gaps() -> None:
    """A site missing from the latest composite reads "not seen since DATE (cloud)"."""
    from asmspotter.alerts.render import DigestSite, render_digest

    end = dt.date(2024, 2, 29)
    sites = [
        DigestSite("s-1", 2.0, 5.0, -54.0, dt.date(2024, 1, 31), end),
        DigestSite("s-2", 1.0, 5.0, -54.0, dt.date(2024, 1, 1), dt.date(2024, 1, 31)),
    ]
    msg = render_digest("x", "X", end, sites)
    assert "1 site not seen in the latest composite (cloud): s-2 not seen since 2024-01-31" in (
        msg.body_text
    )
    for body in (msg.body_text, msg.body_markdown, msg.body_html):
        assert "not seen since 2024-01-31 (cloud)" in body
        assert "last seen 2024-02-29" in body, "a site seen this window says so"
    assert "s-1" in msg.body_text and "not seen since 2024-02-29" not in msg.body_text
