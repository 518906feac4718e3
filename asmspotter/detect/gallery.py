"""Real Sentinel-2 chips from the Amazon Mining Watch training gallery, split by sheet.

The gallery (``shared/data/amazon-mining-watch/training_gallery/``) is a set of PNG
contact sheets: grids of 48 x 48 px chips at 10 m, uint8 RGB =
``clip([B4, B3, B2] / 3000, 0, 1) * 255`` from L1C (top-of-atmosphere) median
composites. A sheet's file name says what its chips are (``*positives*`` mining,
``*negatives*`` not) and which composite they come from (``..._S2L1C_clear0.75_<dates>``).

Sheets made from the same sampling locations with a different cloud filter
(``..._clear0.05_...`` and ``..._clear0.75_...``) show the same places, so they form one
*group*; every split here is by group, never by chip, so no place is on both sides of an
evaluation. ``BD_MineriaAurifera_Peru-curated*`` sheets name neither side: they are
Peru's curated database of gold-mining sites (Spanish *minería aurífera*) and their chips
show mining pits and tailings, so they count as positives.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

CHIP_PX = 48
"""Side of one gallery chip, pixels (480 m at 10 m)."""

GALLERY_SCALE = 0.3
"""Reflectance at which a gallery pixel saturates (uint8 255)."""

_GROUP_SUFFIX = re.compile(r"(_S2L1C_clear[0-9.]+_.*|_rgb_preview)$")
_POSITIVE_PREFIXES = ("BD_MineriaAurifera",)


class GalleryError(ValueError):
    """A gallery folder or sheet that cannot be read as labelled chips."""


@dataclass(frozen=True)
class GalleryChips:
    """Chips of a gallery with their labels and where they came from."""

    rgb: NDArray[np.uint8]
    """(N, 48, 48, 3) uint8 RGB as in the sheets."""
    label: NDArray[np.int8]
    """(N,) 1 = mining, 0 = not mining."""
    sheet: tuple[str, ...]
    """Per chip: the sheet's file stem."""
    group: tuple[str, ...]
    """Per chip: the sheet group (the stem without the composite suffix)."""

    def __len__(self) -> int:
        return int(self.label.shape[0])

    def subset(self, index: NDArray[np.intp]) -> GalleryChips:
        """The chips at ``index``, in that order."""
        return GalleryChips(
            rgb=self.rgb[index],
            label=self.label[index],
            sheet=tuple(self.sheet[i] for i in index),
            group=tuple(self.group[i] for i in index),
        )


def sheet_label(stem: str) -> int:
    """1 for a sheet of mining chips, 0 for one of non-mining chips, from its name.

    Raises:
        GalleryError: If the name says neither.
    """
    lowered = stem.lower()
    if "positives" in lowered or stem.startswith(_POSITIVE_PREFIXES):
        return 1
    if "negatives" in lowered:
        return 0
    raise GalleryError(
        f"{stem}: the sheet name says neither 'positives' nor 'negatives'; rename it so "
        "its chips' label is known."
    )


def sheet_group(stem: str) -> str:
    """The sampling-location group of a sheet: its stem without the composite suffix."""
    return _GROUP_SUFFIX.sub("", stem)


def cut_sheet(sheet: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Cut a contact sheet into its 48 px chips, dropping empty (flat) grid cells.

    Cells that are one flat colour (the padding at the end of a sheet, a border) carry
    no image and are dropped.
    """
    rows, cols = sheet.shape[0] // CHIP_PX, sheet.shape[1] // CHIP_PX
    grid = sheet[: rows * CHIP_PX, : cols * CHIP_PX, :3]
    chips = (
        grid.reshape(rows, CHIP_PX, cols, CHIP_PX, 3)
        .transpose(0, 2, 1, 3, 4)
        .reshape(-1, CHIP_PX, CHIP_PX, 3)
    )
    spread = chips.reshape(len(chips), -1).astype(np.float32).std(axis=1)
    return np.ascontiguousarray(chips[spread >= 1.0])


def load_gallery(folder: Path, *, exclude_sheets: Sequence[str] = ()) -> GalleryChips:
    """Read every sheet of a gallery folder into labelled chips.

    Exact duplicate chips (the same pixels on two sheets) are kept once, under the
    first sheet in name order, so they cannot sit on both sides of a split.

    Args:
        folder: The ``training_gallery`` folder of PNG sheets.
        exclude_sheets: Sheet stems to leave out.

    Raises:
        GalleryError: If the folder has no sheets or a sheet's name has no label.
    """
    paths = sorted(p for p in Path(folder).glob("*.png") if p.stem not in set(exclude_sheets))
    if not paths:
        raise GalleryError(
            f"{folder}: no PNG sheets found; point this at "
            "shared/data/amazon-mining-watch/training_gallery."
        )
    seen: set[bytes] = set()
    rgb: list[NDArray[np.uint8]] = []
    labels: list[int] = []
    sheets: list[str] = []
    for path in paths:
        label = sheet_label(path.stem)
        with Image.open(path) as image:
            chips = cut_sheet(np.asarray(image.convert("RGB")))
        for chip in chips:
            digest = hashlib.blake2b(chip.tobytes(), digest_size=16).digest()
            if digest in seen:
                continue
            seen.add(digest)
            rgb.append(chip)
            labels.append(label)
            sheets.append(path.stem)
    return GalleryChips(
        rgb=np.stack(rgb),
        label=np.asarray(labels, np.int8),
        sheet=tuple(sheets),
        group=tuple(sheet_group(s) for s in sheets),
    )


def group_folds(chips: GalleryChips, n_folds: int) -> NDArray[np.int8]:
    """Assign every chip a fold 0..n_folds-1 so that each sheet group is in one fold.

    Groups are dealt out largest first to the fold with the fewest chips of the
    group's label, separately for mining and non-mining groups, so every fold holds
    both classes in about equal shares. Deterministic: the same gallery gives the same
    folds.
    """
    sizes: dict[str, int] = {}
    group_label: dict[str, int] = {}
    for group, label in zip(chips.group, chips.label.tolist(), strict=True):
        sizes[group] = sizes.get(group, 0) + 1
        group_label[group] = int(label)
    load = np.zeros((2, n_folds), np.int64)
    fold_of: dict[str, int] = {}
    for group in sorted(sizes, key=lambda g: (-sizes[g], g)):
        label = group_label[group]
        fold = int(np.argmin(load[label]))
        fold_of[group] = fold
        load[label, fold] += sizes[group]
    return np.asarray([fold_of[g] for g in chips.group], np.int8)
