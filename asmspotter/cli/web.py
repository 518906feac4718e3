"""The ``web`` command: serve the review web app."""

from __future__ import annotations

from typing import Annotated

import typer

from asmspotter.cli.app import TRAINING_DIR, fail
from asmspotter.errors import AsmspotterError


def web(
    host: Annotated[
        str, typer.Option("--host", help="Address to bind; 0.0.0.0 exposes it to the network.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
    tile_url: Annotated[
        str | None,
        typer.Option(
            "--tile-url",
            help="Basemap tiles, e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png "
            "(default: none, the composite only; nothing leaves the machine).",
        ),
    ] = None,
) -> None:
    """Serve the review web app: AOI maps, site pages, confirm / dismiss, downloads.

    Writes need ASMSPOTTER_WEB_TOKEN (or a Prefect Secret block named by
    ASMSPOTTER_WEB_TOKEN_SECRET); without one the app is read-only.
    """
    import uvicorn

    from asmspotter.settings import get_settings
    from asmspotter.web.app import WebConfig, create_app
    from asmspotter.web.security import resolve_write_token

    settings = get_settings()
    try:
        token = resolve_write_token(
            settings.web_token.get_secret_value() if settings.web_token else None,
            settings.web_token_secret,
        )
    except AsmspotterError as exc:
        raise fail(str(exc)) from exc
    config = WebConfig(
        database_url=settings.resolved_database_url,
        outputs_dir=settings.outputs_dir,
        training_dir=settings.data_dir / TRAINING_DIR,
        write_token=token,
        tile_url=tile_url,
        aoi_dir=settings.aoi_dir,
    )
    mode = "confirm / dismiss need the token" if token else "read-only (no token set)"
    typer.echo(f"asmspotter review app on http://{host}:{port}/ ({mode})", err=True)
    uvicorn.run(create_app(config), host=host, port=port, log_level="info")
