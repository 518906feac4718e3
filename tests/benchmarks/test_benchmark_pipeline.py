"""Smoke test of benchmarks/pipeline.py: a 4 km² AOI, 2 dates, end to end in seconds.

The table it prints must have a row per stage (search, download, composite, detect,
track) plus the total, and one summary row for the run; a 4 km² square at 10 m is
198 x 198 px after the 1.5 px inset (0.04 Mpx).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

from asmspotter.settings import PROJECT_ROOT

STAGES = ("search", "download", "composite", "detect", "track", "total")


def test_pipeline_benchmark_prints_every_stage(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASMSPOTTER_")}
    results = tmp_path / "rows.md"
    start = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "benchmarks" / "pipeline.py"),
            "--km2",
            "4",
            "--dates",
            "2",
            "--out",
            str(tmp_path / "work"),
            "--append",
            str(results),
        ],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any("198 x 198 px (0.04 Mpx), 2 dates" in line for line in lines), result.stdout
    # The precision detect ran in is printed: figures differ 10x between fp32 and bf16.
    assert re.search(r"detect precision (fp32|bf16)", result.stdout), result.stdout
    for stage in STAGES:
        rows = [line for line in lines if line.startswith(f"| {stage} |")]
        assert len(rows) == 1, f"no row for stage {stage}:\n{result.stdout}"
        seconds, mpx_per_s, peak_gib = (float(c) for c in rows[0].strip("|").split("|")[1:])
        assert seconds >= 0 and mpx_per_s >= 0 and 0 < peak_gib < 4
    row = results.read_text().strip().split("|")[1:-1]
    assert [c.strip() for c in row[:3]] == ["4", "2", "threads"]
    assert len(row) == 4 + len(STAGES) + 3
    assert not (tmp_path / "work").exists(), "the working folder is removed unless --keep"
    assert elapsed < 60, f"smoke run took {elapsed:.0f} s"
