"""From a Sentinel-2 L2A item's digital numbers to reflectance 0..1, for every catalogue.

Catalogues disagree on where scale and offset are declared and on whether the
processing-baseline offset was already removed; :func:`resolve_radiometry` holds
the one rule, applied at search time, and :func:`parse_radiometry` reads it back
from a scene reference at download time.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from asmspotter.errors import SceneReadError
from asmspotter.providers.stac.catalogs import PROVIDER_NAME, RADIOMETRY_KEY
from asmspotter.scenes import SceneRef

logger = logging.getLogger(__name__)

QUANTIFICATION_VALUE = 10_000.0
"""L2A BOA reflectance = (DN + BOA_ADD_OFFSET) / QUANTIFICATION_VALUE (ESA Sentinel-2
Products Specification Document; https://sentiwiki.copernicus.eu/web/s2-products)."""

BOA_ADD_OFFSET_DN = -1000.0
"""BOA_ADD_OFFSET of every band from processing baseline 04.00 (25 January 2022) on,
also in the Collection-1 reprocessing (baseline 05.xx). Before 04.00 there was none.
ESA: "Copernicus Sentinel-2: Major Products Upgrade" (2021-10) and the product
metadata ``BOA_ADD_OFFSET_VALUES_LIST``."""

FIRST_BASELINE_WITH_OFFSET = 4.0

BASELINE_PROPERTIES = ("s2:processing_baseline", "processing:version")
"""Processing-baseline item property: Earth Search and Planetary Computer use
``s2:processing_baseline``, CDSE ``processing:version`` (both like ``"05.09"``)."""
EARTH_SEARCH_OFFSET_APPLIED = "earthsearch:boa_offset_applied"
"""Earth Search sets this True where its COGs already had BOA_ADD_OFFSET removed; its
``raster:bands`` still say ``offset: -0.1`` then, and the flag is the truth
(Element84/earth-search#9, maintainer's comment)."""


@dataclass(frozen=True)
class BandRadiometry:
    """reflectance = DN x scale + offset (DN 0 = no data).

    Attributes:
        scale: Multiplier, 1e-4 for Sentinel-2 L2A.
        offset: Added after scaling, reflectance units (-0.1 or 0).
    """

    scale: float
    offset: float


def processing_baseline(properties: Mapping[str, Any]) -> float | None:
    """The item's processing baseline as a number (``"05.09"`` -> 5.09), if it has one."""
    for key in BASELINE_PROPERTIES:
        value = properties.get(key)
        if value is None:
            continue
        try:
            return float(str(value).strip().removeprefix("N"))
        except ValueError:
            logger.warning("sentinel-2-stac: unparsable %s %r, treated as unknown", key, value)
    return None


def _declared_scale_offset(asset: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """Scale and offset an asset declares: STAC raster v1 ``raster:bands`` or v2 fields."""
    bands = asset.get("raster:bands")
    if isinstance(bands, list) and bands and isinstance(bands[0], dict):
        scale, offset = bands[0].get("scale"), bands[0].get("offset")
    else:
        scale, offset = asset.get("raster:scale"), asset.get("raster:offset")
    return (
        None if scale is None else float(scale),
        None if offset is None else float(offset),
    )


def resolve_radiometry(properties: Mapping[str, Any], asset: Mapping[str, Any]) -> BandRadiometry:
    """Scale and offset that turn one band's DN into reflectance 0..1.

    The rule, the same for every catalogue:

    * scale: the asset's declared scale (``raster:bands[0].scale`` or
      ``raster:scale``), else 1 / 10000;
    * offset 0 where Earth Search says it already removed the offset
      (``earthsearch:boa_offset_applied: true``), whatever ``raster:bands`` say;
    * else, for processing baseline >= 04.00: the declared offset, or -1000 DN
      (x scale = -0.1) where none is declared (the Planetary Computer declares none);
    * else (older baseline): 0; with no baseline at all, the declared offset or 0.

    Args:
        properties: The item's properties.
        asset: The band's asset dict.

    Returns:
        The band's scale and offset.
    """
    declared_scale, declared_offset = _declared_scale_offset(asset)
    scale = declared_scale if declared_scale else 1.0 / QUANTIFICATION_VALUE
    if properties.get(EARTH_SEARCH_OFFSET_APPLIED) is True:
        return BandRadiometry(scale, 0.0)
    baseline = processing_baseline(properties)
    if baseline is None:
        return BandRadiometry(scale, declared_offset or 0.0)
    if baseline >= FIRST_BASELINE_WITH_OFFSET:
        offset = declared_offset if declared_offset else BOA_ADD_OFFSET_DN * scale
        return BandRadiometry(scale, offset)
    return BandRadiometry(scale, 0.0)


def parse_radiometry(ref: SceneRef) -> dict[str, tuple[float, float]]:
    """The ``radiometry`` entry of a SceneRef's assets as ``{band: (scale, offset)}``."""
    try:
        raw = json.loads(ref.assets.get(RADIOMETRY_KEY, "{}"))
        return {band: (float(pair[0]), float(pair[1])) for band, pair in raw.items()}
    except (ValueError, TypeError, IndexError, AttributeError) as exc:
        raise SceneReadError(
            f"{PROVIDER_NAME}: scene {ref.scene_id}: assets[{RADIOMETRY_KEY!r}] is not valid "
            f"({exc}); search again to rebuild the scene reference."
        ) from exc
