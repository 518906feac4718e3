"""The ``asmspotter`` command line.

Sub-commands are grouped by noun: ``aoi validate|list``, ``run``, ``run-all``,
``backfill``, ``sites list``, ``model train``, ``dataset build``, ``db upgrade``,
``demo``. The CLI holds no logic: it calls the core library or the Prefect flows, prints results to
stdout and logs to stderr.
Prefect and torch are imported only inside the commands that need them.
"""

from __future__ import annotations

import datetime as dt
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from asmspotter import __version__
from asmspotter.errors import AsmspotterError

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from asmspotter.aoi import AOI

NOISY_LOGGERS = ("httpx", "alembic", "pyogrio", "rasterio")
"""Libraries whose INFO lines drown ours; shown again with -vv."""

app = typer.Typer(help="Monitor artisanal gold mining from space.", no_args_is_help=True)
aoi_app = typer.Typer(
    help="Areas of interest: validate and list AOI YAML files.", no_args_is_help=True
)
sites_app = typer.Typer(help="Tracked mining sites.", no_args_is_help=True)
model_app = typer.Typer(help="Detection models: train, evaluate.", no_args_is_help=True)
app.add_typer(aoi_app, name="aoi")
app.add_typer(sites_app, name="sites")
app.add_typer(model_app, name="model")
alerts_app = typer.Typer(help="Alert channels: test them.", no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")
db_app = typer.Typer(
    help="The asmspotter database: create or upgrade its schema.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
dataset_app = typer.Typer(
    help="Real training data: chips from label polygons through a STAC catalogue.",
    no_args_is_help=True,
)
app.add_typer(dataset_app, name="dataset")

EndDate = Annotated[
    dt.datetime | None,
    typer.Option(
        "--end", formats=["%Y-%m-%d"], help="Last day of the window (default: today, UTC)."
    ),
]


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


def _quiet_prefect_console() -> None:
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
def _progress_bars() -> Iterator[None]:
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


@contextmanager
def _flow_output() -> Iterator[None]:
    """What every command that runs a flow wants: Prefect's console quiet, bars on."""
    _quiet_prefect_console()
    with _progress_bars():
        yield


def _fail(message: str) -> typer.Exit:
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(code=1)


def _missing_model_message(aoi: AOI) -> str | None:
    """Why the AOI's model cannot be loaded (no card in the models folder), or None."""
    from asmspotter.settings import get_settings

    models_dir = get_settings().models_dir
    model = aoi.config.detection.model
    if (models_dir / model / "model_card.json").is_file():
        return None
    available = sorted(p.parent.name for p in models_dir.glob("*/model_card.json"))
    return (
        f"detection.model: found {model!r}, but {models_dir} has no such model; "
        f"use one of {', '.join(available) or 'none'} or train one (asmspotter model train)."
    )


@aoi_app.command("validate")
def aoi_validate(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="AOI YAML files (default: every file in the AOI folder)."),
    ] = None,
) -> None:
    """Validate AOI files; report every bad one and exit 1 if any is invalid."""
    from asmspotter.aoi import list_aoi_files, load_aoi
    from asmspotter.settings import get_settings

    files = paths or list_aoi_files(get_settings().aoi_dir)
    if not files:
        raise _fail(f"no AOI files found in {get_settings().aoi_dir}")
    bad = 0
    for path in files:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                aoi = load_aoi(path)
            except AsmspotterError as exc:
                bad += 1
                typer.echo(f"✗ {exc}")
                continue
        missing_model = _missing_model_message(aoi)
        if missing_model:
            bad += 1
            typer.echo(f"✗ {path}: {missing_model}")
            continue
        typer.echo(f"✓ {path}: {aoi.name} ({aoi.title}, {aoi.area_km2:.0f} km²)")
        for warning in caught:
            typer.echo(f"  warning: {warning.message}")
    if bad:
        raise typer.Exit(code=1)


@aoi_app.command("list")
def aoi_list() -> None:
    """List registered AOIs with their sources, schedule and last completed run."""
    from asmspotter.aoi import load_registry
    from asmspotter.monitor import open_store
    from asmspotter.settings import get_settings

    settings = get_settings()
    registry = load_registry(settings.aoi_dir)
    store = open_store(settings.resolved_database_url)
    for name, aoi in sorted(registry.aois.items()):
        schedule = aoi.config.schedule
        last = store.last_successful_run(name)
        sources = ", ".join(source.provider for source in aoi.config.sources)
        typer.echo(
            f"{name:24} {aoi.area_km2:8.0f} km²  sources: {sources:18} every "
            f"{schedule.revisit_days} d, window {schedule.window_days} d  last run: "
            f"{last.window_end if last else 'never'}  — {aoi.title}"
        )
    for path, error in registry.errors.items():
        typer.echo(f"✗ {path}: invalid ({str(error).splitlines()[0]})")


def _print_summary(summary: object) -> None:
    from asmspotter.monitor import RunSummary

    assert isinstance(summary, RunSummary)
    typer.echo(
        f"{summary.aoi_name} {summary.window.start}..{summary.window.end}: "
        f"{len(summary.scenes_used)} scenes used, {len(summary.scenes_skipped)} skipped; sites: "
        + ", ".join(
            f"{summary.count(k)} {k}"
            for k in ("new", "expanded", "unchanged", "shrunk", "not_seen")
        )
    )
    typer.echo(f"  composite:       {summary.composite_path}")
    typer.echo(f"  probability map: {summary.probability_path}")
    typer.echo(f"  sites GeoJSON:   {summary.sites_path}")
    for label, status, detail in summary.deliveries:
        typer.echo(f"  alert -> {label}: {status} {detail}")


@app.command("run")
def run(aoi_name: Annotated[str, typer.Argument(help="AOI slug.")], end: EndDate = None) -> None:
    """Run the monitoring flow for one AOI and window (a Prefect flow run)."""
    from flows.monitor import monitor_aoi

    try:
        with _flow_output():
            summary = monitor_aoi(aoi_name, end.date() if end else None)
    except AsmspotterError as exc:
        raise _fail(str(exc)) from exc
    _print_summary(summary)


@app.command("run-all")
def run_all(end: EndDate = None) -> None:
    """Run every AOI whose revisit period has elapsed (what the schedule does daily)."""
    from flows.monitor import monitor_all

    with _flow_output():
        state = monitor_all(end.date() if end else None, return_state=True)
    rows = state.result(raise_on_failure=False)
    if isinstance(rows, list):
        for row in rows:
            typer.echo(f"{row['status']:12} {row['aoi']}: {row['detail']}")
    if not state.is_completed():
        raise _fail(state.message or "some AOIs failed")


@sites_app.command("list")
def sites_list(aoi_name: Annotated[str, typer.Argument(help="AOI slug.")]) -> None:
    """List the tracked sites of an AOI."""
    from asmspotter.monitor import open_store
    from asmspotter.settings import get_settings

    sites = open_store(get_settings().resolved_database_url).sites(aoi_name)
    if not sites:
        typer.echo(f"No sites tracked for {aoi_name} yet.")
        return
    typer.echo(
        f"{'site':14} {'status':9} {'area_ha':>8} {'lat':>10} {'lon':>10}  first seen  last seen"
    )
    for site in sites:
        typer.echo(
            f"{site.site_id:14} {site.status:9} {site.area_ha:8.1f} {site.centroid_lat:10.5f} "
            f"{site.centroid_lon:10.5f}  {site.first_seen}  {site.last_seen}"
        )


TRAINING_DIR = Path("training")
"""Under the data folder: negatives.geojson and positives.geojson, refreshed on each
review decision (:func:`asmspotter.report.refresh_training_examples`)."""


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
        raise _fail(str(exc)) from exc
    results = send_test_alert(aoi, settings.outbox_dir)
    for label, ok, error in results:
        note = f"\n       {error}" if error else ""
        typer.echo(f"{'ok    ' if ok else 'FAILED'} {label}{note}")
    if not all(ok for _, ok, _ in results):
        raise typer.Exit(1)


@sites_app.command("show")
def sites_show(site_id: Annotated[str, typer.Argument(help="Site id, e.g. demo-0003.")]) -> None:
    """Print a site's area per run; write its area chart (PNG) and outlines (GeoPackage)."""
    from asmspotter.monitor import open_store
    from asmspotter.report import write_site_timeline
    from asmspotter.settings import get_settings

    settings = get_settings()
    store = open_store(settings.resolved_database_url)
    try:
        site = store.site(site_id)
        history = store.site_history(site_id)
    except AsmspotterError as exc:
        raise _fail(str(exc)) from exc
    status = site.status + (f" ({site.dismissed_reason})" if site.dismissed_reason else "")
    typer.echo(
        f"{site.site_id} in {site.aoi_name}: {status}, {site.area_ha:.1f} ha at "
        f"{site.centroid_lat:.5f}, {site.centroid_lon:.5f}; first seen {site.first_seen}, "
        f"last seen {site.last_seen}"
    )
    typer.echo(f"{'window end':10}  {'event':9} {'area_ha':>8} {'growth_ha':>9} {'clear obs':>9}")
    for h in history:
        growth = "" if h.growth_ha is None else f"{h.growth_ha:+.1f}"
        typer.echo(
            f"{h.window_end!s:10}  {h.kind:9} {h.area_ha:8.1f} {growth:>9} "
            f"{h.clear_observations:9d}"
        )
    if history:
        png, gpkg = write_site_timeline(
            site_id, history, settings.outputs_dir / site.aoi_name / "sites" / site_id
        )
        typer.echo(f"Area chart: {png}\nOutlines:   {gpkg}")


@sites_app.command("dismiss")
def sites_dismiss(
    site_id: Annotated[str, typer.Argument(help="Site id, e.g. demo-0003.")],
    reason: Annotated[str, typer.Option("--reason", help="Why, e.g. 'river sandbar'.")],
) -> None:
    """Mark a site as a false positive: no more alerts, exported as a negative example."""
    from asmspotter.aoi import find_aoi
    from asmspotter.monitor import open_store
    from asmspotter.report import refresh_training_examples
    from asmspotter.settings import get_settings

    settings = get_settings()
    store = open_store(settings.resolved_database_url)
    try:
        store.dismiss_site(site_id, reason)
        site = store.site(site_id)
    except (AsmspotterError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    try:
        expansion = find_aoi(settings.aoi_dir, site.aoi_name).config.detection.expansion
        rule = (
            f"more than {expansion.min_growth_ha:g} ha and more than "
            f"{expansion.min_growth_pct:g}% (detection.expansion in {site.aoi_name}.yaml)"
        )
    except AsmspotterError:
        rule = f"more than the expansion thresholds in {site.aoi_name}.yaml"
    negatives, _ = refresh_training_examples(store, settings.data_dir / TRAINING_DIR)
    typer.echo(
        f"{site_id} dismissed ({reason}) at {site.area_ha:.1f} ha. It will not be alerted "
        f"again unless it grows by {rule} over that area.\n"
        f"Negative examples for training: {negatives}"
    )


@sites_app.command("export-negatives")
def sites_export_negatives(
    aoi_name: Annotated[str, typer.Argument(help="AOI slug.")],
    out: Annotated[Path, typer.Argument(help="GeoJSON file to write (EPSG:4326).")],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUT.")] = False,
) -> None:
    """Write an AOI's dismissed sites as negative training areas (GeoJSON polygons)."""
    _export_reviewed_sites(aoi_name, out, overwrite, "dismissed")


def _export_reviewed_sites(
    aoi_name: str, out: Path, overwrite: bool, decision: Literal["dismissed", "confirmed"]
) -> None:
    """Write one AOI's dismissed (negatives) or confirmed (positives) sites to ``out``."""
    from asmspotter.monitor import open_store
    from asmspotter.report import write_negatives_geojson, write_positives_geojson
    from asmspotter.settings import get_settings

    if out.exists() and not overwrite:
        raise _fail(f"{out} exists; pass --overwrite to replace it.")
    store = open_store(get_settings().resolved_database_url)
    if decision == "dismissed":
        dismissed = store.dismissed_sites(aoi_name)
        write_negatives_geojson(dismissed, out)
        count = len(dismissed)
    else:
        confirmed = store.confirmed_sites(aoi_name)
        write_positives_geojson(confirmed, out)
        count = len(confirmed)
    typer.echo(f"{count} {decision} site(s) of {aoi_name} written to {out}")


@sites_app.command("confirm")
def sites_confirm(
    site_id: Annotated[str, typer.Argument(help="Site id, e.g. demo-0003.")],
    reason: Annotated[str, typer.Option("--reason", help="What settled it, e.g. 'field visit'.")],
) -> None:
    """Mark a site as a confirmed mine: it keeps alerting and becomes a training positive."""
    from asmspotter.monitor import open_store
    from asmspotter.report import refresh_training_examples
    from asmspotter.settings import get_settings

    settings = get_settings()
    store = open_store(settings.resolved_database_url)
    try:
        site = store.confirm_site(site_id, reason)
    except (AsmspotterError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    # A confirmation lifts an earlier dismissal: the site leaves the negatives too.
    _, positives = refresh_training_examples(store, settings.data_dir / TRAINING_DIR)
    typer.echo(
        f"{site_id} confirmed ({reason}) at {site.area_ha:.1f} ha.\n"
        f"Positive examples for training: {positives}"
    )


@sites_app.command("export-positives")
def sites_export_positives(
    aoi_name: Annotated[str, typer.Argument(help="AOI slug.")],
    out: Annotated[Path, typer.Argument(help="GeoJSON file to write (EPSG:4326).")],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUT.")] = False,
) -> None:
    """Write an AOI's confirmed sites as mining labels for training (GeoJSON polygons)."""
    _export_reviewed_sites(aoi_name, out, overwrite, "confirmed")


@sites_app.command("export-chips")
def sites_export_chips(
    out: Annotated[Path, typer.Argument(help="Chips file to write (.npz).")],
    aoi_name: Annotated[
        str | None, typer.Option("--aoi", help="Only this AOI's sites (default: all).")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUT.")] = False,
) -> None:
    """Write the verifier's patches of every confirmed and dismissed site, for retraining.

    Train with them: python scripts/train_verifier.py --extra-chips OUT.npz
    """
    from asmspotter.detect.review_chips import review_chips, save_review_chips
    from asmspotter.monitor import open_store
    from asmspotter.settings import get_settings

    if out.exists() and not overwrite:
        raise _fail(f"{out} exists; pass --overwrite to replace it.")
    chips = review_chips(open_store(get_settings().resolved_database_url), aoi_name)
    if not len(chips):
        raise _fail(
            "no reviewed site with a composite on disk: confirm or dismiss sites first "
            "(`asmspotter sites confirm|dismiss` or the review page)."
        )
    save_review_chips(chips, out)
    sites = len(set(chips.site_id.tolist()))
    typer.echo(
        f"{len(chips)} chips of {sites} reviewed site(s) ({int(chips.label.sum())} of "
        f"confirmed mines, {int((chips.label == 0).sum())} of dismissed look-alikes) "
        f"written to {out}"
    )


@app.command("web")
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
        raise _fail(str(exc)) from exc
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


@model_app.command("train")
def model_train(
    name: Annotated[str, typer.Argument(help="Model folder name under models/.")] = "s2-unet-v1",
    scenes: Annotated[
        Path | None,
        typer.Option(help="Folder of 4-band GeoTIFF scenes; without it, generated chips."),
    ] = None,
    labels: Annotated[
        Path | None, typer.Option(help="Mining polygons: GeoJSON or LabelBox NDJSON export.")
    ] = None,
    negatives: Annotated[
        Path | None, typer.Option(help="GeoJSON of negative areas (dismissed false positives).")
    ] = None,
    chips: Annotated[
        Path | None,
        typer.Option(
            help="A folder built by `asmspotter dataset build` (its chips/ and labels.geojson)."
        ),
    ] = None,
    resolution_m: Annotated[float, typer.Option(help="Pixel size of generated chips, m.")] = 10.0,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 14,
    train_chips: Annotated[int, typer.Option(help="Training chips or patches.")] = 1400,
    patch_px: Annotated[int, typer.Option(help="Patch size for scene training, pixels.")] = 128,
    block_px: Annotated[
        int | None, typer.Option(help="Spatial split block, pixels (default 2 x patch).")
    ] = None,
    hard_lookalikes: Annotated[
        bool, typer.Option(help="Generated chips with the harder look-alikes.")
    ] = True,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    resume: Annotated[bool, typer.Option(help="Resume from the model's checkpoint.")] = True,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing model.")] = False,
    device: Annotated[
        str | None, typer.Option(help="Torch device, e.g. cpu or cuda (default: CUDA if present).")
    ] = None,
) -> None:
    """Train a U-Net on a folder of scenes + labels (or generated chips); write weights + card."""
    from asmspotter.detect.train.config import TrainConfig
    from asmspotter.settings import get_settings

    out_dir = get_settings().models_dir / name
    if (out_dir / "weights.pt").exists() and not overwrite:
        raise _fail(f"{out_dir} already holds a model; pass --overwrite to replace it.")
    if chips is not None:
        from asmspotter.detect.real_dataset import chip_training_inputs

        if scenes is not None or labels is not None:
            raise _fail("--chips already names the scenes and labels; drop --scenes/--labels.")
        try:
            scenes, labels = chip_training_inputs(chips)
        except AsmspotterError as exc:
            raise _fail(str(exc)) from exc

    try:
        config = TrainConfig(
            out_dir=out_dir,
            name=name,
            scene_dir=scenes,
            labels_path=labels,
            negatives_path=negatives,
            resolution_m=resolution_m,
            n_train=train_chips,
            epochs=epochs,
            seed=seed,
            patch_px=patch_px,
            block_px=block_px,
            hard_fraction=1.0 if hard_lookalikes else 0.0,
            resume=resume,
            device=device,
        )
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    from asmspotter.detect.train.detector import train_detector
    from asmspotter.progress import progress_bar

    def progress(p: dict[str, float]) -> None:
        epochs_bar(int(p["epoch"]), int(p["epochs"]))
        typer.echo(
            f"epoch {p['epoch']:.0f}/{p['epochs']:.0f}: loss {p['loss']:.4f} "
            f"val IoU {p['val_iou']:.3f} ({p['seconds']:.0f} s)"
        )

    try:
        with _progress_bars(), progress_bar(f"train {name} (epochs)", total=epochs) as epochs_bar:
            card = train_detector(config, progress)
    except (AsmspotterError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    m = card.metrics
    typer.echo(
        f"Model written to {out_dir}: test pixel IoU {m.pixel_iou:.3f}, F1 {m.pixel_f1:.3f}, "
        f"object F1 {m.object_f1:.3f} at threshold {card.threshold:.2f}"
    )


@model_app.command("evaluate")
def model_evaluate(
    model: Annotated[str, typer.Argument(help="Model folder name under models/, or a path.")],
    data: Annotated[
        str,
        typer.Argument(
            help="Folder of scenes + labels.geojson|labels.ndjson, or generated[-hard][:<m>]."
        ),
    ],
    precision: Annotated[
        str | None, typer.Option(help="fp32 or bf16 (default: the card's).")
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option(help="Where the PR curve goes (default: the model folder).")
    ] = None,
    update_card: Annotated[bool, typer.Option(help="Record the result in the card.")] = True,
    check_precision: Annotated[
        bool, typer.Option(help="Also measure bf16 vs fp32 and set the card's default.")
    ] = False,
) -> None:
    """Pixel and object metrics, area error and PR curve of a model and the baseline."""
    from asmspotter.detect.evaluate import check_bf16, evaluate_model
    from asmspotter.settings import get_settings

    model_dir = Path(model) if Path(model).is_dir() else get_settings().models_dir / model
    if precision not in (None, "fp32", "bf16"):
        raise _fail(f"--precision must be fp32 or bf16, got {precision!r}.")
    try:
        if check_precision:
            check = check_bf16(model_dir, data, update_card=update_card)
            typer.echo(
                f"precision check: fp32 IoU {check.fp32_iou:.4f}, bf16 IoU {check.bf16_iou:.4f}, "
                f"max |dp| {check.max_abs_probability_diff:.3f}, native bf16 "
                f"{check.bf16_supported}"
            )
        result = evaluate_model(
            model_dir,
            data,
            precision=precision,  # type: ignore[arg-type]
            out_dir=out_dir,
            update_card=update_card,
        )
    except (AsmspotterError, ValueError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"{model_dir.name} on {data}: {result.description} ({result.precision})")
    typer.echo(
        f"{'detector':22} {'thr':>5} {'px P':>6} {'px R':>6} {'px F1':>6} {'px IoU':>6} "
        f"{'obj P':>6} {'obj R':>6} {'obj F1':>6} {'area err':>8}"
    )
    rows = [
        (f"{model_dir.name}", result.model),
        (f"{model_dir.name} @ best F1", result.model_at_best_f1),
    ]
    if result.baseline is not None:
        rows.append(("spectral baseline", result.baseline))
    for label, m in rows:
        area = f"{m.area_error_pct:7.1f}%" if m.area_error_pct is not None else "      -"
        typer.echo(
            f"{label:22} {m.threshold:5.2f} {m.pixel_precision:6.3f} {m.pixel_recall:6.3f} "
            f"{m.pixel_f1:6.3f} {m.pixel_iou:6.3f} {m.object_precision:6.3f} "
            f"{m.object_recall:6.3f} {m.object_f1:6.3f} {area}"
        )
    typer.echo(f"threshold maximising pixel F1: {result.best_f1_threshold:.3f}")
    typer.echo(f"PR curve: {result.pr_curve_png}")


@db_app.command("upgrade")
def db_upgrade(
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="SQLAlchemy URL (default: ASMSPOTTER_DATABASE_URL, else the SQLite file "
            "in the data folder).",
        ),
    ] = None,
) -> None:
    """Create or upgrade the store's schema (Alembic migrations); safe to repeat."""
    from asmspotter.settings import get_settings
    from asmspotter.storage.store import redact_database_url, schema_revision, upgrade_database

    target = url or get_settings().resolved_database_url
    try:
        before = schema_revision(target)
        upgrade_database(target)
        after = schema_revision(target)
    except AsmspotterError as exc:
        raise _fail(str(exc)) from exc
    change = "already at" if before == after else f"upgraded from {before or 'empty'} to"
    typer.echo(f"{redact_database_url(target)}: {change} revision {after}")


@db_app.command("init")
def db_init(
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="SQLAlchemy URL (default: ASMSPOTTER_DATABASE_URL, else the SQLite file "
            "in the data folder).",
        ),
    ] = None,
) -> None:
    """Create the database, even beside outputs of earlier runs (a new, empty history).

    Runs refuse to recreate a missing SQLite file where earlier outputs remain; this
    command is how a user starts over on purpose. An existing database is left as is.
    """
    from asmspotter.settings import get_settings
    from asmspotter.storage.store import (
        redact_database_url,
        schema_revision,
        sqlite_database_path,
        upgrade_database,
    )

    target = url or get_settings().resolved_database_url
    path = sqlite_database_path(target)
    try:
        before = schema_revision(target) if path is None or path.exists() else None
        if before is not None:
            typer.echo(
                f"{redact_database_url(target)} already exists at revision {before}; "
                "nothing changed (asmspotter db upgrade brings it to the latest schema)."
            )
            return
        upgrade_database(target)
        after = schema_revision(target)
    except AsmspotterError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"{redact_database_url(target)}: created, empty, at revision {after}")


@app.command("backfill")
def backfill(
    aoi_name: Annotated[str, typer.Argument(help="AOI slug.")],
    start: Annotated[
        dt.datetime,
        typer.Option("--start", formats=["%Y-%m-%d"], help="First day of the range."),
    ],
    end: Annotated[
        dt.datetime,
        typer.Option("--end", formats=["%Y-%m-%d"], help="Last day of the range."),
    ],
    alerts: Annotated[
        bool, typer.Option("--alerts", help="Also send alerts for past windows.")
    ] = False,
) -> None:
    """Run every revisit window of a past date range in order (resumable)."""
    from flows.backfill import backfill as backfill_flow

    try:
        with _flow_output():
            report = backfill_flow(aoi_name, start.date(), end.date(), send_alerts=alerts)
    except AsmspotterError as exc:
        raise _fail(str(exc)) from exc
    for row in report:
        typer.echo(f"{row['window_end']}  {row['status']:10} {row['detail']}")


@app.command("demo")
def demo() -> None:
    """Run the full monitoring flow twice on the bundled synthetic AOI and check it."""
    from asmspotter.aoi import find_aoi
    from asmspotter.samples import DEMO_WINDOW_ENDS, compare_with_truth, demo_truth_path
    from asmspotter.settings import get_settings
    from flows.monitor import monitor_aoi

    settings = get_settings()
    aoi = find_aoi(settings.aoi_dir, "demo")
    summaries = []
    for end in DEMO_WINDOW_ENDS:
        typer.echo(f"\n=== demo run for the window ending {end} ===")
        try:
            with _flow_output():
                summary = monitor_aoi("demo", end)
        except AsmspotterError as exc:
            raise _fail(str(exc)) from exc
        _print_summary(summary)
        summaries.append(summary)
    matches = compare_with_truth(
        [e for e in summaries[-1].events if e.is_alertable], demo_truth_path(aoi, settings)
    )
    typer.echo("\nSecond run's alerts against the generator's truth:")
    for match in matches:
        verdict = "✓" if match.agrees else "✗"
        typer.echo(
            f"  {verdict} {match.site_id}: {match.event} "
            f"(truth: {match.truth_site} {match.truth_design})"
        )
    typer.echo(f"\nOutbox: {settings.outbox_dir}")
    typer.echo(f"Database: {settings.resolved_database_url}")
    if not any(m.agrees and m.event == "new" for m in matches) or not any(
        m.agrees and m.event == "expanded" for m in matches
    ):
        raise _fail("the second demo run did not report both a true new and a true expanded site")


@dataset_app.command("build")
def dataset_build(
    labels: Annotated[
        Path,
        typer.Argument(
            help="Label polygons or points: GeoJSON, GeoPackage (annotated tiles: layers "
            "tiles + polygons_annotated) or LabelBox NDJSON export."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Dataset folder (chips/, masks/, manifest).")],
    catalog: Annotated[
        str, typer.Option(help="STAC preset: earth-search, cdse or planetary-computer.")
    ] = "earth-search",
    stac_url: Annotated[
        str | None, typer.Option(help="STAC API root URL (default: the preset's).")
    ] = None,
    collection: Annotated[
        str | None, typer.Option(help="Collection id (default: the preset's S2 L2A).")
    ] = None,
    token_env: Annotated[
        str | None, typer.Option(help="Environment variable holding a catalogue token.")
    ] = None,
    start: Annotated[
        dt.datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="First day of the imagery window."),
    ] = None,
    end: Annotated[
        dt.datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="Last day of the imagery window."),
    ] = None,
    chip_px: Annotated[int, typer.Option(help="Chip side, pixels.")] = 256,
    max_cloud_pct: Annotated[float, typer.Option(help="Skip scenes cloudier than this.")] = 30.0,
    max_scenes: Annotated[int, typer.Option(help="Least cloudy scenes per area.")] = 8,
    min_clear_pct: Annotated[
        float, typer.Option(help="Skip chips with fewer clear pixels (percent).")
    ] = 50.0,
    point_radius_m: Annotated[
        float, typer.Option(help="Radius of the disc a point label stands for, m.")
    ] = 30.0,
    layer: Annotated[
        str | None, typer.Option(help="Label layer of a GeoPackage (tiles: polygons_annotated).")
    ] = None,
    tiles_layer: Annotated[
        str, typer.Option(help="GeoPackage layer of annotated tiles (chip extents).")
    ] = "tiles",
    labels_licence: Annotated[str, typer.Option(help="Licence of the labels.")] = "",
    labels_attribution: Annotated[
        str, typer.Option(help="Attribution the labels' licence asks for.")
    ] = "",
    keep_cache: Annotated[
        bool, typer.Option(help="Keep downloaded scenes under OUT/.cache.")
    ] = False,
) -> None:
    """Fetch real Sentinel-2 chips for labels; chips already built are kept (resumable)."""
    from pydantic import ValidationError

    from asmspotter.detect.real_dataset import DatasetBuildConfig, build_dataset

    try:
        config = DatasetBuildConfig(
            catalog=catalog,  # type: ignore[arg-type]
            stac_url=stac_url,
            collection=collection,
            token_env=token_env,
            start=start.date() if start else None,
            end=end.date() if end else None,
            chip_px=chip_px,
            max_cloud_pct=max_cloud_pct,
            max_scenes=max_scenes,
            min_clear_pct=min_clear_pct,
            point_radius_m=point_radius_m,
            layer=layer,
            tiles_layer=tiles_layer,
            labels_licence=labels_licence,
            labels_attribution=labels_attribution,
            keep_cache=keep_cache,
        )
    except ValidationError as exc:
        raise _fail(f"dataset build: invalid options: {exc}") from exc
    try:
        summary = build_dataset(labels, out, config)
    except AsmspotterError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(
        f"{summary.count('written')} chips written, {summary.count('existing')} already there, "
        f"{summary.count('skipped')} skipped "
        f"(reasons in {summary.manifest_path.with_suffix('.csv')})"
    )
    typer.echo(f"Train on them: asmspotter model train NAME --chips {out}")


@app.command("serve")
def serve() -> None:
    """Serve monitor-all/served-daily (06:00 UTC) and monitor-aoi/served-on-demand until Ctrl-C.

    A schedule without a work pool or worker. The served deployments have their own
    names: stopping this never pauses or rewrites the worker deployments of
    ``prefect deploy --all``.
    """
    from flows.serve import SERVED_DAILY, SERVED_ON_DEMAND, main

    typer.echo(
        f"Serving monitor-all/{SERVED_DAILY} and monitor-aoi/{SERVED_ON_DEMAND}; "
        "Ctrl-C stops (and pauses these two schedules only)."
    )
    _quiet_prefect_console()
    main()


if __name__ == "__main__":
    app()
