"""What ``asmspotter run`` prints, as a user sees it (a subprocess on the test server).

Quiet by default: one line per stage, no Prefect "Finished in state" lines, and a
failure is one ``Error:`` line, never a traceback; ``-v`` shows Prefect's lines;
``-q`` only errors. No process is left behind.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from asmspotter.settings import PROJECT_ROOT
from fakes.aois import write_tiny_aoi

CLI = [sys.executable, "-m", "asmspotter.cli"]
DATES = [dt.date(2024, 1, d) for d in (5, 15, 25)]


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory, prefect_server):
    from prefect.settings import PREFECT_API_URL

    root = tmp_path_factory.mktemp("cli")
    write_tiny_aoi(root / "aois", root / "scenes", "cli-tiny", DATES, seed=11)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "ASMSPOTTER_"))}
    env.update(
        PREFECT_API_URL=str(PREFECT_API_URL.value()),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        ASMSPOTTER_AOI_DIR=str(root / "aois"),
        ASMSPOTTER_DATA_DIR=str(root / "data"),
        ASMSPOTTER_MODELS_DIR=str(PROJECT_ROOT / "models"),
    )
    return env


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=env, cwd=Path.cwd(), capture_output=True, text=True, timeout=300
    )


def test_default_run_prints_one_line_per_stage(cli_env):
    result = run_cli(["run", "cli-tiny", "--end", "2024-01-31"], cli_env)
    assert result.returncode == 0, result.stdout + result.stderr
    err = result.stderr
    assert "Finished in state" not in err and "Traceback" not in err, err
    stage_lines = [line for line in err.splitlines() if line.strip()]
    assert any(line.startswith("Found 3 scenes from local") for line in stage_lines), err
    assert any(line.startswith("Composite of 3 scenes") for line in stage_lines), err
    assert any(line.startswith("Detected ") for line in stage_lines), err
    assert any(line.startswith("Sites: ") for line in stage_lines), err
    assert len(stage_lines) <= 12, err
    assert "cli-tiny 2024-01-" in result.stdout and "..2024-01-31" in result.stdout


def test_a_failing_run_is_one_error_line_without_traceback(cli_env):
    result = run_cli(["run", "nowhere", "--end", "2024-01-31"], cli_env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "Finished in state" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "nowhere" in errors[0], result.stderr


def test_quiet_prints_only_errors_and_verbose_shows_prefect(cli_env):
    quiet = run_cli(["-q", "run", "nowhere", "--end", "2024-01-31"], cli_env)
    assert quiet.returncode == 1
    assert [line for line in quiet.stderr.splitlines() if line.strip()] == [
        line for line in quiet.stderr.splitlines() if line.startswith("Error: ")
    ], quiet.stderr
    verbose = run_cli(["-v", "run", "nowhere", "--end", "2024-01-31"], cli_env)
    assert verbose.returncode == 1
    assert "Finished in state" in verbose.stderr, verbose.stderr
