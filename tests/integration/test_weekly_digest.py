"""Weekly digests: one per ISO week per subscribed channel, retried until delivered."""

from __future__ import annotations

import datetime as dt
import textwrap

from asmspotter.alerts.dispatch import send_weekly_digests
from asmspotter.alerts.render import DigestSite, digest_key, render_digest
from asmspotter.aoi import load_aoi
from asmspotter.events import SiteEvent
from asmspotter.storage import Store
from fakes.events import square_site
from fakes.smtp import free_port
from fakes.webhook import serve_json_webhook

EPSG = 32621
WED_W09, THU_W09, MON_W10 = dt.date(2024, 2, 28), dt.date(2024, 2, 29), dt.date(2024, 3, 4)


def new_site(site_id: str, size_m: float, offset_m: float) -> SiteEvent:
    """A square site of ``size_m`` metres: 200 m is 4 ha."""
    return square_site(
        site_id, 600_000 + offset_m, 559_000, size_m, first_seen=dt.date(2024, 1, 31)
    )


def make_aoi(folder, urls, events="[weekly_digest]"):
    channels = "".join(f'\n  - url: "{url}"\n    events: {events}' for url in urls)
    (folder / "wd.yaml").write_text(
        textwrap.dedent("""\
        name: wd
        title: Digest creek
        geometry: {type: Polygon, coordinates: [[[-54.1, 5.05], [-54.08, 5.05], [-54.08, 5.07], [-54.1, 5.05]]]}
        sources: [{provider: local, path: scenes}]
        schedule: {revisit_days: 5, window_days: 30, start_date: 2024-01-01}
        alerts:""")
        + channels
        + "\n"
    )
    return load_aoi(folder / "wd.yaml")


def store_with_sites(tmp_path) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.upsert_aoi("wd", "Digest creek", EPSG)
    run_id = store.start_run("wd", dt.date(2024, 1, 2), dt.date(2024, 1, 31))
    store.record_events("wd", run_id, [new_site("wd-0001", 200, 0), new_site("wd-0002", 100, 500)])
    return store


def test_digest_is_sent_once_per_iso_week(tmp_path):
    store = store_with_sites(tmp_path)
    with serve_json_webhook() as (port, posts):
        aoi = make_aoi(tmp_path, [f"json://127.0.0.1:{port}/digest"])
        first = send_weekly_digests(store, aoi, WED_W09, tmp_path)
        assert [o.status for o in first] == ["delivered"] and first[0].n_events == 2
        assert len(posts) == 1
        assert "weekly digest 2024-W09" in posts[0]["title"]
        assert "2 active mining sites (5.0 ha)" in posts[0]["title"]
        assert posts[0]["message"].index("wd-0001") < posts[0]["message"].index("wd-0002")

        assert send_weekly_digests(store, aoi, THU_W09, tmp_path) == [], "same week: nothing"
        assert len(posts) == 1

        next_week = send_weekly_digests(store, aoi, MON_W10, tmp_path)
        assert [o.status for o in next_week] == ["delivered"]
        assert "2024-W10" in posts[1]["title"]


def test_a_failed_digest_is_retried_in_the_same_week(tmp_path):
    store = store_with_sites(tmp_path)
    port = free_port()
    aoi = make_aoi(tmp_path, [f"json://127.0.0.1:{port}/digest?cto=2&rto=2"])
    failed = send_weekly_digests(store, aoi, WED_W09, tmp_path)
    assert [o.status for o in failed] == ["failed"]
    assert not store.is_digest_delivered(digest_key("wd", WED_W09), _channel_id(aoi))
    with serve_json_webhook(port) as (_, posts):
        retried = send_weekly_digests(store, aoi, THU_W09, tmp_path)
    assert [o.status for o in retried] == ["delivered"] and len(posts) == 1
    assert store.is_digest_delivered(digest_key("wd", WED_W09), _channel_id(aoi))


def test_channels_without_the_subscription_get_no_digest(tmp_path):
    store = store_with_sites(tmp_path)
    with serve_json_webhook() as (port, posts):
        aoi = make_aoi(tmp_path, [f"json://127.0.0.1:{port}/a"], events="[new, expanded]")
        assert send_weekly_digests(store, aoi, WED_W09, tmp_path) == []
    assert posts == []


def test_long_digests_say_how_many_sites_were_left_out():
    sites = [
        DigestSite(f"s-{i:03d}", float(i), 5.0, -54.0, dt.date(2024, 1, 31), WED_W09)
        for i in range(30)
    ]
    message = render_digest("wd", "Digest creek", WED_W09, sites, max_sites=25)
    assert "… and 5 more sites, see the attached GeoJSON." in message.body_text
    assert message.body_text.index("s-029") < message.body_text.index("s-028")
    assert "s-004" not in message.body_text
    assert message.event_keys == ("wd:digest:2024-W09",)
    assert "&lt;" not in message.body_html and "<table" in message.body_html


def _channel_id(aoi) -> str:
    from asmspotter.alerts.deliver import channel_from_url

    return channel_from_url(aoi.config.alerts[0].resolved_url()).channel_id
