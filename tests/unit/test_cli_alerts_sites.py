"""CLI: ``alerts test``, ``sites show``, ``sites dismiss`` and ``sites export-negatives``."""

from __future__ import annotations

import datetime as dt
import json
import textwrap

import pytest
from shapely.geometry import box
from typer.testing import CliRunner

from asmspotter.cli import app
from asmspotter.events import SiteEvent
from asmspotter.storage import Store

EPSG = 32621


def event(kind: str, size_m: float) -> SiteEvent:
    geometry = box(600_000, 559_000, 600_000 + size_m, 559_000 + size_m)
    return SiteEvent(
        "demo-0001",
        kind,
        geometry,
        geometry.area / 1e4,
        None,
        None,
        None,  # type: ignore[arg-type]
        0.8,
        -54.09,
        5.06,
        dt.date(2024, 1, 31),
        3,
    )


@pytest.fixture
def data(tmp_path, monkeypatch):
    aoi_dir = tmp_path / "aois"
    aoi_dir.mkdir()
    (aoi_dir / "demo.yaml").write_text(
        textwrap.dedent("""\
        name: demo
        title: Demo
        geometry: {type: Polygon, coordinates: [[[-54.1, 5.05], [-54.08, 5.05], [-54.08, 5.07], [-54.1, 5.05]]]}
        sources: [{provider: local, path: scenes}]
        schedule: {revisit_days: 5, window_days: 30, start_date: 2024-01-01}
        detection: {expansion: {min_growth_ha: 2, min_growth_pct: 25}}
        """)
    )
    monkeypatch.setenv("ASMSPOTTER_AOI_DIR", str(aoi_dir))
    monkeypatch.setenv("ASMSPOTTER_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "data").mkdir()
    store = Store(f"sqlite:///{(tmp_path / 'data' / 'asmspotter.db').resolve()}")
    store.upsert_aoi("demo", "Demo", EPSG)
    for end, kind, size in (
        (dt.date(2024, 1, 31), "new", 200),
        (dt.date(2024, 2, 29), "expanded", 300),
    ):
        run_id = store.start_run("demo", end - dt.timedelta(days=29), end)
        store.record_events("demo", run_id, [event(kind, size)])
        store.finish_run(run_id, "completed")
    return tmp_path


def test_sites_show_prints_history_and_writes_chart_and_gpkg(data):
    result = CliRunner().invoke(app, ["sites", "show", "demo-0001"])
    assert result.exit_code == 0, result.output
    assert "2024-01-31  new" in result.output and "2024-02-29  expanded" in result.output
    chart = data / "data/outputs/demo/sites/demo-0001/demo-0001-area.png"
    gpkg = data / "data/outputs/demo/sites/demo-0001/demo-0001-outlines.gpkg"
    assert str(chart) in result.output and chart.stat().st_size > 1000
    import geopandas as gpd

    outlines = gpd.read_file(gpkg)
    assert list(outlines["window_end"]) == ["2024-01-31", "2024-02-29"], result.output


def test_dismiss_names_thresholds_and_exports_negatives(data):
    runner = CliRunner()
    result = runner.invoke(app, ["sites", "dismiss", "demo-0001", "--reason", "river sandbar"])
    assert result.exit_code == 0, result.output
    assert "more than 2 ha and more than 25%" in result.output, result.output
    auto = json.loads((data / "data/training/negatives.geojson").read_text())
    assert auto["features"][0]["properties"]["reason"] == "river sandbar"
    out = data / "neg.geojson"
    result = runner.invoke(app, ["sites", "export-negatives", "demo", str(out)])
    assert result.exit_code == 0, result.output
    feature = json.loads(out.read_text())["features"][0]
    assert feature["properties"]["site_id"] == "demo-0001"
    assert feature["properties"]["dismissed_at"]
    lon, lat = feature["geometry"]["coordinates"][0][0]
    assert -60 < lon < -50 and 0 < lat < 10, "EPSG:4326 lon/lat"
    again = runner.invoke(app, ["sites", "export-negatives", "demo", str(out)])
    assert again.exit_code == 1 and "--overwrite" in again.output


def test_alerts_test_reports_per_url(data):
    with open(data / "aois" / "demo.yaml", "a") as f:
        f.write('alerts:\n  - url: "json://127.0.0.1:9/dead"\n')
    result = CliRunner().invoke(app, ["alerts", "test", "demo"])
    assert result.exit_code == 1, result.output
    assert "FAILED json://127.0.0.1:9/dead" in result.output
