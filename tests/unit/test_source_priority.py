"""One source per run: the first source (in YAML order) that has scenes is used."""

from __future__ import annotations

import datetime as dt
import json
import pickle
import textwrap

import numpy as np
import pytest
from shapely.geometry import box

from asmspotter import monitor
from asmspotter.errors import ProviderNotConfiguredError
from asmspotter.grid import build_grid, to_lonlat
from asmspotter.monitor import download_scene, prepare_run, search_scenes
from asmspotter.scene_io import write_scene


def write_aoi(folder, sources_yaml):
    lonlat = to_lonlat(box(600_000, 557_440, 602_560, 560_000), 32621)
    coords = [list(c) for c in lonlat.exterior.coords]
    (folder / "prio.yaml").write_text(
        textwrap.dedent(
            f"""
            name: prio
            title: Priority test
            geometry: {{type: Polygon, coordinates: [{json.dumps(coords)}]}}
            schedule: {{start_date: 2024-01-01}}
            """
        )
        + sources_yaml
    )
    return lonlat


@pytest.fixture
def aoi_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ASMSPOTTER_AOI_DIR", str(tmp_path))
    return tmp_path


def add_scene(folder, lonlat, resolution_m, day):
    grid = build_grid(lonlat, resolution_m)
    reflectance = np.full((4, *grid.shape), 0.05, dtype=np.float32)
    write_scene(
        folder / f"S_{day}.tif", grid, reflectance, dt.datetime(2024, 1, day, tzinfo=dt.UTC)
    )


def test_falls_back_to_the_next_source_and_its_pixel_size(aoi_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "fine").mkdir()
    lonlat = write_aoi(
        aoi_dir,
        "sources:\n"
        "  - {provider: local, path: empty, resolution_m: 10}\n"
        "  - {provider: local, path: fine, resolution_m: 5}\n",
    )
    add_scene(tmp_path / "fine", lonlat, 5.0, 10)
    ctx = prepare_run("prio", dt.date(2024, 1, 31))
    assert ctx.grid.resolution_m == 10
    chosen, refs = search_scenes(ctx)
    assert chosen.source_index == 1 and chosen.grid.resolution_m == 5
    assert [r.scene_id for r in refs] == ["S_10"]


def test_first_source_with_scenes_wins(aoi_dir, tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    lonlat = write_aoi(
        aoi_dir,
        "sources:\n  - {provider: local, path: a}\n  - {provider: local, path: b}\n",
    )
    add_scene(tmp_path / "a", lonlat, 10.0, 5)
    add_scene(tmp_path / "b", lonlat, 10.0, 6)
    chosen, refs = search_scenes(prepare_run("prio", dt.date(2024, 1, 31)))
    assert chosen.source_index == 0 and [r.scene_id for r in refs] == ["S_5"]


def test_a_broken_source_is_skipped_but_all_broken_raises(aoi_dir, tmp_path):
    (tmp_path / "ok").mkdir()
    lonlat = write_aoi(
        aoi_dir,
        "sources:\n  - {provider: local, path: missing}\n  - {provider: local, path: ok}\n",
    )
    add_scene(tmp_path / "ok", lonlat, 10.0, 7)
    chosen, refs = search_scenes(prepare_run("prio", dt.date(2024, 1, 31)))
    assert chosen.source_index == 1 and len(refs) == 1

    write_aoi(aoi_dir, "sources:\n  - {provider: local, path: missing}\n")
    with pytest.raises(ProviderNotConfiguredError, match="missing does not exist"):
        search_scenes(prepare_run("prio", dt.date(2024, 1, 31)))


def test_a_run_builds_its_provider_once(aoi_dir, tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    lonlat = write_aoi(aoi_dir, "sources:\n  - {provider: local, path: a}\n")
    for day in (5, 6):
        add_scene(tmp_path / "a", lonlat, 10.0, day)
    built = []
    resolve = monitor.resolve_provider
    monkeypatch.setattr(
        monitor, "resolve_provider", lambda *args: built.append(args) or resolve(*args)
    )
    chosen, refs = search_scenes(prepare_run("prio", dt.date(2024, 1, 31)))
    scenes = [download_scene(chosen, ref) for ref in refs]
    assert [s.ref.scene_id for s in scenes] == ["S_5", "S_6"]
    assert len(built) == 1 and chosen.provider is chosen.provider
    # A pickled context (a Dask hop) leaves the provider behind and builds its own.
    copy = pickle.loads(pickle.dumps(chosen))
    assert "provider" not in vars(copy)
    assert copy.provider is not chosen.provider and len(built) == 2
