"""The review web app in a real browser: headless Chromium (Debian) driven by selenium.

A uvicorn server on 127.0.0.1 serves the store of ``fakes.review``
(AOI ``rev``: three runs, three sites). The browser checks that the map draws a
marker per site over the composite, that a site page shows its area timeline and
before/after chips, that a dismissal without the token is refused and changes
nothing, and that one with the token is stored; then the next run's alerts go out
without the dismissed site. Set ``ASMSPOTTER_SCREENSHOT_DIR`` to keep the
screenshots (the README's come from there).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fakes.review import AOI_NAME, EPSG, build_review_store

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None or CHROMEDRIVER is None,
        reason="headless browser test needs Debian's chromium and chromium-driver "
        "(apt-get install -y chromium chromium-driver; .ci/run installs them)",
    ),
]

TOKEN = "browser-test-token-0123"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def review(tmp_path_factory):
    root = tmp_path_factory.mktemp("review")
    return build_review_store(root / "data", root / "aois")


@pytest.fixture(scope="module")
def server(review) -> Iterator[str]:
    import uvicorn

    from asmspotter.web.app import WebConfig, create_app

    config = WebConfig(
        database_url=review.database_url,
        outputs_dir=review.outputs_dir,
        training_dir=review.data_dir / "training",
        write_token=TOKEN,
        aoi_dir=review.aoi_dir,
    )
    port = _free_port()
    uv = uvicorn.Server(
        uvicorn.Config(create_app(config), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start within 30 s")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    uv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in containers
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
        "--no-proxy-server",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    keep = os.environ.get("ASMSPOTTER_SCREENSHOT_DIR")
    folder = Path(keep) if keep else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _wait(driver, condition, timeout_s: float = 30):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout_s).until(condition)


def _shoot(driver, path: Path, *, full_page: bool = False) -> None:
    """Save a screenshot; ``full_page`` grows the window to the page's height first."""
    if full_page:
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1400, min(int(height) + 140, 4000))
    driver.save_screenshot(str(path))
    driver.set_window_size(1400, 1000)
    assert path.stat().st_size > 10_000, f"{path} looks empty"


def test_map_renders_a_marker_per_site_over_the_composite(server, browser, screenshots):
    from selenium.webdriver.common.by import By

    browser.get(f"{server}/aois/{AOI_NAME}")
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#map.map-ready, #map.map-failed"))
    map_el = browser.find_element(By.ID, "map")
    assert "map-ready" in map_el.get_attribute("class"), map_el.text
    markers = browser.find_elements(By.CSS_SELECTOR, "path.site-marker")
    assert len(markers) == 3
    assert len(browser.find_elements(By.CSS_SELECTOR, "path.site-expanded")) == 1
    assert len(browser.find_elements(By.CSS_SELECTOR, "path.site-new")) == 1
    overlay = browser.find_element(By.CSS_SELECTOR, "img.composite-overlay")
    _wait(browser, lambda d: d.execute_script("return arguments[0].naturalWidth", overlay) > 0)
    # The marker opens a popup whose link leads to the site page.
    markers[0].click()
    link = _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, ".site-popup a"))
    assert link.get_attribute("href").startswith(f"{server}/sites/rev-")
    popup = browser.find_element(By.CSS_SELECTOR, ".leaflet-popup")
    _wait(browser, lambda d: popup.value_of_css_property("opacity") == "1")  # faded in
    _shoot(browser, screenshots / "map.png")


def test_site_page_shows_its_timeline_and_chips(server, browser, screenshots):
    from selenium.webdriver.common.by import By

    browser.get(f"{server}/sites/rev-0001")
    points = browser.find_elements(By.CSS_SELECTOR, "#timeline circle.timeline-point")
    assert len(points) == 3
    ys = [float(p.get_attribute("cy")) for p in points]
    assert ys[0] > ys[1] > ys[2], "the site grows: 4, 9, 16 ha (SVG y grows downwards)"
    chips = browser.find_elements(By.CSS_SELECTOR, "#pairs img")
    assert len(chips) == 5  # first look + two before/after pairs
    _wait(
        browser,
        lambda d: all(d.execute_script("return arguments[0].naturalWidth", c) > 0 for c in chips),
    )
    rows = browser.find_elements(By.CSS_SELECTOR, "#history tbody tr")
    assert [r.find_elements(By.TAG_NAME, "td")[1].text for r in rows] == [
        "expanded",
        "expanded",
        "new",
    ]
    _shoot(browser, screenshots / "site.png", full_page=True)


def test_dismiss_without_token_is_refused_and_with_token_stops_alerts(
    server, browser, review, screenshots, tmp_path
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from asmspotter.storage import Store

    def submit_dismissal(token: str) -> None:
        browser.get(f"{server}/sites/rev-0002")
        form = browser.find_element(By.ID, "dismiss-form")
        Select(form.find_element(By.NAME, "reason")).select_by_value("river-bar")
        form.find_element(By.NAME, "note").send_keys("sand bar <exposed> in the dry season")
        if token:
            form.find_element(By.NAME, "token").send_keys(token)
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

    submit_dismissal("")
    error = _wait(browser, lambda d: d.find_element(By.ID, "error"))
    assert "refused" in error.text and "token" in error.text
    with Store(review.database_url) as store:
        assert store.site("rev-0002").status == "active"
    _shoot(browser, screenshots / "refused.png")

    submit_dismissal(TOKEN)
    state = _wait(browser, lambda d: d.find_element(By.ID, "review-state"))
    assert state.text == "dismissed"
    assert "sand bar <exposed> in the dry season" in browser.find_element(By.ID, "reviews").text
    with Store(review.database_url) as store:
        site = store.site("rev-0002")
        assert (site.status, site.dismissed_reason) == ("dismissed", "river bar")
    _shoot(browser, screenshots / "dismissed.png", full_page=True)

    # The next run: rev-0002 grows a little (under the AOI's 1 ha / 20 % thresholds)
    # and a new site appears; the alert carries the new site only.
    from shapely.geometry import box

    from asmspotter.alerts.dispatch import dispatch_alerts
    from asmspotter.aoi import find_aoi
    from asmspotter.events import SiteEvent

    end = dt.date(2024, 4, 30)
    with Store(review.database_url) as store:
        old = store.site("rev-0002")
        grown = old.geometry.buffer(5, join_style="mitre")
        events = [
            SiteEvent(
                "rev-0002",
                "expanded",
                grown,
                grown.area / 1e4,
                old.area_ha,
                grown.area / 1e4 - old.area_ha,
                10.0,
                0.9,
                old.centroid_lon,
                old.centroid_lat,
                old.first_seen,
                3,
                0.95,
                "highest",
            ),
            SiteEvent(
                "rev-0004",
                "new",
                box(601_000, 568_000, 601_200, 568_200),
                4.0,
                None,
                None,
                None,
                0.9,
                -54.09,
                5.14,
                end,
                3,
                0.95,
                "highest",
            ),
        ]
        run_id = store.start_run(AOI_NAME, end - dt.timedelta(days=29), end)
        store.record_events(AOI_NAME, run_id, events)
        outbox = tmp_path / "outbox"
        outcomes = dispatch_alerts(
            store,
            find_aoi(review.aoi_dir, AOI_NAME),
            run_id,
            end - dt.timedelta(days=29),
            end,
            events,
            epsg=EPSG,
            alert_dir=tmp_path / "alerts",
            outbox_dir=outbox,
        )
        delivered = {d.site_id for d in store.deliveries(run_id)}
    assert [o.n_events for o in outcomes if o.status == "outbox"] == [1]
    assert delivered == {"rev-0004"}
    sent = "".join(p.read_text(errors="replace") for p in outbox.rglob("*") if p.is_file())
    assert "rev-0004" in sent and "rev-0002" not in sent
