"""Fixtures shared by every test: no test may reach beyond this machine."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Iterator

import psutil
import pytest

_real_connect = socket.socket.connect


def _is_loopback(address: object) -> bool:
    if not isinstance(address, tuple) or not address:
        return True  # Unix sockets and socketpairs stay on this machine
    host = str(address[0])
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: would need DNS, i.e. the internet


@pytest.fixture(autouse=True)
def _no_internet(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail any test that opens a connection to a non-loopback address."""

    def guarded_connect(self: socket.socket, address: object) -> object:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
            raise RuntimeError(f"test tried to reach {address!r}: tests never leave 127.0.0.1")
        return _real_connect(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    yield


@pytest.fixture(autouse=True)
def _isolated_settings(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Point the data directory at a temporary folder unless a test sets its own."""
    monkeypatch.setenv("ASMSPOTTER_DATA_DIR", str(tmp_path_factory.mktemp("data")))
    monkeypatch.delenv("ASMSPOTTER_DATABASE_URL", raising=False)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """No process outlives the test suite: stop any child the tests left running.

    Servers, workers and CLI subprocesses are stopped by their tests; this catches
    what a crashed or interrupted test left behind (each one named on the terminal).
    """
    leftovers = [
        process
        for process in psutil.Process().children(recursive=True)
        if not _is_interpreter_helper(process)
    ]
    if not leftovers:
        return
    names = ", ".join(f"{p.pid} {' '.join(p.cmdline()[:3])}" for p in leftovers if p.is_running())
    for process in leftovers:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.terminate()
    _, alive = psutil.wait_procs(leftovers, timeout=10)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and names:
        reporter.write_line(f"stopped processes the tests left running: {names}", yellow=True)


def _is_interpreter_helper(process: psutil.Process) -> bool:
    """multiprocessing's resource tracker: started by a spawn pool, it lives as long as
    this interpreter and exits with it; no test left it running."""
    with contextlib.suppress(psutil.Error):
        return any("multiprocessing.resource_tracker" in part for part in process.cmdline())
    return False
