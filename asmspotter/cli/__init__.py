"""The ``asmspotter`` command line, one module per command group.

Sub-commands are grouped by noun: ``aoi validate|list``, ``run``, ``run-all``,
``backfill``, ``sites list``, ``model train``, ``dataset build``, ``db upgrade``,
``demo``. The CLI holds no logic: it calls the core library, or runs a Prefect flow
loaded by its entrypoint (``flows.monitor:monitor_aoi``, as a worker loads it), so
the ``asmspotter`` package never imports ``flows/``; it prints results to stdout and
logs to stderr. Prefect and torch are imported only inside the commands that need them.

This module assembles :data:`app` from the groups; the order here is the order of
``asmspotter --help``.
"""

from __future__ import annotations

from asmspotter.cli import runs, web
from asmspotter.cli.alerts import alerts_app
from asmspotter.cli.aoi import aoi_app
from asmspotter.cli.app import app
from asmspotter.cli.dataset import dataset_app
from asmspotter.cli.db import db_app
from asmspotter.cli.model import model_app
from asmspotter.cli.sites import sites_app

app.command("run")(runs.run)
app.command("run-all")(runs.run_all)
app.command("web")(web.web)
app.command("backfill")(runs.backfill)
app.command("demo")(runs.demo)
app.command("serve")(runs.serve)
app.add_typer(aoi_app, name="aoi")
app.add_typer(sites_app, name="sites")
app.add_typer(model_app, name="model")
app.add_typer(alerts_app, name="alerts")
app.add_typer(db_app, name="db")
app.add_typer(dataset_app, name="dataset")

__all__ = ["app"]
