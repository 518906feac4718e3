"""The local provider: a folder of 4-band GeoTIFF scenes on disk.

The demo and most tests use it; it is also how a user feeds scenes they got
elsewhere. A scene is ``<scene_id>.tif`` (bands blue, green, red, nir; reflectance
after the band scale/offset), an optional ``<scene_id>.cloudmask.tif`` (1 = cloud or
shadow) beside it, and an acquisition time in the ``ACQUISITION_DATETIME`` tag or,
failing that, a ``YYYYMMDD`` date in the file name.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import shutil
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import CRSError, RasterioError, RasterioIOError
from rasterio.warp import transform_bounds
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from asmspotter.atomic_write import atomic_write
from asmspotter.errors import ProviderNotConfiguredError, SceneReadError
from asmspotter.providers.base import LocalScene, SceneRef, TimeWindow
from asmspotter.providers.cache import is_complete, scene_dir

logger = logging.getLogger(__name__)

CLOUD_MASK_SUFFIX = ".cloudmask.tif"
DATE_IN_NAME = re.compile(r"(20\d{2})(\d{2})(\d{2})")


def cloud_mask_path_for(scene_path: Path) -> Path:
    """The cloud-mask file that belongs beside a scene file."""
    return scene_path.with_name(scene_path.name.removesuffix(".tif") + CLOUD_MASK_SUFFIX)


def read_acquisition_time(path: Path, tags: dict[str, str]) -> dt.datetime | None:
    """Acquisition time from the ``ACQUISITION_DATETIME`` tag, else from the file name."""
    stamp = tags.get("ACQUISITION_DATETIME")
    if stamp:
        parsed = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    match = DATE_IN_NAME.search(path.name)
    if match:
        year, month, day = (int(part) for part in match.groups())
        return dt.datetime(year, month, day, tzinfo=dt.UTC)
    return None


def estimate_cloud_pct(mask_path: Path) -> float | None:
    """Percent of pixels flagged in a cloud mask, read from a decimated view."""
    if not mask_path.exists():
        return None
    with rasterio.open(mask_path) as src:
        scale = max(1, max(src.height, src.width) // 256)
        view = src.read(1, out_shape=(max(1, src.height // scale), max(1, src.width // scale)))
    return float(np.count_nonzero(view == 1) / view.size * 100.0)


class LocalProvider:
    """Scenes from a folder of GeoTIFFs.

    Example:
        >>> provider = LocalProvider(Path("data/samples/demo"))  # doctest: +SKIP
        >>> refs = provider.search(aoi.geometry_lonlat, TimeWindow(start, end))  # doctest: +SKIP
    """

    name = "local"

    def __init__(
        self, folder: Path, *, resolution_m: float = 10.0, max_cloud_pct: float = 100.0
    ) -> None:
        """Create a provider over ``folder``.

        Args:
            folder: Folder holding the scene GeoTIFFs.
            resolution_m: Pixel size the scenes are at, metres.
            max_cloud_pct: Scenes with more cloud than this (percent) are not returned.
        """
        self.folder = folder
        self.resolution_m = resolution_m
        self.max_cloud_pct = max_cloud_pct

    def _scene_files(self) -> list[Path]:
        if not self.folder.is_dir():
            raise ProviderNotConfiguredError(
                f"local provider: folder {self.folder} does not exist; set sources[].path in the "
                "AOI YAML to a folder of GeoTIFF scenes (or run `asmspotter demo` for the samples)."
            )
        return sorted(
            p for p in self.folder.glob("*.tif") if not p.name.endswith(CLOUD_MASK_SUFFIX)
        )

    def search(self, aoi_geometry_lonlat: BaseGeometry, window: TimeWindow) -> list[SceneRef]:
        """Scenes in the folder that intersect the AOI and were acquired in the window.

        Unreadable files are logged and left out; they never stop the search.
        """
        refs = []
        for path in self._scene_files():
            try:
                with rasterio.open(path) as src:
                    tags = src.tags()
                    crs = src.crs
                    if crs is not None:
                        footprint = box(*transform_bounds(crs, "EPSG:4326", *src.bounds))
            except (RasterioError, CRSError) as exc:
                logger.warning("local provider: skipping unreadable scene %s: %s", path, exc)
                continue
            if crs is None:
                logger.warning(
                    "local provider: skipping %s: it has no CRS, so it cannot be placed on "
                    "the AOI grid; re-export it with its CRS (gdal_translate -a_srs EPSG:<code>)",
                    path,
                )
                continue
            acquired = read_acquisition_time(path, tags)
            if acquired is None:
                logger.warning(
                    "local provider: skipping %s: no ACQUISITION_DATETIME tag and no YYYYMMDD "
                    "date in the file name",
                    path,
                )
                continue
            if not window.contains(acquired.date()) or not footprint.intersects(
                aoi_geometry_lonlat
            ):
                continue
            cloud_pct = estimate_cloud_pct(cloud_mask_path_for(path))
            if cloud_pct is not None and cloud_pct > self.max_cloud_pct:
                logger.info(
                    "local provider: %s has %.0f%% cloud > max_cloud_pct %.0f, not used",
                    path.name,
                    cloud_pct,
                    self.max_cloud_pct,
                )
                continue
            refs.append(
                SceneRef(
                    provider=self.name,
                    scene_id=tags.get("SCENE_ID", path.stem),
                    acquired=acquired,
                    footprint_lonlat=footprint,
                    cloud_pct=cloud_pct,
                    assets={"reflectance": str(path)},
                )
            )
        return sorted(refs, key=lambda ref: (ref.acquired, ref.scene_id))

    def download(self, ref: SceneRef, cache_dir: Path) -> LocalScene:
        """Link (or copy) the scene and its mask into ``cache_dir/local/<scene_id>/``.

        Re-running reuses files already there. Each file is written under a
        temporary name and renamed only once complete and readable.

        Raises:
            SceneReadError: the scene file is missing or not a readable GeoTIFF.
        """
        source = Path(ref.assets["reflectance"])
        target_dir = scene_dir(cache_dir, self.name, ref.scene_id)
        reflectance = _place(source, target_dir / "reflectance.tif")
        _check_readable(reflectance, ref.scene_id, expected_bands=4)
        mask_source = cloud_mask_path_for(source)
        mask = _place(mask_source, target_dir / "cloudmask.tif") if mask_source.exists() else None
        if mask is not None:
            _check_readable(mask, ref.scene_id, expected_bands=1)
        return LocalScene(ref=ref, reflectance_path=reflectance, cloud_mask_path=mask)


def _place(source: Path, target: Path) -> Path:
    """Hard-link ``source`` to ``target`` (copy across file systems), atomically."""
    if is_complete(target, size=source.stat().st_size):
        return target
    with atomic_write(target) as partial:
        partial.unlink(missing_ok=True)
        try:
            os.link(source, partial)
        except OSError:
            shutil.copyfile(source, partial)
    return target


def _check_readable(path: Path, scene_id: str, *, expected_bands: int) -> None:
    try:
        with rasterio.open(path) as src:
            if src.count != expected_bands:
                raise SceneReadError(
                    f"scene {scene_id}: {path} has {src.count} bands, expected {expected_bands} "
                    "(blue, green, red, nir for a scene; 1 for a cloud mask)."
                )
            if expected_bands == 4 and src.dtypes[0] in ("uint8", "int8"):
                raise SceneReadError(
                    f"scene {scene_id}: {path} holds 8-bit values ({src.dtypes[0]}), which "
                    "look like a display export, not reflectance: give uint16 DN "
                    "(reflectance x 10000) or float32 reflectance 0..1."
                )
            src.read(1, window=((0, min(8, src.height)), (0, min(8, src.width))))
    except RasterioIOError as exc:
        raise SceneReadError(
            f"scene {scene_id}: {path} is not a readable GeoTIFF ({exc}); replace or delete it."
        ) from exc
