"""The Typer app and what every command shares.

The global options (``-v``/``-q``/``--version``) and the output they choose: one line per
stage of a run by default, progress bars on long steps, Prefect's console quiet unless
``-v``. For commands that run a flow: loading it by entrypoint, Ctrl-C handled (one line,
exit 130, no run left ``running``). :func:`fail` is how every command reports an error.
The command groups live in sibling modules; ``asmspotter.cli`` wires them onto :data:`app`.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from asmspotter import __version__

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


NOISY_LOGGERS = ("httpx", "alembic", "pyogrio", "rasterio")
"""Libraries whose INFO lines drown ours; shown again with -vv."""

app = typer.Typer(help="Monitor artisanal gold mining from space.", no_args_is_help=True)


TRAINING_DIR = Path("training")
"""Under the data folder: negatives.geojson and positives.geojson, refreshed on each
review decision (:func:`asmspotter.report.refresh_training_examples`)."""


def _version(value: bool) -> None:
    if value:
        typer.echo(f"asmspotter {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More logs.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    """Monitor artisanal and small-scale gold mining from space.

    Quiet by default: one line per stage of a run and progress bars on long steps;
    ``-v`` shows every log line (Prefect's included), ``-vv`` debug; ``-q`` errors only.
    """
    global _VERBOSITY
    _VERBOSITY = -1 if quiet else verbose
    if verbose:
        level = logging.DEBUG if verbose > 1 else logging.INFO
        logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    else:
        _install_stage_lines(logging.ERROR if quiet else logging.INFO)
    if verbose < 2:
        for chatty in NOISY_LOGGERS:
            logging.getLogger(chatty).setLevel(logging.WARNING)


_VERBOSITY = 0
"""-1 with -q, 0 by default, the number of -v otherwise (set by ``main``)."""

STAGE_LOGGERS = ("asmspotter.monitor", "asmspotter.composite.composite", "asmspotter.alerts")
"""Loggers whose INFO lines are the default output: one line per stage of a run."""


class _StageLines(logging.Handler):
    """Prints stage lines (INFO of ``STAGE_LOGGERS``) and every warning or error, plainly."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.WARNING and not record.name.startswith(STAGE_LOGGERS):
            return
        prefix = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
        typer.echo(f"{prefix}{record.getMessage()}", err=True)


def _install_stage_lines(level: int) -> None:
    """Route the ``asmspotter`` loggers to :class:`_StageLines` (once per process)."""
    root = logging.getLogger("asmspotter")
    for handler in list(root.handlers):
        if isinstance(handler, _StageLines):
            root.removeHandler(handler)
    handler = _StageLines(level)
    root.addHandler(handler)
    root.setLevel(min(root.level or logging.INFO, logging.INFO))


def quiet_prefect_console() -> None:
    """Hide Prefect's own console lines unless -v (its logs still reach the API and UI).

    Without this every run prints a "Finished in state Completed()" per task and a
    traceback per failure before our one-line error.
    """
    import prefect  # noqa: F401  # configures Prefect's logging
    from prefect.logging.handlers import PrefectConsoleHandler

    level = logging.INFO if _VERBOSITY == 1 else logging.DEBUG
    if _VERBOSITY <= 0:
        level = logging.CRITICAL + 1
    loggers = [logging.getLogger(), *map(logging.getLogger, _prefect_logger_names())]
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, PrefectConsoleHandler):
                handler.setLevel(level)


def _prefect_logger_names() -> list[str]:
    return [name for name in logging.root.manager.loggerDict if name.startswith("prefect")]


@contextmanager
def progress_bars() -> Iterator[None]:
    """Rich progress bars on stderr for the long steps, unless -q or not a terminal."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from asmspotter.progress import set_progress_sink

    console = Console(stderr=True)
    if _VERBOSITY < 0 or not console.is_terminal:
        yield
        return
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bars:
        previous = set_progress_sink(_RichSink(bars))
        try:
            yield
        finally:
            set_progress_sink(previous)


class _RichSink:
    """:class:`asmspotter.progress.ProgressSink` on a rich ``Progress``."""

    def __init__(self, bars: Progress) -> None:
        self._bars = bars
        self._ids: dict[int, TaskID] = {}

    def start(self, description: str, total: int | None) -> int:
        task_id = self._bars.add_task(description, total=total)
        self._ids[int(task_id)] = task_id
        return int(task_id)

    def update(self, bar_id: int, completed: int, total: int | None) -> None:
        if total is None:
            self._bars.update(self._ids[bar_id], completed=completed)
        else:
            self._bars.update(self._ids[bar_id], completed=completed, total=total)

    def finish(self, bar_id: int) -> None:
        self._bars.stop_task(self._ids.pop(bar_id))


INTERRUPT_GRACE_S = 5.0
"""After Ctrl-C, how long the flow may take to unwind before the CLI stops it hard."""

INTERRUPTED_EXIT_CODE = 130
"""Exit code after Ctrl-C (128 + SIGINT), as shells report it."""


def _stop_interrupted(*, hard: bool) -> None:
    """Clean up after Ctrl-C: close open run records, stop child processes, say so.

    ``hard`` leaves the process at once (``os._exit``): Prefect may still be waiting
    on an API that the same Ctrl-C stopped (the ephemeral server is a child in the
    terminal's process group), and threads may be downloading.
    """
    import os

    from asmspotter.interruption import interrupted_runs, mark_open_runs_interrupted

    global _interrupt_reported
    with _INTERRUPT_LOCK:
        if not _interrupt_reported:
            mark_open_runs_interrupted()
            _stop_child_processes()
            runs = ", ".join(f"{run.label} (run {run.run_id})" for run in interrupted_runs())
            recorded = f"; recorded {runs} as failed, the next run retries it" if runs else ""
            typer.echo(f"\nInterrupted (Ctrl-C){recorded}.", err=True)
            _interrupt_reported = True
        if hard:
            sys.stderr.flush()
            os._exit(INTERRUPTED_EXIT_CODE)


_INTERRUPT_LOCK = threading.Lock()
_interrupt_reported = False


def _stop_child_processes(timeout_s: float = 5.0) -> None:
    """Terminate this process's children (then kill those that stay), so none outlives it."""
    import psutil

    children = psutil.Process().children(recursive=True)
    for child in children:
        with suppress(psutil.NoSuchProcess):
            child.terminate()
    _, alive = psutil.wait_procs(children, timeout=timeout_s)
    for child in alive:
        with suppress(psutil.NoSuchProcess):
            child.kill()


@contextmanager
def _stop_cleanly_on_ctrl_c() -> Iterator[None]:
    """Ctrl-C during a flow: one line, exit 130, no run record left ``running``.

    The first Ctrl-C raises ``KeyboardInterrupt`` as usual, so the flow unwinds and
    Prefect marks its run Crashed; if that has not finished within
    :data:`INTERRUPT_GRACE_S`, or on a second Ctrl-C, the CLI stops hard.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    presses = 0

    def on_sigint(signum: int, frame: object) -> None:
        nonlocal presses
        presses += 1
        if presses > 1:
            _stop_interrupted(hard=True)
        timer = threading.Timer(INTERRUPT_GRACE_S, _stop_interrupted, kwargs={"hard": True})
        timer.daemon = True
        timer.start()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    except KeyboardInterrupt:
        _stop_interrupted(hard=False)
        raise typer.Exit(INTERRUPTED_EXIT_CODE) from None
    finally:
        signal.signal(signal.SIGINT, previous)


def _start_temporary_prefect_server() -> None:
    """Without ``PREFECT_API_URL``, start Prefect's temporary server now, deaf to Ctrl-C.

    Prefect would start it on first use, as a child in the terminal's process group:
    Ctrl-C then kills it together with the CLI, it prints its own shutdown traceback,
    and Prefect's clean-up waits on the dead API. Started here with SIGINT blocked
    (the child inherits the mask), it keeps serving until the CLI stops it.
    """
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value() or threading.current_thread() is not threading.main_thread():
        return
    from prefect.server.api.server import SubprocessASGIServer

    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        SubprocessASGIServer().start()  # the instance Prefect's clients use (one per port)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


@contextmanager
def flow_output() -> Iterator[None]:
    """What every command that runs a flow wants: quiet Prefect, bars, Ctrl-C handled."""
    quiet_prefect_console()
    _start_temporary_prefect_server()
    with _stop_cleanly_on_ctrl_c(), progress_bars():
        yield


def load_flow(entrypoint: str) -> Any:
    """The Prefect flow at ``entrypoint`` (``module:flow``), loaded as a worker loads it.

    The flows live above the ``asmspotter`` package (``flows/``); loading them by
    entrypoint keeps the package's imports pointing down only.
    """
    from prefect.flows import load_flow_from_entrypoint

    # Any, not Flow: a flow's return type is known to its module, not to its entrypoint.
    return load_flow_from_entrypoint(entrypoint, use_placeholder_flow=False)


def fail(message: str) -> typer.Exit:
    """Print ``Error: message`` on stderr; the exit (code 1) for the caller to raise."""
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(code=1)
