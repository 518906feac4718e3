"""Tiled U-Net inference: load a model, predict a probability map, find mines.

:func:`load_model` reads a model directory (card + weights, see
:mod:`asmspotter.detect.model_card`); :func:`build_features` stacks a composite's bands
in the model's input order (computing NDWI/NDVI if absent);
:func:`predict_probabilities` runs the net over overlapping tiles
(:mod:`asmspotter.detect.tiling`) and blends them; :func:`detect_mines` does all of
it from a composite COG (written by :mod:`asmspotter.composite`) to a probability
COG and polygons (:mod:`asmspotter.detect.vectorize`).

Memory is bounded by a row of tiles: features are read one row of tiles at a time
(``tile_px`` rows, full width) from anything indexable as ``features[:, r0:r1, c0:c1]``
(numpy, dask, a rasterio window reader), and finished rows of the output are handed
on strip by strip.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import pickle
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import geopandas as gpd
import numpy as np
import rasterio
import torch
from affine import Affine
from numpy.typing import NDArray
from rasterio.windows import Window
from torch import nn

from asmspotter.atomic_write import scratch_path, writing_output
from asmspotter.cluster import available_cpu_count, dask_worker_threads
from asmspotter.cog import staging_profile, staging_to_cog
from asmspotter.composite.indices import ndvi, ndwi
from asmspotter.detect.model_card import (
    DERIVED_BANDS,
    WEIGHTS_FILENAME,
    Architecture,
    ModelCard,
    check_model_fits,
    check_weights_match_card,
    load_card,
)
from asmspotter.detect.site_verification import RasterPatches, verified_sites, verifier_for
from asmspotter.detect.tiling import (
    blend_weights,
    split_axis,
    tile_windows,
    tiles_covering,
)
from asmspotter.detect.unet import UNet, fold_space_to_depth
from asmspotter.detect.vectorize import vectorize_probability_file
from asmspotter.errors import ModelMismatchError, ModelNotFoundError, SceneReadError
from asmspotter.memory import reuse_freed_memory

logger = logging.getLogger(__name__)

Precision = Literal["fp32", "bf16"]
ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(tiles_done, tiles_total)`` after each batch of tiles."""

PROBABILITY_BAND = "mining_probability"
"""Band description of the probability COG."""

BLOCK_PX = 3072
"""Widest column block predicted at once, and most rows of one block on a Dask worker.

What inference holds grows with the width of what it predicts (rows of composite
blocks and of tiles, about 100 KB per column of float32 bands, temporaries and
accumulators): a wide AOI is predicted in column blocks of at most this many pixels,
so its peak memory does not grow with the AOI's size (``detect_mines`` alone on a
10,954 px wide composite: 0.75 GiB in 3,651 px blocks, 0.63 GiB in 1,826 px blocks).
Each block edge runs one column of tiles twice (at this width about 7 % more tiles
per edge for a block).
"""

PROBABILITY_NODATA = -1.0
"""Nodata value of the probability COG (pixels without a clear observation)."""


class FeatureArray(Protocol):
    """Anything with a (C, H, W) ``shape`` that can be sliced into tiles."""

    @property
    def shape(self) -> tuple[int, ...]:
        """(C, H, W)."""
        ...

    def __getitem__(self, key: Any) -> Any:
        """Return ``features[:, r0:r1, c0:c1]`` as something ``np.asarray`` accepts."""
        ...


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for inference.

    Attributes:
        card: The model card (bands, normalisation, threshold, tiling).
        module: The torch network, in eval mode, on ``device``.
        device: The torch device the network runs on.
        model_dir: The directory the model was loaded from.
    """

    card: ModelCard
    module: nn.Module
    device: torch.device
    model_dir: Path | None = None


def configure_torch_threads() -> int:
    """Set torch's intra-op threads to the cores available to this process.

    torch defaults to the machine's physical cores, which oversubscribes a container
    or a Dask worker pinned to fewer cores
    (https://pytorch.org/docs/stable/notes/cpu_threading_torchscript_inference.html).
    On a Dask worker the worker's thread count is the budget: two one-thread workers
    on two cores use one core each.

    Returns:
        The number of threads set.
    """
    n = available_cpu_count()
    worker_threads = dask_worker_threads()
    if worker_threads is not None:
        n = max(1, min(n, worker_threads))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def resolve_device(device: str | None = None) -> torch.device:
    """Return ``device``, or CUDA when available, else CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def build_model(card: ModelCard) -> UNet:
    """Build the (untrained) network the card describes."""
    return build_network(card.architecture, n_bands=len(card.bands))


def build_network(architecture: Architecture, n_bands: int) -> UNet:
    """Build an untrained U-Net of ``architecture`` for ``n_bands`` inputs, one logit out."""
    return UNet(
        in_channels=n_bands,
        out_channels=1,
        base_channels=architecture.base_channels,
        depth=architecture.depth,
        upsampling=architecture.upsampling,
        space_to_depth=architecture.space_to_depth,
    )


def fuse_batchnorm(module: nn.Module) -> nn.Module:
    """Fold every eval-mode BatchNorm that follows a conv into the conv's weights and bias.

    Inference then skips one memory-bound pass over every feature map per conv (the
    net is small, so those passes cost as much as the convs); outputs are equal to
    float rounding. The module must be in eval mode; returns it, changed in place.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for child in module.modules():
        if not isinstance(child, nn.Sequential):
            continue
        layers = list(child)
        for i in range(len(layers) - 1):
            conv, norm = layers[i], layers[i + 1]
            if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                child[i] = fuse_conv_bn_eval(conv, norm)
                child[i + 1] = nn.Identity()
    return module


def load_model(model_dir: Path, device: str | None = None) -> LoadedModel:
    """Load a model directory's card and weights for inference.

    Args:
        model_dir: Directory with ``model_card.json`` and ``weights.pt``.
        device: Torch device (``"cpu"``, ``"cuda"``, ``"cuda:1"``); None picks CUDA when
            available, else CPU.

    Returns:
        The model in eval mode, channels-last, on the device.

    Raises:
        ModelNotFoundError: If the card or the weights are missing.
        ModelMismatchError: If the card is invalid, the weights do not fit its
            architecture, or they are not the weights written with the card.
    """
    model_dir = Path(model_dir)
    card = load_card(model_dir)
    weights_path = model_dir / WEIGHTS_FILENAME
    if not weights_path.is_file():
        raise ModelNotFoundError(
            f"{weights_path}: weights not found next to the model card; copy the model's "
            f"{WEIGHTS_FILENAME} there or re-train it with `asmspotter model train`."
        )
    check_weights_match_card(card, model_dir, weights_path)
    torch_device = resolve_device(device)
    if torch_device.type == "cpu":
        configure_torch_threads()
    module: nn.Module = build_model(card)
    try:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as exc:
        raise ModelMismatchError(
            f"{weights_path}: cannot read these weights ({type(exc).__name__}: "
            f"{str(exc)[:200]}); the file is truncated or not a torch state_dict. Copy it "
            "again from where the model came from, or re-train the model."
        ) from exc
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelMismatchError(
            f"{weights_path}: weights do not fit the architecture in the model card "
            f"({card.architecture.model_dump()}, {len(card.bands)} bands): {exc}. Use the "
            "card that was written with these weights, or re-train the model."
        ) from exc
    module = fuse_batchnorm(module.eval())
    module = module.to(torch_device)
    # Channels-last lets oneDNN (CPU) and cuDNN pick faster conv kernels
    # (https://pytorch.org/tutorials/intermediate/memory_format_tutorial.html).
    module = module.to(memory_format=torch.channels_last).eval()  # type: ignore[call-overload]
    logger.info(
        "loaded model %s v%s from %s on %s", card.name, card.version, model_dir, torch_device
    )
    return LoadedModel(card=card, module=module, device=torch_device, model_dir=model_dir)


def build_features(
    reflectance: Mapping[str, Any] | Any, bands: Sequence[str]
) -> NDArray[np.float32]:
    """Stack the bands a model needs, in its input order, as (C, H, W) float32.

    Args:
        reflectance: Band name to (H, W) array: a dict of numpy arrays or an
            ``xarray.Dataset`` with one (y, x) variable per band (reflectance 0..1).
            ``ndwi`` and ``ndvi`` are computed from green, red and nir when absent.
        bands: Band names in input order, e.g. ``card.bands``.

    Returns:
        float32 array (len(bands), H, W).

    Raises:
        ModelMismatchError: If a band is neither present nor computable.
    """
    names = [str(k) for k in reflectance]
    layers = []
    for band in bands:
        if band in reflectance:
            layers.append(np.asarray(reflectance[band], dtype=np.float32))
        elif band in DERIVED_BANDS and all(s in reflectance for s in DERIVED_BANDS[band]):
            a, b = (np.asarray(reflectance[s], dtype=np.float32) for s in DERIVED_BANDS[band])
            layers.append(ndwi(a, b) if band == "ndwi" else ndvi(a, b))
        else:
            raise ModelMismatchError(
                f"band {band!r} is needed by the model but the input has only {names} "
                "(ndwi needs green+nir, ndvi needs red+nir); give a composite with these bands "
                "or choose another detection.model in the AOI YAML."
            )
    return np.stack(layers).astype(np.float32, copy=False)


def _batches_of(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive lists of ``size`` items (the last may be shorter)."""
    while batch := list(itertools.islice(items, size)):
        yield batch


def _prepared_tiles(
    features: NDArray[np.float32] | FeatureArray,
    valid_mask: NDArray[np.bool_] | FeatureArray | None,
    windows: Sequence[Window],
    mean: NDArray[np.float32],
    std: NDArray[np.float32],
    pad_h: int,
    pad_w: int,
) -> Iterator[tuple[Window, NDArray[np.float32], NDArray[np.bool_]]]:
    """Yield ``(window, normalised tile, no-data mask)`` for row-major ``windows``.

    Features are read one row of tiles at a time (one read of the row's full width
    instead of one per tile) and normalised once per pixel, not once per overlapping
    tile: reading and normalising cost less than the net itself this way.
    """
    for row, group in itertools.groupby(windows, key=lambda window: window[0]):
        row_windows = list(group)
        height = row_windows[0][2]
        c0 = min(col for _, col, _, _ in row_windows)
        c1 = max(col + w for _, col, _, w in row_windows)
        strip = np.asarray(features[:, row : row + height, c0:c1], dtype=np.float32)
        finite = np.isfinite(strip)
        bad = np.logical_not(finite.all(axis=0))
        if valid_mask is not None:
            bad |= ~np.asarray(valid_mask[row : row + height, c0:c1], dtype=bool)
        # NaNs become the band mean, i.e. 0 after normalising: neutral input.
        strip = np.where(finite, strip, mean)
        strip -= mean
        strip /= std
        for window in row_windows:
            col, width = window[1] - c0, window[3]
            tile = strip[:, :, col : col + width]
            if pad_h or pad_w:
                tile = np.pad(tile, ((0, 0), (0, pad_h), (0, pad_w)), mode="reflect")
            yield window, tile, bad[:, col : col + width]


Strip = tuple[int, int, NDArray[np.float32], NDArray[np.bool_]]
"""A finished piece of the probability map: ``(row_off, col_off, probability, nodata)``."""


def _check_range(name: str, value: tuple[int, int] | None, length: int) -> tuple[int, int]:
    """``value`` (default: the whole axis) after checking it lies inside ``0..length``."""
    start, stop = (0, length) if value is None else value
    if not 0 <= start < stop <= length:
        raise ValueError(f"{name} {value} is not inside the image's {length} pixels.")
    return start, stop


def _predict_strips(
    features: NDArray[np.float32] | FeatureArray,
    model: LoadedModel,
    *,
    valid_mask: NDArray[np.bool_] | FeatureArray | None,
    batch_size: int,
    progress: ProgressCallback | None,
    precision: Precision,
    row_range: tuple[int, int] | None = None,
    col_range: tuple[int, int] | None = None,
) -> Iterator[Strip]:
    """Yield finished strips ``(row_off, col_off, probability, nodata)`` top to bottom.

    Tiles are visited row of tiles by row of tiles; rows above the current tile row are
    final (no later tile covers them), so they are blended, yielded and dropped. Memory
    is one tile row of accumulators (``tile_px`` x the block's width x 9 bytes) plus the
    tile batch, whatever the image height.

    ``row_range=(start, stop)`` and ``col_range`` predict only that block of the image:
    it runs every tile of the whole image's tiling that covers one of its pixels, so
    each pixel blends the same tiles as in a whole-image run and blocks predicted apart
    (column blocks of a wide AOI, strips on several Dask workers) join without seams or
    differences. Tile rows (columns) that straddle a block edge are run by both
    neighbouring blocks.
    """
    card = model.card
    if len(features.shape) != 3:
        raise ValueError(f"features must be (C, H, W), got shape {tuple(features.shape)}.")
    n_bands, height, width = (int(s) for s in features.shape)
    if n_bands != len(card.bands):
        raise ModelMismatchError(
            f"model {card.name!r} takes {len(card.bands)} bands {card.bands} but the features "
            f"have {n_bands}; build them with build_features(reflectance, card.bands)."
        )
    if valid_mask is not None and tuple(valid_mask.shape) != (height, width):
        raise ValueError(
            f"valid_mask has shape {tuple(valid_mask.shape)}, features have {(height, width)}."
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    first_row, stop_row = _check_range("row_range", row_range, height)
    first_col, stop_col = _check_range("col_range", col_range, width)
    if model.device.type == "cpu":
        configure_torch_threads()
        reuse_freed_memory()

    mean = np.asarray(card.normalisation.mean, dtype=np.float32)[:, None, None]
    std = np.asarray(card.normalisation.std, dtype=np.float32)[:, None, None]
    windows = tiles_covering(
        tile_windows(height, width, card.tile_px, card.overlap_px),
        (first_row, stop_row),
        (first_col, stop_col),
    )
    tile_h, tile_w = windows[0][2], windows[0][3]
    # Accumulators span the columns of the tiles run: the block plus the tiles' margins.
    span_c0 = min(col for _, col, _, _ in windows)
    span = max(col + w for _, col, _, w in windows) - span_c0
    weights = blend_weights(card.tile_px, card.overlap_px)
    value_sum = np.zeros((tile_h, span), dtype=np.float32)
    weight_sum = np.zeros((tile_h, span), dtype=np.float32)
    nodata = np.zeros((tile_h, span), dtype=bool)
    buf_r0 = windows[0][0]
    end_row = max(row + h for row, _, h, _ in windows)
    multiple = int(getattr(model.module, "size_multiple", 1))
    fold = int(getattr(model.module, "space_to_depth", 1))
    pad_h = math.ceil(tile_h / multiple) * multiple - tile_h
    pad_w = math.ceil(tile_w / multiple) * multiple - tile_w
    # bf16 autocast: about 2x faster where the CPU has AVX512-BF16/AMX and on GPUs;
    # the card's precision_check records the IoU cost on the test split.
    autocast = torch.autocast(
        device_type=model.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"
    )

    def flush(upto: int) -> Iterator[Strip]:
        """Blend rows ``buf_r0..upto``, yield their part inside the block, drop them."""
        nonlocal value_sum, weight_sum, nodata, buf_r0
        n = upto - buf_r0
        lo, hi = max(buf_r0, first_row), min(upto, stop_row)
        if hi > lo:
            rows = slice(lo - buf_r0, hi - buf_r0)
            cols = slice(first_col - span_c0, stop_col - span_c0)
            prob = np.zeros((hi - lo, stop_col - first_col), dtype=np.float32)
            np.divide(
                value_sum[rows, cols],
                weight_sum[rows, cols],
                out=prob,
                where=weight_sum[rows, cols] > 0,
            )
            bad = nodata[rows, cols].copy()
            prob[bad] = 0.0
            yield lo, first_col, prob, bad
        value_sum = np.concatenate([value_sum[n:], np.zeros((n, span), np.float32)])
        weight_sum = np.concatenate([weight_sum[n:], np.zeros((n, span), np.float32)])
        nodata = np.concatenate([nodata[n:], np.zeros((n, span), bool)])
        buf_r0 = upto

    done = 0
    tiles = _prepared_tiles(features, valid_mask, windows, mean, std, pad_h, pad_w)
    with torch.inference_mode(), autocast:
        for prepared in _batches_of(tiles, batch_size):
            batch = [window for window, _, _ in prepared]
            bads = [bad for _, _, bad in prepared]
            # Tiles go straight into a channels-last (N, H, W, C) buffer, folded into
            # space-to-depth blocks if the net wants them: one copy, and the permuted
            # view is the channels-last NCHW tensor the net takes.
            stacked = np.stack([fold_space_to_depth(tile, fold) for _, tile, _ in prepared])
            x = torch.from_numpy(stacked).permute(0, 3, 1, 2).to(model.device)
            logits = model.module(x, folded=True) if fold > 1 else model.module(x)
            probs = torch.sigmoid(logits.float())[:, 0].cpu().numpy()
            for (row, col, h, w), prob, bad in zip(batch, probs, bads, strict=True):
                if row > buf_r0:
                    yield from flush(row)
                r, c = row - buf_r0, col - span_c0
                nodata[r : r + h, c : c + w] |= bad
                weight = weights[:h, :w]
                value_sum[r : r + h, c : c + w] += weight * prob[:h, :w]
                weight_sum[r : r + h, c : c + w] += weight
            done += len(batch)
            if progress is not None:
                progress(done, len(windows))
    yield from flush(end_row)
    logger.info(
        "predicted rows %d..%d, columns %d..%d of %dx%d px in %d tiles of %d px (overlap %d) "
        "on %s, %s",
        first_row,
        stop_row,
        first_col,
        stop_col,
        height,
        width,
        len(windows),
        card.tile_px,
        card.overlap_px,
        model.device,
        precision,
    )


def _predict(
    features: NDArray[np.float32] | FeatureArray,
    model: LoadedModel,
    *,
    valid_mask: NDArray[np.bool_] | FeatureArray | None,
    batch_size: int,
    progress: ProgressCallback | None,
    precision: Precision,
    row_range: tuple[int, int] | None = None,
    col_range: tuple[int, int] | None = None,
) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """Return (probability, no-data mask) of a block (default: the whole image).

    See :func:`predict_probabilities` and :func:`_predict_strips`.
    """
    height, width = int(features.shape[1]), int(features.shape[2])
    first_row, stop_row = _check_range("row_range", row_range, height)
    first_col, stop_col = _check_range("col_range", col_range, width)
    probability = np.zeros((stop_row - first_row, stop_col - first_col), dtype=np.float32)
    nodata = np.zeros(probability.shape, dtype=bool)
    for row, _, prob, bad in _predict_strips(
        features,
        model,
        valid_mask=valid_mask,
        batch_size=batch_size,
        progress=progress,
        precision=precision,
        row_range=(first_row, stop_row),
        col_range=(first_col, stop_col),
    ):
        probability[row - first_row : row - first_row + len(prob)] = prob
        nodata[row - first_row : row - first_row + len(prob)] = bad
    return probability, nodata


def predict_probabilities(
    features: NDArray[np.float32] | FeatureArray,
    model: LoadedModel,
    *,
    valid_mask: NDArray[np.bool_] | FeatureArray | None = None,
    batch_size: int = 8,
    progress: ProgressCallback | None = None,
    precision: Precision = "fp32",
) -> NDArray[np.float32]:
    """Predict the mining probability of every pixel, in overlapping tiles, blended.

    Tiles of ``card.tile_px`` overlapping by ``card.overlap_px`` are read one row of
    tiles at a time (``np.asarray(features[:, r0:r1, c0:c1])``), normalised with the card's
    mean and std, run under ``torch.inference_mode()`` in channels-last layout, and
    blended with :func:`asmspotter.detect.tiling.blend_weights`.

    Args:
        features: (C, H, W) float32 in the card's band order: a numpy array, or anything
            lazily sliceable the same way (a dask array, a rasterio window reader).
        model: From :func:`load_model`.
        valid_mask: (H, W) bool (or lazily sliceable), False where there is no data.
        batch_size: Tiles per forward pass; memory grows with it.
        progress: Called as ``progress(tiles_done, tiles_total)`` after each batch.
        precision: ``"fp32"``, or ``"bf16"`` for bfloat16 autocast (faster on recent
            CPUs and GPUs, slightly different results).

    Returns:
        Probability (H, W) float32 in [0, 1]; 0 where any input band is NaN or
        ``valid_mask`` is False.

    Raises:
        ModelMismatchError: If the number of bands is not the model's.
        ValueError: If shapes or ``batch_size`` are invalid.
    """
    probability, _ = _predict(
        features,
        model,
        valid_mask=valid_mask,
        batch_size=batch_size,
        progress=progress,
        precision=precision,
    )
    return probability


class RowReader:
    """Read rows of some bands of a raster, each row once while reads move down.

    Tiled inference asks for overlapping rows of tiles top to bottom; reading them
    straight from a compressed COG decompressed every block once per request, and
    GDAL's capped block cache (:mod:`asmspotter.memory`) cannot hold a wide AOI's
    row of blocks for all bands. This keeps the rows read last, over the columns
    asked for, and reads only the new ones, a whole row of blocks at a time
    (``bands x rows x columns`` float32 in memory: about one row of tiles plus one row
    of blocks of one column block); a read above the kept rows, or of other columns,
    starts over.

    Args:
        dataset: An open rasterio dataset.
        indexes: 1-based band indexes to read.
    """

    def __init__(self, dataset: rasterio.io.DatasetReader, indexes: Sequence[int]) -> None:
        self.dataset = dataset
        self.indexes = list(indexes)
        nodata = dataset.nodata
        self._nodata = None if nodata is None or math.isnan(nodata) else float(nodata)
        self._first = 0
        self._cols = (0, dataset.width)
        self._rows = np.empty((len(self.indexes), 0, dataset.width), np.float32)

    def rows(
        self, start: int, stop: int, cols: tuple[int, int] | None = None
    ) -> NDArray[np.float32]:
        """Rows ``start..stop`` of columns ``cols`` (default all), (bands, rows, columns).

        float32, nodata as NaN.
        """
        c0, c1 = (0, self.dataset.width) if cols is None else cols
        kept_stop = self._first + self._rows.shape[1]
        if start < self._first or start > kept_stop or (c0, c1) != self._cols:
            self._first, self._cols = start, (c0, c1)
            self._rows = np.empty((len(self.indexes), 0, c1 - c0), np.float32)
            kept_stop = start
        if stop > kept_stop:
            # Whole rows of blocks at a time: GDAL reads block-aligned windows ~3x faster.
            block_rows = self.dataset.block_shapes[0][0]
            read_stop = min(self.dataset.height, -(-stop // block_rows) * block_rows)
            window = Window(c0, kept_stop, c1 - c0, read_stop - kept_stop)  # type: ignore[call-arg]
            new = self.dataset.read(self.indexes, window=window, out_dtype="float32")
            if self._nodata is not None:
                new[new == self._nodata] = np.nan
            keep = self._rows[:, start - self._first :]
            self._rows = np.concatenate([keep, new], axis=1)
            self._first = start
        return self._rows[:, start - self._first : stop - self._first]


class RasterFeatures:
    """Read a composite COG's bands by rows of tiles, in a model's band order.

    Slicing ``reader[:, r0:r1, c0:c1]`` gives that window of the needed bands (nodata
    values become NaN), computing ``ndwi``/``ndvi`` from green, red and nir if the
    file lacks them; :attr:`valid_mask` gives the ``valid`` band (count > 0) the same
    way. Both come from one :class:`RowReader`, so each row of the file is read once
    when windows move down the image. Implements :class:`FeatureArray`.

    Args:
        dataset: An open rasterio dataset whose band descriptions name the bands.
        bands: Band names in the model's input order.

    Raises:
        ModelMismatchError: If a band is neither in the file nor computable.
    """

    def __init__(self, dataset: rasterio.io.DatasetReader, bands: Sequence[str]) -> None:
        self.dataset = dataset
        self.bands = list(bands)
        self.band_index = band_indexes(dataset)
        needed: list[str] = []
        for band in self.bands:
            sources = [band] if band in self.band_index else list(DERIVED_BANDS.get(band, (band,)))
            for source in sources:
                if source not in self.band_index:
                    raise ModelMismatchError(
                        f"{dataset.name}: band {band!r} is needed but the file has bands "
                        f"{list(self.band_index)}; choose another detection.model in the AOI "
                        "YAML or rebuild the composite with these bands."
                    )
                if source not in needed:
                    needed.append(source)
        self._needed = needed
        self._read = needed + (["valid"] if "valid" in self.band_index else [])
        self._rows = RowReader(dataset, [self.band_index[b] for b in self._read])

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W)."""
        return (len(self.bands), self.dataset.height, self.dataset.width)

    def _window(self, rows: slice, cols: slice) -> dict[str, NDArray[np.float32]]:
        r0, r1, _ = rows.indices(self.dataset.height)
        c0, c1, _ = cols.indices(self.dataset.width)
        data = self._rows.rows(r0, r1, (c0, c1))
        return dict(zip(self._read, data, strict=True))

    def __getitem__(self, key: tuple[slice, slice, slice]) -> NDArray[np.float32]:
        """Read ``[:, rows, cols]`` (step-1 slices) as (C, h, w) float32."""
        _, rows, cols = key
        layers = self._window(rows, cols)
        return build_features({b: layers[b] for b in self._needed}, self.bands)

    @property
    def valid_mask(self) -> RasterValid | None:
        """The ``valid`` band as a lazily sliced bool mask, or None if the file has none."""
        return RasterValid(self) if "valid" in self._read else None


class RasterValid:
    """A composite's ``valid`` band, sliced ``[rows, cols]``, as a bool mask (count > 0)."""

    def __init__(self, features: RasterFeatures) -> None:
        self.features = features

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W)."""
        return self.features.shape[1:]

    def __getitem__(self, key: tuple[slice, slice]) -> NDArray[np.bool_]:
        """Read ``[rows, cols]`` (step-1 slices) as (h, w) bool."""
        rows, cols = key
        return np.asarray(self.features._window(rows, cols)["valid"] > 0)


def band_indexes(dataset: rasterio.io.DatasetReader) -> dict[str, int]:
    """Map band description to 1-based band index (bands without one are skipped)."""
    return {
        desc: i
        for i, desc in enumerate(dataset.descriptions, start=1)
        if desc  # undescribed bands cannot be matched by name
    }


def write_probability_cog_by_strips(
    strips: Iterator[Strip],
    path: Path,
    *,
    height: int,
    width: int,
    transform: Affine,
    crs: Any,
) -> Path:
    """Write strips ``(row_off, col_off, probability, nodata)`` into a probability COG.

    The strips (in any order) go by windows into an uncompressed tiled GeoTIFF
    (a :func:`~asmspotter.atomic_write.scratch_path`), which
    :func:`asmspotter.cog.staging_to_cog` turns into the COG with overviews; neither
    step holds the whole map.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = scratch_path(path, "staging")
    profile = staging_profile(
        height=height,
        width=width,
        count=1,
        dtype="float32",
        crs=crs,
        transform=transform,
        nodata=PROBABILITY_NODATA,
    )
    with writing_output(path, staging), rasterio.open(staging, "w", **profile) as dst:
        for row, col, prob, bad in strips:
            data = np.where(bad, np.float32(PROBABILITY_NODATA), prob).astype(np.float32)
            window = Window(col, row, prob.shape[1], prob.shape[0])  # type: ignore[call-arg]
            dst.write(data, 1, window=window)
        dst.set_band_description(1, PROBABILITY_BAND)
    return staging_to_cog(staging, path)


def _open_composite(composite_path: Path) -> rasterio.io.DatasetReader:
    """Open a composite COG, naming the file in the error."""
    try:
        return rasterio.open(composite_path)
    except rasterio.errors.RasterioIOError as exc:
        raise SceneReadError(
            f"{composite_path}: cannot read the composite: {exc}; check that the file exists "
            "and is a GeoTIFF written by the composite stage."
        ) from exc


def _check_composite(
    dataset: rasterio.io.DatasetReader, card: ModelCard, model_dir: Path, composite_path: Path
) -> int:
    """Check the model fits the composite (bands, pixel size); return the composite's EPSG."""
    band_names = list(band_indexes(dataset))
    res_x, res_y = dataset.res
    if not math.isclose(res_x, res_y, rel_tol=1e-3):
        logger.warning(
            "%s: non-square pixels %.3f x %.3f m; checking the model against the mean",
            composite_path,
            res_x,
            res_y,
        )
    check_model_fits(
        card, [b for b in band_names if b != "valid"], (res_x + res_y) / 2.0, model_dir=model_dir
    )
    epsg = dataset.crs.to_epsg() if dataset.crs is not None else None
    if epsg is None:
        raise SceneReadError(
            f"{composite_path}: CRS {dataset.crs} has no EPSG code; composites must be on "
            "an AOI grid (a UTM zone)."
        )
    return int(epsg)


def _composite_inputs(
    dataset: rasterio.io.DatasetReader, card: ModelCard, composite_path: Path
) -> tuple[RasterFeatures, RasterValid | None]:
    """Tile readers of a composite: the model's features and the ``valid`` mask."""
    features = RasterFeatures(dataset, card.bands)
    valid_mask = features.valid_mask
    if valid_mask is None:
        logger.warning("%s: no 'valid' band; treating every pixel as observed", composite_path)
    return features, valid_mask


@functools.lru_cache(maxsize=4)
def _cached_model(model_dir: Path, device: str | None, weights_mtime_ns: int) -> LoadedModel:
    """One loaded model per process (a Dask worker predicts many strips with it).

    ``weights_mtime_ns`` is part of the key so that re-trained weights are reloaded.
    """
    return load_model(model_dir, device=device)


def predict_composite_block(
    composite_path: Path,
    model_dir: Path,
    rows: tuple[int, int],
    cols: tuple[int, int],
    *,
    device: str | None = None,
    batch_size: int = 8,
    precision: Precision = "fp32",
) -> Strip:
    """Predict one block (rows x columns) of a composite COG: one task of a distributed run.

    Runs every tile that covers the block (see ``row_range``/``col_range`` of the
    tiled predictor), so blocks predicted apart join exactly. The model is loaded once
    per process.

    Returns:
        ``(row_off, col_off, probability, nodata)`` of the block, as
        :func:`detect_mines` writes it.
    """
    weights = Path(model_dir) / WEIGHTS_FILENAME
    mtime = weights.stat().st_mtime_ns if weights.is_file() else 0
    model = _cached_model(Path(model_dir), device, mtime)
    with _open_composite(Path(composite_path)) as dataset:
        features, valid_mask = _composite_inputs(dataset, model.card, Path(composite_path))
        probability, nodata = _predict(
            features,
            model,
            valid_mask=valid_mask,
            batch_size=batch_size,
            progress=None,
            precision=precision,
            row_range=rows,
            col_range=cols,
        )
    return rows[0], cols[0], probability, nodata


def column_blocks(width: int, card: ModelCard) -> list[tuple[int, int]]:
    """Column ranges of at most about :data:`BLOCK_PX` to predict one after another."""
    return split_axis(width, card.tile_px, card.overlap_px, math.ceil(width / BLOCK_PX))


def _tiles_per_block(
    blocks: Sequence[tuple[tuple[int, int], tuple[int, int]]],
    height: int,
    width: int,
    card: ModelCard,
) -> list[int]:
    """Tiles each (rows, cols) block runs: the progress total counts the repeated ones."""
    windows = tile_windows(height, width, card.tile_px, card.overlap_px)
    return [len(tiles_covering(windows, rows, cols)) for rows, cols in blocks]


def _predict_by_column_blocks(
    features: RasterFeatures,
    valid_mask: RasterValid | None,
    model: LoadedModel,
    *,
    batch_size: int,
    precision: Precision,
    progress: ProgressCallback | None,
) -> Iterator[Strip]:
    """Predict a composite column block by column block in this process."""
    _, height, width = features.shape
    blocks = [((0, height), cols) for cols in column_blocks(width, model.card)]
    totals = _tiles_per_block(blocks, height, width, model.card)
    for i, (rows, cols) in enumerate(blocks):
        before = sum(totals[:i])

        def block_progress(done: int, _total: int, before: int = before) -> None:
            if progress is not None:
                progress(before + done, sum(totals))

        yield from _predict_strips(
            features,
            model,
            valid_mask=valid_mask,
            batch_size=batch_size,
            progress=block_progress,
            precision=precision,
            row_range=rows,
            col_range=cols,
        )


def _predict_on_cluster(
    client: Any,
    composite_path: Path,
    model_dir: Path,
    *,
    height: int,
    width: int,
    card: ModelCard,
    device: str | None,
    batch_size: int,
    precision: Precision,
    progress: ProgressCallback | None,
) -> Iterator[Strip]:
    """Predict blocks of rows x columns on a Dask cluster's workers; yield them as they finish.

    Each block edge costs one extra row (column) of tiles
    (:func:`asmspotter.detect.tiling.split_axis`).
    """
    from distributed import as_completed

    n_threads = max(1, sum(client.nthreads().values()))
    col_ranges = column_blocks(width, card)
    # Two blocks per worker thread keep workers busy to the end; blocks of at most
    # BLOCK_PX square keep what a worker holds and returns independent of the AOI.
    n_row_strips = max(math.ceil(2 * n_threads / len(col_ranges)), math.ceil(height / BLOCK_PX))
    row_ranges = split_axis(height, card.tile_px, card.overlap_px, n_row_strips)
    blocks = list(itertools.product(row_ranges, col_ranges))
    tiles = dict(zip(blocks, _tiles_per_block(blocks, height, width, card), strict=True))
    logger.info(
        "predicting %d blocks (%d row strips x %d column blocks) of %s on %d Dask worker threads",
        len(blocks),
        len(row_ranges),
        len(col_ranges),
        composite_path,
        n_threads,
    )
    futures = {
        client.submit(
            predict_composite_block,
            composite_path,
            model_dir,
            rows,
            cols,
            device=device,
            batch_size=batch_size,
            precision=precision,
            pure=False,
        ): (rows, cols)
        for rows, cols in blocks
    }
    done = 0
    # The loop of our client: dask_client() does not make it the default client.
    for future in as_completed(futures, loop=client.loop):  # type: ignore[no-untyped-call]
        strip = future.result()
        block = futures.pop(future)  # drop our reference: the worker frees the result
        done += tiles[block]
        if progress is not None:
            progress(done, sum(tiles.values()))
        yield strip


def detect_mines(
    composite_path: Path,
    model_dir: Path,
    out_probability_path: Path,
    *,
    threshold: float | None = None,
    min_area_ha: float = 1.0,
    device: str | None = None,
    batch_size: int = 8,
    precision: Precision | None = None,
    progress: ProgressCallback | None = None,
    client: Any | None = None,
    verify: bool = True,
) -> gpd.GeoDataFrame:
    """Find mining sites in a composite COG: probability COG and polygons.

    Reads the composite's bands by their descriptions (``blue, green, red, nir, ndwi,
    ndvi, valid``; ``valid`` is the count of clear observations, 0 = no data), checks the
    model fits (bands, and pixel size from the transform), predicts tile by tile
    (:func:`predict_probabilities`), writes a float32 COG with band
    ``mining_probability`` (nodata -1) on the same grid, and vectorises the pixels at or
    above the threshold (:func:`asmspotter.detect.vectorize.vectorize_detections`).

    Example:
        >>> from pathlib import Path
        >>> from asmspotter.detect.infer import detect_mines
        >>> sites = detect_mines(  # doctest: +SKIP
        ...     Path("data/brokopondo/composite_2024-06.tif"),
        ...     Path("models/s2-unet-v1"),
        ...     Path("data/brokopondo/probability_2024-06.tif"),
        ...     min_area_ha=0.5,
        ... )
        >>> sites[["area_ha", "mean_probability"]].head()  # doctest: +SKIP

    Args:
        composite_path: The composite COG.
        model_dir: Model directory (``models/<name>``).
        out_probability_path: Where to write the probability COG.
        threshold: Probability threshold; None uses the model card's.
        min_area_ha: Smallest polygon kept, in hectares.
        device: Torch device; None picks CUDA when available, else CPU.
        batch_size: Tiles per forward pass.
        precision: ``"fp32"`` or ``"bf16"`` autocast; None uses the card's ``precision``
            (chosen from its bf16-vs-fp32 check).
        progress: Called as ``progress(tiles_done, tiles_total)``.
        client: A ``distributed.Client``: blocks of the composite (row strips x column
            blocks) are predicted on its workers at once
            (:func:`predict_composite_block`; the composite and the model must be on
            storage the workers share) and written here as they finish; the result
            equals a local run's. None: column block by column block in this process.
        verify: Score every polygon with the verifier the card names
            (:mod:`asmspotter.detect.site_verification`); False: all ``nominal``.

    Memory is bounded by one row of tiles of one column block (at most
    :data:`BLOCK_PX` wide), whatever the AOI's size: the probability is written to the
    COG strip by strip (:func:`write_probability_cog_by_strips`) and polygons are built
    strip by strip from the file
    (:func:`asmspotter.detect.vectorize.vectorize_probability_file`), so a
    20,000 x 20,000 px composite runs in 0.67 GiB with GDAL's cache capped
    (``benchmarks/inference.py --memory-px 20000``).

    Returns:
        GeoDataFrame of detections (``geometry``, ``area_ha``, ``mean_probability``,
        ``max_probability``, ``verifier_score``, ``confidence``) in the composite's CRS.

    Raises:
        ModelNotFoundError: If the model directory, card or weights are missing.
        ModelMismatchError: If the model's bands or resolution do not fit the composite.
        SceneReadError: If the composite cannot be read or has no EPSG CRS.
    """
    composite_path = Path(composite_path)
    model = load_model(Path(model_dir), device=device)
    card = model.card
    with _open_composite(composite_path) as dataset:
        epsg = _check_composite(dataset, card, Path(model_dir), composite_path)
        height, width = dataset.height, dataset.width
        transform, crs = dataset.transform, dataset.crs
        if client is None:
            features, valid_mask = _composite_inputs(dataset, card, composite_path)
            strips = _predict_by_column_blocks(
                features,
                valid_mask,
                model,
                batch_size=batch_size,
                progress=progress,
                precision=precision or card.precision,
            )
        else:
            strips = _predict_on_cluster(
                client,
                composite_path,
                Path(model_dir),
                height=height,
                width=width,
                card=card,
                device=device,
                batch_size=batch_size,
                precision=precision or card.precision,
                progress=progress,
            )
        write_probability_cog_by_strips(
            strips,
            out_probability_path,
            height=height,
            width=width,
            transform=transform,
            crs=crs,
        )
    used_threshold = card.threshold if threshold is None else threshold
    verifier = verifier_for(Path(model_dir), card.verifier) if verify else None
    with _open_composite(composite_path) as dataset:
        detections = verified_sites(
            lambda cut: vectorize_probability_file(out_probability_path, epsg, cut, min_area_ha),
            used_threshold,
            card.candidate_threshold,
            RasterPatches(dataset, band_indexes(dataset)),
            verifier,
        )
    levels = detections["confidence"].value_counts().to_dict()
    logger.info(
        "%s: %d detections, %.1f ha (%s), probability map %s",
        composite_path,
        len(detections),
        float(detections["area_ha"].sum()),
        ", ".join(f"{n} {level}" for level, n in sorted(levels.items())) or "none",
        out_probability_path,
    )
    return detections
