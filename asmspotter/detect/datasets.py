"""Training data from a folder of scenes + label polygons: patches and a spatial split.

:func:`load_labelled_scenes` reads every scene of a folder (the local scene format of
:mod:`asmspotter.scene_io`: 4-band blue/green/red/nir GeoTIFF with band scales, nodata
0, optional ``<stem>.cloudmask.tif``; PlanetScope or Sentinel-2) and rasterises the
labels (:mod:`asmspotter.detect.labels`) on its grid.

:func:`plan_patches` splits the area spatially: the CRS plane is cut into square
blocks of ``block_px`` pixels (aligned to multiples of the block size in CRS units, so
scenes of the same area and CRS share blocks); each block goes wholly to train,
validation or test, and every patch lies inside one block. So no test patch overlaps a
training patch, in any scene of the same place. :func:`sample_training_patches` draws
training patches balanced between mining, look-alikes (negative areas, water, bare
ground) and background; :func:`extract_patches` cuts them out as arrays for
:mod:`asmspotter.detect.train`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import rasterio
from affine import Affine
from numpy.typing import NDArray

from asmspotter.detect.labels import LabelPolygon, rasterize_labels
from asmspotter.errors import SceneReadError

logger = logging.getLogger(__name__)

Split = Literal["train", "val", "test"]
PatchKind = Literal["mining", "lookalike", "background"]

SPLIT_FRACTIONS: dict[Split, float] = {"train": 0.6, "val": 0.2, "test": 0.2}
"""Share of split blocks per split."""

KIND_WEIGHTS: dict[PatchKind, float] = {"mining": 0.5, "lookalike": 0.35, "background": 0.15}
"""Share of training patches per kind (renormalised over the kinds present)."""


@dataclass
class LabelledScene:
    """One scene with its labels rasterised on its grid.

    Attributes:
        scene_id: File stem.
        path: The GeoTIFF.
        reflectance: (4, H, W) float32 blue, green, red, nir reflectance; NaN = no data
            (nodata or cloud).
        mining: (H, W) bool, labelled mining.
        negative: (H, W) bool, negative areas (dismissed false positives).
        transform: Affine transform of the grid.
        crs: CRS string.
        resolution_m: Pixel size in metres.
    """

    scene_id: str
    path: Path
    reflectance: NDArray[np.float32]
    mining: NDArray[np.bool_]
    negative: NDArray[np.bool_]
    transform: Affine
    crs: str
    resolution_m: float

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) in pixels."""
        return (int(self.reflectance.shape[1]), int(self.reflectance.shape[2]))


@dataclass(frozen=True)
class Patch:
    """A square patch of one scene: (row, col) of its top-left pixel, its split and kind."""

    scene: int
    row: int
    col: int
    size_px: int
    split: Split
    kind: PatchKind
    block: tuple[str, int, int]


def list_scene_files(folder: Path) -> list[Path]:
    """Return the scene GeoTIFFs of a folder (not cloud masks), sorted.

    Raises:
        SceneReadError: If the folder does not exist or holds no scene.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SceneReadError(f"{folder}: scene folder not found; pass a folder of GeoTIFFs.")
    files = sorted(
        p for p in folder.glob("*.tif") if not p.name.endswith(".cloudmask.tif") and p.is_file()
    )
    if not files:
        raise SceneReadError(
            f"{folder}: no scene GeoTIFFs (*.tif) found; write scenes in the local scene "
            "format (asmspotter.scene_io.write_scene)."
        )
    return files


def load_scene_reflectance(
    path: Path,
) -> tuple[NDArray[np.float32], Affine, str, float]:
    """Read a local-format scene as reflectance (4, H, W) float32, NaN where no data.

    Bands are found by description (blue, green, red, nir; else the first four in that
    order); band scales and offsets are applied; nodata and cloud-masked pixels are NaN.

    Returns:
        (reflectance, transform, crs string, pixel size in metres).

    Raises:
        SceneReadError: If the file cannot be read or has fewer than 4 bands.
    """
    path = Path(path)
    try:
        with rasterio.open(path) as src:
            if src.count < 4:
                raise SceneReadError(f"{path}: {src.count} bands, need 4 (blue, green, red, nir).")
            names = [d or "" for d in src.descriptions]
            order = ("blue", "green", "red", "nir")
            indexes = [names.index(b) + 1 if b in names else i + 1 for i, b in enumerate(order)]
            data = src.read(indexes, out_dtype="float32", masked=True)
            scales = np.asarray([src.scales[i - 1] for i in indexes], dtype=np.float32)
            offsets = np.asarray([src.offsets[i - 1] for i in indexes], dtype=np.float32)
            refl = np.ma.filled(data, np.nan) * scales[:, None, None] + offsets[:, None, None]
            transform, crs = src.transform, src.crs.to_string()
            resolution_m = float((abs(src.res[0]) + abs(src.res[1])) / 2)
    except rasterio.errors.RasterioIOError as exc:
        raise SceneReadError(f"{path}: cannot read the scene: {exc}.") from exc
    cloud_path = path.with_name(path.name.removesuffix(".tif") + ".cloudmask.tif")
    if cloud_path.is_file():
        with rasterio.open(cloud_path) as src:
            cloud = src.read(1) > 0
        refl[:, cloud] = np.nan
    return refl.astype(np.float32), transform, crs, resolution_m


def load_labelled_scenes(folder: Path, labels: Sequence[LabelPolygon]) -> list[LabelledScene]:
    """Read every scene of ``folder`` and rasterise ``labels`` on its grid.

    Memory: the scenes are held whole (16 bytes per pixel); split a large area into
    several scenes.

    Raises:
        SceneReadError: If the folder holds no readable scene.
    """
    scenes = []
    for path in list_scene_files(folder):
        refl, transform, crs, res = load_scene_reflectance(path)
        mining, negative = rasterize_labels(
            labels,
            scene_id=path.stem,
            transform=transform,
            crs=crs,
            shape_px=(refl.shape[1], refl.shape[2]),
        )
        scenes.append(LabelledScene(path.stem, path, refl, mining, negative, transform, crs, res))
        logger.info(
            "%s: %dx%d px at %.1f m, %d mining and %d negative pixels",
            path.name,
            refl.shape[1],
            refl.shape[2],
            res,
            int(mining.sum()),
            int(negative.sum()),
        )
    return scenes


def _assign_splits(keys: Sequence[tuple[str, int, int]], seed: int) -> dict[Any, Split]:
    """Shuffle block keys with ``seed`` and deal them to splits by SPLIT_FRACTIONS.

    With three or more blocks every split gets at least one.
    """
    ordered = sorted(set(keys))
    rng = np.random.default_rng(seed)
    rng.shuffle(ordered)  # type: ignore[arg-type]
    n = len(ordered)
    n_val = max(1, round(n * SPLIT_FRACTIONS["val"])) if n >= 3 else 0
    n_test = max(1, round(n * SPLIT_FRACTIONS["test"])) if n >= 3 else 0
    out: dict[Any, Split] = {}
    for i, key in enumerate(ordered):
        out[key] = "test" if i < n_test else ("val" if i < n_test + n_val else "train")
    return out


def _patch_kind(scene: LabelledScene, row: int, col: int, size: int) -> PatchKind | None:
    """Classify a patch; None when more than a fifth of it has no data."""
    refl = scene.reflectance[:, row : row + size, col : col + size]
    finite = np.isfinite(refl).all(axis=0)
    if finite.mean() < 0.8:
        return None
    if scene.mining[row : row + size, col : col + size].any():
        return "mining"
    if scene.negative[row : row + size, col : col + size].any():
        return "lookalike"
    _blue, green, red, nir = np.nan_to_num(refl)
    with np.errstate(divide="ignore", invalid="ignore"):
        ndwi = (green - nir) / (green + nir)
        ndvi = (nir - red) / (nir + red)
    water_or_bare = ((ndwi > 0) | (ndvi < 0.3)) & finite
    return "lookalike" if water_or_bare.mean() > 0.01 else "background"


def plan_patches(
    scenes: Sequence[LabelledScene],
    *,
    patch_px: int,
    block_px: int | None = None,
    seed: int = 0,
    train_stride_px: int | None = None,
) -> list[Patch]:
    """Lay patches over the scenes inside spatial split blocks.

    Blocks are ``block_px`` pixels square (default 2 x ``patch_px``) on a grid aligned
    to multiples of the block size in CRS units; each block is wholly train, val or test
    (:func:`_assign_splits`). Val and test patches tile their blocks without overlap;
    train patches step by ``train_stride_px`` (default half a patch) inside train
    blocks. No patch crosses a block edge, so none overlaps a patch of another split.

    Args:
        scenes: From :func:`load_labelled_scenes`.
        patch_px: Patch size in pixels.
        block_px: Split block size in pixels (>= ``patch_px``).
        seed: Seed of the block-to-split assignment.
        train_stride_px: Step of training patches inside a block.

    Returns:
        Patches with their split and kind; patches over mostly no data are left out.

    Raises:
        ValueError: If ``block_px`` < ``patch_px``.
    """
    block_px = block_px or 2 * patch_px
    if block_px < patch_px:
        raise ValueError(f"block_px ({block_px}) must be >= patch_px ({patch_px}).")
    stride = train_stride_px or max(1, patch_px // 2)
    candidates: list[tuple[int, int, int, tuple[str, int, int], int]] = []
    for s, scene in enumerate(scenes):
        height, width = scene.shape
        tf = scene.transform
        block_x = block_px * abs(tf.a)
        block_y = block_px * abs(tf.e)
        x0, y0 = tf.c, tf.f
        # Block indices covering the scene (x grows with columns, y falls with rows).
        bx0 = math.floor(x0 / block_x)
        bx1 = math.floor((x0 + width * tf.a) / block_x)
        by0 = math.floor((y0 + height * tf.e) / block_y)
        by1 = math.floor(y0 / block_y)
        for bx in range(bx0, bx1 + 1):
            col_start = math.ceil((bx * block_x - x0) / tf.a - 1e-6)
            col_end = math.floor(((bx + 1) * block_x - x0) / tf.a + 1e-6)
            for by in range(by0, by1 + 1):
                row_start = math.ceil(((by + 1) * block_y - y0) / tf.e - 1e-6)
                row_end = math.floor((by * block_y - y0) / tf.e + 1e-6)
                r0, r1 = max(row_start, 0), min(row_end, height)
                c0, c1 = max(col_start, 0), min(col_end, width)
                if r1 - r0 < patch_px or c1 - c0 < patch_px:
                    continue
                key = (scene.crs, bx, by)
                candidates.append((s, r0, c0, key, r1 * 10**9 + c1))
    splits = _assign_splits([c[3] for c in candidates], seed)
    patches: list[Patch] = []
    for s, r0, c0, key, packed in candidates:
        r1, c1 = divmod(packed, 10**9)
        split = splits[key]
        step = stride if split == "train" else patch_px
        for row in range(r0, r1 - patch_px + 1, step):
            for col in range(c0, c1 - patch_px + 1, step):
                kind = _patch_kind(scenes[s], row, col, patch_px)
                if kind is not None:
                    patches.append(Patch(s, row, col, patch_px, split, kind, key))
    counts = {sp: sum(p.split == sp for p in patches) for sp in SPLIT_FRACTIONS}
    logger.info("planned %d patches in %d blocks: %s", len(patches), len(splits), counts)
    return patches


def sample_training_patches(
    patches: Sequence[Patch], n: int, rng: np.random.Generator
) -> list[Patch]:
    """Draw ``n`` training patches (with replacement), balanced by kind (KIND_WEIGHTS)."""
    by_kind = {
        kind: [p for p in patches if p.split == "train" and p.kind == kind] for kind in KIND_WEIGHTS
    }
    kinds = [k for k, v in by_kind.items() if v]
    if not kinds:
        raise ValueError(
            "no training patches: the scenes are smaller than two patches or their train "
            "blocks hold no data; use larger scenes, or a smaller --patch-px."
        )
    weights = np.asarray([KIND_WEIGHTS[k] for k in kinds], dtype=np.float64)
    drawn = rng.choice(len(kinds), size=n, p=weights / weights.sum())
    return [by_kind[kinds[k]][int(rng.integers(len(by_kind[kinds[k]])))] for k in drawn]


def extract_patches(
    scenes: Sequence[LabelledScene], patches: Sequence[Patch]
) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """Cut patches out: reflectance (N, 4, P, P) and mining masks (N, P, P).

    No-data pixels are filled with the patch's per-band median, so the net sees neutral
    values there; they are never labelled mining.
    """
    if not patches:
        return np.zeros((0, 4, 1, 1), np.float32), np.zeros((0, 1, 1), bool)
    size = patches[0].size_px
    refl = np.empty((len(patches), 4, size, size), dtype=np.float32)
    masks = np.empty((len(patches), size, size), dtype=bool)
    for i, p in enumerate(patches):
        scene = scenes[p.scene]
        tile = scene.reflectance[:, p.row : p.row + size, p.col : p.col + size].copy()
        finite = np.isfinite(tile)
        if not finite.all():
            fill = np.nanmedian(tile.reshape(4, -1), axis=1)
            tile = np.where(finite, tile, np.nan_to_num(fill)[:, None, None])
        refl[i] = tile
        masks[i] = scene.mining[p.row : p.row + size, p.col : p.col + size] & finite.all(axis=0)
    return refl, masks


def patches_overlap(a: Patch, b: Patch) -> bool:
    """Whether two patches of the same scene share a pixel."""
    return (
        a.scene == b.scene
        and a.row < b.row + b.size_px
        and b.row < a.row + a.size_px
        and a.col < b.col + b.size_px
        and b.col < a.col + a.size_px
    )
