"""The review web app in a real browser, on the demo's store: headless Chromium + selenium.

Once per module, ``asmspotter demo`` runs for real (a subprocess on a Prefect test
server; 2-5 min) into a temporary data folder, and ``asmspotter web`` (another
subprocess) serves that folder's SQLite store and outputs. The browser checks that
the map draws the demo's six sites over the composite, that a site page shows its
area timeline and before/after chips, that a dismissal without the token is refused
and changes nothing, and that one with the token is stored.

Then the next windows run for real (``asmspotter run demo``) on scenes made from the
demo's February scenes: in March the dismissed site and a control site are gone
(painted over with the forest around them), in April both are back, which tracking
reports as ``expanded`` (grown from 0 ha). The April alert carries the control site
and not the dismissed one. Set ``ASMSPOTTER_SCREENSHOT_DIR`` to keep the screenshots
(``docs/screenshots`` comes from there).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from asmspotter.settings import PROJECT_ROOT

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.slow,
    # The first test waits for the demo (2-5 min, longer on a busy machine).
    pytest.mark.timeout(2400),
    pytest.mark.skipif(
        CHROMIUM is None or CHROMEDRIVER is None,
        reason="headless browser test needs Debian's chromium and chromium-driver "
        "(apt-get install -y chromium chromium-driver; .ci/run installs them)",
    ),
]

CLI = [sys.executable, "-m", "asmspotter.cli"]
TOKEN = "browser-test-token-0123"
AOI_NAME = "demo"
MARCH_END = dt.date(2024, 3, 31)
APRIL_END = dt.date(2024, 4, 30)
"""The two windows after the demo's: sites gone in March, back in April."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class DemoWorkspace:
    """A data folder after ``asmspotter demo``, and the environment that ran it."""

    data_dir: Path
    env: dict[str, str]

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'asmspotter.db'}"

    def cli(self, *args: str, timeout_s: float = 900) -> subprocess.CompletedProcess[str]:
        """Run ``asmspotter ARGS`` on this data folder; fail the test with its output."""
        result = subprocess.run(
            [*CLI, *args],
            env=self.env,
            cwd=self.data_dir.parent,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        assert result.returncode == 0, f"asmspotter {' '.join(args)}:\n{result.stderr[-4000:]}"
        return result


@pytest.fixture(scope="module")
def prefect_api() -> Iterator[str]:
    """One Prefect test server for this module's CLI subprocesses."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield str(PREFECT_API_URL.value())


@pytest.fixture(scope="module")
def demo(tmp_path_factory, prefect_api) -> DemoWorkspace:
    """``asmspotter demo`` run for real into a fresh data folder (its two windows)."""
    root = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "ASMSPOTTER_"))}
    env.update(
        PREFECT_API_URL=prefect_api,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        ASMSPOTTER_AOI_DIR=str(PROJECT_ROOT / "aoi_definitions"),
        ASMSPOTTER_MODELS_DIR=str(PROJECT_ROOT / "models"),
        ASMSPOTTER_DATA_DIR=str(root / "data"),
    )
    workspace = DemoWorkspace(root / "data", env)
    result = workspace.cli("demo", timeout_s=1500)
    assert result.stdout.count("✓") == 4, result.stdout  # 2 new + 2 expanded, as the truth
    return workspace


@pytest.fixture(scope="module")
def server(demo, tmp_path_factory) -> Iterator[str]:
    """``asmspotter web`` on the demo's data folder, with a write token."""
    port = _free_port()
    log = tmp_path_factory.mktemp("web") / "web.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [*CLI, "web", "--port", str(port)],
            env={**demo.env, "ASMSPOTTER_WEB_TOKEN": TOKEN},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"asmspotter web did not start:\n{log.read_text()}"
                    ) from None
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


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
    """Wait until ``condition(driver)`` is truthy; an element replaced by a page load
    that was still under way (stale) counts as not yet."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    ignored = (NoSuchElementException, StaleElementReferenceException)
    return WebDriverWait(driver, timeout_s, ignored_exceptions=ignored).until(condition)


def _shoot(driver, path: Path, *, full_page: bool = False) -> None:
    """Save a screenshot; ``full_page`` grows the window to the page's height first."""
    if full_page:
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1400, min(int(height) + 140, 4000))
    driver.save_screenshot(str(path))
    driver.set_window_size(1400, 1000)
    assert path.stat().st_size > 10_000, f"{path} looks empty"


def _last_events(database_url: str) -> dict[str, str]:
    """Each demo site's latest event kind, from the store."""
    from asmspotter.storage import Store

    with Store(database_url) as store:
        return {
            site.site_id: store.site_history(site.site_id)[-1].kind
            for site in store.sites(AOI_NAME)
        }


def test_map_renders_the_demo_sites_over_the_composite(demo, server, browser, screenshots):
    from selenium.webdriver.common.by import By

    last = _last_events(demo.database_url)
    assert sorted(last.values()) == ["expanded", "expanded", "new", "new", "unchanged", "unchanged"]
    browser.get(f"{server}/aois/{AOI_NAME}")
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#map.map-ready, #map.map-failed"))
    map_el = browser.find_element(By.ID, "map")
    assert "map-ready" in map_el.get_attribute("class"), map_el.text
    markers = browser.find_elements(By.CSS_SELECTOR, "path.site-marker")
    assert len(markers) == len(last) == 6
    for kind in ("new", "expanded", "unchanged"):
        drawn = browser.find_elements(By.CSS_SELECTOR, f"path.site-{kind}")
        assert len(drawn) == list(last.values()).count(kind), kind
    overlay = browser.find_element(By.CSS_SELECTOR, "img.composite-overlay")
    _wait(browser, lambda d: d.execute_script("return arguments[0].naturalWidth", overlay) > 0)
    # The marker opens a popup whose link leads to the site page.
    markers[0].click()
    link = _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, ".site-popup a"))
    assert link.get_attribute("href").startswith(f"{server}/sites/{AOI_NAME}-")
    popup = browser.find_element(By.CSS_SELECTOR, ".leaflet-popup")
    _wait(browser, lambda d: popup.value_of_css_property("opacity") == "1")  # faded in
    _shoot(browser, screenshots / "map.png")


def test_site_page_shows_its_timeline_and_chips(demo, server, browser, screenshots):
    from selenium.webdriver.common.by import By

    from asmspotter.storage import Store

    last = _last_events(demo.database_url)
    site_id = min(s for s, kind in last.items() if kind == "expanded")
    with Store(demo.database_url) as store:
        areas = [o.area_ha for o in store.site_history(site_id)]
    assert len(areas) == 2 and areas[1] > areas[0]

    browser.get(f"{server}/sites/{site_id}")
    points = browser.find_elements(By.CSS_SELECTOR, "#timeline circle.timeline-point")
    assert len(points) == 2
    ys = [float(p.get_attribute("cy")) for p in points]
    assert ys[0] > ys[1], f"the site grew {areas} ha (SVG y grows downwards)"
    chips = browser.find_elements(By.CSS_SELECTOR, "#pairs img")
    assert len(chips) == 3  # first look + one before/after pair
    _wait(
        browser,
        lambda d: all(d.execute_script("return arguments[0].naturalWidth", c) > 0 for c in chips),
    )
    rows = browser.find_elements(By.CSS_SELECTOR, "#history tbody tr")
    assert [r.find_elements(By.TAG_NAME, "td")[1].text for r in rows] == ["expanded", "new"]
    _shoot(browser, screenshots / "site.png", full_page=True)


def write_later_scenes(
    demo: DemoWorkspace, shift_days: int, *, erase_sites: list[str] = ()
) -> list[Path]:
    """Copy the demo's second-window scenes ``shift_days`` later into its scene folder.

    With ``erase_sites`` those sites are painted over: each pixel of a site (grown by
    40 m) takes the value of the nearest pixel around it, and is clear of cloud, so
    the run sees the place clearly and finds no mine there.
    """
    import numpy as np
    import rasterio
    from rasterio.features import rasterize
    from scipy import ndimage

    from asmspotter.grid import AOIGrid
    from asmspotter.providers.local import read_acquisition_time
    from asmspotter.samples import DEMO_WINDOW_ENDS
    from asmspotter.scene_io import write_scene
    from asmspotter.storage import Store

    folder = demo.data_dir / "samples" / AOI_NAME
    with Store(demo.database_url) as store:
        outlines = [store.site(site_id).geometry for site_id in erase_sites]
    written = []
    for path in sorted(folder.glob("*.tif")):
        if path.name.endswith(".cloudmask.tif"):
            continue
        with rasterio.open(path) as src:
            acquired = read_acquisition_time(path, src.tags())
            if acquired is None or not DEMO_WINDOW_ENDS[0] < acquired.date() <= DEMO_WINDOW_ENDS[1]:
                continue  # only the demo's second window's scenes
            dn = src.read()
            reflectance = np.where(dn > 0, dn * src.scales[0], np.nan)
            grid = AOIGrid(
                src.crs.to_epsg(),
                src.res[0],
                src.bounds.left,
                src.bounds.top,
                src.width,
                src.height,
            )
            shape, transform = (src.height, src.width), src.transform
        with rasterio.open(path.with_name(path.stem + ".cloudmask.tif")) as src:
            cloud = src.read(1).astype(bool)
        if outlines:
            hidden = rasterize([(g, 1) for g in outlines], out_shape=shape, transform=transform)
            hidden = ndimage.binary_dilation(hidden.astype(bool), iterations=4)
            _, (rows, cols) = ndimage.distance_transform_edt(hidden, return_indices=True)
            reflectance[:, hidden] = reflectance[:, rows[hidden], cols[hidden]]
            cloud[hidden] = False
        when = acquired + dt.timedelta(days=shift_days)
        scene_id = f"S2LATER_{when:%Y%m%d}"
        written.append(
            write_scene(
                folder / f"{scene_id}.tif",
                grid,
                reflectance,
                when,
                scene_id=scene_id,
                cloud_mask=cloud,
            )
        )
    assert len(written) == 3, written
    return written


def test_dismiss_without_token_is_refused_and_with_token_stops_the_next_alerts(
    demo, server, browser, screenshots
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from asmspotter.storage import Store

    last = _last_events(demo.database_url)
    dismissed = max(s for s, kind in last.items() if kind == "expanded")
    control = min(s for s, kind in last.items() if kind == "unchanged")

    def submit_dismissal(token: str) -> None:
        browser.get(f"{server}/sites/{dismissed}")
        form = browser.find_element(By.ID, "dismiss-form")
        Select(form.find_element(By.NAME, "reason")).select_by_value("river-bar")
        form.find_element(By.NAME, "note").send_keys("sand bar <exposed> in the dry season")
        if token:
            form.find_element(By.NAME, "token").send_keys(token)
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

    submit_dismissal("")
    error = _wait(browser, lambda d: d.find_element(By.ID, "error"))
    assert "refused" in error.text and "token" in error.text
    with Store(demo.database_url) as store:
        assert store.site(dismissed).status == "active"
        assert store.site_reviews(dismissed) == []
    _shoot(browser, screenshots / "refused.png")

    submit_dismissal(TOKEN)
    # The site page has a review state before the form is sent too: wait for the answer.
    _wait(browser, lambda d: d.find_element(By.ID, "review-state").text == "dismissed")
    assert "sand bar <exposed> in the dry season" in browser.find_element(By.ID, "reviews").text
    with Store(demo.database_url) as store:
        site = store.site(dismissed)
        assert (site.status, site.dismissed_reason) == ("dismissed", "river bar")
    _shoot(browser, screenshots / "dismissed.png", full_page=True)

    # March: both sites are gone (seen clear, not found), which is no alert at all.
    write_later_scenes(demo, 30, erase_sites=[dismissed, control])
    demo.cli("run", AOI_NAME, "--end", MARCH_END.isoformat())
    # April: both are back, as large as in February: `expanded` from 0 ha, alertable.
    write_later_scenes(demo, 60)
    demo.cli("run", AOI_NAME, "--end", APRIL_END.isoformat())

    with Store(demo.database_url) as store:
        for site_id in (dismissed, control):
            kinds = [(o.window_end, o.kind) for o in store.site_history(site_id)]
            assert kinds[-2:] == [(MARCH_END, "shrunk"), (APRIL_END, "expanded")], kinds
        april = store.last_successful_run(AOI_NAME)
        assert april is not None and april.window_end == APRIL_END
        delivered = {d.site_id for d in store.deliveries(april.id)}
    assert delivered == {control}, "the control site's alert went out, the dismissed one's not"
    (outbox,) = (demo.data_dir / "outbox").glob(f"{APRIL_END}-*")
    sent = "".join(p.read_text(errors="replace") for p in outbox.rglob("*") if p.is_file())
    assert control in sent and dismissed not in sent
