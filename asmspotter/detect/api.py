"""The pipeline's detection on in-memory arrays: for notebooks and for evaluation.

:func:`detect_array` runs exactly what a monitoring run does to a composite (the
model's bands and normalisation, tiled inference, the card's threshold, the minimum
area, polygons, the verifier and its confidence levels) on a dict of numpy bands, and
:func:`detect_change` runs it on a before and an after image and tracks the sites
between them with the pipeline's rules (:func:`asmspotter.track.track_sites`). Small
inputs work: a 48 x 48 px patch is predicted as one padded tile and verified as one
patch.

Example:
    >>> import numpy as np
    >>> from asmspotter.detect.api import detect_change
    >>> bands = {b: np.full((48, 48), 0.03, np.float32) for b in ("blue", "green", "red")}
    >>> bands["nir"] = np.full((48, 48), 0.3, np.float32)
    >>> change = detect_change(bands, bands, resolution_m=10.0)  # doctest: +SKIP
    >>> change.raised  # doctest: +SKIP
    []
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from itertools import count
from pathlib import Path

import geopandas as gpd
import numpy as np
from affine import Affine
from numpy.typing import NDArray
from rasterio.features import rasterize

from asmspotter.composite.composite import clear_footprint_from_valid
from asmspotter.detect.features import build_features
from asmspotter.detect.model_card import check_model_fits
from asmspotter.detect.predict import predict_probabilities
from asmspotter.detect.runtime import load_model, run_precision
from asmspotter.detect.site_verification import (
    ArrayPatches,
    verified_sites,
    verifier_for,
    verifier_precision,
)
from asmspotter.detect.vectorize import vectorize_detections
from asmspotter.events import DEFAULT_ALERT_LEVELS, ConfidenceLevel, SiteEvent
from asmspotter.grid import AOIGrid
from asmspotter.track import KnownSite, TrackingThresholds, track_sites

DEFAULT_MODEL = "s2-unet-v1"
"""The model an AOI uses unless it names another."""

DEFAULT_EPSG = 32621
"""CRS of arrays given without one (UTM 21N: the Guianas); only areas and lon/lat use it."""

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
"""The repository's bundled models (``models/``)."""


@dataclass(frozen=True)
class ArrayDetection:
    """What detection found in one image."""

    probability: NDArray[np.float32]
    """(H, W) mining probability, 0 where no band was clear."""
    mask: NDArray[np.bool_]
    """(H, W) True inside the kept site polygons (threshold, clean-up, minimum area)."""
    sites: gpd.GeoDataFrame
    """Polygons with ``area_ha``, ``mean_probability``, ``max_probability``,
    ``verifier_score`` and ``confidence``."""
    valid: NDArray[np.bool_]
    """(H, W) True where every input band is finite."""
    grid: AOIGrid
    """The pixel grid the polygons are on."""


@dataclass(frozen=True)
class ChangeResult:
    """Sites tracked from a before image to an after image."""

    before: ArrayDetection
    after: ArrayDetection
    events: list[SiteEvent]
    """One event per site: sites of the before image first (``expanded``, ``unchanged``,
    ``shrunk``, ``not_seen``), then ``new`` ones."""
    alert_levels: tuple[ConfidenceLevel, ...]

    @property
    def raised(self) -> list[SiteEvent]:
        """The events a monitoring run would alert on: new or expanded, at an alert level."""
        return [e for e in self.events if e.is_alertable and e.confidence in self.alert_levels]


def _model_dir(model: str | Path, models_dir: Path | None) -> Path:
    path = Path(model)
    if path.is_dir() or path.is_absolute() or len(path.parts) > 1:
        return path
    return (models_dir or MODELS_DIR) / str(model)


def _grid_for(
    shape: tuple[int, int], resolution_m: float, transform: Affine | None, epsg: int
) -> AOIGrid:
    if transform is None:
        transform = Affine(resolution_m, 0.0, 500_000.0, 0.0, -resolution_m, 500_000.0)
    return AOIGrid(epsg, resolution_m, transform.c, transform.f, shape[1], shape[0])


def detect_array(
    bands: Mapping[str, NDArray[np.floating]],
    resolution_m: float,
    model: str | Path = DEFAULT_MODEL,
    *,
    threshold: float | None = None,
    min_area_ha: float = 1.0,
    transform: Affine | None = None,
    epsg: int = DEFAULT_EPSG,
    verify: bool = True,
    models_dir: Path | None = None,
) -> ArrayDetection:
    """Detect mining sites in one image given as bands of surface reflectance.

    Args:
        bands: Band name -> (H, W) L2A reflectance 0..1 (``blue``, ``green``, ``red``,
            ``nir``; ``ndwi``/``ndvi`` are computed when absent). NaN = not clear.
        resolution_m: Pixel size in metres; must fit the model card's.
        model: A model name under ``models/`` or a model directory.
        threshold: Probability threshold; None uses the card's (as the pipeline does
            unless the AOI sets one).
        min_area_ha: Smallest site kept (the AOI default, 1 ha).
        transform: Pixel-to-CRS transform; None puts the image at an arbitrary place
            in ``epsg`` (areas stay right; lon/lat are then meaningless).
        epsg: EPSG code of the CRS (projected, metres).
        verify: Score sites with the card's verifier (confidence levels).
        models_dir: Where model names are looked up; default the bundled ``models/``.

    Raises:
        ModelNotFoundError: If the model does not exist.
        ModelMismatchError: If bands or pixel size do not fit the model.
    """
    model_dir = _model_dir(model, models_dir)
    loaded = load_model(model_dir)
    card = loaded.card
    check_model_fits(card, list(bands), resolution_m, model_dir=model_dir)
    features = build_features(bands, card.bands)
    valid = np.all(np.isfinite(features), axis=0)
    precision = run_precision(card.precision, loaded.device)
    probability = predict_probabilities(
        np.nan_to_num(features), loaded, valid_mask=valid, precision=precision
    )
    grid = _grid_for(valid.shape, resolution_m, transform, epsg)
    used_threshold = card.threshold if threshold is None else threshold
    verifier = (
        verifier_for(model_dir, card.verifier, verifier_precision(None, card.precision))
        if verify
        else None
    )
    sites = verified_sites(
        lambda cuts: {
            cut: vectorize_detections(
                probability, grid.transform, epsg, cut, min_area_ha, valid_mask=valid
            )
            for cut in cuts
        },
        used_threshold,
        card.candidate_threshold,
        ArrayPatches(bands["red"], bands["green"], bands["blue"], grid.transform),
        verifier,
    )
    mask = (
        rasterize(list(sites.geometry), out_shape=valid.shape, transform=grid.transform).astype(
            bool
        )
        if len(sites)
        else np.zeros(valid.shape, bool)
    )
    return ArrayDetection(probability, mask, sites, valid, grid)


def _known_from(
    detection: ArrayDetection, date: dt.date, thresholds: TrackingThresholds
) -> list[KnownSite]:
    """The before image's sites as tracking knows them after its run."""
    ids = (f"site-{i:04d}" for i in count(1))
    events = track_sites(
        detection.sites,
        [],
        clear_now=clear_footprint_from_valid(detection.valid, detection.grid),
        clear_before=None,
        window_end=date,
        epsg=detection.grid.epsg,
        new_site_ids=ids,
        thresholds=thresholds,
    )
    return [
        KnownSite(
            e.site_id,
            e.geometry,
            e.area_ha,
            e.first_seen,
            "active",
            e.confidence,
            e.outline_threshold,
        )
        for e in events
    ]


def detect_change(
    before: Mapping[str, NDArray[np.floating]],
    after: Mapping[str, NDArray[np.floating]],
    resolution_m: float = 10.0,
    model: str | Path = DEFAULT_MODEL,
    *,
    thresholds: TrackingThresholds | None = None,
    alert_levels: Iterable[ConfidenceLevel] = DEFAULT_ALERT_LEVELS,
    threshold: float | None = None,
    min_area_ha: float = 1.0,
    transform: Affine | None = None,
    epsg: int = DEFAULT_EPSG,
    verify: bool = True,
    models_dir: Path | None = None,
) -> ChangeResult:
    """Detect sites in two images of one place and track them from before to after.

    The before image's sites become known sites (as after a first monitoring run),
    then the after image's detections are matched to them with the AOI's tracking
    rules: growth measured where both images are clear, ``expanded`` only past both
    ``thresholds`` minima (default: an AOI's defaults, 1 ha and 20 %). A site that was
    ``high`` before and again after is ``highest``.

    Args:
        before: Bands of the earlier image (see :func:`detect_array`).
        after: Bands of the later image, same shape and grid.
        resolution_m: Pixel size in metres.
        model: Model name or directory.
        thresholds: Tracking thresholds; None = an AOI's defaults.
        alert_levels: Confidence levels :attr:`ChangeResult.raised` counts (an AOI's
            default: high and highest).
        threshold: Probability threshold; None = the card's.
        min_area_ha: Smallest site kept.
        transform: Pixel-to-CRS transform of both images.
        epsg: EPSG code of their CRS.
        verify: Use the card's verifier.
        models_dir: Where model names are looked up.

    Raises:
        ValueError: If the two images differ in shape.
    """
    shapes = {np.shape(a) for a in (*before.values(), *after.values())}
    if len(shapes) != 1:
        raise ValueError(f"before and after bands must share one (H, W) shape, got {shapes}.")
    thresholds = thresholds or TrackingThresholds()
    detect = partial(
        detect_array,
        resolution_m=resolution_m,
        model=model,
        threshold=threshold,
        min_area_ha=min_area_ha,
        transform=transform,
        epsg=epsg,
        verify=verify,
        models_dir=models_dir,
    )
    first, second = detect(before), detect(after)
    # Tracking orders runs by window end; the two images only need to be in order.
    before_date, after_date = dt.date(2000, 1, 1), dt.date(2000, 1, 2)
    known = _known_from(first, before_date, thresholds)
    new_ids = (f"site-{i:04d}" for i in count(len(known) + 1))
    events = track_sites(
        second.sites,
        known,
        clear_now=clear_footprint_from_valid(second.valid, second.grid),
        clear_before=clear_footprint_from_valid(first.valid, first.grid),
        window_end=after_date,
        epsg=epsg,
        new_site_ids=new_ids,
        thresholds=thresholds,
    )
    return ChangeResult(first, second, events, tuple(alert_levels))
