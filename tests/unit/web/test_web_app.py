"""The review web app over HTTP (FastAPI's TestClient): pages, security, downloads.

The store comes from ``fakes.review``: AOI ``rev``, three runs and
three sites whose areas and events are known by construction.
"""

from __future__ import annotations

import json
import re
import time

import pytest
from fastapi.testclient import TestClient

from asmspotter.storage import Store
from asmspotter.web.app import WebConfig, create_app
from asmspotter.web.security import (
    CSRF_COOKIE,
    TokenFailureLimiter,
    WebConfigError,
    resolve_write_token,
)
from fakes.review import AOI_NAME, WINDOW_ENDS, build_review_store

TOKEN = "correct-horse-battery-staple"


@pytest.fixture
def review(tmp_path):
    return build_review_store(tmp_path / "data", tmp_path / "aois")


def make_client(review, token: str | None = TOKEN, **limits: float) -> TestClient:
    config = WebConfig(
        database_url=review.database_url,
        outputs_dir=review.outputs_dir,
        training_dir=review.data_dir / "training",
        write_token=token,
        aoi_dir=review.aoi_dir,
        **limits,  # type: ignore[arg-type]
    )
    return TestClient(create_app(config), base_url="http://127.0.0.1:8000")


def csrf_of(client: TestClient, site_id: str) -> str:
    page = client.get(f"/sites/{site_id}")
    assert page.status_code == 200, page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, page.text
    assert client.cookies.get(CSRF_COOKIE) == token.group(1)
    return token.group(1)


def test_index_and_map_data(review):
    client = make_client(review)
    index = client.get("/")
    assert index.status_code == 200 and f'href="/aois/{AOI_NAME}"' in index.text
    data = client.get(f"/api/aois/{AOI_NAME}/map.json").json()
    features = {f["id"]: f["properties"] for f in data["sites"]["features"]}
    assert set(features) == {"rev-0001", "rev-0002", "rev-0003"}
    assert (features["rev-0001"]["event"], features["rev-0001"]["confidence"]) == (
        "expanded",
        "highest",
    )
    assert features["rev-0003"]["event"] == "new" and features["rev-0001"]["area_ha"] == 16.0
    assert data["outline"]["type"] == "Polygon"
    assert data["window_end"] == WINDOW_ENDS[-1].isoformat()
    (south, west), (north, east) = data["overlay"]["bounds"]
    # The composites span 600-603 km E, 567-570 km N in UTM 21N: about 56.1 W, 5.1 N.
    assert 5.12 < south < north < 5.16 and -56.1 < west < east < -56.06
    png = client.get(data["overlay"]["url"])
    assert png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"


def test_site_page_shows_the_timeline_chips_and_deliveries(review):
    client = make_client(review)
    page = client.get("/sites/rev-0001")
    assert page.status_code == 200
    # One point per run, areas 4, 9, 16 ha.
    assert page.text.count('class="timeline-point') == 3
    for area in ("4.00 ha", "9.00 ha", "16.00 ha"):
        assert area in page.text
    chips = re.findall(r'src="(/sites/rev-0001/runs/\d+\.png)"', page.text)
    assert len(set(chips)) == 3
    chip = client.get(chips[0])
    assert chip.status_code == 200 and chip.content[:4] == b"\x89PNG"
    assert page.text.count("rev-0001:expanded:") == 2 and "rev-0001:new:2024-01-31" in page.text
    assert 'id="dismiss-form"' in page.text and 'id="confirm-form"' in page.text


def test_dismiss_needs_the_token_and_changes_nothing_without_it(review):
    client = make_client(review)
    csrf = csrf_of(client, "rev-0002")
    form = {"csrf_token": csrf, "decision": "dismissed", "reason": "river-bar", "note": ""}
    for token in (None, "", "wrong-token-but-long"):
        sent = form if token is None else {**form, "token": token}
        refused = client.post("/sites/rev-0002/review", data=sent, follow_redirects=False)
        assert refused.status_code == 403 and "wrong or missing token" in refused.text
    with Store(review.database_url) as store:
        assert store.site("rev-0002").status == "active"
        assert store.site_reviews("rev-0002") == []

    done = client.post(
        "/sites/rev-0002/review", data={**form, "token": TOKEN}, follow_redirects=False
    )
    assert (
        done.status_code == 303 and done.headers["location"] == "/sites/rev-0002?reviewed=dismissed"
    )
    with Store(review.database_url) as store:
        site = store.site("rev-0002")
        assert (site.status, site.dismissed_reason) == ("dismissed", "river bar")
        assert [r.source for r in store.site_reviews("rev-0002")] == ["web"]
    negatives = json.loads((review.data_dir / "training" / "negatives.geojson").read_text())
    assert [f["id"] for f in negatives["features"]] == ["rev-0002"]


def test_wrong_tokens_are_rate_limited_per_client(review):
    client = make_client(review, max_token_failures=3, token_failure_window_s=1.5)
    csrf = csrf_of(client, "rev-0002")
    form = {"csrf_token": csrf, "decision": "dismissed", "reason": "town", "note": ""}
    for _ in range(3):
        refused = client.post("/sites/rev-0002/review", data={**form, "token": "guess-guess-guess"})
        assert refused.status_code == 403
    # The fourth try is not even checked, the right token included: 429, Retry-After.
    for token in ("guess-guess-guess", TOKEN):
        limited = client.post("/sites/rev-0002/review", data={**form, "token": token})
        assert limited.status_code == 429, limited.text
        assert 1 <= int(limited.headers["retry-after"]) <= 2
        assert "too many wrong tokens" in limited.text
    with Store(review.database_url) as store:
        assert store.site("rev-0002").status == "active"
    # Once the window has passed, the right token works again.
    time.sleep(1.6)
    done = client.post(
        "/sites/rev-0002/review", data={**form, "token": TOKEN}, follow_redirects=False
    )
    assert done.status_code == 303, done.text
    with Store(review.database_url) as store:
        assert store.site("rev-0002").status == "dismissed"


def test_token_failure_limiter_slides_its_window_per_client():
    now = [0.0]
    limiter = TokenFailureLimiter(2, 60.0, max_clients=2, clock=lambda: now[0])
    limiter.record_failure("10.0.0.1")
    assert limiter.retry_after_s("10.0.0.1") is None
    now[0] = 10.0
    limiter.record_failure("10.0.0.1")
    assert limiter.retry_after_s("10.0.0.1") == 50  # the first failure leaves at t=60
    assert limiter.retry_after_s("10.0.0.2") is None  # other clients are not slowed
    now[0] = 60.0
    assert limiter.retry_after_s("10.0.0.1") is None  # one failure left in the window
    limiter.record_failure("10.0.0.1")
    assert limiter.retry_after_s("10.0.0.1") == 10
    # Beyond max_clients the least recently failing client is forgotten.
    limiter.record_failure("10.0.0.2")
    limiter.record_failure("10.0.0.3")
    assert set(limiter._failures) == {"10.0.0.2", "10.0.0.3"}
    with pytest.raises(ValueError, match="max_failures"):
        TokenFailureLimiter(0, 60.0)


def test_confirm_writes_positives_and_other_needs_a_note(review):
    client = make_client(review)
    csrf = csrf_of(client, "rev-0001")
    base = {"csrf_token": csrf, "decision": "confirmed", "token": TOKEN}
    bad = client.post("/sites/rev-0001/review", data={**base, "reason": "other", "note": " "})
    assert bad.status_code == 400 and "needs a note" in bad.text
    unknown = client.post("/sites/rev-0001/review", data={**base, "reason": "vibes"})
    assert unknown.status_code == 400 and "imagery, field, report, other" in unknown.text
    ok = client.post(
        "/sites/rev-0001/review",
        data={**base, "reason": "field", "note": "visited"},
        follow_redirects=False,
    )
    assert ok.status_code == 303
    positives = json.loads((review.data_dir / "training" / "positives.geojson").read_text())
    assert [f["properties"]["class"] for f in positives["features"]] == ["mining"]
    assert client.get("/sites/rev-0001").text.count('id="review-state">confirmed<') == 1


def test_csrf_and_origin_are_checked_before_anything(review):
    client = make_client(review)
    csrf = csrf_of(client, "rev-0002")
    form = {"decision": "dismissed", "reason": "town", "token": TOKEN}
    no_csrf = client.post("/sites/rev-0002/review", data=form)
    assert no_csrf.status_code == 403 and "CSRF" in no_csrf.text
    forged = client.post(
        "/sites/rev-0002/review",
        data={**form, "csrf_token": csrf},
        headers={"Origin": "https://evil.example"},
    )
    assert forged.status_code == 403 and "another site" in forged.text
    with Store(review.database_url) as store:
        assert store.site("rev-0002").status == "active"


def test_read_only_server_has_no_forms_and_refuses_writes(review):
    client = make_client(review, token=None)
    page = client.get("/sites/rev-0002")
    assert 'id="dismiss-form"' not in page.text and "read-only" in page.text
    csrf = client.cookies.get(CSRF_COOKIE)
    refused = client.post(
        "/sites/rev-0002/review",
        data={"csrf_token": csrf, "decision": "dismissed", "reason": "town", "token": "x" * 20},
    )
    assert refused.status_code == 403 and "read-only" in refused.text


def test_stored_strings_are_escaped(review):
    with Store(review.database_url) as store:
        store.dismiss_site("rev-0003", "town", note='<script>alert("x")</script>')
    client = make_client(review)
    page = client.get("/sites/rev-0003")
    assert '<script>alert("x")</script>' not in page.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["x-frame-options"] == "DENY"


def test_requests_never_reach_files_outside_the_outputs(review, tmp_path):
    client = make_client(review)
    for path in (
        "/sites/..%2F..%2Fetc%2Fpasswd",
        "/sites/rev-0001/runs/..%2F1.png",
        "/aois/..%2Frev/composite.png",
        "/static/..%2F..%2Fapp.py",
        "/static/../app.py",
        "/aois/rev/training/..%2F..%2Fasmspotter.db.geojson",
    ):
        response = client.get(path)
        assert response.status_code == 404, (path, response.status_code)
        assert b"SQLite" not in response.content and b"def create_app" not in response.content
    # A run whose recorded composite lies outside the outputs folder is not served.
    outside = tmp_path / "elsewhere.tif"
    (review.outputs_dir / AOI_NAME / WINDOW_ENDS[-1].isoformat() / "composite.tif").rename(outside)
    (review.outputs_dir / AOI_NAME / WINDOW_ENDS[-1].isoformat() / "composite.tif").symlink_to(
        outside
    )
    assert client.get(f"/aois/{AOI_NAME}/composite.png").status_code == 404
    run_id = review.run_ids[WINDOW_ENDS[-1]]
    assert client.get(f"/sites/rev-0001/runs/{run_id}.png").status_code == 404


@pytest.mark.parametrize("fmt", ["csv", "geojson", "kml", "gpx", "gpkg"])
def test_downloads_of_the_sites_shown(review, fmt):
    with Store(review.database_url) as store:
        store.dismiss_site("rev-0002", "river bar")
    client = make_client(review)
    everything = client.get(f"/aois/{AOI_NAME}/sites.{fmt}")
    assert everything.status_code == 200
    assert everything.headers["content-disposition"] == f'attachment; filename="rev-sites.{fmt}"'
    only = client.get(f"/aois/{AOI_NAME}/sites.{fmt}?review=dismissed&event=all")
    body = only.content
    if fmt == "gpkg":
        assert body[:16] == b"SQLite format 3\x00"
    else:
        assert b"rev-0002" in body and b"rev-0001" not in body
        assert b"rev-0001" in everything.content


def test_bad_filters_and_formats_name_the_choices(review):
    client = make_client(review)
    bad = client.get(f"/aois/{AOI_NAME}?review=maybe")
    assert bad.status_code == 400 and "all, unreviewed, confirmed, dismissed" in bad.text
    assert client.get(f"/aois/{AOI_NAME}/sites.shp").status_code == 404
    assert client.get("/aois/nowhere").status_code == 404


def test_write_token_rules(monkeypatch):
    assert resolve_write_token(None, None) is None
    assert resolve_write_token(TOKEN, None) == TOKEN
    with pytest.raises(WebConfigError, match="at least 12"):
        resolve_write_token("short", None)
    with pytest.raises(WebConfigError, match="Secret block 'no-such-block'"):
        monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
        resolve_write_token(None, "no-such-block")


def test_alerts_link_the_site_page_when_public_url_is_set(monkeypatch):
    import datetime as dt

    from shapely.geometry import box

    from asmspotter.alerts.render import render_alert
    from asmspotter.events import SiteEvent

    event = SiteEvent(
        "rev-0001",
        "new",
        box(0, 0, 200, 200),
        4.0,
        None,
        None,
        None,
        0.9,
        -54.1,
        5.1,
        dt.date(2024, 1, 31),
        3,
        0.9,
        "high",
    )
    args = ("rev", "Review", dt.date(2024, 1, 2), dt.date(2024, 1, 31), [event])
    monkeypatch.delenv("ASMSPOTTER_PUBLIC_URL", raising=False)
    assert "/sites/" not in render_alert(*args).body_text
    monkeypatch.setenv("ASMSPOTTER_PUBLIC_URL", "https://asm.example.org/")
    message = render_alert(*args)
    assert "review: https://asm.example.org/sites/rev-0001" in message.body_text
    assert '<a href="https://asm.example.org/sites/rev-0001">rev-0001</a>' in message.body_html
    assert "[rev-0001](https://asm.example.org/sites/rev-0001)" in message.body_markdown


def test_sites_show_the_context_layers_they_lie_in(review):
    """A park drawn over rev-0001 only: the map, the site page and the CSV name it."""
    from pyproj import Transformer

    from fakes.review import EPSG, ORIGIN_X_M, ORIGIN_Y_M, PIXEL_M

    to_lonlat = Transformer.from_crs(EPSG, 4326, always_xy=True)
    # rev-0001 covers pixels 60..100 from the top-left corner; the park 50..110.
    corners = [
        to_lonlat.transform(ORIGIN_X_M + c * PIXEL_M, ORIGIN_Y_M - r * PIXEL_M)
        for c, r in ((50, 110), (110, 110), (110, 50), (50, 50), (50, 110))
    ]
    park = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"NAME": "Park <A>"},
                "geometry": {"type": "Polygon", "coordinates": [corners]},
            }
        ],
    }
    (review.aoi_dir / "parks.geojson").write_text(json.dumps(park))
    aoi_file = review.aoi_dir / f"{AOI_NAME}.yaml"
    aoi_file.write_text(
        aoi_file.read_text()
        + "context_layers:\n  - {name: protected_areas, path: parks.geojson, label_field: NAME}\n"
    )
    client = make_client(review)
    data = client.get(f"/api/aois/{AOI_NAME}/map.json").json()
    inside = {f["id"]: f["properties"]["context_layers"] for f in data["sites"]["features"]}
    assert inside == {"rev-0001": "protected_areas (Park <A>)", "rev-0002": None, "rev-0003": None}
    page = client.get("/sites/rev-0001").text
    assert '<dd id="context-layers">protected_areas (Park &lt;A&gt;)</dd>' in page
    assert 'id="context-layers"' not in client.get("/sites/rev-0002").text
    csv_text = client.get(f"/aois/{AOI_NAME}/sites.csv").text
    assert "protected_areas (Park <A>)" in csv_text
