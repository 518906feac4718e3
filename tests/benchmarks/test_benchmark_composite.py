"""Smoke test of benchmarks/composite.py: a 4 km² AOI, 2 dates, one round with the plain recipe.

Every quantity gets a row (seconds, Mpx/s, peak RSS), every ratio a row, and the three
medians are compared on real data with the sorting network as the unit.
"""

from __future__ import annotations

import os
import subprocess
import sys

import rasterio

from asmspotter.settings import PROJECT_ROOT

QUANTITIES = ("read+decode", "composite", "compute only", "write", "plain recipe")
RATIOS = (
    "composite / read+decode",
    "composite / (read+decode + write)",
    "compute only / read+decode",
    "plain recipe / composite",
)


def test_composite_benchmark_prints_stage_limits_and_ratios(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASMSPOTTER_")}
    result = subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "benchmarks" / "composite.py"),
            *("--km2", "4", "--dates", "2", "--rounds", "1", "--plain"),
            *("--out", str(tmp_path / "work")),
        ],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any("198 x 198 px (0.04 Mpx), 2 dates" in line for line in lines), result.stdout
    for name in QUANTITIES:
        rows = [line for line in lines if line.startswith(f"| {name} |")]
        assert len(rows) == 1, f"no row for {name}:\n{result.stdout}"
        seconds, mpx_per_s, peak_gib = (float(c) for c in rows[0].strip("|").split("|")[1:4])
        # Seconds print with one decimal: a 4 km² quantity may show 0.0.
        assert seconds >= 0 and mpx_per_s > 0 and 0 < peak_gib < 4
    for name in RATIOS:
        rows = [line for line in lines if line.startswith(f"| {name} |")]
        assert len(rows) == 1 and float(rows[0].split("|")[2]) > 0, result.stdout
    parts = [line for line in lines if line.startswith("| write: ")]
    assert [row.split("|")[1].strip() for row in parts] == [
        "write: chunks, wall",
        "write: chunk tiles (summed over tasks)",
        "write: overviews",
        "write: overview tiles",
    ], result.stdout
    assert all(float(row.split("|")[2]) >= 0 for row in parts), result.stdout
    tiles = float(parts[1].split("|")[2])
    assert tiles > 0, "the chunk tasks compress the tiles: their time is measured"
    network = [line for line in lines if line.startswith("| sorting network |")]
    assert network and network[0].rstrip(" |").endswith("1.0x"), result.stdout
    assert not (tmp_path / "work").exists(), "the working folder is removed unless --keep"


def test_the_write_limit_computes_one_chunk_only(tmp_path, monkeypatch):
    """ "write" is the cost of writing: its chunks copy one computed chunk, not compute."""
    sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))
    try:
        import composite as bench  # type: ignore[import-not-found]
        import pipeline  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(PROJECT_ROOT / "benchmarks"))
    from asmspotter.composite import composite as comp

    _, grid = pipeline.build_aoi(4)
    monkeypatch.setattr(comp, "DEFAULT_CHUNK_PX", 64)  # 4 x 4 chunks
    pipeline.generate_scenes(tmp_path / "scenes", grid, pipeline.acquisition_dates(2), 128, 7)
    calls = []
    real_block = comp.composite_block
    monkeypatch.setattr(
        comp, "composite_block", lambda *a, **k: calls.append(a[0].size) or real_block(*a, **k)
    )
    bench.write_only(bench.local_scenes(tmp_path / "scenes"), grid, tmp_path / "w.tif")
    assert len([size for size in calls if size]) == 1  # (dask also calls it on empty arrays)
    with rasterio.open(tmp_path / "w.tif") as src:
        assert (src.width, src.height) == (grid.width_px, grid.height_px)
