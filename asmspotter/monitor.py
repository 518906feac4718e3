"""The monitoring stages of one AOI run, as plain functions.

Each function here is one stage of the data flow in ARCHITECTURE.md (search,
download, composite, detect, track, alert, report, finish). They combine the core
modules with the store and the run's output folder, and know nothing of Prefect:
``tasks/`` wraps each one in a task of the same name and ``flows/monitor.py`` wires
them. A stage has one name at every level: task ``composite_scenes`` calls
``monitor.composite_scenes``, which calls the core ``composite.composite_scenes``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.errors import WindowError
from rasterio.features import geometry_mask
from rasterio.windows import from_bounds
from shapely import wkt
from shapely.geometry.base import BaseGeometry

import asmspotter.composite.composite as compositing
import asmspotter.track as tracking
from asmspotter.aoi import AOI, find_aoi
from asmspotter.cluster import dask_client, task_core_budget
from asmspotter.composite.composite import COMPOSITE_BANDS, CompositeResult
from asmspotter.errors import (
    AlertDeliveryError,
    AsmspotterError,
    NoScenesError,
    ProviderAuthError,
    ProviderNotConfiguredError,
    ProviderUnavailableError,
    ProviderUnreachableError,
    SceneReadError,
)
from asmspotter.events import SiteEvent
from asmspotter.grid import AOIGrid, build_grid
from asmspotter.interruption import OpenRun, forget_open_run, remember_open_run
from asmspotter.memory import limit_gdal_cache
from asmspotter.progress import progress_bar
from asmspotter.providers import resolve_provider
from asmspotter.providers.base import Provider
from asmspotter.providers.reachability import unreachable_reason, without_retry_promise
from asmspotter.samples import ensure_source_demo_scenes
from asmspotter.scene_io import check_scene
from asmspotter.scenes import LocalScene, SceneRef, TimeWindow
from asmspotter.schedule import resolve_window
from asmspotter.settings import Settings, get_settings
from asmspotter.sources import SourceConfig
from asmspotter.storage import Store
from asmspotter.storage.engine import check_database_present
from asmspotter.storage.records import RunStatus
from asmspotter.track import TrackingThresholds, assign_new_site_ids

if TYPE_CHECKING:
    from asmspotter.alerts.dispatch import DeliveryOutcome
    from asmspotter.alerts.evidence import ModelInfo
    from asmspotter.alerts.quicklook import Quicklook

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RunContext:
    """Everything a stage needs to know about the run it belongs to.

    Attributes:
        aoi: The validated AOI.
        window: The composite window.
        grid: The AOI grid at the source's pixel size.
        run_id: The store's run row (one per AOI and window end; reused on re-runs).
        run_dir: Folder for this run's outputs.
        settings: Process settings.
    """

    aoi: AOI
    window: TimeWindow
    grid: AOIGrid
    run_id: int
    run_dir: Path
    settings: Settings
    source_index: int = 0

    @property
    def source(self) -> SourceConfig:
        """The AOI source this run composites (one source per run)."""
        return self.aoi.config.sources[self.source_index]

    @cached_property
    def provider(self) -> Provider:
        """The provider of this run's source, built on first use and kept for the run.

        Every scene's download shares it (and whatever it caches: a signing token, an
        HTTP session); :meth:`for_source` makes a new context, so a new provider.
        """
        return resolve_provider(self.source, self.aoi, self.settings)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the built provider (it may hold open sessions); rebuilt on use."""
        state = dict(self.__dict__)
        state.pop("provider", None)
        return state

    def for_source(self, index: int) -> RunContext:
        """The same run on source ``index``, on a grid at that source's pixel size."""
        source = self.aoi.config.sources[index]
        grid = build_grid(self.aoi.geometry_lonlat, source.resolution_m)
        return replace(self, source_index=index, grid=grid)


@dataclass(frozen=True)
class SkippedScene:
    """A scene that was found but could not be used, and why."""

    ref: SceneRef
    reason: str


@dataclass(frozen=True)
class DetectionResult:
    """Where the detector's outputs went and how many polygons it found."""

    probability_path: Path
    detections_path: Path
    n_polygons: int


@dataclass(frozen=True)
class RunSummary:
    """What one run did, for logs, artifacts and the CLI."""

    aoi_name: str
    window: TimeWindow
    run_id: int
    scenes_used: list[str]
    scenes_skipped: list[tuple[str, str]]
    composite_path: Path | None
    probability_path: Path | None
    sites_path: Path | None
    events: list[SiteEvent] = field(default_factory=list)
    deliveries: list[tuple[str, str, str]] = field(default_factory=list)
    quicklooks: list[Path] = field(default_factory=list)
    """The run's quicklook PNGs (AOI overview first, then before/after per expanded site)."""
    previous_composite_path: Path | None = None
    """Composite of the previous completed run, if any (for before/after comparisons)."""
    run_dir: Path | None = None
    """The run's output folder."""

    def count(self, kind: str) -> int:
        """Number of events of ``kind`` (new, expanded, unchanged, shrunk, not_seen)."""
        return sum(1 for event in self.events if event.kind == kind)


@lru_cache(maxsize=4)
def open_store(url: str) -> Store:
    """One store per database URL per process (the engine pools connections).

    Raises:
        DatabaseMissingError: a SQLite file is missing beside outputs of earlier runs
            (``asmspotter db init`` starts a new history on purpose).
    """
    check_database_present(url, get_settings().outputs_dir)
    return Store(url)


@contextmanager
def hold_run_lock(
    aoi_name: str, end_date: dt.date | None, settings: Settings | None = None
) -> Iterator[None]:
    """Hold the store's lock of one AOI window for everything inside the block.

    ``monitor_aoi`` wraps a whole run in it, from opening the run record to closing
    it: a second process asking for the same AOI and window waits
    ``ASMSPOTTER_RUN_LOCK_WAIT_S`` and is then refused before it changes the run
    record or the run folder.

    Raises:
        AOIConfigError: the AOI file is missing or invalid.
        RunInProgressError: another process runs this AOI window.
    """
    settings = settings or get_settings()
    aoi = find_aoi(settings.aoi_dir, aoi_name)
    window = resolve_window(aoi.config.schedule, end_date)
    store = open_store(settings.resolved_database_url)
    with store.run_lock(aoi.name, window.end, wait_s=settings.run_lock_wait_s):
        yield


def prepare_run(
    aoi_name: str, end_date: dt.date | None, settings: Settings | None = None
) -> RunContext:
    """Load the AOI, resolve its window and grid, and open (or reopen) the run record.

    A local source with ``generate_demo_scenes`` (the bundled demo AOI) gets its
    synthetic series here, before any stage resolves its provider.

    Raises:
        AOIConfigError: the AOI file is missing or invalid.
    """
    settings = settings or get_settings()
    aoi = find_aoi(settings.aoi_dir, aoi_name)
    window = resolve_window(aoi.config.schedule, end_date)
    ensure_source_demo_scenes(aoi, settings)
    grid = build_grid(aoi.geometry_lonlat, aoi.config.sources[0].resolution_m)
    store = open_store(settings.resolved_database_url)
    store.upsert_aoi(aoi.name, aoi.title, grid.epsg)
    run_id = store.start_run(aoi.name, window.start, window.end)
    remember_open_run(
        OpenRun(run_id, settings.resolved_database_url, f"{aoi.name} {window.end.isoformat()}")
    )
    run_dir = settings.run_dir(aoi.name, window.end.isoformat())
    run_dir.mkdir(parents=True, exist_ok=True)
    logger.info(
        "Run %d: AOI %s (%.0f km², grid %dx%d px at %g m, EPSG:%d), window %s..%s",
        run_id,
        aoi.name,
        aoi.area_km2,
        grid.width_px,
        grid.height_px,
        grid.resolution_m,
        grid.epsg,
        window.start,
        window.end,
    )
    return RunContext(aoi, window, grid, run_id, run_dir, settings)


def search_scenes(ctx: RunContext) -> tuple[RunContext, list[SceneRef]]:
    """Find the window's scenes, trying the AOI's sources in priority order.

    The first source that returns scenes is the run's source: a composite never
    mixes sources, and is built at that source's pixel size. A source that cannot
    be reached is skipped with a warning when a lower-priority one remains.

    Returns:
        The run context switched to the chosen source, and its scenes (empty if no
        source had any; the context is then the first source's).

    Raises:
        ProviderUnavailableError, ProviderAuthError, ProviderNotConfiguredError: every
            source failed; the first source's error is raised.
    """
    first_error: AsmspotterError | None = None
    for index, source in enumerate(ctx.aoi.config.sources):
        candidate = ctx.for_source(index)
        try:
            refs = _fail_fast_if_unreachable(
                partial(candidate.provider.search, ctx.aoi.geometry_lonlat, ctx.window)
            )
        except (ProviderUnavailableError, ProviderAuthError, ProviderNotConfiguredError) as exc:
            logger.warning("Source %d (%s) failed: %s", index, source.provider, exc)
            first_error = first_error or exc
            continue
        logger.info(
            "Found %d scenes from %s for %s in %s..%s",
            len(refs),
            source.provider,
            ctx.aoi.name,
            ctx.window.start,
            ctx.window.end,
        )
        if refs:
            return candidate, refs
    if first_error is not None:
        raise first_error
    return ctx, []


def download_scene(ctx: RunContext, ref: SceneRef) -> LocalScene:
    """Download one scene into the cache (idempotent) and check it is usable.

    Raises:
        ProviderUnreachableError: the provider's host cannot be reached (not retried).
        SceneReadError: the scene (whatever provider wrote it) has no CRS, cut tiles,
            the wrong bands or dtype, or implausible reflectance; the run skips it,
            naming the file, and composites the rest.
    """
    scene = _fail_fast_if_unreachable(lambda: ctx.provider.download(ref, ctx.settings.cache_dir))
    try:
        check_scene(scene.reflectance_path, ref.scene_id)
    except SceneReadError as exc:
        source = ref.assets.get("reflectance", "")
        if source and Path(source).is_file() and Path(source) != scene.reflectance_path:
            raise SceneReadError(f"{exc} (copied from {source})") from exc
        raise
    return scene


def _fail_fast_if_unreachable(call: Callable[[], T]) -> T:
    """Run a provider call; an outage that is really an unreachable host says so.

    Raises:
        ProviderUnreachableError: the call failed on DNS, a refused connection or no
            route: retrying in minutes would not help, so the task does not retry it.
    """
    try:
        return call()
    except ProviderUnreachableError:
        raise
    except ProviderUnavailableError as exc:
        reason = unreachable_reason(exc)
        if reason is None:
            raise
        raise ProviderUnreachableError(
            f"{without_retry_promise(str(exc))}. The host cannot be reached ({reason}), so "
            "this is not retried: check the network connection and sources[].url."
        ) from exc


def record_scenes(
    ctx: RunContext, used: Sequence[LocalScene], skipped: Sequence[SkippedScene]
) -> None:
    """Record which scenes were used and which skipped (with the reason)."""
    store = open_store(ctx.settings.resolved_database_url)
    if used:
        store.record_scenes(
            ctx.aoi.name,
            [scene.ref for scene in used],
            "used",
            local_paths=[str(scene.reflectance_path) for scene in used],
        )
    for item in skipped:
        logger.warning("Scene %s skipped: %s", item.ref.scene_id, item.reason)
        store.record_scenes(ctx.aoi.name, [item.ref], "skipped", reason=item.reason)


def composite_scenes(ctx: RunContext, scenes: Sequence[LocalScene]) -> CompositeResult:
    """Build the window's cloud-free composite COG in the run folder.

    Raises:
        NoScenesError: no usable scene, naming the AOI, window and provider.
    """
    if not scenes:
        raise NoScenesError(
            f"AOI {ctx.aoi.name}: no usable scene in {ctx.window.start}..{ctx.window.end} from "
            f"provider {ctx.source.provider}; check sources[] in {ctx.aoi.path} "
            "or run a later window."
        )
    limit_gdal_cache(ctx.settings.gdal_cache_mb)
    return compositing.composite_scenes(
        scenes,
        ctx.grid,
        ctx.run_dir / "composite.tif",
        dask_scheduler=ctx.settings.dask_scheduler,
    )


def detect_sites(ctx: RunContext, composite_path: Path) -> DetectionResult:
    """Run the AOI's model over the composite; write probability COG and polygons."""
    from asmspotter.detect import stage

    detection = ctx.aoi.config.detection
    model_dir = ctx.settings.models_dir / detection.model
    probability_path = ctx.run_dir / "probability.tif"
    limit_gdal_cache(ctx.settings.gdal_cache_mb)
    # With a cluster, blocks of the composite are predicted on all its workers at
    # once; on a worker already (monitor_all's DaskTaskRunner) or without a cluster,
    # column blocks run one after another in this process.
    with (
        dask_client(ctx.settings.dask_scheduler) as client,
        progress_bar(f"{ctx.aoi.name}: U-Net inference (tiles)") as update,
    ):
        detections = stage.detect_sites(
            composite_path,
            model_dir,
            probability_path,
            threshold=detection.threshold,
            min_area_ha=detection.min_area_ha,
            client=client,
            progress=update,
        )
    detections_path = ctx.run_dir / "detections.gpkg"
    detections.to_file(detections_path, driver="GPKG")
    logger.info("Detected %d mining polygons (>= %g ha)", len(detections), detection.min_area_ha)
    return DetectionResult(ctx.run_dir / "probability.tif", detections_path, len(detections))


def median_clear_counts(composite_path: Path, geometries: Sequence[BaseGeometry]) -> list[int]:
    """Median number of clear observations under each geometry in the composite.

    An empty geometry, or one wholly outside the composite, counts 0.

    One open file, geometries taken by row of blocks: the ``valid`` band sits in
    compressed blocks with the six other bands, so a block read again is decoded again.
    At 12,000 km² (561 outlines) opening the file per outline took 15.6 s, this 2.9 s.
    """
    counts = [0] * len(geometries)
    measured = [i for i, geometry in enumerate(geometries) if not geometry.is_empty]
    if not measured:
        return counts
    with rasterio.open(composite_path, num_threads=str(task_core_budget())) as src:
        block_rows = src.block_shapes[0][0]
        inverse = ~src.transform
        full = rasterio.windows.Window(0, 0, src.width, src.height)

        def file_order(index: int) -> tuple[int, float]:
            minx, _, _, maxy = geometries[index].bounds
            col, row = inverse * (minx, maxy)
            return int(row) // block_rows, col

        band = COMPOSITE_BANDS.index("valid") + 1
        for index in sorted(measured, key=file_order):
            geometry = geometries[index]
            window = from_bounds(*geometry.bounds, transform=src.transform)
            try:
                window = window.round_offsets().round_lengths().intersection(full)
            except WindowError:  # wholly outside the composite: never observed
                continue
            valid = src.read(band, window=window)
            inside = geometry_mask(
                [geometry],
                out_shape=valid.shape,
                transform=src.window_transform(window),
                invert=True,
            )
            values = valid[inside]
            counts[index] = int(np.median(values)) if values.size else 0
    return counts


def track_sites(
    ctx: RunContext, detection: DetectionResult, composite: CompositeResult
) -> list[SiteEvent]:
    """Match detections to known sites, classify events, store them, write sites GeoJSON."""
    store = open_store(ctx.settings.resolved_database_url)
    detections = gpd.read_file(detection.detections_path)
    expansion = ctx.aoi.config.detection.expansion
    thresholds = TrackingThresholds(
        min_growth_ha=expansion.min_growth_ha, min_growth_pct=expansion.min_growth_pct
    )
    # One run per AOI tracks at a time (read known sites, hand out ids, record), so
    # concurrent runs of the same AOI (a backfill beside the schedule) never share ids.
    with store.tracking_lock(ctx.aoi.name):
        previous = store.previous_completed_run(ctx.aoi.name, ctx.window.end)
        clear_before = wkt.loads(previous.clear_wkt) if previous and previous.clear_wkt else None
        known = store.known_sites(ctx.aoi.name, ctx.window.end)
        # Placeholders first: a new detection may be a site a later window found (a
        # backfill behind the schedule) and takes its id; the rest get fresh ids.
        placeholders = (f"{ctx.aoi.name}-pending-{k}" for k in itertools.count())
        events = tracking.track_sites(
            detections,
            known,
            clear_now=composite.clear_footprint,
            clear_before=clear_before,
            window_end=ctx.window.end,
            epsg=ctx.grid.epsg,
            new_site_ids=placeholders,
            thresholds=thresholds,
            clear_counts=partial(median_clear_counts, composite.path),
        )
        events = assign_new_site_ids(
            events,
            store.later_sites(ctx.aoi.name, ctx.window.end),
            lambda n: store.next_site_ids(ctx.aoi.name, n, window_end=ctx.window.end),
        )
        store.record_events(ctx.aoi.name, ctx.run_id, events)
    from asmspotter.alerts.render import write_events_geojson

    write_events_geojson(events, ctx.grid.epsg, ctx.run_dir / "sites.geojson")
    counts = {
        kind: sum(1 for e in events if e.kind == kind)
        for kind in ("new", "expanded", "unchanged", "shrunk", "not_seen")
    }
    logger.info("Sites: %s", ", ".join(f"{n} {kind}" for kind, n in counts.items()))
    return events


def render_quicklooks(
    ctx: RunContext, events: Sequence[SiteEvent], composite_path: Path
) -> Quicklook:
    """Draw the AOI quicklook and a before/after pair per expanded site into the run folder."""
    from asmspotter.alerts.quicklook import build_run_quicklooks

    store = open_store(ctx.settings.resolved_database_url)
    before = store.previous_completed_run(ctx.aoi.name, ctx.window.end)
    return build_run_quicklooks(
        composite_path,
        events,
        ctx.grid.epsg,
        ctx.run_dir / "quicklooks",
        title=f"{ctx.aoi.title}: {ctx.window.start} – {ctx.window.end}",
        previous_composite=previous_composite_path(ctx),
        labels=(
            f"before ({before.window_end})" if before else "before",
            f"after ({ctx.window.end})",
        ),
    )


def send_alerts(
    ctx: RunContext,
    events: Sequence[SiteEvent],
    quicklook: Quicklook | None = None,
    *,
    run_url: str | None = None,
) -> list[DeliveryOutcome]:
    """Deliver the run's alertable events (and due retries) to every channel (or the outbox).

    Args:
        ctx: The run.
        events: The run's tracking events.
        quicklook: The run's pictures, attached to every channel.
        run_url: The run's page in the Prefect UI when readers can reach it (the task
            knows it; the core does not).
    """
    from asmspotter.alerts.dispatch import dispatch_alerts

    return dispatch_alerts(
        open_store(ctx.settings.resolved_database_url),
        ctx.aoi,
        ctx.run_id,
        ctx.window.start,
        ctx.window.end,
        events,
        epsg=ctx.grid.epsg,
        alert_dir=ctx.run_dir / "alerts",
        outbox_dir=ctx.settings.outbox_dir,
        quicklook=quicklook,
        run_url=run_url,
        model=_model_info(ctx),
    )


def _model_info(ctx: RunContext) -> ModelInfo | None:
    """The AOI's detector as its evidence packets record it; None if its card is unreadable."""
    from asmspotter.alerts.evidence import ModelInfo
    from asmspotter.detect.model_card import load_card

    detection = ctx.aoi.config.detection
    try:
        card = load_card(ctx.settings.models_dir / detection.model)
    except AsmspotterError:
        return None
    threshold = detection.threshold if detection.threshold is not None else card.threshold
    return ModelInfo(card.name, card.version, threshold)


def alert_if_stale(ctx: RunContext) -> list[DeliveryOutcome]:
    """Tell ``run_failed`` channels if the AOI has gone too many periods without a composite."""
    from asmspotter.alerts.dispatch import send_failure_alert, stale_data_reason

    store = open_store(ctx.settings.resolved_database_url)
    reason = stale_data_reason(store, ctx.aoi, ctx.window.end)
    if reason is None:
        return []
    return send_failure_alert(
        ctx.aoi, reason, window_end=ctx.window.end, outbox_dir=ctx.settings.outbox_dir
    )


def notify_run_failed(
    aoi_name: str, end_date: dt.date | None, reason: str
) -> list[DeliveryOutcome]:
    """Send the run-failure alert of an AOI; never raises (used from a flow hook)."""
    from asmspotter.alerts.dispatch import send_failure_alert

    alert_logger = logging.getLogger("asmspotter.alerts")
    try:
        settings = get_settings()
        aoi = find_aoi(settings.aoi_dir, aoi_name)
    except AsmspotterError as exc:
        # The run failed on this very error, which the run's own error already names:
        # an AOI that cannot be loaded has no channels to tell.
        alert_logger.debug("No run-failure alert for AOI %s: %s", aoi_name, exc)
        return []
    try:
        return send_failure_alert(aoi, reason, window_end=end_date, outbox_dir=settings.outbox_dir)
    except Exception:
        alert_logger.exception("Could not send the run-failure alert for AOI %s", aoi_name)
        return []


@dataclass(frozen=True)
class RunReport:
    """What a run reports: the summary markdown and the rows of its sites table."""

    markdown: str
    site_rows: list[dict[str, Any]]


def build_report(
    summary: RunSummary, outcomes: Sequence[DeliveryOutcome], ctx: RunContext | None = None
) -> RunReport:
    """Render a run's summary markdown and its sites table.

    Args:
        summary: What the run did (quicklooks included).
        outcomes: Alert deliveries of the run (run-failure alerts included).
        ctx: The run context; with it the table lists every active site of the AOI
            with its area history, without it only this run's events.
    """
    from asmspotter.report import active_site_rows, render_run_markdown, site_table_rows

    markdown = render_run_markdown(
        summary, outcomes, labels=ctx.aoi.config.labels if ctx is not None else None
    )
    if ctx is None:
        return RunReport(markdown, site_table_rows(summary))
    store = open_store(ctx.settings.resolved_database_url)
    return RunReport(markdown, active_site_rows(store, ctx.aoi.name))


def finish_run(
    ctx: RunContext,
    status: RunStatus,
    *,
    n_scenes: int = 0,
    composite: CompositeResult | None = None,
    detection: DetectionResult | None = None,
    message: str | None = None,
) -> None:
    """Close the run record as ``completed``, ``failed`` or ``no_data`` (with the reason).

    A ``no_data`` run never counts as the last clear composite, which is what the
    no-data alert clock measures.
    """
    store = open_store(ctx.settings.resolved_database_url)
    if status == "no_data" and not message:
        message = "no usable scene"
    store.finish_run(
        ctx.run_id,
        status,
        n_scenes=n_scenes,
        composite_path=str(composite.path) if composite else None,
        probability_path=str(detection.probability_path) if detection else None,
        sites_path=str(ctx.run_dir / "sites.geojson") if detection else None,
        clear_wkt=composite.clear_footprint.wkt if composite else None,
        message=message,
    )
    forget_open_run(ctx.run_id)


def check_alerts_delivered(ctx: RunContext, outcomes: Sequence[DeliveryOutcome]) -> None:
    """Fail a run whose alerts all failed, after its results are stored.

    The sites and events are recorded and the run is ``completed`` in the store; the
    undelivered alerts are retried on the next run of any window. But nobody was told,
    so the flow run must show as failed and the CLI exit non-zero.

    Raises:
        AlertDeliveryError: at least one channel failed and none received anything,
            naming each channel and its error.
    """
    failed = [o for o in outcomes if o.status == "failed"]
    if not failed or any(o.status in ("delivered", "outbox") for o in outcomes):
        return
    reasons = "; ".join(f"{o.channel_label}: {o.detail or 'no detail'}" for o in failed)
    raise AlertDeliveryError(
        f"AOI {ctx.aoi.name}, window ending {ctx.window.end}: every alert failed ({reasons}). "
        f"The run's sites are stored and the alerts are retried on the next run of any "
        f"window; fix alerts[].url in {ctx.aoi.path} (test it with `asmspotter alerts test "
        f"{ctx.aoi.name}`)."
    )


def describe_error(exc: BaseException) -> str:
    """A one-line reason for a run record: our messages as they are, others with their type."""
    if isinstance(exc, AsmspotterError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class MonitoringPlan:
    """Which AOIs ``monitor_all`` runs today, which wait, and which files are broken.

    Attributes:
        due: AOI names whose revisit period has elapsed (or that never ran).
        waiting: AOI name -> the date it is next due.
        invalid: AOI file -> the validation error.
    """

    due: list[str]
    waiting: dict[str, dt.date]
    invalid: dict[str, str]
    disabled: list[str] = field(default_factory=list)


def plan_monitoring(today: dt.date, settings: Settings | None = None) -> MonitoringPlan:
    """Decide which registered AOIs are due on ``today``."""
    from asmspotter.aoi import load_registry
    from asmspotter.schedule import is_due

    settings = settings or get_settings()
    registry = load_registry(settings.aoi_dir)
    store = open_store(settings.resolved_database_url)
    due, waiting, disabled = [], {}, []
    for name, aoi in sorted(registry.aois.items()):
        if not aoi.config.enabled:
            disabled.append(name)
            continue
        schedule = aoi.config.schedule
        last = store.last_successful_run(name)
        last_end = last.window_end if last else None
        if is_due(schedule, last_end, today):
            due.append(name)
        else:
            base = last_end or schedule.start_date
            waiting[name] = max(
                base + dt.timedelta(days=schedule.revisit_days), schedule.start_date
            )
    invalid = {str(path): str(error) for path, error in registry.errors.items()}
    return MonitoringPlan(due=due, waiting=waiting, invalid=invalid, disabled=disabled)


def build_summary(
    ctx: RunContext,
    used: Sequence[LocalScene],
    skipped: Sequence[SkippedScene],
    composite: CompositeResult | None = None,
    detection: DetectionResult | None = None,
    events: Sequence[SiteEvent] = (),
    outcomes: Sequence[DeliveryOutcome] = (),
    quicklooks: Sequence[Path] = (),
) -> RunSummary:
    """Collect what a run did into one summary."""
    return RunSummary(
        aoi_name=ctx.aoi.name,
        window=ctx.window,
        run_id=ctx.run_id,
        scenes_used=[scene.ref.scene_id for scene in used],
        scenes_skipped=[(item.ref.scene_id, item.reason) for item in skipped],
        composite_path=composite.path if composite else None,
        probability_path=detection.probability_path if detection else None,
        sites_path=ctx.run_dir / "sites.geojson" if detection else None,
        events=list(events),
        deliveries=[(o.channel_label, o.status, o.detail or "") for o in outcomes],
        quicklooks=list(quicklooks),
        previous_composite_path=previous_composite_path(ctx),
        run_dir=ctx.run_dir,
    )


def previous_composite_path(ctx: RunContext) -> Path | None:
    """The composite of the AOI's latest completed run before this window, if it still exists."""
    store = open_store(ctx.settings.resolved_database_url)
    previous = store.previous_completed_run(ctx.aoi.name, ctx.window.end)
    if previous is None or not previous.composite_path:
        return None
    path = Path(previous.composite_path)
    return path if path.is_file() else None


def find_backfill_windows(
    aoi_name: str, start: dt.date, end: dt.date, settings: Settings | None = None
) -> list[dt.date]:
    """Window ends of a backfill: ``start``, then every ``revisit_days`` up to ``end``.

    Raises:
        AOIConfigError: the AOI file is missing or invalid.
        ValueError: ``start`` is after ``end``.
    """
    if start > end:
        raise ValueError(f"backfill start {start} is after its end {end}; give --start <= --end.")
    settings = settings or get_settings()
    step = dt.timedelta(days=find_aoi(settings.aoi_dir, aoi_name).config.schedule.revisit_days)
    ends, day = [], start
    while day <= end:
        ends.append(day)
        day += step
    return ends


def completed_window_ends(aoi_name: str, settings: Settings | None = None) -> set[dt.date]:
    """Window ends of the AOI's completed runs (a backfill skips them)."""
    settings = settings or get_settings()
    store = open_store(settings.resolved_database_url)
    return {run.window_end for run in store.runs(aoi_name) if run.status == "completed"}
