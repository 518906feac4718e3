"""Composite stage against its limits: read+decode of its scenes, the write, the plain recipe.

On the synthetic AOI of :mod:`pipeline` (same generator, ``--km2`` km² at 10 m,
``--dates`` scenes; ``--out DIR --keep`` reuses scenes, also those of ``pipeline.py``
with the same size, dates, block and seed), each round times, in this order:

- **read+decode**: every band and cloud mask of every scene read with rasterio in
  ``--chunk-px`` windows on 2 threads, into memory and dropped (the floor: any
  composite has to do this);
- **composite**: :func:`asmspotter.composite.composite.composite_scenes` (what the
  pipeline runs: median, indices, valid count, each chunk's tiles compressed into the
  COG, overviews, clear footprint);
- **compute only**: the same lazy composite computed chunk by chunk and dropped;
- **write**: the COG of a composite that costs nothing to compute (every chunk a copy
  of one real computed chunk), through the same
  :func:`~asmspotter.composite.composite.write_composite`; printed also by part
  (:class:`WriteParts`): the chunk tasks' tiles, the overviews after them;
- **plain recipe** (``--plain``, slow): what a user would write with xarray:
  ``rioxarray.open_rasterio(chunks)`` per scene -> ``where`` clear -> ``xr.concat``
  -> ``median(skipna=True)`` -> NDWI/NDVI -> ``rio.to_raster`` (tiled, uncompressed,
  with a lock), on dask's threaded scheduler.

Then the median alone on one chunk of real data (4 bands x the dates):
``numpy.nanmedian``, one ``numpy.sort`` (the previous implementation) and the
sorting network. It prints per quantity the median over ``--rounds`` and the ratios
``composite / read+decode``, ``composite / (read+decode + write)`` and
``plain / composite``, each computed within a round and then the median taken.
Timings on a shared machine are noisy: compare the ratios, not the seconds.

Usage::

    python benchmarks/composite.py --km2 750 --dates 4 --rounds 3 --plain --out /tmp/bc --keep
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import dask.array as da
import numpy as np
import rasterio
from rasterio.windows import Window

REPO_ROOT = Path(__file__).resolve().parent.parent
for path in (REPO_ROOT, REPO_ROOT / "benchmarks"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import pipeline  # noqa: E402

from asmspotter.cog import ChunkedCogWriter  # noqa: E402
from asmspotter.composite import composite as comp  # noqa: E402
from asmspotter.composite.indices import ndvi, ndwi  # noqa: E402
from asmspotter.composite.median import nanmedian_of_dates  # noqa: E402
from asmspotter.grid import AOIGrid  # noqa: E402
from asmspotter.memory import limit_gdal_cache, reuse_freed_memory  # noqa: E402
from asmspotter.scenes import (  # noqa: E402
    LocalScene,
    SceneRef,
    clear_from_binary_mask,
)

READ_THREADS = 2
GDAL_CACHE_MB = 256
"""GDAL's block cache in this process, as the pipeline sets it (``ASMSPOTTER_GDAL_CACHE_MB``
default): uncapped, it grows to 5 % of RAM and its pages count in every peak below."""


def local_scenes(scene_dir: Path) -> list[LocalScene]:
    """The benchmark's scenes as the provider hands them to the composite."""
    scenes = []
    for path in sorted(scene_dir.glob("S2SYN_*.tif")):
        if path.name.endswith(".cloudmask.tif"):
            continue
        ref = SceneRef(
            "local", path.stem, pipeline.dt.datetime(2024, 1, 1), pipeline.box(0, 0, 1, 1)
        )
        scenes.append(LocalScene(ref, path, path.with_name(f"{path.stem}.cloudmask.tif")))
    return scenes


def read_and_decode(scenes: list[LocalScene], chunk_px: int) -> int:
    """Read every pixel of every scene and mask in windows on 2 threads; bytes decoded."""
    paths = [p for s in scenes for p in (s.reflectance_path, s.cloud_mask_path) if p is not None]

    def read_file(path: Path) -> int:
        n_bytes = 0
        with rasterio.open(path) as src:
            for row in range(0, src.height, chunk_px):
                for col in range(0, src.width, chunk_px):
                    window = Window(  # type: ignore[call-arg]
                        col, row, min(chunk_px, src.width - col), min(chunk_px, src.height - row)
                    )
                    n_bytes += src.read(window=window).nbytes
        return n_bytes

    with ThreadPoolExecutor(READ_THREADS) as pool:
        return sum(pool.map(read_file, paths))


def compute_only(scenes: list[LocalScene], grid: AOIGrid) -> None:
    """The lazy composite computed chunk by chunk on the threaded scheduler, dropped."""
    stack = comp.build_composite_stack(scenes, grid)
    stack.data.map_blocks(lambda block: np.zeros((1, 1, 1), np.float32), dtype=np.float32).compute(
        scheduler="threads"
    )


def write_only(scenes: list[LocalScene], grid: AOIGrid, path: Path) -> None:
    """Write a composite whose chunks are copies of one real chunk (no compute).

    The chunks depend on no input: built from the stack's own blocks, every chunk
    waited for the composite of its window, and "write" timed the compute too.
    """
    stack = comp.build_composite_stack(scenes, grid)
    sample = stack.isel(y=slice(0, comp.DEFAULT_CHUNK_PX), x=slice(0, comp.DEFAULT_CHUNK_PX))
    block = sample.values

    def copy_of_sample(block_info: dict[Any, Any] | None = None) -> np.ndarray:
        assert block_info is not None  # dask passes it to a function that names it
        _, height, width = block_info[None]["chunk-shape"]
        return np.ascontiguousarray(block[:, :height, :width])

    chunks = da.map_blocks(copy_of_sample, chunks=stack.data.chunks, dtype=np.float32)  # type: ignore[no-untyped-call]
    comp.write_composite(stack.copy(data=chunks), path)


class WriteParts:
    """Seconds spent in the COG writer's parts during one call.

    Wraps :class:`asmspotter.cog.ChunkedCogWriter`'s methods while active:
    ``chunk tiles`` sums, over the chunk tasks (which run on 2 threads at once), the
    compression of their tiles, their share of the first overview and the appends;
    ``overviews`` is the smaller levels averaged and every overview compressed, after the
    chunks; the rest of a write (``chunks, wall``) is waiting for the chunk tasks.
    """

    PARTS: ClassVar[dict[str, str]] = {
        "chunk tiles (summed over tasks)": "write_chunk",
        "overviews": "_average_overviews",
        "overview tiles": "_write_overviews",
    }

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(self.PARTS, 0.0)
        self._lock = threading.Lock()

    def __enter__(self) -> WriteParts:
        self._originals = {m: getattr(ChunkedCogWriter, m) for m in self.PARTS.values()}
        for part, method in self.PARTS.items():
            setattr(ChunkedCogWriter, method, self._timing(part, self._originals[method]))
        return self

    def __exit__(self, *exc: object) -> None:
        for method, original in self._originals.items():
            setattr(ChunkedCogWriter, method, original)

    def _timing(self, part: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed_part(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                with self._lock:
                    self.seconds[part] += time.perf_counter() - start

        return timed_part


def plain_recipe(scenes: list[LocalScene], path: Path) -> None:
    """The xarray recipe without any of our work: chunks, mask, concat, median, write."""
    import rioxarray
    import xarray as xr

    chunks = {"band": -1, "y": comp.DEFAULT_CHUNK_PX, "x": comp.DEFAULT_CHUNK_PX}
    dates = []
    for scene in scenes:
        raw = rioxarray.open_rasterio(scene.reflectance_path, chunks=chunks, lock=False)
        mask = rioxarray.open_rasterio(scene.cloud_mask_path, chunks=chunks, lock=False)
        assert isinstance(raw, xr.DataArray) and isinstance(mask, xr.DataArray)
        scale = xr.DataArray(np.array(raw.attrs["scale_factor"], np.float32))
        clear = (raw != 0).all("band") & clear_from_binary_mask(mask.isel(band=0, drop=True))
        dates.append((raw.astype(np.float32) * scale).where(clear))
    stack = xr.concat(dates, dim="time")
    median = stack.median("time", skipna=True)
    green, red, nir = (median.isel(band=i) for i in (1, 2, 3))
    out = xr.concat(
        [median, ndwi(green, nir).expand_dims(band=[5]), ndvi(red, nir).expand_dims(band=[6])],
        dim="band",
    ).astype(np.float32)
    out.attrs = {}  # the scenes' band names and scales do not describe the composite
    out = out.rio.write_crs(raw.rio.crs).rio.write_transform(raw.rio.transform())
    out.rio.to_raster(path, tiled=True, lock=threading.Lock(), compute=True)


def median_alone(scenes: list[LocalScene], grid: AOIGrid, repeats: int = 3) -> dict[str, float]:
    """Seconds per Mpx for each median on one chunk of real, cloud-masked data."""
    size = comp.DEFAULT_CHUNK_PX
    planes = []
    for scene in scenes:
        with (
            rasterio.open(scene.reflectance_path) as src,
            rasterio.open(scene.cloud_mask_path) as m,
        ):
            window = Window(0, 0, min(size, src.width), min(size, src.height))  # type: ignore[call-arg]
            refl = src.read(window=window).astype(np.float32) * np.float32(src.scales[0])
            refl[:, (m.read(1, window=window) != 0)] = np.nan
        planes.append(refl)
    values = np.stack(planes)  # (dates, band, y, x)
    mpx = values[0, 0].size / 1e6
    methods: dict[str, Callable[[], Any]] = {
        "numpy.nanmedian": lambda: np.nanmedian(values, axis=0),
        "one sort (before)": lambda: nanmedian_of_dates(values, use_network=False),
        "sorting network": lambda: nanmedian_of_dates(values),
    }
    seconds = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for name, method in methods.items():
            runs = []
            for _ in range(repeats):
                start = time.perf_counter()
                method()
                runs.append(time.perf_counter() - start)
            seconds[name] = statistics.median(runs) / mpx
    return seconds


def release_freed_heap() -> None:
    """``malloc_trim(0)`` where glibc provides it; a no-op elsewhere."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        return


PEAKS_GIB: dict[str, list[float]] = {}
"""Peak RSS of this process per quantity and round (sampled every 0.2 s)."""


def timed(name: str, function: Callable[[], Any], sampler: pipeline.RssSampler) -> float:
    """Seconds of ``function``; its peak RSS goes into ``PEAKS_GIB[name]``.

    Memory the previous quantity freed is first handed back to the OS (glibc keeps
    freed heap otherwise, and its RSS would count towards this quantity's peak).
    """
    release_freed_heap()
    sampler.reset()
    start = time.perf_counter()
    function()
    seconds = time.perf_counter() - start
    sampler.sample()
    PEAKS_GIB.setdefault(name, []).append(sampler.peak_bytes / 2**30)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--km2", type=float, required=True)
    parser.add_argument("--dates", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--plain", action="store_true", help="also time the plain recipe")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--block-px", type=int, default=512)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.km2 <= 0 or args.dates < 1 or args.rounds < 1:
        parser.error("--km2 must be > 0, --dates and --rounds >= 1")

    limit_gdal_cache(GDAL_CACHE_MB)
    # As the composite stage does: the read+decode limit runs under the same malloc.
    reuse_freed_memory()
    out = args.out or Path(tempfile.mkdtemp(prefix="asmspotter-bench-composite-"))
    recipe = {"km2": args.km2, "dates": args.dates, "block_px": args.block_px, "seed": args.seed}
    scenes_ready = (out / "scenes.json").is_file() and json.loads(
        (out / "scenes.json").read_text()
    ) == recipe
    out.mkdir(parents=True, exist_ok=True)
    try:
        _, grid = pipeline.build_aoi(args.km2)
        if not scenes_ready:
            shutil.rmtree(out / "scenes", ignore_errors=True)
            dates = pipeline.acquisition_dates(args.dates)
            pipeline.generate_scenes(out / "scenes", grid, dates, args.block_px, args.seed)
            (out / "scenes.json").write_text(json.dumps(recipe))
        scenes = local_scenes(out / "scenes")
        work = out / "composite-bench"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        mpx = grid.width_px * grid.height_px / 1e6
        load_before = "{:.1f} {:.1f} {:.1f}".format(*os.getloadavg())
        rounds: list[dict[str, float]] = []
        write_parts: list[dict[str, float]] = []
        decoded_bytes = 0
        sampler = pipeline.RssSampler()
        sampler.__enter__()
        for index in range(args.rounds):
            row: dict[str, float] = {}
            sizes: list[int] = []
            row["read+decode"] = timed(
                "read+decode",
                lambda sizes=sizes: sizes.append(read_and_decode(scenes, comp.DEFAULT_CHUNK_PX)),
                sampler,
            )
            decoded_bytes = sizes[0]
            row["composite"] = timed(
                "composite",
                lambda i=index: comp.composite_scenes(scenes, grid, work / f"ours{i}.tif"),
                sampler,
            )
            row["compute only"] = timed("compute only", lambda: compute_only(scenes, grid), sampler)
            with WriteParts() as parts:
                row["write"] = timed(
                    "write",
                    lambda i=index: write_only(scenes, grid, work / f"write{i}.tif"),
                    sampler,
                )
            after_chunks = parts.seconds["overviews"] + parts.seconds["overview tiles"]
            write_parts.append({"chunks, wall": row["write"] - after_chunks, **parts.seconds})
            if args.plain:
                row["plain recipe"] = timed(
                    "plain recipe",
                    lambda i=index: plain_recipe(scenes, work / f"plain{i}.tif"),
                    sampler,
                )
            rounds.append(row)
            for f in work.iterdir():
                f.unlink()
            print(
                f"round {index + 1}: " + ", ".join(f"{k} {v:.1f} s" for k, v in row.items()),
                flush=True,
            )
        medians = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
        ratios = {
            "composite / read+decode": [r["composite"] / r["read+decode"] for r in rounds],
            "composite / (read+decode + write)": [
                r["composite"] / (r["read+decode"] + r["write"]) for r in rounds
            ],
            "compute only / read+decode": [r["compute only"] / r["read+decode"] for r in rounds],
        }
        if args.plain:
            ratios["plain recipe / composite"] = [
                r["plain recipe"] / r["composite"] for r in rounds
            ]
        median_s_per_mpx = median_alone(scenes, grid)
        lines = [
            f"AOI {args.km2:g} km² at 10 m: {grid.width_px} x {grid.height_px} px ({mpx:.2f} Mpx), "
            f"{len(scenes)} dates, chunk {comp.DEFAULT_CHUNK_PX} px; {args.rounds} rounds; "
            f"load average before {load_before}, after "
            "{:.1f} {:.1f} {:.1f}".format(*os.getloadavg()),
            f"read+decode: {decoded_bytes / 1e9:.2f} GB of scenes and masks, "
            f"{READ_THREADS} threads; peak RSS: of this process during the quantity, max over "
            "rounds (freed heap is returned to the OS before each quantity)",
            "",
            "| quantity | median s | Mpx/s | peak RSS GiB | rounds s |",
            "|---|---:|---:|---:|---|",
        ]
        for key, value in medians.items():
            per_round = ", ".join(f"{r[key]:.1f}" for r in rounds)
            peak = max(PEAKS_GIB[key])
            lines.append(f"| {key} | {value:.1f} | {mpx / value:.2f} | {peak:.2f} | {per_round} |")
        lines += ["", "| part of write | median s | rounds s |", "|---|---:|---|"]
        for key in write_parts[0]:
            per_round = ", ".join(f"{p[key]:.2f}" for p in write_parts)
            median = statistics.median(p[key] for p in write_parts)
            lines.append(f"| write: {key} | {median:.2f} | {per_round} |")
        lines += ["", "| ratio (within a round) | median | rounds |", "|---|---:|---|"]
        for key, values in ratios.items():
            per_round = ", ".join(f"{v:.2f}" for v in values)
            lines.append(f"| {key} | {statistics.median(values):.2f} | {per_round} |")
        lines += [
            "",
            f"| median over {len(scenes)} dates x 4 bands | s per Mpx | vs network |",
            "|---|---:|---:|",
        ]
        network = median_s_per_mpx["sorting network"]
        for name, value in median_s_per_mpx.items():
            lines.append(f"| {name} | {value:.3f} | {value / network:.1f}x |")
        print("\n".join(lines))
        sampler.__exit__(None, None, None)
    finally:
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
