"""Row 8: a 32.6 M km² AOI.

Before: accepted; 9.2 GB of memory, then GDAL "11.8 TB needed". Now ``aoi
validate`` (and every run, through the registry) refuses an AOI larger than
``ASMSPOTTER_MAX_AOI_KM2`` (50,000 km² by default), naming the file, the area and
the fix; the other AOIs still validate.
"""

from __future__ import annotations

import json

from typer.testing import CliRunner

from asmspotter.aoi import load_registry
from asmspotter.cli import app

HUGE = [[-170.0, -60.0], [170.0, -60.0], [170.0, 60.0], [-170.0, 60.0], [-170.0, -60.0]]
SMALL = [[-55.0, 5.0], [-54.9, 5.0], [-54.9, 5.1], [-55.0, 5.1], [-55.0, 5.0]]


def _write(folder, name, ring):
    (folder / f"{name}.yaml").write_text(
        f"name: {name}\ntitle: {name}\n"
        f"geometry: {{type: Polygon, coordinates: [{json.dumps(ring)}]}}\n"
        "sources: [{provider: local, path: /nonexistent}]\n"
        "schedule: {revisit_days: 5, window_days: 30, start_date: 2024-01-01}\n"
        "detection: {model: s2-unet-v1}\n"
    )


def test_a_continent_sized_aoi_is_refused_at_validation(tmp_path, monkeypatch):
    from asmspotter.settings import PROJECT_ROOT

    _write(tmp_path, "earth", HUGE)
    _write(tmp_path, "small", SMALL)
    monkeypatch.setenv("ASMSPOTTER_AOI_DIR", str(tmp_path))
    monkeypatch.setenv("ASMSPOTTER_MODELS_DIR", str(PROJECT_ROOT / "models"))

    result = CliRunner().invoke(app, ["aoi", "validate"])
    assert result.exit_code == 1
    assert "✓" in result.output and "small" in result.output, "the other AOI still validates"
    line = next(x for x in result.output.splitlines() if "earth.yaml" in x)
    assert "km², more than the limit of 50,000 km²" in line
    assert "ASMSPOTTER_MAX_AOI_KM2" in line

    registry = load_registry(tmp_path)
    assert set(registry.aois) == {"small"} and [p.name for p in registry.errors] == ["earth.yaml"]

    # The limit is a setting: a smaller one refuses the small AOI (~123 km²) too.
    monkeypatch.setenv("ASMSPOTTER_MAX_AOI_KM2", "100")
    assert set(load_registry(tmp_path).aois) == set()
    monkeypatch.setenv("ASMSPOTTER_MAX_AOI_KM2", "200")
    assert set(load_registry(tmp_path).aois) == {"small"}
