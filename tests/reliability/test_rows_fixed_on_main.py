"""Rows 1, 9 (local files), 11, 12, 13 (truncated weights) and 14, fixed before this suite.

All the bad AOI files of the issue sit in one folder beside a good one: each is
reported with its file and field, and the good AOI still validates and is planned.
Row 11 runs the flow on a window whose scenes are all cloud.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from reliability_helpers import WINDOW_END, make_workspace
from typer.testing import CliRunner

from asmspotter.cli import app
from asmspotter.errors import ModelMismatchError, SceneReadError
from asmspotter.settings import PROJECT_ROOT

SQUARE = [[-55.0, 5.0], [-54.98, 5.0], [-54.98, 5.02], [-55.0, 5.02], [-55.0, 5.0]]


def _aoi(folder: Path, name: str, *, start: str = "2024-01-01", ring=SQUARE, model="s2-unet-v1"):
    (folder / f"{name}.yaml").write_text(
        f"name: {name}\ntitle: {name}\n"
        f"geometry: {{type: Polygon, coordinates: [{json.dumps(ring)}]}}\n"
        "sources: [{provider: local, path: /nonexistent}]\n"
        f"schedule: {{revisit_days: 5, window_days: 30, start_date: {start}}}\n"
        f"detection: {{model: {model}}}\n"
    )


def test_every_bad_aoi_file_is_named_and_the_good_one_goes_on(tmp_path, monkeypatch):
    _aoi(tmp_path, "good")
    _aoi(tmp_path, "feb30", start="2024-02-30")  # row 1
    _aoi(tmp_path, "month13", start="2025-13-01")  # row 1
    _aoi(tmp_path, "unclosed", ring=SQUARE[:-1])  # row 12
    _aoi(tmp_path, "empty", ring=[])  # row 12
    _aoi(tmp_path, "nomodel", model="s2-unet-v9")  # row 14
    monkeypatch.setenv("ASMSPOTTER_AOI_DIR", str(tmp_path))
    monkeypatch.setenv("ASMSPOTTER_MODELS_DIR", str(PROJECT_ROOT / "models"))
    runner = CliRunner()

    result = runner.invoke(app, ["aoi", "validate"])
    assert result.exit_code == 1
    lines = {
        line.split(".yaml")[0].rsplit("/", 1)[-1]: line
        for line in result.output.splitlines()
        if ".yaml" in line
    }
    assert lines["good"].startswith("✓")
    for bad, field in [
        ("feb30", "start_date"),
        ("month13", "start_date"),
        ("unclosed", "geometry"),
        ("empty", "geometry"),
        ("nomodel", "detection.model"),
    ]:
        assert lines[bad].startswith("✗") and field in lines[bad], lines[bad]

    listed = runner.invoke(app, ["aoi", "list"])
    assert listed.exit_code == 0 and "good" in listed.output

    from asmspotter.monitor import plan_monitoring

    plan = plan_monitoring(dt.date(2024, 1, 31))
    # A missing model is refused by `aoi validate`; the registry plans it and its run
    # fails alone with ModelNotFoundError, while the good AOI runs.
    assert plan.due == ["good", "nomodel"] and len(plan.invalid) == 4


def test_local_eight_bit_scene_is_refused_naming_it(tmp_path, monkeypatch):
    ws = make_workspace(tmp_path, monkeypatch)
    from asmspotter.aoi import find_aoi
    from asmspotter.providers.base import TimeWindow
    from asmspotter.providers.local import LocalProvider

    good = sorted(p for p in ws.scenes_dir.glob("*.tif") if "cloudmask" not in p.name)[0]
    with rasterio.open(good) as src:
        profile, data, tags = src.profile, src.read(), src.tags()
    profile.update(dtype="uint8")
    eight_bit = ws.scenes_dir / "EIGHT_20240120.tif"
    with rasterio.open(eight_bit, "w", **profile) as dst:
        dst.write(np.clip(data // 40, 1, 255).astype(np.uint8))
        dst.update_tags(
            **{**tags, "SCENE_ID": "EIGHT", "ACQUISITION_DATETIME": "2024-01-20T14:00:00Z"}
        )
    provider = LocalProvider(ws.scenes_dir)
    aoi = find_aoi(ws.aoi_dir, "tiny")
    (ref,) = [
        r
        for r in provider.search(aoi.geometry_lonlat, TimeWindow(dt.date(2024, 1, 1), WINDOW_END))
        if r.scene_id == "EIGHT"
    ]
    with pytest.raises(SceneReadError, match=r"8-bit"):
        provider.download(ref, ws.data_dir / "cache")


def test_truncated_weights_name_the_file(tmp_path):
    from asmspotter.detect.runtime import load_model

    model = tmp_path / "s2-unet-v1"
    shutil.copytree(PROJECT_ROOT / "models" / "s2-unet-v1", model)
    weights = model / "weights.pt"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelMismatchError, match=str(weights)):
        load_model(model, device="cpu")


@pytest.mark.usefixtures("prefect_server")
def test_an_all_cloud_window_is_no_data_and_keeps_the_clock(tmp_path, monkeypatch):
    from asmspotter.monitor import open_store
    from flows.monitor import monitor_aoi

    ws = make_workspace(tmp_path, monkeypatch, dates=[dt.date(2024, 1, 5), dt.date(2024, 1, 15)])
    for mask_path in ws.scenes_dir.glob("*.cloudmask.tif"):
        with rasterio.open(mask_path, "r+") as mask:
            mask.write(np.ones((mask.height, mask.width), np.uint8), 1)
    summary = monitor_aoi("tiny", WINDOW_END, alerts=False)
    assert len(summary.scenes_used) == 2 and summary.composite_path is None
    store = open_store(ws.database_url)
    (run,) = store.runs("tiny")
    assert run.status != "completed" and "not one clear pixel" in (run.message or "")
    assert store.last_successful_run("tiny") is None
    assert store.sites("tiny") == []
