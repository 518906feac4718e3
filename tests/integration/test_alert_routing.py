"""Legality-aware routing through the real SMTP test server: context layers tag sites,
channels subscribe by tag, and every alert and file says which layers a site lies in.

The AOI, its park layer and the sites are drawn by the test in UTM zone 21N around
(600 000 E, 559 000 N) (56.10 W 5.06 N): site ``tc-0001`` lies inside "Park A",
``tc-0002`` 5 km east of it, outside every layer.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import textwrap
import zipfile
from email.message import EmailMessage
from pathlib import Path

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry import box, mapping
from shapely.geometry.base import BaseGeometry

from asmspotter.alerts.dispatch import dispatch_alerts, send_weekly_digests
from asmspotter.aoi import AOI, load_aoi
from asmspotter.events import SiteEvent
from asmspotter.storage import Store
from fakes.events import square_site
from fakes.smtp import serve_smtp

EPSG = 32621
JAN, FEB = dt.date(2024, 1, 31), dt.date(2024, 2, 29)
FEB_START = FEB - dt.timedelta(days=29)
PARK_UTM = box(599_000, 558_000, 601_000, 560_000)
_TO_LONLAT = Transformer.from_crs(EPSG, 4326, always_xy=True)


def to_lonlat(geometry: BaseGeometry) -> BaseGeometry:
    return shapely.transform(
        geometry, lambda xy: np.column_stack(_TO_LONLAT.transform(xy[:, 0], xy[:, 1]))
    )


def site(site_id: str, x: float) -> SiteEvent:
    """A new 200 m square site (4 ha) with its south-west corner at (x, 559 000)."""
    return square_site(site_id, x, 559_000, 200, confidence="highest")


def make_aoi(folder: Path, park_url: str, all_url: str) -> AOI:
    """Two channels: the park service (Spanish, tag protected_areas) and a field team (all)."""
    (folder / "parks.geojson").write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"NAME": "Park A"},
                        "geometry": mapping(to_lonlat(PARK_UTM)),
                    }
                ],
            }
        )
    )
    (folder / "tc.yaml").write_text(
        textwrap.dedent(f"""\
        name: tc
        title: Test creek
        geometry: {{type: Polygon, coordinates: [[[-56.15, 5.02], [-56.0, 5.02], [-56.0, 5.1], [-56.15, 5.1], [-56.15, 5.02]]]}}
        sources: [{{provider: local, path: scenes}}]
        schedule: {{revisit_days: 5, window_days: 30, start_date: 2024-01-01}}
        context_layers:
          - {{name: protected_areas, path: parks.geojson, label_field: NAME}}
        alerts:
          - url: "{park_url}"
            events: [new, expanded, weekly_digest]
            tags: [protected_areas]
            language: es
          - url: "{all_url}"
            events: [new, expanded, weekly_digest]
        """)
    )
    return load_aoi(folder / "tc.yaml")


def attachment(message: EmailMessage, suffix: str) -> bytes:
    (part,) = [p for p in message.iter_attachments() if str(p.get_filename()).endswith(suffix)]
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload


def test_park_service_gets_only_park_sites_and_every_file_names_the_layer(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.upsert_aoi("tc", "Test creek", EPSG)
    events = [site("tc-0001", 600_000), site("tc-0002", 605_000)]
    with serve_smtp() as (port, inbox):
        base = f"mailto://127.0.0.1:{port}/{{}}@example.org?from=asmspotter@example.org"
        aoi = make_aoi(tmp_path, base.format("parks"), base.format("field"))
        run_id = store.start_run("tc", FEB_START, FEB)
        store.record_events("tc", run_id, events)
        outcomes = dispatch_alerts(
            store,
            aoi,
            run_id,
            FEB_START,
            FEB,
            events,
            epsg=EPSG,
            alert_dir=tmp_path / "alerts",
            outbox_dir=tmp_path / "outbox",
        )
        store.finish_run(run_id, "completed")
    assert [(o.status, o.n_events) for o in outcomes[:2]] == [("delivered", 1), ("delivered", 2)]
    by_rcpt = {m["To"].split("@")[0]: m for m in inbox.messages if "digest" not in m["Subject"]}
    park, field = by_rcpt["parks"], by_rcpt["field"]

    park_text = park.get_body(("plain",)).get_content()
    assert "tc-0001" in park_text and "tc-0002" not in park_text
    assert "dentro de: área protegida (Park A)" in park_text
    assert "Dentro de (capas de contexto)" in park.get_body(("html",)).get_content()

    field_text = field.get_body(("plain",)).get_content()
    assert "inside: protected area (Park A)" in field_text
    block_0002 = field_text.split("- tc-0002")[1].split("\n- ")[0]
    assert "inside:" not in block_0002, "a site outside every layer gets no tag"

    rows = {
        r["site_id"]: r for r in csv.DictReader(io.StringIO(attachment(field, ".csv").decode()))
    }
    assert rows["tc-0001"]["context_layers"] == "protected_areas (Park A)"
    assert rows["tc-0002"]["context_layers"] == ""
    geojson = json.loads(attachment(field, "-events.geojson"))
    tags = {f["id"]: f["properties"]["context_layers"] for f in geojson["features"]}
    assert tags == {"tc-0001": "protected_areas (Park A)", "tc-0002": None}
    kml = attachment(field, ".kml").decode()
    assert '<Data name="context_layers"><value>protected_areas (Park A)</value></Data>' in kml
    with zipfile.ZipFile(io.BytesIO(attachment(field, ".zip"))) as packet:
        record = json.loads(packet.read("alert.json"))
    assert record["sites"][0]["context_layers"] == [
        {"layer": "protected_areas", "features": ["Park A"]}
    ]


def test_weekly_digest_follows_the_channel_tags_and_language(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.upsert_aoi("tc", "Test creek", EPSG)
    run_id = store.start_run("tc", JAN - dt.timedelta(days=29), JAN)
    store.record_events("tc", run_id, [site("tc-0001", 600_000), site("tc-0002", 605_000)])
    store.finish_run(run_id, "completed")
    with serve_smtp() as (port, inbox):
        base = f"mailto://127.0.0.1:{port}/{{}}@example.org?from=asmspotter@example.org"
        aoi = make_aoi(tmp_path, base.format("parks"), base.format("field"))
        outcomes = send_weekly_digests(store, aoi, FEB, tmp_path)
    assert [(o.status, o.n_events) for o in outcomes] == [("delivered", 1), ("delivered", 2)]
    by_rcpt = {m["To"].split("@")[0]: m for m in inbox.messages}
    park = by_rcpt["parks"].get_body(("plain",)).get_content()
    assert by_rcpt["parks"]["Subject"].startswith("asmspotter resumen semanal 2024-W09: 1 sitio")
    assert "tc-0002" not in park and "dentro de: área protegida (Park A)" in park
    field = by_rcpt["field"].get_body(("plain",)).get_content()
    assert "2 active mining sites" in by_rcpt["field"]["Subject"]
    assert "inside: protected area (Park A)" in field and "tc-0002" in field
