"""asmspotter's own log lines in the Prefect run logs (the UI's Logs tab).

The core library logs with the standard ``logging`` module under ``asmspotter.*``
(it imports no Prefect). Prefect ships a logger's records to the API only through
its ``APILogHandler``, and ``PREFECT_LOGGING_EXTRA_LOGGERS`` alone is not enough:
it attaches the handler but leaves the logger at the root's WARNING, so every
INFO line (scenes, composite, detections, sites, deliveries) was dropped. This
module attaches the handler and sets INFO, in every process that imports
``flows`` (the CLI, ``flows.serve``, a worker's flow-run process).
"""

from __future__ import annotations

import logging

from prefect.context import FlowRunContext, TaskRunContext
from prefect.logging.handlers import APILogHandler

PROJECT_LOGGER = "asmspotter"


class RunLogsHandler(APILogHandler):
    """Prefect's API handler, for records logged inside a flow or task run only.

    Outside a run (a CLI command, a Dask worker thread) there is no run to attach
    the line to: it is skipped silently instead of warning on every record.
    """

    def emit(self, record: logging.LogRecord) -> None:
        """Send ``record`` to the current run's logs, if there is a run."""
        if FlowRunContext.get() is None and TaskRunContext.get() is None:
            return
        super().emit(record)


def send_project_logs_to_prefect() -> None:
    """Make ``asmspotter.*`` INFO lines part of the run logs (idempotent)."""
    logger = logging.getLogger(PROJECT_LOGGER)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    if not any(isinstance(handler, APILogHandler) for handler in logger.handlers):
        logger.addHandler(RunLogsHandler())
