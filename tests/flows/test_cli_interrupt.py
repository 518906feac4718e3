"""Ctrl-C during ``asmspotter run``: a clean stop, as a user at a terminal sees it.

The CLI runs in its own session and gets SIGINT on its whole process group (what a
terminal's Ctrl-C does) while its STAC search waits on a catalogue that accepts the
connection and never answers. Once against the session's Prefect server, once with
no ``PREFECT_API_URL`` (Prefect's ephemeral server is then a child in the same group
and dies of the same Ctrl-C, so Prefect's own clean-up would wait on it). Either
way: exit 130 within seconds, one ``Interrupted`` line and no traceback, the run
record ``failed`` with the reason (not ``running``), the run lock free, and no
process of the group left.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from asmspotter.settings import PROJECT_ROOT

CLI = [sys.executable, "-m", "asmspotter.cli"]
WINDOW_END = dt.date(2024, 3, 31)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("api", ["server", "ephemeral"])
def test_ctrl_c_stops_a_run_cleanly(api, tmp_path):
    from prefect.settings import PREFECT_API_URL

    from asmspotter.storage import Store

    silent = socket.socket()  # accepts connections (backlog), never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    (tmp_path / "aois").mkdir()
    (tmp_path / "aois" / "hang.yaml").write_text(
        textwrap.dedent(
            f"""
            name: hang
            title: A catalogue that never answers
            geometry: {{type: Polygon, coordinates: [[[-54.1, 5.0], [-54.0, 5.0], [-54.0, 5.1], [-54.1, 5.1], [-54.1, 5.0]]]}}
            sources:
              - provider: sentinel-2-stac
                url: http://127.0.0.1:{port}/v1
            schedule: {{revisit_days: 5, window_days: 30, start_date: 2024-01-01}}
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "ASMSPOTTER_"))}
    env.update(
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_HOME=str(tmp_path / "prefect"),
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180",
        ASMSPOTTER_AOI_DIR=str(tmp_path / "aois"),
        ASMSPOTTER_DATA_DIR=str(tmp_path / "data"),
        ASMSPOTTER_MODELS_DIR=str(PROJECT_ROOT / "models"),
    )
    if api == "server":
        env["PREFECT_API_URL"] = str(PREFECT_API_URL.value())
    process = subprocess.Popen(
        [*CLI, "run", "hang", "--end", WINDOW_END.isoformat()],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    pgid = process.pid
    try:
        assert process.stderr is not None
        shown = []
        for line in process.stderr:  # wait until the run record is open
            shown.append(line)
            if line.startswith("Run "):
                break
        assert shown and shown[-1].startswith("Run "), "".join(shown)
        time.sleep(2.0)  # now in the search, waiting on the silent catalogue
        os.killpg(pgid, signal.SIGINT)
        interrupted_at = time.monotonic()
        out, err = process.communicate(timeout=60)
        took_s = time.monotonic() - interrupted_at
    finally:
        if _group_alive(pgid):
            os.killpg(pgid, signal.SIGKILL)
        process.wait(timeout=10)
        silent.close()

    assert process.returncode == 130, err
    assert took_s < 20, f"took {took_s:.0f} s to stop"
    assert "Traceback" not in err and "Traceback" not in out, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1] == (
        f"Interrupted (Ctrl-C); recorded hang {WINDOW_END} (run 1) as failed, "
        "the next run retries it."
    ), err
    assert sum(line.startswith("Interrupted") for line in lines) == 1, err
    time.sleep(0.5)
    assert not _group_alive(pgid), "a process of the interrupted CLI is still running"

    database_url = f"sqlite:///{tmp_path / 'data' / 'asmspotter.db'}"
    with Store(database_url) as store:
        (run,) = store.runs("hang")
        assert run.status == "failed" and "interrupted" in (run.message or ""), run
        with store.run_lock("hang", WINDOW_END, wait_s=0):
            pass  # free: the next run can take the window
