"""The scene vocabulary every stage shares: windows, scene references, local scenes, clear masks.

A provider turns an AOI and a :class:`TimeWindow` into scene references (:class:`SceneRef`) and
downloads each as a :class:`LocalScene`; compositing reads those files and turns
each provider's cloud information into one boolean "clear" mask with the helpers
below; scheduling plans windows and the store records scene references. So this
module sits at the bottom: it imports nothing of ``asmspotter``, and providers
(``asmspotter.providers``), compositing (``asmspotter.composite``), scheduling
(``asmspotter.schedule``) and the store (``asmspotter.storage``) all import it
instead of each other.

Cloud information differs by source: the local provider and the synthetic scenes
ship a binary mask (1 = cloud or shadow), Sentinel-2 L2A ships the scene
classification layer (SCL), PlanetScope ships UDM2. Compositing only ever sees
``clear`` (True = usable pixel).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
from shapely.geometry.base import BaseGeometry

ArrayT = TypeVar("ArrayT")

BINARY_MASK_NODATA = 255
"""Value of a binary cloud mask outside the scene footprint (after warping)."""

SCL_MASKED_CLASSES: tuple[int, ...] = (0, 1, 3, 8, 9, 10)
"""Sentinel-2 SCL classes treated as unusable: no data, saturated/defective, cloud
shadow, cloud medium and high probability, thin cirrus. See the L2A product
definition (ESA Sentinel-2 Level-2A Algorithm Theoretical Basis Document, SCL)."""


@dataclass(frozen=True)
class TimeWindow:
    """A closed date window [start, end] of acquisitions, in UTC dates."""

    start: dt.date
    end: dt.date

    def contains(self, when: dt.date) -> bool:
        """True if ``when`` lies in the window, ends included."""
        return self.start <= when <= self.end


@dataclass(frozen=True)
class SceneRef:
    """A scene found by a search: enough to download it, no pixels.

    Attributes:
        provider: Provider name, e.g. ``local`` or ``sentinel-2-stac``.
        scene_id: The provider's own scene id; unique per provider.
        acquired: Acquisition time (UTC).
        footprint_lonlat: Scene footprint in EPSG:4326.
        cloud_pct: Scene cloud cover in percent, if the provider reports it.
        assets: Asset name -> URL or path, as the provider needs them to download.
    """

    provider: str
    scene_id: str
    acquired: dt.datetime
    footprint_lonlat: BaseGeometry
    cloud_pct: float | None = None
    assets: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LocalScene:
    """A downloaded scene on local disk, ready for compositing.

    Attributes:
        ref: The search result this scene came from.
        reflectance_path: GeoTIFF of 4 bands in the order blue, green, red, nir;
            reflectance = stored value * band scale + band offset (0..1).
        cloud_mask_path: GeoTIFF, 1 band uint8: 1 = cloud or cloud shadow (masked),
            0 = clear; None if the scene has no mask (all pixels treated as clear).
    """

    ref: SceneRef
    reflectance_path: Path
    cloud_mask_path: Path | None


def clear_from_binary_mask(mask: ArrayT) -> ArrayT:
    """Clear where a binary cloud mask is 0 (1 = cloud/shadow, 255 = outside the scene)."""
    return mask == 0  # type: ignore[comparison-overlap,return-value]


def clear_from_scl(scl: ArrayT, masked_classes: Iterable[int] = SCL_MASKED_CLASSES) -> ArrayT:
    """Clear where the SCL class is not one of ``masked_classes``."""
    return ~np.isin(scl, list(masked_classes))  # type: ignore[return-value,arg-type]
