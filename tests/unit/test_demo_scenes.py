"""Demo scenes are asked for by the run, never made by the provider factory."""

from __future__ import annotations

import textwrap
from pathlib import Path

from asmspotter import samples
from asmspotter.aoi import load_aoi
from asmspotter.providers import resolve_provider
from asmspotter.settings import Settings

SQUARE = "[[[-55.0, 5.0], [-54.99, 5.0], [-54.99, 5.01], [-55.0, 5.01], [-55.0, 5.0]]]"


def write_aoi(aoi_dir: Path) -> Path:
    """An AOI with a demo-generating local source first and a plain local folder second."""
    aoi_dir.mkdir(parents=True)
    path = aoi_dir / "two-folders.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            name: two-folders
            title: Two local folders
            geometry: {{type: Polygon, coordinates: {SQUARE}}}
            sources:
              - provider: local
                path: "{{data_dir}}/samples/generated"
                resolution_m: 20
                generate_demo_scenes: true
              - provider: local
                path: plain
            schedule: {{revisit_days: 30, window_days: 30, start_date: 2024-01-01}}
            detection: {{model: s2-unet-v1, min_area_ha: 1.0}}
            """
        )
    )
    return path


def test_the_provider_factory_only_reads_the_folder(tmp_path):
    aoi = load_aoi(write_aoi(tmp_path / "aois"))
    settings = Settings(data_dir=tmp_path / "data")
    provider = resolve_provider(aoi.config.sources[0], aoi, settings)
    assert provider.name == "local"
    assert not (tmp_path / "data" / "samples" / "generated").exists(), "nothing generated"


def test_the_run_generates_the_series_of_each_source_that_asks(tmp_path, monkeypatch):
    aoi = load_aoi(write_aoi(tmp_path / "aois"))
    settings = Settings(data_dir=tmp_path / "data")
    calls: list[tuple[Path, float]] = []

    def record(folder: Path, geometry_lonlat: object, resolution_m: float) -> Path:
        calls.append((folder, resolution_m))
        return folder

    monkeypatch.setattr(samples, "ensure_demo_scenes", record)
    folders = samples.ensure_source_demo_scenes(aoi, settings)
    expected = (tmp_path / "data" / "samples" / "generated").resolve()
    assert folders == [expected]
    assert calls == [(expected, 20.0)], (
        "only the source with generate_demo_scenes, at its pixel size"
    )
