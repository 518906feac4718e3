"""Cloud-free composites: many scenes of one window -> one image on the AOI grid.

Each scene is warped lazily onto the AOI grid (GDAL WarpedVRT read through
rioxarray into dask chunks), cloudy pixels become NaN, and the per-pixel median
over time gives the composite. NDWI and NDVI are appended, and ``valid`` counts
the clear observations behind each pixel: 0 means the pixel was never seen.
Memory is bounded by the chunk size, not by the AOI size.
"""

from __future__ import annotations

import logging
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import rasterio
import rioxarray
import xarray as xr
from affine import Affine
from dask.base import compute
from dask.callbacks import Callback
from dask.delayed import delayed
from numpy.typing import NDArray
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.features import shapes
from rasterio.vrt import WarpedVRT
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union

from asmspotter.atomic_write import writing_output
from asmspotter.cluster import dask_client
from asmspotter.cog import BLOCK_PX, ChunkedCogWriter, TileRecord
from asmspotter.composite.indices import ndvi, ndwi
from asmspotter.composite.median import median_of_planes_in_place
from asmspotter.errors import NoScenesError, SceneReadError
from asmspotter.grid import AOIGrid
from asmspotter.memory import reuse_freed_memory
from asmspotter.progress import ProgressUpdate, progress_bar
from asmspotter.scenes import BINARY_MASK_NODATA, LocalScene, clear_from_binary_mask

logger = logging.getLogger(__name__)

REFLECTANCE_BANDS = ("blue", "green", "red", "nir")
COMPOSITE_BANDS = ("blue", "green", "red", "nir", "ndwi", "ndvi", "valid")
"""Band order of a composite COG; band descriptions carry these names."""

DEFAULT_CHUNK_PX = 1024

ChunkSummary = Callable[[NDArray[np.float32], int, int], Any]
"""What :func:`write_composite` asks of each computed chunk: ``(chunk, row0, col0)``."""


@dataclass(frozen=True)
class CompositeResult:
    """A composite written to disk.

    Attributes:
        path: The composite COG (bands as in ``COMPOSITE_BANDS``, float32).
        n_scenes: Scenes that went into it.
        clear_fraction: Fraction of AOI-grid pixels with at least one clear observation.
        clear_footprint: Polygon(s) of pixels with >= 1 clear observation, grid CRS.
    """

    path: Path
    n_scenes: int
    clear_fraction: float
    clear_footprint: BaseGeometry


def _on_grid(src: rasterio.io.DatasetReader, grid: AOIGrid) -> bool:
    """True when a raster already has the grid's CRS, pixel layout and extent."""
    return (
        src.crs is not None
        and src.crs.to_epsg() == grid.epsg
        and (src.width, src.height) == (grid.width_px, grid.height_px)
        and src.transform.almost_equals(grid.transform)
    )


def _warped(path: Path, grid: AOIGrid, resampling: Resampling, nodata: float) -> xr.DataArray:
    """Open ``path`` lazily as a dask-backed DataArray on ``grid`` (band, y, x).

    Scenes the providers wrote on the AOI grid are read as they are; anything else
    goes through GDAL's warper (a ``WarpedVRT``), which costs as much as the median.
    """
    chunks = {"band": -1, "y": DEFAULT_CHUNK_PX, "x": DEFAULT_CHUNK_PX}
    with rasterio.open(path) as src:
        if _on_grid(src, grid) and src.nodata in (None, nodata):
            direct = rioxarray.open_rasterio(path, chunks=chunks, lock=False)
            assert isinstance(direct, xr.DataArray)  # a single-variable file always gives one
            return direct
        vrt = WarpedVRT(
            src,
            crs=grid.crs.to_wkt(),
            transform=grid.transform,
            width=grid.width_px,
            height=grid.height_px,
            resampling=resampling,
            nodata=nodata,
        )
        array = rioxarray.open_rasterio(vrt, chunks=chunks)
    assert isinstance(array, xr.DataArray)  # a single-variable file always gives one
    return array


@dataclass(frozen=True)
class SceneCalibration:
    """How one scene's raw blocks become reflectance (small: travels with each task).

    Attributes:
        scales: Per band, reflectance = raw * scale + offset (float32).
        offsets: Per band (float32).
        nodata: Raw value outside the scene.
        has_cloud_mask: Whether a cloud-mask block follows the scene's raw block.
    """

    scales: NDArray[np.float32]
    offsets: NDArray[np.float32]
    nodata: float
    has_cloud_mask: bool


@dataclass(frozen=True)
class SceneOnGrid:
    """One scene opened lazily on the AOI grid: raw digital numbers and cloud mask.

    Attributes:
        raw: Lazy (band, y, x) DataArray of the 4 reflectance bands as stored.
        cloud_mask: Lazy (y, x) binary cloud mask (:mod:`asmspotter.scenes`), or None.
        calibration: Scales, offsets and nodata of ``raw``.
    """

    raw: xr.DataArray
    cloud_mask: xr.DataArray | None
    calibration: SceneCalibration


def open_scene_on_grid(scene: LocalScene, grid: AOIGrid) -> SceneOnGrid:
    """Open one scene lazily on the AOI grid (nothing is read yet but the header).

    Raises:
        SceneReadError: the scene is unreadable or has the wrong number of bands.
    """
    try:
        with rasterio.open(scene.reflectance_path) as src:
            if src.count != len(REFLECTANCE_BANDS):
                raise SceneReadError(
                    f"scene {scene.ref.scene_id}: {scene.reflectance_path} has {src.count} bands, "
                    "expected 4 (blue, green, red, nir)."
                )
            scales = np.array(src.scales, dtype=np.float32)
            offsets = np.array(src.offsets, dtype=np.float32)
            nodata = 0.0 if src.nodata is None else float(src.nodata)
        raw = _warped(scene.reflectance_path, grid, Resampling.bilinear, nodata)
        mask = None
        if scene.cloud_mask_path is not None:
            warped_mask = _warped(
                scene.cloud_mask_path, grid, Resampling.nearest, BINARY_MASK_NODATA
            )
            mask = warped_mask.isel(band=0, drop=True)
    except RasterioIOError as exc:
        raise SceneReadError(
            f"scene {scene.ref.scene_id}: cannot read {scene.reflectance_path} ({exc})."
        ) from exc
    calibration = SceneCalibration(scales, offsets, nodata, has_cloud_mask=mask is not None)
    return SceneOnGrid(raw=raw, cloud_mask=mask, calibration=calibration)


def _clear_reflectance(
    raw: NDArray[Any], cloud_mask: NDArray[Any] | None, calibration: SceneCalibration
) -> tuple[list[NDArray[np.float32]], NDArray[np.bool_]]:
    """One scene's block: reflectance per band (+inf where not clear) and the clear mask.

    +inf, not NaN, marks missing values: the median's sorting network orders them last
    without a NaN scan (:func:`~asmspotter.composite.median.median_of_planes_in_place`).
    """
    clear = np.all(raw != calibration.nodata, axis=0)
    if raw.dtype.kind == "f":
        clear &= ~np.isnan(raw).any(axis=0)
    if cloud_mask is not None:
        clear &= clear_from_binary_mask(cloud_mask.reshape(clear.shape))
    not_clear = ~clear
    bands = []
    for band, scale, offset in zip(raw, calibration.scales, calibration.offsets, strict=True):
        # One pass from the stored type: the same float32 product as astype-then-multiply.
        reflectance = np.multiply(band, scale, dtype=np.float32)
        if offset != 0:  # adding 0 changes nothing but the sign of a zero
            reflectance += offset
        np.copyto(reflectance, np.float32(np.inf), where=not_clear)
        bands.append(reflectance)
    return bands, clear


def composite_block(
    *blocks: NDArray[Any], calibrations: Sequence[SceneCalibration]
) -> NDArray[np.float32]:
    """All ``COMPOSITE_BANDS`` of one block of the composite, from the scenes' raw blocks.

    One fused pass per block: masking, scaling, the median over dates, the indices
    and the clear count happen on the block's planes with no intermediate dask
    arrays (each was a task and a copy of the block).

    Args:
        blocks: Per scene, its raw (band, y, x) block, then its (1, y, x) cloud-mask
            block when the scene has a mask.
        calibrations: The scenes' calibrations, in the order of ``blocks``.

    Returns:
        (7, y, x) float32: the reflectance medians, NDWI, NDVI (NaN where never
        clear) and the clear-observation count.
    """
    reuse_freed_memory()  # once per process: a chunk's planes fault in otherwise
    per_band: list[list[NDArray[np.float32]]] = [[] for _ in REFLECTANCE_BANDS]
    n_clear: NDArray[np.uint8] | None = None
    remaining = iter(blocks)
    for calibration in calibrations:
        raw = next(remaining)
        mask = next(remaining) if calibration.has_cloud_mask else None
        bands, clear = _clear_reflectance(raw, mask, calibration)
        for planes, plane in zip(per_band, bands, strict=True):
            planes.append(plane)
        if n_clear is None:
            n_clear = np.zeros(clear.shape, dtype=np.uint8 if len(calibrations) < 256 else np.intp)
        n_clear += clear
    assert n_clear is not None  # at least one scene, checked by the caller
    out = np.empty((len(COMPOSITE_BANDS), *n_clear.shape), dtype=np.float32)
    for index, planes in enumerate(per_band):
        out[index] = median_of_planes_in_place(planes, n_clear)
        planes.clear()  # free the dates' planes of this band before the next one
    green, red, nir = out[1], out[2], out[3]
    never_clear = n_clear == 0
    for index, index_band in ((4, ndwi(green, nir)), (5, ndvi(red, nir))):
        index_band[never_clear] = np.nan
        out[index] = index_band
    out[6] = n_clear
    return out


def build_composite_stack(scenes: Sequence[LocalScene], grid: AOIGrid) -> xr.DataArray:
    """All ``COMPOSITE_BANDS`` of the median composite as one lazy (band, y, x) array.

    Args:
        scenes: Downloaded scenes of one window.
        grid: The AOI grid.

    Returns:
        float32 DataArray, band coordinate ``COMPOSITE_BANDS`` (``valid`` as a count),
        georeferenced on ``grid``.

    Raises:
        NoScenesError: ``scenes`` is empty.
    """
    if not scenes:
        raise NoScenesError("cannot build a composite from zero scenes.")
    opened = [open_scene_on_grid(scene, grid) for scene in scenes]
    template = opened[0].raw
    inputs: list[Any] = []
    for scene in opened:
        raw = scene.raw.data.rechunk(
            {0: -1, 1: template.data.chunks[1], 2: template.data.chunks[2]}
        )
        inputs.append(raw)
        if scene.cloud_mask is not None:
            mask = scene.cloud_mask.data[None].rechunk(
                {0: -1, 1: template.data.chunks[1], 2: template.data.chunks[2]}
            )
            inputs.append(mask)
    data = da.map_blocks(  # type: ignore[no-untyped-call]
        composite_block,
        *inputs,
        calibrations=[scene.calibration for scene in opened],
        dtype=np.float32,
        chunks=((len(COMPOSITE_BANDS),), *template.data.chunks[1:]),
        name="asmspotter-composite",
    )
    stack = xr.DataArray(
        data,
        dims=("band", "y", "x"),
        coords={"band": list(COMPOSITE_BANDS), "y": template.y, "x": template.x},
    )
    georeferenced: xr.DataArray = stack.rio.write_crs(grid.epsg).rio.write_transform(grid.transform)
    return georeferenced


def build_composite_dataset(scenes: Sequence[LocalScene], grid: AOIGrid) -> xr.Dataset:
    """Median composite of ``scenes`` on ``grid``, lazily (dask).

    Example:
        >>> ds = build_composite_dataset(scenes, grid)  # doctest: +SKIP
        >>> float(ds.ndvi.mean())  # forest ~0.8  # doctest: +SKIP

    Args:
        scenes: Downloaded scenes of one window.
        grid: The AOI grid.

    Returns:
        Dataset with float32 variables blue, green, red, nir (reflectance 0..1),
        ndwi, ndvi (-1..1), NaN where never clear, and ``valid`` (int16 count of
        clear observations), dims (y, x).

    Raises:
        NoScenesError: ``scenes`` is empty.
    """
    stack = build_composite_stack(scenes, grid)
    variables = {name: stack.sel(band=name, drop=True) for name in COMPOSITE_BANDS}
    variables["valid"] = variables["valid"].astype(np.int16)
    dataset = xr.Dataset(variables)
    georeferenced: xr.Dataset = dataset.rio.write_crs(grid.epsg).rio.write_transform(grid.transform)
    return georeferenced


class _TaskCounter(Callback):  # type: ignore[misc]
    """Counts the local Dask scheduler's finished tasks into a progress bar."""

    def __init__(self, update: ProgressUpdate) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._update = update
        self._done = 0
        self._total = 0

    def _start_state(self, dsk: Any, state: dict[str, Any]) -> None:
        self._total = len(state.get("ready", [])) + len(state.get("waiting", {}))
        self._update(0, self._total)

    def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
        self._done += 1
        self._update(min(self._done, self._total))


def write_composite(
    dataset: xr.Dataset | xr.DataArray,
    path: Path,
    client: Any | None = None,
    *,
    summarise_chunk: ChunkSummary | None = None,
) -> list[Any]:
    """Compute ``dataset`` chunk by chunk into a Cloud-Optimised GeoTIFF.

    Bands follow ``COMPOSITE_BANDS`` and carry those names as band descriptions. Each
    chunk's task compresses its own tiles as soon as it is computed
    (:class:`asmspotter.cog.ChunkedCogWriter`), so compression runs beside the
    median instead of after it; the final name appears only when the COG is complete.

    Args:
        dataset: From :func:`build_composite_dataset`, or the (band, y, x) array of
            :func:`build_composite_stack` (written as it is, no per-band copies).
        path: Where the COG goes.
        client: A ``distributed.Client``: chunks compute on its workers, which append
            their tiles under a cluster-wide lock (``path``'s folder must be on storage
            the workers share). None: local threads.
        summarise_chunk: Called as ``summarise_chunk(chunk, row0, col0)`` with every
            computed (band, h, w) chunk and its pixel origin, where it was computed:
            what :func:`composite_scenes` needs of the pixels (its clear statistics)
            without reading the COG back.

    Returns:
        What ``summarise_chunk`` returned for each chunk (empty without it).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(dataset, xr.DataArray):
        stacked = dataset.astype(np.float32)
    else:
        stacked = xr.concat(
            [dataset[name].astype(np.float32) for name in COMPOSITE_BANDS], dim="band"
        )
    data, chunk_px = _tile_aligned(stacked.data)
    lock: Any = None  # the writer's own thread lock
    if client is not None:
        from distributed import Lock

        with client.as_current():
            lock = Lock(f"asmspotter-write-{path}-{uuid.uuid4().hex}")  # type: ignore[no-untyped-call]
    # The writer's own files count as the output: a full disk while it creates them
    # is reported like one while it fills them.
    with writing_output(path):
        writer = ChunkedCogWriter(
            path,
            width=int(data.shape[2]),
            height=int(data.shape[1]),
            band_names=COMPOSITE_BANDS,
            transform=stacked.rio.transform(),
            epsg=int(stacked.rio.crs.to_epsg()),
            chunk_px=chunk_px,
            lock=lock,
        )
        try:
            blocks = data.to_delayed()  # type: ignore[no-untyped-call]
            tasks = [
                delayed(_write_chunk, pure=True)(
                    writer, blocks[0, i, j], row0, col0, summarise_chunk
                )
                for row0, col0, i, j in chunk_origins(data.chunks[1:])
            ]
            if client is None:
                # Explicitly threads: on a Dask worker the default would be the worker's client.
                with (
                    progress_bar(f"composite {path.parent.name} (chunks)") as update,
                    _TaskCounter(update),
                ):
                    results = compute(*tasks, scheduler="threads")  # type: ignore[no-untyped-call]
            else:
                futures = client.compute(tasks)
                try:
                    results = client.gather(futures)
                except BaseException:
                    client.cancel(futures)  # the others would only fail on a removed file
                    raise
            writer.finish([record for records, _ in results for record in records])
        finally:
            writer.discard()
    return [summary for _, summary in results] if summarise_chunk is not None else []


def _tile_aligned(data: da.Array) -> tuple[da.Array, int]:
    """``data`` on a square grid of chunks the COG writer takes, and the grid's size.

    The writer wants equal square chunks of 512 px times a power of 2 (cut only by the
    image's edge): rechunked to ``DEFAULT_CHUNK_PX`` (1,024 px, so each chunk also
    encodes its tile of the first overview) only if they are not.
    """
    sizes = {size for axis in data.chunks[1:] for size in axis[:-1]}
    edges = [axis[-1] for axis in data.chunks[1:]]
    side = max(sizes | set(edges))
    grid = len(data.chunks[0]) == 1 and len(sizes) <= 1 and all(edge <= side for edge in edges)
    if grid and side % BLOCK_PX == 0 and (side // BLOCK_PX).bit_count() == 1:
        return data, side
    side = BLOCK_PX * max(1, 2 ** ((DEFAULT_CHUNK_PX // BLOCK_PX).bit_length() - 1))
    rechunked: da.Array = data.rechunk({0: -1, 1: side, 2: side})  # type: ignore[no-untyped-call]
    return rechunked, side


def chunk_origins(chunks: tuple[tuple[int, ...], ...]) -> Iterator[tuple[int, int, int, int]]:
    """(row0, col0, i, j) of every chunk of a dask array's (y, x) chunks."""
    rows, cols = chunks
    row_starts = np.cumsum((0, *rows[:-1]))
    col_starts = np.cumsum((0, *cols[:-1]))
    for i, row0 in enumerate(row_starts):
        for j, col0 in enumerate(col_starts):
            yield int(row0), int(col0), i, j


def _write_chunk(
    writer: ChunkedCogWriter,
    chunk: NDArray[np.float32],
    row0: int,
    col0: int,
    summarise_chunk: ChunkSummary | None,
) -> tuple[list[TileRecord], Any]:
    """One chunk's task: its tiles into the COG, and its summary."""
    records = writer.write_chunk(chunk, row0, col0)
    return records, summarise_chunk(chunk, row0, col0) if summarise_chunk is not None else None


def clear_footprint_from_valid(
    valid: np.ndarray, grid: AOIGrid, transform: Affine | None = None, *, simplify: bool = True
) -> BaseGeometry:
    """Polygon(s) covering pixels with at least one clear observation, in the grid CRS.

    Args:
        valid: Clear-observation counts, (rows, cols) of the grid or of a window of it.
        grid: The AOI grid.
        transform: The window's transform when ``valid`` is a window; default the grid's.
        simplify: Simplify to half a pixel. False for pieces of a footprint that are
            joined first: simplified apart, their shared edges no longer match.
    """
    seen = (valid > 0).astype(np.uint8)
    polygons = [
        shape(geom)
        for geom, value in shapes(
            seen, mask=seen.astype(bool), transform=transform or grid.transform
        )
        if value == 1
    ]
    footprint = unary_union(polygons)
    if not simplify:
        return footprint
    return footprint.simplify(grid.resolution_m / 2, preserve_topology=True)


def _chunk_clear_statistics(grid: AOIGrid) -> ChunkSummary:
    """A chunk's count of clear pixels and its clear footprint (see :func:`write_composite`).

    Taken from the chunks as they are computed: read back from the compressed,
    pixel-interleaved COG, the ``valid`` band cost decoding all seven (10.1 s at
    12,000 km²). The chunks' footprints are joined before they are simplified, so the
    result is the whole image's footprint.
    """
    band = COMPOSITE_BANDS.index("valid")

    def summary(chunk: NDArray[np.float32], row0: int, col0: int) -> tuple[int, BaseGeometry]:
        valid = chunk[band]
        transform = grid.transform * Affine.translation(col0, row0)
        footprint = clear_footprint_from_valid(valid, grid, transform, simplify=False)
        return int(np.count_nonzero(valid > 0)), footprint

    return summary


def composite_scenes(
    scenes: Sequence[LocalScene],
    grid: AOIGrid,
    out_path: Path,
    progress: Callable[[str], None] | None = None,
    dask_scheduler: str | None = None,
) -> CompositeResult:
    """Build and write the composite of ``scenes`` on ``grid``.

    Example:
        >>> result = composite_scenes(scenes, grid, Path("out/composite.tif"))  # doctest: +SKIP
        >>> result.clear_fraction  # doctest: +SKIP
        0.97

    Args:
        scenes: Downloaded scenes of one window.
        grid: The AOI grid.
        out_path: Where the COG goes.
        progress: Optional callback told about each step.
        dask_scheduler: Address of a ``dask.distributed`` scheduler to compute on
            (setting ``ASMSPOTTER_DASK_SCHEDULER``); None: local threads.

    Returns:
        The composite's path and clear-sky statistics.
    """
    if progress:
        progress(f"compositing {len(scenes)} scenes on a {grid.width_px}x{grid.height_px} grid")
    with warnings.catch_warnings():
        # Pixels never clear in the window are expected: their median is NaN.
        warnings.filterwarnings("ignore", "All-NaN slice encountered", RuntimeWarning)
        with dask_client(dask_scheduler) as client:
            statistics = write_composite(
                build_composite_stack(scenes, grid),
                out_path,
                client,
                summarise_chunk=_chunk_clear_statistics(grid),
            )
    clear_fraction = sum(n_clear for n_clear, _ in statistics) / (grid.width_px * grid.height_px)
    clear_footprint = unary_union([footprint for _, footprint in statistics]).simplify(
        grid.resolution_m / 2, preserve_topology=True
    )
    logger.info(
        "Composite of %d scenes written to %s (%.1f%% of pixels clear at least once)",
        len(scenes),
        out_path,
        clear_fraction * 100,
    )
    return CompositeResult(
        path=out_path,
        n_scenes=len(scenes),
        clear_fraction=clear_fraction,
        clear_footprint=clear_footprint,
    )
