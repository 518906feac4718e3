"""Sentinel-2 from a Data Hub Software (DHuS) hub, through sentinelsat.

:class:`DhusProvider` searches a DHuS hub's OpenSearch API and downloads whole
SAFE zips through its OData API with `sentinelsat <https://sentinelsat.readthedocs.io>`_,
then reads the four bands we use (and the cloud information) straight out of the
zip with GDAL's ``/vsizip/`` and warps them onto the AOI grid. The result is the
local scene format of :mod:`asmspotter.scene_io`, cached under
``<cache_dir>/sentinel-2-dhus/<product title>/`` (see :mod:`asmspotter.providers.cache`).

The Copernicus Open Access Hub this protocol was built for closed in 2023; the
hub URL is configuration (``sources[].url``), for the national and collaborative
mirrors that still run DHuS. ``docs/providers/sentinel-2-dhus.md`` says which.
The STAC provider (``stac.py``) is the main Sentinel-2 path; the fake hub the
tests use is ``tests/fakes/dhus_server.py``.

Vendor errors are translated here, once: refused credentials become
:class:`ProviderAuthError` (never retried), a hub that is down or throttling
:class:`ProviderUnavailableError` (retried by the download task; the search also
retries a few times itself).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import time
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import numpy as np
import rasterio
import shapely
from numpy.typing import NDArray
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.vrt import WarpedVRT
from rasterio.warp import reproject
from shapely.geometry.base import BaseGeometry

from asmspotter.atomic_write import atomic_write
from asmspotter.errors import (
    AsmspotterError,
    ProviderAuthError,
    ProviderNotConfiguredError,
    ProviderUnavailableError,
    SceneReadError,
)
from asmspotter.grid import AOIGrid
from asmspotter.providers.base import LocalScene, SceneRef, TimeWindow
from asmspotter.providers.cache import scene_dir
from asmspotter.providers.reachability import unreachable_reason
from asmspotter.scene_io import write_scene
from asmspotter.sources import DhusSourceConfig

logger = logging.getLogger(__name__)

T = TypeVar("T")

PROVIDER_NAME = "sentinel-2-dhus"

REFLECTANCE_BANDS: tuple[str, str, str, str] = ("B02", "B03", "B04", "B08")
"""Sentinel-2 bands for blue, green, red, nir, in the local scene's band order."""

S2CLOUDLESS_BANDS: tuple[str, ...] = (
    "B01", "B02", "B04", "B05", "B08", "B8A", "B09", "B10", "B11", "B12",
)  # fmt: skip
"""The L1C bands s2cloudless's model takes, in its order (s2cloudless README)."""

BAND_IDS: dict[str, int] = {
    name: index
    for index, name in enumerate(
        ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
    )
}
"""``band_id`` of each band in the product metadata (``BOA_ADD_OFFSET band_id="1"`` is B02)."""

DEFAULT_QUANTIFICATION = 10_000.0
"""Reflectance = (DN + offset) / 10000 (Sentinel-2 Products Specification Document)."""

OFFSET_BASELINE = (4, 0)
"""From processing baseline 04.00 (25 January 2022) L1C/L2A DNs carry a -1000 offset
(ESA, "Copernicus Sentinel-2 major products upgrade upcoming", 2021)."""

DEFAULT_OFFSET_DN = -1000.0
"""The offset a baseline >= 04.00 product uses when its metadata does not list one."""

S2CLOUDLESS_RESOLUTION_M = 60.0
"""s2cloudless runs on a coarser grid: its model was trained on 60 m-ish pixels, and
LightGBM over every 10 m pixel of a large AOI would be slow. The mask is then
resampled (nearest) onto the AOI grid."""

S2CLOUDLESS_OPTIONS: dict[str, Any] = {
    "threshold": 0.4,
    "average_over": 4,
    "dilation_size": 2,
    "all_bands": False,
}
"""Detector settings the s2cloudless examples use at 60 m pixels."""

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})

_PATTERN_10M = re.compile(r"IMG_DATA/R10m/[^/]*_(B\w\w)_10m\.jp2$")
_PATTERN_SCL = re.compile(r"IMG_DATA/R20m/[^/]*_SCL_20m\.jp2$")
_PATTERN_L1C = re.compile(r"IMG_DATA/[^/]*_(B\w\w)\.jp2$")


def import_sentinelsat() -> ModuleType:
    """Import sentinelsat, or say how to install it.

    Raises:
        ProviderNotConfiguredError: sentinelsat is not installed.
    """
    try:
        import sentinelsat
    except ImportError as exc:
        raise ProviderNotConfiguredError(
            f"provider {PROVIDER_NAME!r} needs the sentinelsat package, which is not installed; "
            "run `pip install sentinelsat` (or use provider 'sentinel-2-stac')."
        ) from exc
    module: ModuleType = sentinelsat
    return module


@dataclass(frozen=True)
class ProductRadiometry:
    """How a product's DNs become reflectance: ``(DN + offset_dn[band]) / quantification``.

    Attributes:
        processing_baseline: e.g. ``"05.09"``; ``""`` if the metadata does not say.
        quantification: BOA (L2A) or TOA (L1C) quantification value, usually 10000.
        offset_dn: Offset per band name, DN (``-1000`` from baseline 04.00).
    """

    processing_baseline: str
    quantification: float
    offset_dn: dict[str, float]

    def offset_for(self, band: str) -> float:
        """The offset of ``band`` in DN; the baseline's default where the metadata is silent."""
        if band in self.offset_dn:
            return self.offset_dn[band]
        return (
            DEFAULT_OFFSET_DN
            if _baseline_tuple(self.processing_baseline) >= OFFSET_BASELINE
            else 0.0
        )


def _baseline_tuple(baseline: str) -> tuple[int, int]:
    match = re.match(r"\s*(\d+)\.(\d+)", baseline)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def parse_product_metadata(xml_bytes: bytes, level: str) -> ProductRadiometry:
    """Read the baseline, quantification value and per-band offsets of a product.

    Args:
        xml_bytes: ``MTD_MSIL2A.xml`` or ``MTD_MSIL1C.xml``.
        level: ``"L2A"`` (``BOA_ADD_OFFSET``, ``BOA_QUANTIFICATION_VALUE``) or ``"L1C"``
            (``RADIO_ADD_OFFSET``, ``QUANTIFICATION_VALUE``).

    Returns:
        The radiometry; tag namespaces are ignored (they change between baselines).
    """
    root = ET.fromstring(xml_bytes)
    offset_tag = "BOA_ADD_OFFSET" if level == "L2A" else "RADIO_ADD_OFFSET"
    quant_tag = "BOA_QUANTIFICATION_VALUE" if level == "L2A" else "QUANTIFICATION_VALUE"
    names_by_id = {index: name for name, index in BAND_IDS.items()}
    baseline = ""
    quantification = DEFAULT_QUANTIFICATION
    offsets: dict[str, float] = {}
    for element in root.iter():
        tag = element.tag.rsplit("}", 1)[-1]
        text = (element.text or "").strip()
        if tag == "PROCESSING_BASELINE" and text:
            baseline = text
        elif tag == quant_tag and text:
            quantification = float(text)
        elif tag == offset_tag and text:
            band = names_by_id.get(int(element.get("band_id", "-1")))
            if band is not None:
                offsets[band] = float(text)
    return ProductRadiometry(baseline, quantification, offsets)


class DhusProvider:
    """Sentinel-2 L2A (or L1C) scenes from a DHuS hub.

    Example:
        >>> grid = build_grid(aoi.geometry_lonlat, 10.0)  # doctest: +SKIP
        >>> provider = DhusProvider(source, grid, aoi.name)  # doctest: +SKIP
        >>> refs = provider.search(aoi.geometry_lonlat, TimeWindow(start, end))  # doctest: +SKIP
        >>> scene = provider.download(refs[0], settings.data_dir / "cache")  # doctest: +SKIP
    """

    name = PROVIDER_NAME

    def __init__(
        self,
        config: DhusSourceConfig,
        grid: AOIGrid,
        aoi_name: str,
        *,
        search_retry_delays_s: Sequence[float] = (2.0, 10.0),
        timeout_s: float = 60.0,
        keep_zip: bool = False,
        download_chunk_bytes: int = 1 << 20,
    ) -> None:
        """Create a provider for one AOI source.

        Credentials are read from the environment variables the config names when the
        provider first talks to the hub, so building it needs no secrets.

        Args:
            config: The validated ``sources[]`` entry.
            grid: The AOI grid every download is warped and clipped onto.
            aoi_name: The AOI slug, for messages.
            search_retry_delays_s: Pauses before each repeat of a search the hub answered
                with 429/5xx or a dropped connection, seconds; ``()`` searches once.
            timeout_s: Seconds to wait for the hub to answer (connect and each read);
                sentinelsat sets none that ``requests`` honours.
            keep_zip: Keep the SAFE zip after the scene is written (about 1 GB each);
                by default it is deleted once ``reflectance.tif`` exists.
            download_chunk_bytes: Bytes sentinelsat reads and appends at a time; a dropped
                connection loses at most one chunk of the ``.incomplete`` file.
        """
        self.config = config
        self.grid = grid
        self.aoi_name = aoi_name
        self.resolution_m = config.resolution_m
        self.search_retry_delays_s = tuple(search_retry_delays_s)
        self.timeout_s = timeout_s
        self.keep_zip = keep_zip
        self.download_chunk_bytes = download_chunk_bytes
        self._api: Any = None

    # ------------------------------------------------------------------ hub access
    def _credentials(self) -> tuple[str, str]:
        values = []
        for variable in (self.config.user_env, self.config.password_env):
            value = os.environ.get(variable, "")
            if not value:
                raise ProviderNotConfiguredError(
                    f"AOI {self.aoi_name}: provider {PROVIDER_NAME!r} ({self.config.url}) needs "
                    f"the environment variable {variable}, which is not set; export {variable}=... "
                    "(or name another variable in sources[].user_env / sources[].password_env)."
                )
            values.append(value)
        return values[0], values[1]

    def _client(self) -> Any:
        """The sentinelsat client, built on first use (reads the credentials)."""
        if self._api is None:
            sentinelsat = import_sentinelsat()
            user, password = self._credentials()
            api = sentinelsat.SentinelAPI(
                user, password, api_url=self.config.url, show_progressbars=False
            )
            _apply_timeout(api.session, self.timeout_s)
            api.downloader.chunk_size = self.download_chunk_bytes
            self._api = api
        return self._api

    def _call(self, action: str, function: Callable[[], T], *, scene_id: str | None = None) -> T:
        """Run one sentinelsat call, translating its errors (see :func:`translate_error`)."""
        try:
            return function()
        except Exception as exc:
            translated = translate_error(exc, self.config, self.aoi_name, action, scene_id)
            if translated is None:
                raise
            raise translated from exc

    # ------------------------------------------------------------------ search
    def search(self, aoi_geometry_lonlat: BaseGeometry, window: TimeWindow) -> list[SceneRef]:
        """Products of the configured type that intersect the AOI in the window.

        Moves no pixels. Pages through all results (sentinelsat requests 100 a page).

        Raises:
            ProviderNotConfiguredError: sentinelsat or a credential variable is missing.
            ProviderAuthError: the hub refused the credentials.
            ProviderUnavailableError: the hub is down or throttling, after the retries.
        """
        api = self._client()
        footprint_wkt = query_footprint_wkt(aoi_geometry_lonlat)
        # Solr ranges are inclusive; the window's end date counts up to its last millisecond.
        date_range = (window.start, f"{window.end.isoformat()}T23:59:59.999Z")

        def query() -> dict[str, dict[str, Any]]:
            result: dict[str, dict[str, Any]] = api.query(
                footprint_wkt,
                date=date_range,
                platformname="Sentinel-2",
                producttype=self.config.product_type,
                cloudcoverpercentage=(0, self.config.max_cloud_pct),
            )
            return result

        products = self._with_retries(lambda: self._call("search", query))
        refs = []
        for uuid, product in products.items():
            ref = self._scene_ref(uuid, product)
            if not window.contains(ref.acquired.date()):
                continue
            if not ref.footprint_lonlat.intersects(aoi_geometry_lonlat):
                continue
            refs.append(ref)
        logger.info(
            "%s: %d %s products for AOI %s in %s..%s",
            self.config.url,
            len(refs),
            self.config.product_type,
            self.aoi_name,
            window.start,
            window.end,
        )
        return sorted(refs, key=lambda ref: (ref.acquired, ref.scene_id))

    def _with_retries(self, attempt: Callable[[], T]) -> T:
        for delay_s in self.search_retry_delays_s:
            try:
                return attempt()
            except ProviderUnavailableError as exc:
                if unreachable_reason(exc) is not None:
                    raise  # no network or a wrong host: waiting does not help
                logger.warning("%s; retrying in %.0f s", exc, delay_s)
                time.sleep(delay_s)
        return attempt()

    def _scene_ref(self, uuid: str, product: dict[str, Any]) -> SceneRef:
        acquired = product["beginposition"]
        if isinstance(acquired, str):
            acquired = dt.datetime.fromisoformat(acquired.replace("Z", "+00:00"))
        if acquired.tzinfo is None:
            acquired = acquired.replace(tzinfo=dt.UTC)
        cloud = product.get("cloudcoverpercentage")
        return SceneRef(
            provider=self.name,
            scene_id=str(product["title"]),
            acquired=acquired,
            footprint_lonlat=shapely.from_wkt(product["footprint"]),
            cloud_pct=float(cloud) if cloud is not None else None,
            assets={"uuid": uuid},
        )

    # ------------------------------------------------------------------ download
    def download(self, ref: SceneRef, cache_dir: Path) -> LocalScene:
        """Download the product's SAFE zip and write its scene on the AOI grid.

        Writes ``<cache_dir>/sentinel-2-dhus/<title>/reflectance.tif`` (bands blue,
        green, red, nir) and ``cloudmask.tif`` (1 = cloud/shadow/no data). A scene
        already written is reused without touching the hub; a complete zip is not
        downloaded again; an interrupted one (``<title>.zip.incomplete``) is resumed
        by sentinelsat with an HTTP Range request; sentinelsat checks the MD5 the
        hub reports before it renames the zip into place.

        Raises:
            ProviderNotConfiguredError: sentinelsat, s2cloudless (L1C) or a credential
                variable is missing.
            ProviderAuthError: the hub refused the credentials.
            ProviderUnavailableError: the hub is down, the connection dropped, the
                checksum did not match (the bad file is deleted), or the product is
                offline in the Long Term Archive; try again later.
            SceneReadError: the zip lacks a band or its metadata, or a band is unreadable.
        """
        folder = scene_dir(cache_dir, self.name, ref.scene_id)
        target = folder / "reflectance.tif"
        mask_target = folder / "cloudmask.tif"
        if target.is_file() and mask_target.is_file():
            logger.debug("%s: reusing %s", ref.scene_id, target)
            return LocalScene(ref=ref, reflectance_path=target, cloud_mask_path=mask_target)
        zip_path = self._download_zip(ref, folder)
        reflectance, cloud = self._read_product(ref.scene_id, zip_path)
        with atomic_write(target) as partial:
            write_scene(
                partial, self.grid, reflectance, ref.acquired, scene_id=ref.scene_id,
                cloud_mask=cloud,
            )  # fmt: skip
            # write_scene puts the mask beside its target; move it before the scene
            # itself is renamed, so a present reflectance.tif always has its mask.
            partial_mask = partial.with_name(partial.name.removesuffix(".tif") + ".cloudmask.tif")
            partial_mask.replace(mask_target)
        if not self.keep_zip:
            zip_path.unlink(missing_ok=True)
        logger.info("%s: wrote %s", ref.scene_id, target)
        return LocalScene(ref=ref, reflectance_path=target, cloud_mask_path=mask_target)

    def _download_zip(self, ref: SceneRef, folder: Path) -> Path:
        zip_path = folder / f"{ref.scene_id}.zip"
        if zip_path.is_file():
            # sentinelsat renames <title>.zip.incomplete only after the checksum matched.
            return zip_path
        uuid = ref.assets.get("uuid")
        if not uuid:
            raise SceneReadError(
                f"scene {ref.scene_id}: its SceneRef has no 'uuid' asset; search the "
                f"{PROVIDER_NAME} provider again to get a downloadable reference."
            )
        api = self._client()
        incomplete = folder / f"{ref.scene_id}.zip.incomplete"
        if incomplete.exists():
            logger.info(
                "%s: resuming download at %d bytes", ref.scene_id, incomplete.stat().st_size
            )
        try:
            info = self._call(
                "download",
                lambda: api.download(uuid, directory_path=str(folder), checksum=True),
                scene_id=ref.scene_id,
            )
        except ProviderUnavailableError as exc:
            if _is_checksum_error(exc.__cause__):
                # sentinelsat deletes it too; make sure the next attempt starts afresh.
                incomplete.unlink(missing_ok=True)
                zip_path.unlink(missing_ok=True)
            raise
        downloaded = Path(info["path"])
        if downloaded != zip_path:
            # The hub named the file differently from the product title.
            downloaded.replace(zip_path)
        return zip_path

    def _read_product(
        self, scene_id: str, zip_path: Path
    ) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
        """Reflectance (4, H, W; NaN = no data) and cloud mask (H, W) on the AOI grid."""
        level = "L2A" if self.config.product_type == "S2MSI2A" else "L1C"
        try:
            with zipfile.ZipFile(zip_path) as archive:
                names = archive.namelist()
                metadata_name = _find_one(names, rf"(^|/)MTD_MSI{level}\.xml$")
                if metadata_name is None:
                    raise SceneReadError(
                        f"product {scene_id}: {zip_path} has no MTD_MSI{level}.xml; is it a "
                        f"Sentinel-2 {level} SAFE? Delete it to download again."
                    )
                radiometry = parse_product_metadata(archive.read(metadata_name), level)
        except zipfile.BadZipFile as exc:
            zip_path.unlink(missing_ok=True)
            raise SceneReadError(
                f"product {scene_id}: {zip_path} is not a readable zip ({exc}); it was deleted "
                "and will be downloaded again next time."
            ) from exc
        if level == "L2A":
            bands = _band_paths(
                names, _PATTERN_10M, REFLECTANCE_BANDS, scene_id, "R10m/*_{}_10m.jp2"
            )
            scl_name = _find_one(names, _PATTERN_SCL.pattern)
            if scl_name is None:
                raise SceneReadError(
                    f"product {scene_id}: {zip_path} has no band SCL "
                    "(GRANULE/*/IMG_DATA/R20m/*_SCL_20m.jp2); an L2A product needs it for the "
                    "cloud mask."
                )
            reflectance = self._read_reflectance(scene_id, zip_path, bands, radiometry)
            scl = self._warp(scene_id, zip_path, scl_name, Resampling.nearest, self.grid)
            cloud = np.isin(scl, list(self.config.masked_scl_classes))
        else:
            s2cloudless = _import_s2cloudless(self.aoi_name)
            wanted = tuple(dict.fromkeys(REFLECTANCE_BANDS + S2CLOUDLESS_BANDS))
            bands = _band_paths(names, _PATTERN_L1C, wanted, scene_id, "IMG_DATA/*_{}.jp2")
            reflectance = self._read_reflectance(scene_id, zip_path, bands, radiometry)
            cloud = self._s2cloudless_mask(s2cloudless, scene_id, zip_path, bands, radiometry)
        # Outside the product's footprint there is nothing to see: mask it too.
        cloud = cloud | ~np.isfinite(reflectance).all(axis=0)
        return reflectance, cloud

    def _read_reflectance(
        self,
        scene_id: str,
        zip_path: Path,
        bands: dict[str, str],
        radiometry: ProductRadiometry,
    ) -> NDArray[np.float32]:
        planes = [
            _to_reflectance(
                self._warp(scene_id, zip_path, bands[band], Resampling.bilinear, self.grid),
                radiometry,
                band,
            )
            for band in REFLECTANCE_BANDS
        ]
        return np.stack(planes).astype(np.float32)

    def _s2cloudless_mask(
        self,
        s2cloudless: ModuleType,
        scene_id: str,
        zip_path: Path,
        bands: dict[str, str],
        radiometry: ProductRadiometry,
    ) -> NDArray[np.bool_]:
        coarse = coarser_grid(self.grid, S2CLOUDLESS_RESOLUTION_M)
        planes = [
            _to_reflectance(
                self._warp(scene_id, zip_path, bands[band], Resampling.bilinear, coarse),
                radiometry,
                band,
            )
            for band in S2CLOUDLESS_BANDS
        ]
        stack = np.nan_to_num(np.stack(planes, axis=-1), nan=0.0).astype(np.float32)
        detector = s2cloudless.S2PixelCloudDetector(**S2CLOUDLESS_OPTIONS)
        coarse_mask = np.asarray(detector.get_cloud_masks(stack[np.newaxis]))[0].astype(np.uint8)
        fine = np.zeros(self.grid.shape, np.uint8)
        reproject(
            coarse_mask,
            fine,
            src_transform=coarse.transform,
            src_crs=coarse.crs.to_wkt(),
            dst_transform=self.grid.transform,
            dst_crs=self.grid.crs.to_wkt(),
            resampling=Resampling.nearest,
        )
        return fine.astype(bool)

    def _warp(
        self,
        scene_id: str,
        zip_path: Path,
        member: str,
        resampling: Resampling,
        grid: AOIGrid,
    ) -> NDArray[np.float32]:
        """One band of the zip on ``grid``, float32 DN with NaN where there is no data.

        Sentinel-2 JPEG2000 bands declare no nodata value; DN 0 is "no data" by the
        product specification, so it is passed as the source nodata to the warp.
        """
        location = f"/vsizip/{zip_path}/{member}"
        try:
            with (
                rasterio.open(location) as src,
                WarpedVRT(
                    src,
                    crs=grid.crs.to_wkt(),
                    transform=grid.transform,
                    width=grid.width_px,
                    height=grid.height_px,
                    resampling=resampling,
                    src_nodata=0,
                    nodata=0,
                ) as vrt,
            ):
                data = vrt.read(1, out_dtype="float32", masked=True)
        except RasterioIOError as exc:
            raise SceneReadError(
                f"product {scene_id}: cannot read {member} in {zip_path} ({exc}); delete the "
                "zip to download it again."
            ) from exc
        return np.ma.filled(data, np.nan).astype(np.float32)


# ---------------------------------------------------------------------- helpers
def _apply_timeout(session: Any, timeout_s: float) -> None:
    """Give every request of ``session`` a timeout unless the caller set one.

    sentinelsat stores its ``timeout`` on the session, where ``requests`` ignores it,
    so a hub that accepts the connection and never answers would hang a worker forever.
    """
    send = session.request

    def request_with_timeout(method: str, url: str, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", timeout_s)
        return send(method, url, **kwargs)

    session.request = request_with_timeout


def query_footprint_wkt(geometry_lonlat: BaseGeometry, max_chars: int = 2000) -> str:
    """The AOI as WKT short enough for a DHuS query URL.

    DHuS rejects long query strings (sentinelsat's ``QueryLengthError``); an AOI with
    many vertices is sent as its convex hull, then as its bounding box. The search
    filters the results against the real AOI afterwards.
    """
    for candidate in (geometry_lonlat, geometry_lonlat.convex_hull, geometry_lonlat.envelope):
        wkt = str(shapely.to_wkt(candidate, rounding_precision=6, trim=True))
        if len(wkt) <= max_chars:
            return wkt
    return str(shapely.to_wkt(geometry_lonlat.envelope, rounding_precision=6, trim=True))


def coarser_grid(grid: AOIGrid, resolution_m: float) -> AOIGrid:
    """A grid over (at least) the same bounds with bigger pixels."""
    if resolution_m <= grid.resolution_m:
        return grid
    scale = resolution_m / grid.resolution_m
    return AOIGrid(
        epsg=grid.epsg,
        resolution_m=resolution_m,
        left_m=grid.left_m,
        top_m=grid.top_m,
        width_px=max(1, int(np.ceil(grid.width_px / scale))),
        height_px=max(1, int(np.ceil(grid.height_px / scale))),
    )


def _to_reflectance(
    dn: NDArray[np.float32], radiometry: ProductRadiometry, band: str
) -> NDArray[np.float32]:
    return ((dn + radiometry.offset_for(band)) / radiometry.quantification).astype(np.float32)


def _find_one(names: Iterable[str], pattern: str) -> str | None:
    regex = re.compile(pattern)
    return next((name for name in sorted(names) if regex.search(name)), None)


def _band_paths(
    names: Sequence[str],
    pattern: re.Pattern[str],
    wanted: Iterable[str],
    scene_id: str,
    layout: str,
) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in sorted(names):
        match = pattern.search(name)
        if match and match.group(1) not in found:
            found[match.group(1)] = name
    for band in wanted:
        if band not in found:
            raise SceneReadError(
                f"product {scene_id}: the SAFE zip has no band {band} "
                f"(expected GRANULE/*/{layout.format(band)}); the product is incomplete or "
                "not a standard Sentinel-2 SAFE. Delete it to download again, or skip it."
            )
    return found


def _import_s2cloudless(aoi_name: str) -> ModuleType:
    try:
        import s2cloudless
    except ImportError as exc:
        raise ProviderNotConfiguredError(
            f"AOI {aoi_name}: provider {PROVIDER_NAME!r} with product_type S2MSI1C needs "
            "s2cloudless for its cloud mask, which is not installed; run "
            "`pip install 'asmspotter[s2cloudless]'` (or `pip install s2cloudless`), or set "
            "sources[].product_type: S2MSI2A to use the L2A scene classification instead."
        ) from exc
    module: ModuleType = s2cloudless
    return module


def _is_checksum_error(exc: BaseException | None) -> bool:
    return type(exc).__name__ == "InvalidChecksumError"


def translate_error(
    exc: Exception,
    config: DhusSourceConfig,
    aoi_name: str,
    action: str,
    scene_id: str | None = None,
) -> AsmspotterError | None:
    """Our error for a sentinelsat or requests exception; None for anything else.

    Args:
        exc: What sentinelsat raised.
        config: The source (hub URL and credential variables, for the message).
        aoi_name: AOI slug, for the message.
        action: ``"search"`` or ``"download"``.
        scene_id: Product title, when downloading.

    Returns:
        ProviderAuthError (401/403), ProviderUnavailableError (connection errors,
        408/429/5xx, bad checksum, product offline in the Long Term Archive),
        SceneReadError (product no longer on the hub), ProviderNotConfiguredError
        (the URL answers, but not as a DHuS hub), or AsmspotterError (the hub
        rejected the request otherwise).
    """
    import requests
    from sentinelsat import exceptions as ss

    where = f"AOI {aoi_name}: {PROVIDER_NAME} {action}"
    if scene_id:
        where += f" of {scene_id}"
    where += f" at {config.url}"
    if isinstance(exc, ss.InvalidChecksumError):
        return ProviderUnavailableError(
            f"{where}: the downloaded zip does not match the checksum the hub reports; the "
            "file was deleted and the next attempt downloads it again."
        )
    if isinstance(exc, requests.RequestException):
        return ProviderUnavailableError(f"{where}: connection failed ({exc}); try again later.")
    if not isinstance(exc, ss.SentinelAPIError):
        return None
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if isinstance(exc, ss.UnauthorizedError) or status in (401, 403):
        return ProviderAuthError(
            f"{where}: the hub refused the credentials (HTTP {status}); check the user name "
            f"and password in {config.user_env} and {config.password_env} (the variables "
            "sources[].user_env / password_env name) and that the account may use this hub."
        )
    if isinstance(exc, ss.LTATriggered | ss.LTAError):
        return ProviderUnavailableError(
            f"{where}: the product is offline in the hub's Long Term Archive ({exc}); its "
            "retrieval was requested, try again in an hour or so."
        )
    if isinstance(exc, ss.InvalidKeyError) or status == 404:
        return SceneReadError(
            f"{where}: the hub no longer has this product ({exc}); hubs keep a rolling "
            "archive. Skip it or search again."
        )
    if status is not None and (status in RETRYABLE_STATUS or status >= 500):
        return ProviderUnavailableError(
            f"{where}: the hub is unavailable (HTTP {status}: {exc.msg}); try again later."
        )
    if status is not None and 200 <= status < 300:
        return ProviderNotConfiguredError(
            f"{where}: the URL answered, but not as a DHuS hub ({exc.msg}); set "
            "sources[].url to the API root of a hub that runs DHuS (see "
            "docs/providers/sentinel-2-dhus.md)."
        )
    return AsmspotterError(f"{where}: the hub rejected the request (HTTP {status}: {exc.msg}).")


__all__ = [
    "PROVIDER_NAME",
    "DhusProvider",
    "ProductRadiometry",
    "import_sentinelsat",
    "parse_product_metadata",
    "query_footprint_wkt",
    "translate_error",
]
