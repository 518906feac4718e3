"""Real training chips from people's verdicts: the verifier learns from its own mistakes.

Amazon Mining Watch's biggest step was hard negatives mined from its own false
positives. In asmspotter a person's verdict on the review page (or `sites dismiss` /
`sites confirm`) names exactly those: a dismissed site is a look-alike the detector
and the verifier fell for, a confirmed one a real mine of the monitored region. This
module cuts, for every reviewed site, the verifier's 48 px RGB patches from the
composite the site was last seen in, encoded like the gallery (the same harmonisation
a run scores with), so `scripts/train_verifier.py --extra-chips` can add them to
every member's training. They are L2A pixels of the user's own region: what the
gallery (L1C, other places) lacks most.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import rasterio.errors
from numpy.typing import NDArray
from shapely import wkt

from asmspotter.detect.features import band_indexes
from asmspotter.detect.gallery import CHIP_PX
from asmspotter.detect.harmonise import l2a_to_gallery_rgb
from asmspotter.detect.site_verification import RasterPatches, patch_origins
from asmspotter.errors import AsmspotterError
from asmspotter.storage import Store
from asmspotter.storage.records import SiteRecord

logger = logging.getLogger(__name__)

MIN_CLEAR_FRACTION = 0.5
"""Patches with less of their pixels clear are left out: cloud teaches nothing."""

MAX_PATCHES_PER_SITE = 4
"""Most patches kept per site, so one large site does not outweigh many small ones."""


class ReviewChipsError(AsmspotterError):
    """A chips file that is not one :func:`save_review_chips` wrote."""


@dataclass(frozen=True)
class ReviewChips:
    """Gallery-encoded RGB patches of reviewed sites and the verdict on each.

    Attributes:
        rgb: (N, P, P, 3) uint8, encoded like the gallery's L1C chips.
        label: (N,) 1 for a confirmed mine, 0 for a dismissed look-alike.
        site_id: (N,) the site each patch looks at.
    """

    rgb: NDArray[np.uint8]
    label: NDArray[np.int8]
    site_id: NDArray[np.str_]

    def __len__(self) -> int:
        return len(self.label)


def reviewed_sites(store: Store, aoi_name: str | None = None) -> list[tuple[SiteRecord, int]]:
    """Every reviewed site with its verdict: (site, 1) confirmed, (site, 0) dismissed."""
    dismissed = [(d.site, 0) for d in store.dismissed_sites(aoi_name)]
    confirmed = [(site, 1) for site in store.confirmed_sites(aoi_name)]
    return confirmed + dismissed


def site_composite(store: Store, site: SiteRecord) -> tuple[Path, str] | None:
    """The newest readable composite the site was seen in, with its outline there (WKT).

    The outline of that observation is in the composite's CRS (both are the AOI's).
    """
    for observation in reversed(store.site_history(site.id)):
        if observation.kind == "not_seen":
            continue
        path = store.run(observation.run_id).composite_path
        if path and Path(path).is_file():
            return Path(path), observation.geometry_wkt
    return None


def site_patches(composite: Path, outline_wkt: str, patch_px: int) -> NDArray[np.uint8]:
    """Up to :data:`MAX_PATCHES_PER_SITE` mostly clear gallery-encoded patches of a site."""
    geometry = wkt.loads(outline_wkt)
    with rasterio.open(composite) as dataset:
        source = RasterPatches(dataset, band_indexes(dataset))
        origins = patch_origins(geometry, source.transform, patch_px, MAX_PATCHES_PER_SITE)
        patches = []
        for row, col in origins:
            red, green, blue = source.read_rgb(row, col, patch_px)
            if np.isfinite(red).mean() >= MIN_CLEAR_FRACTION:
                patches.append(l2a_to_gallery_rgb(red, green, blue))
    if not patches:
        return np.zeros((0, patch_px, patch_px, 3), np.uint8)
    return np.stack(patches)


def review_chips(store: Store, aoi_name: str | None = None, patch_px: int = CHIP_PX) -> ReviewChips:
    """Patches of every reviewed site (one AOI or all), labelled by the verdict.

    A site whose composites are gone (outputs cleaned up) or were all cloudy over it is
    skipped with a log line naming it; the others still make chips.
    """
    rgb: list[NDArray[np.uint8]] = []
    labels: list[int] = []
    site_ids: list[str] = []
    for site, verdict in reviewed_sites(store, aoi_name):
        found = site_composite(store, site)
        if found is None:
            logger.warning("site %s: no composite left on disk; no chips from it", site.id)
            continue
        try:
            patches = site_patches(found[0], found[1], patch_px)
        except rasterio.errors.RasterioIOError as exc:
            logger.warning("site %s: cannot read %s (%s); no chips from it", site.id, found[0], exc)
            continue
        if not len(patches):
            logger.warning("site %s: cloudy in %s; no chips from it", site.id, found[0])
            continue
        rgb.append(patches)
        labels.extend([verdict] * len(patches))
        site_ids.extend([site.id] * len(patches))
    return ReviewChips(
        rgb=np.concatenate(rgb) if rgb else np.zeros((0, patch_px, patch_px, 3), np.uint8),
        label=np.asarray(labels, np.int8),
        site_id=np.asarray(site_ids, np.str_),
    )


def save_review_chips(chips: ReviewChips, path: Path) -> Path:
    """Write the chips as ``.npz`` (``rgb``, ``label``, ``site_id``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, rgb=chips.rgb, label=chips.label, site_id=chips.site_id)
    return path


def load_review_chips(path: Path, patch_px: int = CHIP_PX) -> ReviewChips:
    """Read chips written by :func:`save_review_chips`, checking their shape.

    Raises:
        ReviewChipsError: If the file is unreadable or not such chips.
    """
    try:
        with np.load(path) as data:
            chips = ReviewChips(
                rgb=data["rgb"], label=data["label"].astype(np.int8), site_id=data["site_id"]
            )
    except (OSError, ValueError, KeyError) as exc:
        raise ReviewChipsError(
            f"{path}: not a review chips file ({exc}); write one with "
            "`asmspotter sites export-chips OUT.npz`."
        ) from exc
    shape_ok = chips.rgb.ndim == 4 and chips.rgb.shape[1:] == (patch_px, patch_px, 3)
    if not shape_ok or chips.rgb.dtype != np.uint8 or len(chips.rgb) != len(chips.label):
        raise ReviewChipsError(
            f"{path}: chips must be uint8 (N, {patch_px}, {patch_px}, 3) with one label each, "
            f"got {chips.rgb.dtype} {chips.rgb.shape} and {len(chips.label)} labels."
        )
    if not np.isin(chips.label, (0, 1)).all():
        raise ReviewChipsError(f"{path}: labels must be 0 (dismissed) or 1 (confirmed).")
    return chips
