"""The provider interface: search scenes for an AOI and window, download them.

Implementations live beside this module (``local.py`` and the remote ones). A
provider moves bytes; it does not composite. ``search`` moves no pixels. The
vocabulary it speaks (``TimeWindow``, ``SceneRef``, ``LocalScene``) lives in
:mod:`asmspotter.scenes`, below every stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from shapely.geometry.base import BaseGeometry

from asmspotter.scenes import LocalScene, SceneRef, TimeWindow


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
