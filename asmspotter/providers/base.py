"""The provider interface: search scenes for an AOI and window, download them.

Implementations live beside this module (``local.py`` and the remote ones). A
provider moves bytes; it does not composite. ``search`` moves no pixels.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from shapely.geometry.base import BaseGeometry


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


class Provider(Protocol):
    """What every imagery provider offers."""

    name: str
    """Provider name as written in AOI YAML ``sources[].provider``."""

    resolution_m: float
    """Native pixel size in metres of the bands we use."""

    def search(self, aoi_geometry_lonlat: BaseGeometry, window: TimeWindow) -> list[SceneRef]:
        """Find scenes intersecting the AOI in the window. Moves no pixels."""
        ...

    def download(self, ref: SceneRef, cache_dir: Path) -> LocalScene:
        """Fetch a scene into ``cache_dir/<provider>/<scene_id>/`` and return its files.

        Idempotent: a verified file already in the cache is reused.
        """
        ...
