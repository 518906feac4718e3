"""The README's production path, command for command: a Prefect server on PostgreSQL,
``prefect deploy --all``, a process worker, ``deployment run``, ``flow-run ls``.

The commands are read from the README's "3. Work pool, deployments, workers" step
and run as written (``.venv/bin/`` is this interpreter's folder; the on-demand run
targets a tiny synthetic AOI instead of the 10 km demo, to stay quick). The flow
run is read back through the API: state, name, artifacts and asmspotter's own log
lines. A ``flows.serve`` process is then started and stopped beside the worker
deployments, which must stay untouched (not paused, same pull steps and
schedule). The asmspotter store is PostgreSQL too. Everything started is stopped,
and both databases dropped, also when the test fails.

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
from fakes import aois
from fakes.postgres import fresh_database, postgres_admin_url

pytestmark = pytest.mark.slow

DATES = [dt.date(2024, 1, d) for d in (5, 15, 25)]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def interruptible() -> None:
    """Let the child take SIGINT as from a terminal's Ctrl-C.

    A shell starts background jobs (``bash .ci/run &``) with SIGINT ignored, and children
    inherit that: ``flows.serve`` would then never see the test's Ctrl-C.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


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
            preexec_fn=interruptible,
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


README_STEP = "**3. Work pool, deployments, workers.**"
SMOKE_PARAMETERS = "-p aoi_name=worker-smoke -p end_date=2024-01-31"


def readme_commands() -> list[str]:
    """The shell commands of the README's step 3, comments dropped, in order."""
    text = (PROJECT_ROOT / "README.md").read_text()
    section = text[text.index(README_STEP) :]
    section = section[: section.index("\n**4.")]
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL):
        for line in block.splitlines():
            command = line.split("  #")[0].strip()
            if command:
                commands.append(command)
    return commands


def as_run_here(command: str) -> str:
    """A README command with this venv's folder and the smoke AOI's parameters."""
    command = command.replace(".venv/bin/", f"{BIN}/")
    return command.replace("-p aoi_name=demo -p end_date=2024-02-29", SMOKE_PARAMETERS)


def shell(command: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        ["bash", "-c", command],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"`{command}` exited {result.returncode}:\n{output}"
    return output


def write_tiny_aoi(root: Path) -> Path:
    """One 2.56 km synthetic AOI with three January scenes."""
    aoi_dir = root / "aois"
    aois.write_tiny_aoi(
        aoi_dir, root / "scenes", "worker-smoke", DATES, seed=5, title="Worker smoke test"
    )
    return aoi_dir


def test_readme_commands_lists_what_the_test_runs():
    commands = readme_commands()
    assert [c.split("prefect ", 1)[1].split()[0:2] for c in commands] == [
        ["work-pool", "create"],
        ["--no-prompt", "deploy"],
        ["deployment", "ls"],
        ["worker", "start"],
        ["deployment", "run"],
        ["flow-run", "ls"],
    ]
    assert "deploy --all" in commands[1]


def test_readme_production_path_on_a_real_server(tmp_path):
    admin_url = postgres_admin_url("the real-worker smoke test")
    aoi_dir = write_tiny_aoi(tmp_path)
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    commands = [as_run_here(c) for c in readme_commands()]
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
            COLUMNS="250",  # rich tables of `flow-run ls` unabridged
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

        create_pool, deploy_all, deployment_ls, worker, run_on_demand, flow_run_ls = commands
        shell(create_pool, env)
        deployed = shell(deploy_all, env)
        for name in ("monitor-all/daily", "monitor-aoi/on-demand", "train-model/train"):
            assert f"Deployment '{name}' successfully created" in deployed, deployed
        listed = shell(deployment_ls, env)
        for name in ("daily", "on-demand", "train", "backfill"):
            assert name in listed, listed
        before = asyncio.run(read_deployments(api_url))

        worker_log = tmp_path / "worker.log"
        stack.enter_context(background(["bash", "-c", worker], env, worker_log))
        output = shell(run_on_demand, env)
        found = re.search(r"UUID:\s*([0-9a-f-]{36})", output)
        assert found, f"no flow run id in `prefect deployment run` output:\n{output}"
        run_id = found.group(1)

        flow_run, artifacts, logs = asyncio.run(wait_for_run(api_url, run_id, timeout_s=150))
        assert flow_run.state.is_completed(), (
            f"flow run ended {flow_run.state.type}: {flow_run.state.message}\n"
            f"worker log:\n{worker_log.read_text()[-4000:]}"
        )
        assert flow_run.name == "worker-smoke/2024-01-31"
        runs = shell(flow_run_ls, env)
        assert "worker-smoke/2024-01-31" in runs and "COMPLETED" in runs.upper(), runs
        keys = {a.key for a in artifacts}
        assert {"worker-smoke-run-summary", "worker-smoke-sites"} <= keys, keys
        summary = next(a for a in artifacts if a.key == "worker-smoke-run-summary")
        assert "worker-smoke" in str(summary.data)

        # asmspotter's own lines (std logging in the core library) are in the run's
        # logs in the UI, for the flow run's tasks, on the worker path.
        messages = [log.message for log in logs]
        assert any(m.startswith("Found 3 scenes from local") for m in messages), messages
        assert any(m.startswith("Composite of 3 scenes written") for m in messages), messages
        assert any(m.startswith("Detected ") for m in messages), messages
        assert any(m.startswith("Sites: ") for m in messages), messages
        assert all(log.task_run_id is not None for log in logs if log.message.startswith("Sites: "))

        # A serve started and stopped beside the worker deployments leaves them alone.
        serve_log = tmp_path / "serve.log"
        with background([sys.executable, "-m", "flows.serve"], env, serve_log) as serving:
            wait_for_served(api_url, serving, serve_log)
            serving.send_signal(signal.SIGINT)
            serving.wait(timeout=60)
        after = asyncio.run(read_deployments(api_url))
        for name in ("daily", "on-demand", "train", "backfill"):
            assert after[name] == before[name], f"serve changed the {name} deployment"
        assert not after["daily"]["paused"] and after["daily"]["schedules"][0]["timezone"] == "UTC"

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


async def read_deployments(api_url: str) -> dict[str, dict]:
    """Name -> what a serve must never change: paused, pull steps, job variables, schedules."""
    from prefect.client.orchestration import PrefectClient

    async with PrefectClient(api=api_url) as client:
        deployments = await client.read_deployments()
    return {
        d.name: {
            "paused": d.paused,
            "pull_steps": d.pull_steps,
            "job_variables": d.job_variables,
            "schedules": [
                {
                    "active": s.active,
                    "cron": getattr(s.schedule, "cron", None),
                    "timezone": getattr(s.schedule, "timezone", None),
                }
                for s in d.schedules
            ],
        }
        for d in deployments
    }


def wait_for_served(api_url: str, process: subprocess.Popen, log: Path, timeout_s: float = 90):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"flows.serve exited:\n{log.read_text()[-3000:]}")
        names = set(asyncio.run(read_deployments(api_url)))
        if {"served-daily", "served-on-demand"} <= names:
            time.sleep(2)  # let the runner reach its polling loop
            return
        time.sleep(1)
    raise AssertionError(f"served deployments never appeared:\n{log.read_text()[-3000:]}")


async def wait_for_run(api_url: str, run_id: str, timeout_s: float):
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
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
        artifacts = await client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])),
            sort=ArtifactSort.CREATED_DESC,
            limit=100,
        )
        # Logs are shipped in batches: give the last batch a moment to land.
        await asyncio.sleep(3)
        logs = await client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run.id])), limit=200
        )
        return flow_run, artifacts, logs
