"""Alerts through real clients on 127.0.0.1: email (aiosmtpd), a json:// webhook, a down channel.

The store is a SQLite file; the AOI file is written by the test; events are built
by hand in the AOI's UTM zone, so every expectation is known by construction.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import box

from asmspotter.alerts.deliver import write_outbox
from asmspotter.alerts.dispatch import dispatch_alerts, stale_data_reason
from asmspotter.alerts.quicklook import build_run_quicklooks
from asmspotter.alerts.render import render_alert
from asmspotter.aoi import load_aoi
from asmspotter.composite.composite import COMPOSITE_BANDS
from asmspotter.events import SiteEvent
from asmspotter.storage import Store
from fakes.smtp import free_port, serve_smtp
from fakes.webhook import serve_json_webhook

EPSG = 32621
LEFT, TOP = 600_000.0, 560_000.0
JAN, FEB = dt.date(2024, 1, 31), dt.date(2024, 2, 29)


@pytest.fixture
def webhook() -> Iterator[tuple[int, list[dict[str, Any]]]]:
    with serve_json_webhook() as (port, received):
        yield port, received


def write_composite(path: Path) -> Path:
    data = np.full((len(COMPOSITE_BANDS), 120, 120), 0.05, dtype=np.float32)
    data[COMPOSITE_BANDS.index("red"), 40:60, 40:60] = 0.3
    profile = {
        "driver": "GTiff",
        "width": 120,
        "height": 120,
        "count": data.shape[0],
        "dtype": "float32",
        "crs": f"EPSG:{EPSG}",
        "transform": from_origin(LEFT, TOP, 10, 10),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def site_event(site_id: str, kind: str, size_m: float, first_seen: dt.date) -> SiteEvent:
    geometry = box(LEFT + 300, TOP - 300 - size_m, LEFT + 300 + size_m, TOP - 300)
    return SiteEvent(
        site_id=site_id,
        kind=kind,
        geometry=geometry,  # type: ignore[arg-type]
        area_ha=geometry.area / 1e4,
        previous_area_ha=None,
        growth_ha=1.5 if kind == "expanded" else None,
        growth_pct=50.0 if kind == "expanded" else None,
        mean_probability=0.87,
        centroid_lon=-54.09,
        centroid_lat=5.06,
        first_seen=first_seen,
        clear_observations=4,
    )


def make_aoi(folder: Path, urls: list[str]) -> Any:
    channels = "\n".join(f'  - url: "{u}"\n    events: [new, expanded, run_failed]' for u in urls)
    (folder / "tc.yaml").write_text(
        textwrap.dedent("""\
        name: tc
        title: Test creek
        geometry: {type: Polygon, coordinates: [[[-54.1, 5.05], [-54.08, 5.05], [-54.08, 5.07], [-54.1, 5.05]]]}
        sources: [{provider: local, path: scenes}]
        schedule: {revisit_days: 5, window_days: 30, start_date: 2024-01-01}
        alerts_policy: {max_periods_without_data: 2}
        labels: {Marowijne ferry: [-54.10, 5.05]}
        alerts:
        """)
        + channels
        + "\n"
    )
    return load_aoi(folder / "tc.yaml")


def run_window(store: Store, aoi: Any, end: dt.date, events: list[SiteEvent], tmp: Path):
    run_id = store.start_run("tc", end - dt.timedelta(days=29), end)
    store.record_events("tc", run_id, events)
    composite = write_composite(tmp / str(end) / "composite.tif")
    quicklook = build_run_quicklooks(composite, events, EPSG, tmp / str(end) / "ql", title="t")
    outcomes = dispatch_alerts(
        store,
        aoi,
        run_id,
        end - dt.timedelta(days=29),
        end,
        events,
        epsg=EPSG,
        alert_dir=tmp / str(end) / "alerts",
        outbox_dir=tmp / "outbox",
        quicklook=quicklook,
    )
    store.finish_run(run_id, "completed", composite_path=composite)
    return outcomes


def assert_field_exports(files: dict[str, bytes], tmp: Path) -> None:
    """KML, GPX, CSV and GeoPackage of the alert each hold site tc-0001 at its place."""
    import csv
    import io
    import xml.etree.ElementTree as ET

    import geopandas as gpd

    stem = "tc-2024-01-31-sites"
    kml = ET.fromstring(files[f"{stem}.kml"])
    ns = {"k": "http://www.opengis.net/kml/2.2"}
    assert [p.findtext("k:name", namespaces=ns) for p in kml.iter(f"{{{ns['k']}}}Placemark")]
    assert b"tc-0001" in files[f"{stem}.kml"] and b"<Style" in files[f"{stem}.kml"]
    gpx = ET.fromstring(files[f"{stem}.gpx"])
    waypoints = [w for w in gpx.iter() if w.tag.endswith("wpt")]
    assert len(waypoints) == 1
    assert abs(float(waypoints[0].get("lat", "nan")) - 5.06) < 0.05
    rows = list(csv.DictReader(io.StringIO(files[f"{stem}.csv"].decode("utf-8"))))
    assert [r["site_id"] for r in rows] == ["tc-0001"]
    gpkg = tmp / "check.gpkg"
    gpkg.write_bytes(files[f"{stem}.gpkg"])
    frame = gpd.read_file(gpkg)
    assert list(frame["site_id"]) == ["tc-0001"] and frame.crs.to_epsg() == 4326


def _message_of(events: list[SiteEvent], aoi: Any, tmp: Path, packet_name: str) -> Any:
    """The message dispatch rendered for the January run (same inputs)."""
    ql = tmp / str(JAN) / "ql"
    images = [ql / "quicklook.png"]
    return render_alert(
        "tc",
        aoi.title,
        JAN - dt.timedelta(days=29),
        JAN,
        events,
        files_note="Attached: quicklook.png, tc-2024-01-31-events.geojson, "
        + ", ".join(f"tc-2024-01-31-sites.{ext}" for ext in ("kml", "gpx", "csv", "gpkg"))
        + f", {packet_name}.",
        labels=aoi.config.labels,
        image_names=[p.name for p in images],
        max_sites=aoi.config.alerts_policy.max_sites_listed,
    )


def test_email_and_json_webhook_carry_html_images_and_geojson(tmp_path, webhook):
    port_http, posts = webhook
    with serve_smtp() as (port, inbox):
        aoi = make_aoi(
            tmp_path,
            [
                f"mailto://127.0.0.1:{port}/field@example.org?from=asm@example.org",
                f"json://127.0.0.1:{port_http}/hook",
            ],
        )
        store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
        store.upsert_aoi("tc", "Test creek", EPSG)
        events = [site_event("tc-0001", "new", 200, JAN)]
        outcomes = run_window(store, aoi, JAN, events, tmp_path)
        assert [o.status for o in outcomes] == ["delivered", "delivered"], outcomes
        assert len(inbox.messages) == 1
        message = inbox.messages[0]
        assert message["Subject"].startswith("asmspotter: 1 new mining site in Test creek")
        assert inbox.received[0][0] == ["field@example.org"]
        html = message.get_body(("html",)).get_content()
        assert "tc-0001" in html and "Marowijne ferry" in html and "cid:quicklook.png" in html
        plain = message.get_body(("plain",)).get_content()
        for body in (html, plain, posts[0]["message"] if posts else plain):
            assert str(tmp_path) not in body, "no server paths in a message"
            assert "asmspotter sites dismiss tc-0001 --reason" in body
        assert "bearing" in html and "Attached: quicklook.png" in html
        assert len(inbox.received[0][1]) <= 500_000, "the e-mail fits a field phone's budget"
        parts = {p.get_filename(): p for p in message.walk() if p.get_filename()}
        packet = next(n for n in parts if n.startswith("tc-2024-01-31-evidence-"))
        assert packet.endswith(".zip") and packet in html, "the packet is attached and named"
        # The plain part is the project's own text, exactly what the outbox keeps.
        import difflib

        outbox = write_outbox(_message_of(events, aoi, tmp_path, packet), [], tmp_path / "ob")
        expected_text = (outbox / "message.txt").read_text(encoding="utf-8").strip()
        got_text = plain.replace("\r\n", "\n").strip()
        assert got_text == expected_text, "\n".join(
            difflib.unified_diff(expected_text.splitlines(), got_text.splitlines(), lineterm="")
        )
        assert parts["quicklook.png"].get_content_type() == "image/png"
        assert parts["quicklook.png"].get_payload(decode=True)[:8] == b"\x89PNG\r\n\x1a\n"
        geojson_name = "tc-2024-01-31-events.geojson"
        geojson = json.loads(parts[geojson_name].get_payload(decode=True))
        assert [f["properties"]["site_id"] for f in geojson["features"]] == ["tc-0001"]
        assert_field_exports(
            {name: p.get_payload(decode=True) for name, p in parts.items()}, tmp_path
        )

    assert len(posts) == 1
    post = posts[0]
    assert post["title"] == message["Subject"]
    assert "tc-0001" in post["message"]
    names = {a["filename"]: a for a in post["attachments"]}
    assert base64.b64decode(names["quicklook.png"]["base64"])[:4] == b"\x89PNG"
    assert json.loads(base64.b64decode(names[geojson_name]["base64"]))["features"]
    assert_field_exports({n: base64.b64decode(a["base64"]) for n, a in names.items()}, tmp_path)


def test_down_channel_does_not_block_and_is_retried_once_next_run(tmp_path, webhook):
    port_http, posts = webhook
    dead_port = free_port()  # nothing listens here
    aoi_dead = make_aoi(
        tmp_path,
        [
            f"json://127.0.0.1:{dead_port}/hook",
            f"json://127.0.0.1:{port_http}/hook",
        ],
    )
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.upsert_aoi("tc", "Test creek", EPSG)
    first = run_window(store, aoi_dead, JAN, [site_event("tc-0001", "new", 200, JAN)], tmp_path)
    assert [o.status for o in first] == ["failed", "delivered"]
    assert len(posts) == 1

    # The dead channel comes back on the same URL (same channel id): serve it now.
    aoi = aoi_dead
    with serve_json_webhook(dead_port, posts):
        feb_events = [
            site_event("tc-0001", "expanded", 260, JAN),
            site_event("tc-0002", "new", 150, FEB),
        ]
        second = run_window(store, aoi, FEB, feb_events, tmp_path)
        assert [o.status for o in second] == ["delivered", "delivered"]
        assert second[0].n_resent == 1 and second[0].n_events == 3
        assert second[1].n_resent == 0 and second[1].n_events == 2
        resent_post = posts[1]
        assert "resent" in resent_post["title"] and "2024-01-31" in resent_post["message"]
        # A repeat of the February window sends nothing, to either channel.
        again = run_window(store, aoi, FEB, feb_events, tmp_path)
        assert [o.status for o in again] == ["nothing-new", "nothing-new"]
        assert len(posts) == 3
    rows = {
        (d.event_key, d.channel_label): (d.status, d.attempts)
        for r in (1, 2)
        for d in store.deliveries(r)
    }
    dead_label = f"json://127.0.0.1:{dead_port}/hook"
    assert rows[("tc-0001:new:2024-01-31", dead_label)] == ("delivered", 2)


def test_dismissed_site_is_silent_unless_it_outgrows_the_thresholds(tmp_path, webhook):
    port_http, posts = webhook
    aoi = make_aoi(tmp_path, [f"json://127.0.0.1:{port_http}/hook"])
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.upsert_aoi("tc", "Test creek", EPSG)
    run_window(store, aoi, JAN, [site_event("tc-0001", "new", 200, JAN)], tmp_path)  # 4 ha
    store.dismiss_site("tc-0001", "river sandbar")
    # Grows to 4.84 ha: +0.84 ha is under the default min_growth_ha of 1 ha.
    small = run_window(store, aoi, FEB, [site_event("tc-0001", "expanded", 220, JAN)], tmp_path)
    assert small[0].status == "nothing-new"
    # Grows to 9 ha: +5 ha and +125 %, over both thresholds.
    big = run_window(
        store, aoi, dt.date(2024, 3, 30), [site_event("tc-0001", "expanded", 300, JAN)], tmp_path
    )
    assert big[0].status == "delivered" and len(posts) == 2


def test_no_data_for_too_long_is_stale(tmp_path):
    aoi = make_aoi(tmp_path, ["json://127.0.0.1:9/hook"])
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.upsert_aoi("tc", "Test creek", EPSG)
    run_id = store.start_run("tc", dt.date(2024, 1, 2), JAN)
    store.finish_run(run_id, "completed")
    assert stale_data_reason(store, aoi, JAN + dt.timedelta(days=10)) is None  # 2 periods
    reason = stale_data_reason(store, aoi, JAN + dt.timedelta(days=15))  # 3 periods > 2
    assert reason and "max_periods_without_data" in reason and "2024-01-31" in reason


def test_a_no_data_window_does_not_reset_the_stale_clock(tmp_path):
    aoi = make_aoi(tmp_path, ["json://127.0.0.1:9/hook"])
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.upsert_aoi("tc", "Test creek", EPSG)
    store.finish_run(store.start_run("tc", dt.date(2024, 1, 2), JAN), "completed")
    later = JAN + dt.timedelta(days=15)
    store.finish_run(store.start_run("tc", JAN, later), "no_data", message="all cloud")
    assert store.runs("tc")[-1].status == "no_data"
    reason = stale_data_reason(store, aoi, later)  # 3 periods since the last clear look
    assert reason and "2024-01-31" in reason
