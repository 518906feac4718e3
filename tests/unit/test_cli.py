"""The command line: exit codes and what it prints (no Prefect needed for these)."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from asmspotter.cli import app
from asmspotter.settings import PROJECT_ROOT

runner = CliRunner()


def copy_demo_aoi(folder: Path) -> None:
    """The bundled demo AOI file and the context layer it names."""
    for name in ("demo.yaml", "demo-protected-areas.geojson"):
        shutil.copy(PROJECT_ROOT / "aoi_definitions" / name, folder / name)


def test_validate_reports_every_bad_file_and_exits_1(tmp_path, monkeypatch):
    copy_demo_aoi(tmp_path)
    (tmp_path / "bad.yaml").write_text("name: bad\ntitle: x\nsources: []\n")
    (tmp_path / "worse.yaml").write_text(": : :\n")
    monkeypatch.setenv("ASMSPOTTER_AOI_DIR", str(tmp_path))
    result = runner.invoke(app, ["aoi", "validate"])
    assert result.exit_code == 1, result.output
    assert "✓" in result.output and "demo" in result.output
    assert "bad.yaml: geometry: Field required" in result.output
    assert "bad.yaml: sources: List should have at least 1 item" in result.output
    assert "worse.yaml" in result.output


def test_validate_refuses_a_model_that_does_not_exist(tmp_path, monkeypatch):
    copy_demo_aoi(tmp_path)
    text = (PROJECT_ROOT / "aoi_definitions" / "demo.yaml").read_text()
    assert "model: s2-unet-v1" in text
    other = text.replace("name: demo", "name: other").replace("s2-unet-v1", "s2-unet-v9")
    (tmp_path / "other.yaml").write_text(other)
    monkeypatch.setenv("ASMSPOTTER_AOI_DIR", str(tmp_path))
    result = runner.invoke(app, ["aoi", "validate"])
    assert result.exit_code == 1, result.output
    assert "✓" in result.output  # demo still passes
    assert "other.yaml: detection.model: found 's2-unet-v9'" in result.output
    assert "s2-unet-v1" in result.output  # the available ones are listed


def test_validate_bundled_aois_passes():
    result = runner.invoke(app, ["aoi", "validate"])
    assert result.exit_code == 0, result.output
    assert result.output.count("✓") >= 4


def test_aoi_list_shows_schedule_and_never_run(tmp_path, monkeypatch):
    copy_demo_aoi(tmp_path)
    monkeypatch.setenv("ASMSPOTTER_AOI_DIR", str(tmp_path))
    result = runner.invoke(app, ["aoi", "list"])
    assert result.exit_code == 0, result.output
    assert "demo" in result.output and "every 5 d, window 30 d" in result.output
    assert "last run: never" in result.output


def test_sites_list_for_unknown_aoi_says_none_yet():
    result = runner.invoke(app, ["sites", "list", "nowhere"])
    assert result.exit_code == 0, result.output
    assert "No sites tracked for nowhere yet" in result.output


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("asmspotter ")
