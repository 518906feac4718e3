"""End-to-end scale benchmark: search → download → composite → detect → track.

Generates a synthetic Sentinel-2 AOI of ``--km2`` km² at 10 m (a square in UTM 21N,
EPSG:32621) with ``--dates`` scenes in the local provider's format
(:mod:`asmspotter.scene_io`: 4-band uint16 GeoTIFF + ``.cloudmask.tif``), streamed to
disk window by window (``--block-px`` squares; never a whole scene in memory). Each
window's landscape is one :func:`asmspotter.synthetic.render_training_pair` chip
(forest, rivers, look-alikes, mining sites in about half of them), shared by every
date; clouds differ per date (a smooth field over the whole AOI, ~20 % cover).

It then writes an AOI YAML (local provider) into a temporary AOI folder and times
the plain stage functions of :mod:`asmspotter.monitor` (no Prefect): ``prepare_run``
+ ``search_scenes`` (search), ``download_scene`` per scene (download: links into
the cache), ``composite_scenes`` (composite), ``detect_sites`` (detect) and
``record_scenes`` + ``track_sites`` + ``finish_run`` (track). With ``--workers W``
the heavy stages run on a ``distributed.LocalCluster(n_workers=W,
threads_per_worker=1)`` through ``ASMSPOTTER_DASK_SCHEDULER``; without it on the
local threaded scheduler.

Per stage it prints seconds, throughput (AOI pixels / s, Mpx/s) and peak memory:
the RSS of this process plus all its children (Dask nanny and worker processes),
summed, sampled every 0.2 s by a thread with psutil (shared pages count once per
process, so this over-estimates slightly). Then one markdown table row for the run
(``--append FILE`` adds it to a file too).

Usage::

    python benchmarks/pipeline.py --km2 750 --dates 4               # local threads
    python benchmarks/pipeline.py --km2 750 --dates 4 --workers 2   # LocalCluster
    python benchmarks/pipeline.py --km2 4 --dates 2 --out /tmp/bench --keep
    python benchmarks/pipeline.py --km2 4 --dates 2 --out /tmp/bench --keep --workers 2
    # (the second run reuses the first one's scenes)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shutil
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import rasterio
from numpy.typing import NDArray
from rasterio.windows import Window
from scipy import ndimage
from shapely.geometry import box

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from asmspotter.grid import AOIGrid, build_grid, to_lonlat  # noqa: E402
from asmspotter.scene_io import BAND_NAMES, GTIFF_PROFILE, REFLECTANCE_SCALE  # noqa: E402

EPSG_UTM_21N = 32621
ORIGIN_M = (600_000.0, 560_000.0)
"""South-west corner of the AOI in UTM 21N (about 5.07° N, 56.1° W: Suriname)."""
WINDOW_END = dt.date(2024, 1, 31)
CLOUD_CELL_PX = 64
"""Cell of the per-date cloud field (640 m); the field over the whole AOI is tiny."""
CLOUD_COVER = 0.2
"""Fraction of each scene under cloud."""
STAGES = ("search", "download", "composite", "detect", "track")
SAMPLE_S = 0.2


# --------------------------------------------------------------------------------------
# Memory sampling
# --------------------------------------------------------------------------------------
class RssSampler:
    """Samples the summed RSS of this process and all its descendants in a thread."""

    def __init__(self, interval_s: float = SAMPLE_S) -> None:
        self.interval_s = interval_s
        self._process = psutil.Process()
        self._peak = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss_bytes(self) -> int:
        """RSS of this process plus every live descendant, in bytes."""
        total = self._process.memory_info().rss
        for child in self._process.children(recursive=True):
            try:
                total += child.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return int(total)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def sample(self) -> None:
        """Take one sample now."""
        rss = self.rss_bytes()
        with self._lock:
            self._peak = max(self._peak, rss)

    def reset(self) -> None:
        """Start a new peak from the current RSS."""
        rss = self.rss_bytes()
        with self._lock:
            self._peak = rss

    @property
    def peak_bytes(self) -> int:
        """Highest summed RSS since the last reset, in bytes."""
        with self._lock:
            return self._peak

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class StageTimes:
    """Seconds and peak summed RSS per stage."""

    seconds: dict[str, float] = field(default_factory=dict)
    peak_bytes: dict[str, int] = field(default_factory=dict)


@contextmanager
def timed(stage: str, sampler: RssSampler, times: StageTimes) -> Iterator[None]:
    """Time one stage and record its peak memory."""
    sampler.reset()
    start = time.perf_counter()
    yield
    sampler.sample()
    times.seconds[stage] = times.seconds.get(stage, 0.0) + time.perf_counter() - start
    times.peak_bytes[stage] = max(times.peak_bytes.get(stage, 0), sampler.peak_bytes)


# --------------------------------------------------------------------------------------
# Synthetic AOI
# --------------------------------------------------------------------------------------
def acquisition_dates(n_dates: int) -> list[dt.date]:
    """``n_dates`` dates spread over the 30-day window ending ``WINDOW_END``."""
    first = WINDOW_END - dt.timedelta(days=28)
    step = 28 / max(n_dates, 1)
    return [first + dt.timedelta(days=round(i * step)) for i in range(n_dates)]


def build_aoi(km2: float) -> tuple[Any, AOIGrid]:
    """A square AOI of ``km2`` km² in UTM 21N: its lon/lat polygon and 10 m grid."""
    side_m = max(round(math.sqrt(km2) * 1000 / 10.0), 8) * 10.0
    x0, y0 = ORIGIN_M
    # Shrunk by 1.5 px so that the grid build_grid snaps around it is exactly the square.
    square = box(x0, y0, x0 + side_m, y0 + side_m).buffer(-15, join_style="mitre")
    lonlat = to_lonlat(square, EPSG_UTM_21N)
    grid = build_grid(lonlat, 10.0)
    return lonlat, grid


def cloud_fields(grid: AOIGrid, n_dates: int, seed: int) -> list[NDArray[np.float32]]:
    """One smooth field per date on a ``CLOUD_CELL_PX`` lattice, thresholded at 0."""
    shape = (
        math.ceil(grid.height_px / CLOUD_CELL_PX) + 2,
        math.ceil(grid.width_px / CLOUD_CELL_PX) + 2,
    )
    fields = []
    for i in range(n_dates):
        rng = np.random.default_rng((seed, 1000 + i))
        noise = ndimage.gaussian_filter(rng.normal(size=shape), sigma=2.0, mode="wrap")
        level = np.quantile(noise, 1.0 - CLOUD_COVER)
        fields.append(((noise - level) / (noise.std() + 1e-9)).astype(np.float32))
    return fields


def clouds_in_window(field_: NDArray[np.float32], window: Window) -> NDArray[np.float32]:
    """Bilinear sample of a cloud field over ``window`` (> 0 = cloud)."""
    rows = (np.arange(window.height) + window.row_off) / CLOUD_CELL_PX
    cols = (np.arange(window.width) + window.col_off) / CLOUD_CELL_PX
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    sampled: NDArray[np.float32] = ndimage.map_coordinates(field_, [rr, cc], order=1)
    return sampled


def generate_scenes(
    scene_dir: Path, grid: AOIGrid, dates: list[dt.date], block_px: int, seed: int
) -> int:
    """Write one scene per date, window by window; returns the number of mining pixels."""
    from asmspotter.synthetic import render_training_pair

    scene_dir.mkdir(parents=True, exist_ok=True)
    profile = {
        **GTIFF_PROFILE,
        "width": grid.width_px,
        "height": grid.height_px,
        "crs": f"EPSG:{grid.epsg}",
        "transform": grid.transform,
    }
    fields = cloud_fields(grid, len(dates), seed)
    n_mining = 0
    with ExitStack() as stack:
        scenes, masks = [], []
        for date in dates:
            stem = f"S2SYN_{date:%Y%m%d}_bench"
            dst = stack.enter_context(
                rasterio.open(
                    scene_dir / f"{stem}.tif", "w", count=4, dtype="uint16", nodata=0, **profile
                )
            )
            dst.scales = (REFLECTANCE_SCALE,) * 4
            dst.offsets = (0.0,) * 4
            dst.descriptions = BAND_NAMES
            dst.update_tags(ACQUISITION_DATETIME=f"{date:%Y-%m-%d}T14:00:00Z", SCENE_ID=stem)
            scenes.append(dst)
            masks.append(
                stack.enter_context(
                    rasterio.open(
                        scene_dir / f"{stem}.cloudmask.tif", "w", count=1, dtype="uint8", **profile
                    )
                )
            )
        for row in range(0, grid.height_px, block_px):
            for col in range(0, grid.width_px, block_px):
                window = Window(  # type: ignore[call-arg]
                    col,
                    row,
                    min(block_px, grid.width_px - col),
                    min(block_px, grid.height_px - row),
                )
                rng = np.random.default_rng((seed, row, col))
                refl, mining = render_training_pair(rng, size_px=block_px, mining_probability=0.5)
                refl = refl[:, : window.height, : window.width]
                n_mining += int(np.count_nonzero(mining[: window.height, : window.width]))
                for dst, mask_dst, field_ in zip(scenes, masks, fields, strict=True):
                    cloud = clouds_in_window(field_, window)
                    is_cloud = cloud > 0
                    # Clouds: bright and flat in all four bands, thicker towards the centre.
                    bright = 0.25 + 0.25 * np.clip(cloud, 0, 1)
                    scene = np.where(is_cloud[None], bright[None], refl)
                    dn = np.clip(np.round(scene / REFLECTANCE_SCALE), 1, 65535).astype(np.uint16)
                    dst.write(dn, window=window)
                    mask_dst.write(is_cloud.astype(np.uint8), 1, window=window)
    return n_mining


def write_aoi_yaml(aoi_dir: Path, name: str, lonlat: Any, scene_dir: Path) -> Path:
    """The benchmark AOI: local provider over ``scene_dir``, model s2-unet-v1."""
    aoi_dir.mkdir(parents=True, exist_ok=True)
    coords = [list(c) for c in lonlat.exterior.coords]
    path = aoi_dir / f"{name}.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            name: {name}
            title: Scale benchmark ({name})
            geometry: {{type: Polygon, coordinates: [{json.dumps(coords)}]}}
            sources:
              - provider: local
                path: {scene_dir}
                resolution_m: 10
                max_cloud_pct: 90
            schedule: {{revisit_days: 5, window_days: 30, start_date: 2024-01-01}}
            detection: {{model: s2-unet-v1, min_area_ha: 1.0}}
            alerts: []
            """
        )
    )
    return path


# --------------------------------------------------------------------------------------
# The timed pipeline
# --------------------------------------------------------------------------------------
def run_pipeline(aoi_name: str, sampler: RssSampler) -> tuple[StageTimes, dict[str, Any]]:
    """Run one AOI window through the plain stage functions, timing each stage."""
    from asmspotter import monitor

    times = StageTimes()
    with timed("search", sampler, times):
        ctx = monitor.prepare_run(aoi_name, WINDOW_END)
        ctx, refs = monitor.search_scenes(ctx)
    with timed("download", sampler, times):
        scenes = [monitor.download_scene(ctx, ref) for ref in refs]
    with timed("composite", sampler, times):
        composite = monitor.composite_scenes(ctx, scenes)
    with timed("detect", sampler, times):
        detection = monitor.detect_sites(ctx, composite.path)
    with timed("track", sampler, times):
        monitor.record_scenes(ctx, scenes, [])
        events = monitor.track_sites(ctx, detection, composite)
        monitor.finish_run(
            ctx, "completed", n_scenes=len(scenes), composite=composite, detection=detection
        )
    facts = {
        "scenes": len(refs),
        "clear_pct": composite.clear_fraction * 100,
        "polygons": detection.n_polygons,
        "new_sites": sum(1 for e in events if e.kind == "new"),
    }
    return times, facts


@contextmanager
def dask_cluster(n_workers: int | None) -> Iterator[str | None]:
    """A ``LocalCluster`` of ``n_workers`` single-threaded processes, or None."""
    if not n_workers:
        yield None
        return
    from distributed import LocalCluster

    cluster = LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
    )
    try:
        yield str(cluster.scheduler_address)
    finally:
        cluster.close()  # type: ignore[no-untyped-call]


def gib(n_bytes: float) -> float:
    return n_bytes / 2**30


def detect_precision() -> str:
    """The precision detect ran in here: s2-unet-v1's card's, unless the device lacks bf16."""
    from asmspotter.detect.model_card import load_card
    from asmspotter.detect.runtime import resolve_device, run_precision

    card = load_card(REPO_ROOT / "models" / "s2-unet-v1")
    used = run_precision(card.precision, resolve_device(None))
    if used == card.precision:
        return used
    return f"{used} (the card's {card.precision} is not native here)"


def format_report(
    args: argparse.Namespace,
    grid: AOIGrid,
    times: StageTimes,
    facts: dict[str, Any],
    context: dict[str, Any],
) -> str:
    """Context lines, a per-stage table and the run's summary row (markdown)."""
    from asmspotter.composite.composite import DEFAULT_CHUNK_PX

    mpx = grid.width_px * grid.height_px / 1e6
    lines = [
        f"AOI {args.km2:g} km² at 10 m: {grid.width_px} x {grid.height_px} px "
        f"({mpx:.2f} Mpx), {facts['scenes']} dates, composite chunk {DEFAULT_CHUNK_PX} px",
        f"cores {context['cores']} (physical {context['physical_cores']}), "
        f"compute: {context['compute']}, torch threads in this process "
        f"{context['torch_threads']} (with --workers inference runs as blocks on the "
        f"Dask workers, one torch thread per worker thread); detect precision "
        f"{context['precision']}",
        f"load average before/after: {context['load_before']} / {context['load_after']}; "
        f"scene generation {context['generate_s']:.1f} s (not timed below"
        f"{'; scenes reused' if context['reused'] else ''})",
        f"result: {facts['clear_pct']:.1f} % clear, {facts['polygons']} polygons, "
        f"{facts['new_sites']} new sites",
        "",
        "| stage | seconds | Mpx/s | peak RSS GiB |",
        "|---|---:|---:|---:|",
    ]
    for stage in STAGES:
        seconds = times.seconds[stage]
        lines.append(
            f"| {stage} | {seconds:.1f} | {mpx / max(seconds, 1e-9):.2f} | "
            f"{gib(times.peak_bytes[stage]):.2f} |"
        )
    total = sum(times.seconds.values())
    peak = max(times.peak_bytes.values())
    lines.append(f"| total | {total:.1f} | {mpx / total:.2f} | {gib(peak):.2f} |")
    lines += ["", "run row:", summary_header(), summary_row(args, mpx, times, context)]
    return "\n".join(lines)


def summary_header() -> str:
    stage_cols = " | ".join(f"{s} s" for s in STAGES)
    return (
        f"| km² | dates | workers | Mpx | {stage_cols} | total s | Mpx/s | peak RSS GiB | load |\n"
        "|---:|---:|---|---:|" + "---:|" * len(STAGES) + "---:|---:|---:|---|"
    )


def summary_row(
    args: argparse.Namespace, mpx: float, times: StageTimes, context: dict[str, Any]
) -> str:
    total = sum(times.seconds.values())
    stage_cols = " | ".join(f"{times.seconds[s]:.1f}" for s in STAGES)
    workers = f"{args.workers} (LocalCluster)" if args.workers else "threads"
    return (
        f"| {args.km2:g} | {args.dates} | {workers} | {mpx:.2f} | {stage_cols} | {total:.1f} | "
        f"{mpx / total:.2f} | {gib(max(times.peak_bytes.values())):.2f} | "
        f"{context['load_before']} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--km2", type=float, required=True, help="AOI area in km²")
    parser.add_argument("--dates", type=int, default=4, help="scenes in the window")
    parser.add_argument(
        "--workers", type=int, default=None, help="Dask LocalCluster worker processes"
    )
    parser.add_argument("--out", type=Path, default=None, help="working folder (default: temp)")
    parser.add_argument(
        "--keep", action="store_true", help="keep the working folder (and reuse its scenes)"
    )
    parser.add_argument("--block-px", type=int, default=512, help="generation window, px")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--append", type=Path, default=None, help="append the run row here")
    args = parser.parse_args(argv)
    if args.km2 <= 0 or args.dates < 1 or (args.workers is not None and args.workers < 1):
        parser.error("--km2 must be > 0, --dates >= 1 and --workers >= 1")

    out = args.out or Path(tempfile.mkdtemp(prefix="asmspotter-bench-"))
    # Scenes of the same size, dates, block and seed are reused with --keep (the
    # generation is not timed, and takes minutes at 12,000 km²); the rest is fresh.
    recipe = {"km2": args.km2, "dates": args.dates, "block_px": args.block_px, "seed": args.seed}
    scenes_ready = (out / "scenes.json").is_file() and json.loads(
        (out / "scenes.json").read_text()
    ) == recipe
    if out.exists():
        for child in out.iterdir():
            if scenes_ready and child.name in ("scenes", "scenes.json"):
                continue
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()
    out.mkdir(parents=True, exist_ok=True)
    name = f"bench-{args.km2:g}km2".replace(".", "-")
    try:
        lonlat, grid = build_aoi(args.km2)
        dates = acquisition_dates(args.dates)
        start = time.perf_counter()
        if not scenes_ready:
            generate_scenes(out / "scenes", grid, dates, args.block_px, args.seed)
            (out / "scenes.json").write_text(json.dumps(recipe))
        generate_s = time.perf_counter() - start
        write_aoi_yaml(out / "aois", name, lonlat, out / "scenes")
        os.environ.update(
            ASMSPOTTER_AOI_DIR=str(out / "aois"),
            ASMSPOTTER_DATA_DIR=str(out / "data"),
            ASMSPOTTER_DATABASE_URL=f"sqlite:///{out / 'data' / 'bench.db'}",
        )
        (out / "data").mkdir(exist_ok=True)
        os.environ.pop("ASMSPOTTER_DASK_SCHEDULER", None)
        load_before = "{:.1f} {:.1f} {:.1f}".format(*os.getloadavg())
        with RssSampler() as sampler, dask_cluster(args.workers) as address:
            if address:
                os.environ["ASMSPOTTER_DASK_SCHEDULER"] = address
            times, facts = run_pipeline(name, sampler)
        os.environ.pop("ASMSPOTTER_DASK_SCHEDULER", None)
        import torch

        context = {
            "cores": os.cpu_count(),
            "physical_cores": psutil.cpu_count(logical=False),
            "compute": (
                f"LocalCluster {args.workers} worker process(es) x 1 thread"
                if args.workers
                else f"local threaded scheduler ({os.cpu_count()} threads)"
            ),
            "torch_threads": torch.get_num_threads(),
            "precision": detect_precision(),
            "load_before": load_before,
            "load_after": "{:.1f} {:.1f} {:.1f}".format(*os.getloadavg()),
            "generate_s": generate_s,
            "reused": scenes_ready,
        }
        print(format_report(args, grid, times, facts, context))
        if args.append:
            mpx = grid.width_px * grid.height_px / 1e6
            with args.append.open("a") as handle:
                handle.write(summary_row(args, mpx, times, context) + "\n")
    finally:
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
