"""The ``alerts`` commands: test an AOI's alert channels."""

from __future__ import annotations

from typing import Annotated

import typer

from asmspotter.cli.app import fail
from asmspotter.errors import AsmspotterError

alerts_app = typer.Typer(help="Alert channels: test them.", no_args_is_help=True)


@alerts_app.command("test")
def alerts_test(aoi_name: Annotated[str, typer.Argument(help="AOI slug.")]) -> None:
    """Send a test message to each alert channel of an AOI; exit 1 if any failed."""
    from asmspotter.alerts.dispatch import send_test_alert
    from asmspotter.aoi import find_aoi
    from asmspotter.settings import get_settings

    settings = get_settings()
    try:
        aoi = find_aoi(settings.aoi_dir, aoi_name)
    except AsmspotterError as exc:
        raise fail(str(exc)) from exc
    results = send_test_alert(aoi, settings.outbox_dir)
    for label, ok, error in results:
        note = f"\n       {error}" if error else ""
        typer.echo(f"{'ok    ' if ok else 'FAILED'} {label}{note}")
    if not all(ok for _, ok, _ in results):
        raise typer.Exit(1)
