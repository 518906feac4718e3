"""Smoke test of the scaled-out path: a real Prefect server on PostgreSQL and a process worker.

Exactly what a user does (README "Scaling out"): start ``prefect server start`` with
``PREFECT_API_DATABASE_CONNECTION_URL`` on a fresh PostgreSQL database, create the
process work pool, ``prefect deploy`` ``monitor-aoi/on-demand`` from ``prefect.yaml``,
start ``prefect worker start``, trigger ``prefect deployment run`` with parameters,
wait for the flow run to finish, and read its state and artifacts back through the
client. The asmspotter store is PostgreSQL too. Everything started is stopped, and
both databases dropped, also when the test fails.

Needs ``ASMSPOTTER_TEST_DATABASE_URL`` (``.ci/run`` sets it); skips without it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from asmspotter.settings import PROJECT_ROOT
from asmspotter.testing import aois
from asmspotter.testing.postgres import fresh_database, postgres_admin_url

pytestmark = pytest.mark.slow

DATES = [dt.date(2024, 1, d) for d in (5, 15, 25)]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def background(args: list[str], env: dict[str, str], log: Path):
    """Start a process in its own group; on exit stop the group (TERM, then KILL)."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            args,
            env=env,
            cwd=PROJECT_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=10)


def wait_healthy(api_url: str, process: subprocess.Popen, log: Path, timeout_s: float = 90):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"prefect server exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(
        f"prefect server not healthy after {timeout_s} s:\n{log.read_text()[-3000:]}"
    )


def prefect_cli(args: list[str], env: dict[str, str], *, check: bool = True) -> str:
    result = subprocess.run(
        [str(BIN / "prefect"), *args],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    if check:
        assert result.returncode == 0, f"prefect {' '.join(args)} failed:\n{output}"
    return output


def deploy(env: dict[str, str]) -> None:
    """``prefect deploy --name on-demand`` from prefect.yaml.

    prefect 3.8 with fastapi 0.15x: after creating the deployment, the CLI asks the
    server for online workers with ``limit: null`` and the server answers 422, so the
    command exits 1 although the deployment exists. Accept exactly that failure.
    """
    output = prefect_cli(["--no-prompt", "deploy", "--name", "on-demand"], env, check=False)
    assert "Deployment 'monitor-aoi/on-demand' successfully created" in output, output


def write_tiny_aoi(root: Path) -> Path:
    """One 2.56 km synthetic AOI with three January scenes."""
    aoi_dir = root / "aois"
    aois.write_tiny_aoi(
        aoi_dir, root / "scenes", "worker-smoke", DATES, seed=5, title="Worker smoke test"
    )
    return aoi_dir


def test_monitor_aoi_runs_on_a_real_worker(tmp_path):
    admin_url = postgres_admin_url("the real-worker smoke test")
    aoi_dir = write_tiny_aoi(tmp_path)
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    with ExitStack() as stack:
        prefect_sync_url = stack.enter_context(fresh_database(admin_url, "prefect_smoke"))
        store_url = stack.enter_context(fresh_database(admin_url, "asm_smoke"))
        prefect_db_url = (
            sa.engine.make_url(prefect_sync_url)
            .set(drivername="postgresql+asyncpg")
            .render_as_string(hide_password=False)
        )
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("PREFECT_", "ASMSPOTTER_"))
        }
        env.update(
            PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            PREFECT_HOME=str(tmp_path / "prefect-home"),
            PREFECT_API_URL=api_url,
            PREFECT_API_DATABASE_CONNECTION_URL=prefect_db_url,
            PREFECT_SERVER_API_HOST="127.0.0.1",
            PREFECT_SERVER_API_PORT=str(port),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_LOGGING_EXTRA_LOGGERS="asmspotter",
            ASMSPOTTER_HOME=str(PROJECT_ROOT),
            ASMSPOTTER_AOI_DIR=str(aoi_dir),
            ASMSPOTTER_DATA_DIR=str(tmp_path / "data"),
            ASMSPOTTER_MODELS_DIR=str(PROJECT_ROOT / "models"),
            ASMSPOTTER_DATABASE_URL=store_url,
        )
        server_log = tmp_path / "server.log"
        server = stack.enter_context(
            background([str(BIN / "prefect"), "server", "start", "--no-ui"], env, server_log)
        )
        wait_healthy(api_url, server, server_log)

        prefect_cli(["work-pool", "create", "asmspotter-local", "--type", "process"], env)
        deploy(env)
        worker_log = tmp_path / "worker.log"
        stack.enter_context(
            background(
                [
                    str(BIN / "prefect"),
                    "worker",
                    "start",
                    "--pool",
                    "asmspotter-local",
                    "--type",
                    "process",
                ],
                env,
                worker_log,
            )
        )
        output = prefect_cli(
            [
                "deployment",
                "run",
                "monitor-aoi/on-demand",
                "-p",
                "aoi_name=worker-smoke",
                "-p",
                "end_date=2024-01-31",
            ],
            env,
        )
        found = re.search(r"UUID:\s*([0-9a-f-]{36})", output)
        assert found, f"no flow run id in `prefect deployment run` output:\n{output}"
        run_id = found.group(1)

        flow_run, artifacts = asyncio.run(wait_for_run(api_url, run_id, timeout_s=150))
        assert flow_run.state.is_completed(), (
            f"flow run ended {flow_run.state.type}: {flow_run.state.message}\n"
            f"worker log:\n{worker_log.read_text()[-4000:]}"
        )
        assert flow_run.name == "worker-smoke/2024-01-31"
        keys = {a.key for a in artifacts}
        assert {"worker-smoke-run-summary", "worker-smoke-sites"} <= keys, keys
        summary = next(a for a in artifacts if a.key == "worker-smoke-run-summary")
        assert "worker-smoke" in str(summary.data)

        engine = sa.create_engine(store_url)
        try:
            with engine.connect() as conn:
                status = conn.execute(
                    sa.text("SELECT status FROM run WHERE aoi_name = 'worker-smoke'")
                ).scalar_one()
                n_sites = conn.execute(sa.text("SELECT COUNT(*) FROM site")).scalar_one()
        finally:
            engine.dispose()
        assert status == "completed" and n_sites >= 2


async def wait_for_run(api_url: str, run_id: str, timeout_s: float):
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        FlowRunFilter,
        FlowRunFilterId,
        TaskRunFilter,
    )
    from prefect.client.schemas.sorting import ArtifactSort

    async with PrefectClient(api=api_url) as client:
        deadline = time.monotonic() + timeout_s
        while True:
            flow_run = await client.read_flow_run(uuid.UUID(run_id))
            if flow_run.state is not None and flow_run.state.is_final():
                break
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"flow run {run_id} still {flow_run.state} after {timeout_s} s"
                )
            await asyncio.sleep(1)
        # Every filter given explicitly: prefect 3.8's client sends omitted ones as
        # null, which the server (fastapi 0.15x) rejects with 422.
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(),
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])),
            task_run_filter=TaskRunFilter(),
            sort=ArtifactSort.CREATED_DESC,
            limit=100,
        )
        return flow_run, artifacts
