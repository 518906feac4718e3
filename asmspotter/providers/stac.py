"""Sentinel-2 L2A from a STAC API: Earth Search, CDSE or the Planetary Computer.

``search`` asks the catalogue's item search (pystac-client) for the window's
scenes over the AOI; ``download`` reads only the AOI's part of each band through
GDAL ``/vsicurl/`` (HTTP range requests on the COG tiles), warped onto the AOI
grid, turns digital numbers into reflectance with the scene's scale and offset,
builds the cloud mask from the scene classification (SCL), and writes the result
in the local scene format (``asmspotter.scene_io.write_scene``) into the download
cache (``asmspotter.providers.cache``). The composite (``asmspotter.composite``)
then reads it like any other scene.

Errors are translated here, once: HTTP 401/403 -> ``ProviderAuthError`` (never
retried); connection errors, 429 and 5xx -> ``ProviderUnavailableError`` (the
Prefect tasks retry those); a missing or unreadable asset -> ``SceneReadError``
(the flow skips that scene and goes on). ``tests/integration/test_stac_provider.py``
runs all of it against the loopback fake in ``tests/fakes/stac_server.py``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime as dt
import glob
import json
import logging
import os
import re
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import rasterio
import requests
from numpy.typing import NDArray
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.vrt import WarpedVRT
from requests.adapters import HTTPAdapter
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry
from urllib3 import Retry

from asmspotter.atomic_write import atomic_write
from asmspotter.composite.cloudmask import clear_from_scl
from asmspotter.errors import (
    AsmspotterError,
    ProviderAuthError,
    ProviderNotConfiguredError,
    ProviderUnavailableError,
    SceneReadError,
)
from asmspotter.grid import AOIGrid
from asmspotter.providers.base import LocalScene, SceneRef, TimeWindow
from asmspotter.providers.cache import is_complete, scene_dir
from asmspotter.scene_io import write_scene
from asmspotter.sources import StacSourceConfig

logger = logging.getLogger(__name__)

PROVIDER_NAME = "sentinel-2-stac"

REFLECTANCE_BANDS = ("blue", "green", "red", "nir")
"""Bands of a scene file, in order."""

SCL_BAND = "scl"
"""Our name for the scene classification layer."""

NATIVE_RESOLUTION_M = {"blue": 10.0, "green": 10.0, "red": 10.0, "nir": 10.0, "scl": 20.0}
"""Native pixel size of each band we read (Sentinel-2 MSI: B02/B03/B04/B08 at 10 m,
SCL at 20 m)."""

RADIOMETRY_KEY = "radiometry"
"""Key in ``SceneRef.assets`` holding the JSON ``{band: [scale, offset]}`` resolved at
search time, so that ``download`` needs nothing but the ref."""

QUANTIFICATION_VALUE = 10_000.0
"""L2A BOA reflectance = (DN + BOA_ADD_OFFSET) / QUANTIFICATION_VALUE (ESA Sentinel-2
Products Specification Document; https://sentiwiki.copernicus.eu/web/s2-products)."""

BOA_ADD_OFFSET_DN = -1000.0
"""BOA_ADD_OFFSET of every band from processing baseline 04.00 (25 January 2022) on,
also in the Collection-1 reprocessing (baseline 05.xx). Before 04.00 there was none.
ESA: "Copernicus Sentinel-2: Major Products Upgrade" (2021-10) and the product
metadata ``BOA_ADD_OFFSET_VALUES_LIST``."""

FIRST_BASELINE_WITH_OFFSET = 4.0

PC_SAS_TOKEN_URL = "https://planetarycomputer.microsoft.com/api/sas/v1/token"
"""Planetary Computer SAS token endpoint: GET ``<this>/<collection>`` answers
``{"msft:expiry": ..., "token": ...}``; the token is appended to blob URLs as a query
string (planetary-computer-sdk-for-python, ``planetary_computer/sas.py``)."""

TOKEN_REFRESH_MARGIN = dt.timedelta(minutes=5)
"""Fetch a new SAS token when the cached one expires within this margin."""

RETRY_STATUSES = (500, 502, 503, 504)
"""Statuses retried inside one search (a short, bounded retry); 429 and whatever
outlasts it become ``ProviderUnavailableError`` for the Prefect task's slower retry."""


@dataclass(frozen=True)
class CatalogPreset:
    """Where a catalogue lives and how its Sentinel-2 L2A items are laid out.

    Attributes:
        url: STAC API root.
        collection: Sentinel-2 L2A collection id.
        asset_keys: Our band name -> the catalogue's asset key.
        signs_assets: Asset URLs need a Planetary Computer SAS token appended.
        bearer_on_assets: Asset reads carry ``Authorization: Bearer <token_env>``.
    """

    url: str
    collection: str
    asset_keys: Mapping[str, str]
    signs_assets: bool = False
    bearer_on_assets: bool = False


CATALOG_PRESETS: dict[str, CatalogPreset] = {
    # Element 84 Earth Search v1, collection sentinel-2-l2a: COGs on AWS
    # (s3://sentinel-cogs, public https hrefs); assets named by common band name,
    # raster:bands scale 0.0001 / offset -0.1 (baseline >= 04.00), property
    # earthsearch:boa_offset_applied. Source: item S2A_39QTA_20230628_0_L2A at
    # https://earth-search.aws.element84.com/v1/collections/sentinel-2-l2a/items/...
    "earth-search": CatalogPreset(
        url="https://earth-search.aws.element84.com/v1",
        collection="sentinel-2-l2a",
        asset_keys={"blue": "blue", "green": "green", "red": "red", "nir": "nir", "scl": "scl"},
    ),
    # Copernicus Data Space Ecosystem STAC (2025 catalogue, STAC 1.1): JPEG 2000 in
    # the SAFE layout, asset keys with the resolution suffix, raster:scale 0.0001 /
    # raster:offset -0.1 on the asset, property processing:version; href s3://eodata/
    # with the HTTPS download under alternate.https (OIDC bearer token). Source: item
    # S2B_MSIL2A_20200705T101559_N0500_R065_T32TNT_20230530T175912 of
    # https://stac.dataspace.copernicus.eu/v1/collections/sentinel-2-l2a.
    "cdse": CatalogPreset(
        url="https://stac.dataspace.copernicus.eu/v1",
        collection="sentinel-2-l2a",
        asset_keys={
            "blue": "B02_10m",
            "green": "B03_10m",
            "red": "B04_10m",
            "nir": "B08_10m",
            "scl": "SCL_20m",
        },
        bearer_on_assets=True,
    ),
    # Microsoft Planetary Computer, collection sentinel-2-l2a: COGs on Azure Blob
    # Storage, asset keys B02..SCL, raw DN (no scale/offset in the item, offset NOT
    # removed: microsoft/PlanetaryComputer#134), property s2:processing_baseline;
    # URLs need a SAS token. Source: https://planetarycomputer.microsoft.com/dataset/
    # sentinel-2-l2a and PlanetaryComputerExamples datasets/sentinel-2-l2a/
    # baseline-change.ipynb.
    "planetary-computer": CatalogPreset(
        url="https://planetarycomputer.microsoft.com/api/stac/v1",
        collection="sentinel-2-l2a",
        asset_keys={"blue": "B02", "green": "B03", "red": "B04", "nir": "B08", "scl": "SCL"},
        signs_assets=True,
    ),
}
"""The ``catalog`` presets of ``StacSourceConfig``."""

CLOUD_COVER_PROPERTY = "eo:cloud_cover"
BASELINE_PROPERTIES = ("s2:processing_baseline", "processing:version")
"""Processing-baseline item property: Earth Search and Planetary Computer use
``s2:processing_baseline``, CDSE ``processing:version`` (both like ``"05.09"``)."""
EARTH_SEARCH_OFFSET_APPLIED = "earthsearch:boa_offset_applied"
"""Earth Search sets this True where its COGs already had BOA_ADD_OFFSET removed; its
``raster:bands`` still say ``offset: -0.1`` then, and the flag is the truth
(Element84/earth-search#9, maintainer's comment)."""


# --------------------------------------------------------------------------------------
# Pure helpers: radiometry, hrefs, URLs
# --------------------------------------------------------------------------------------
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


def resolve_asset_href(asset: Mapping[str, Any]) -> str:
    """An HTTP(S) URL for an asset: its href, or its ``alternate`` HTTPS href.

    CDSE's primary hrefs are ``s3://eodata/...``; the HTTPS download URL sits under
    ``alternate.https.href`` (STAC alternate-assets extension).
    """
    href = str(asset.get("href", ""))
    if href.startswith(("http://", "https://")):
        return href
    alternates = asset.get("alternate")
    if isinstance(alternates, dict):
        for alternate in alternates.values():
            alt_href = alternate.get("href") if isinstance(alternate, dict) else None
            if isinstance(alt_href, str) and alt_href.startswith(("http://", "https://")):
                return alt_href
    return href


def redact_url(url: str) -> str:
    """``url`` without its query string and user info (SAS tokens, keys live there)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _exception_text(exc: BaseException) -> str:
    """Messages of an exception and everything it chains to (GDAL puts the cause there)."""
    texts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts.append(str(current))
        current = current.__cause__ or current.__context__
    return " | ".join(texts)


_HTTP_CODE = re.compile(r"HTTP response code: (\d{3})")
_SHORT_READ = re.compile(r"got \d+ bytes, expected \d+|curl error|timed out|timeout", re.I)
_QUERY = re.compile(r"\?[^\s'\"]*")


def _http_status_in(text: str) -> int | None:
    match = _HTTP_CODE.search(text)
    return int(match.group(1)) if match else None


# --------------------------------------------------------------------------------------
# GDAL's /vsicurl/ cache
# --------------------------------------------------------------------------------------
_gdal_lib_lock = threading.Lock()
_gdal_clear: Any = None
_gdal_clear_looked_up = False


def _find_gdal_partial_clear() -> Any:
    """``VSICurlPartialClearCache`` of the GDAL rasterio uses, or None if not found.

    GDAL caches, per process, whether a remote file exists and its size; after a
    404/503 or a dropped connection a retry in the same process would otherwise see
    the cached failure. rasterio does not expose the C function, so it is looked up
    in the GDAL library rasterio loaded (wheel: ``rasterio.libs``/``.dylibs``).
    """
    global _gdal_clear, _gdal_clear_looked_up
    with _gdal_lib_lock:
        if _gdal_clear_looked_up:
            return _gdal_clear
        _gdal_clear_looked_up = True
        package = Path(rasterio.__file__).parent
        candidates = [
            *glob.glob(str(package.parent / "rasterio.libs" / "libgdal*")),
            *glob.glob(str(package / ".dylibs" / "libgdal*")),
        ]
        system = ctypes.util.find_library("gdal")
        if system:
            candidates.append(system)
        for candidate in candidates:
            try:
                function = ctypes.CDLL(candidate).VSICurlPartialClearCache
            except (OSError, AttributeError):
                continue
            function.argtypes = [ctypes.c_char_p]
            function.restype = None
            _gdal_clear = function
            break
        else:
            logger.debug("GDAL VSICurlPartialClearCache not found; /vsicurl/ cache kept")
        return _gdal_clear


def forget_remote_file(url: str) -> None:
    """Drop what GDAL's ``/vsicurl/`` cache holds about ``url`` (best effort)."""
    function = _find_gdal_partial_clear()
    if function is not None:
        function(f"/vsicurl/{url}".encode())


# --------------------------------------------------------------------------------------
# The provider
# --------------------------------------------------------------------------------------
class StacProvider:
    """Sentinel-2 L2A scenes from a STAC API, downloaded as AOI-sized scene files.

    Example:
        >>> from asmspotter.grid import build_grid
        >>> source = StacSourceConfig(provider="sentinel-2-stac", catalog="earth-search")
        >>> grid = build_grid(aoi.geometry_lonlat, source.resolution_m)  # doctest: +SKIP
        >>> provider = StacProvider(source, grid, "brokopondo")  # doctest: +SKIP
        >>> refs = provider.search(aoi.geometry_lonlat, TimeWindow(start, end))  # doctest: +SKIP
        >>> scene = provider.download(refs[0], Path("cache"))  # doctest: +SKIP
    """

    name = PROVIDER_NAME

    def __init__(
        self,
        source: StacSourceConfig,
        grid: AOIGrid,
        aoi_name: str,
        *,
        sas_token_url: str = PC_SAS_TOKEN_URL,
        http_tries: int = 3,
        retry_backoff_s: float = 0.5,
        timeout_s: float = 60.0,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """Create a provider for one AOI source.

        Args:
            source: The validated ``sources[]`` entry.
            grid: The AOI grid every downloaded scene is warped onto.
            aoi_name: AOI slug, for messages.
            sas_token_url: Planetary Computer SAS token endpoint (tests point it at
                the fake); used only by the ``planetary-computer`` catalogue.
            http_tries: Attempts per HTTP request on 5xx or a broken connection,
                inside one search or read (>= 1).
            retry_backoff_s: urllib3 backoff factor between those attempts, seconds
                (0 in tests).
            timeout_s: Connect/read timeout of each HTTP request, seconds.
            environ: Where ``token_env`` is looked up (default ``os.environ``).
        """
        self.source = source
        self.grid = grid
        self.aoi_name = aoi_name
        self.preset = CATALOG_PRESETS[source.catalog]
        self.url = (source.url or self.preset.url).rstrip("/")
        self.collection = source.collection or self.preset.collection
        self.resolution_m = source.resolution_m
        self.max_cloud_pct = source.max_cloud_pct
        self.masked_scl_classes = tuple(source.masked_scl_classes)
        self.sas_token_url = sas_token_url.rstrip("/")
        self.http_tries = max(1, http_tries)
        self.retry_backoff_s = retry_backoff_s
        self.timeout_s = timeout_s
        self._environ: Mapping[str, str] = os.environ if environ is None else environ
        self._sas_token: tuple[str, dt.datetime] | None = None
        self._sas_lock = threading.Lock()

    # ---- shared plumbing ------------------------------------------------------------
    @property
    def _label(self) -> str:
        return f"AOI {self.aoi_name}: {self.name} ({self.source.catalog})"

    def _retry(self) -> Retry:
        # Bounded retry for a flaky moment: 5xx and broken connections, every verb
        # (a STAC search POST is safe to repeat); 401/403/404/429 come back at once.
        return Retry(
            total=self.http_tries - 1,
            backoff_factor=self.retry_backoff_s,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=None,
            raise_on_status=False,
            respect_retry_after_header=False,
        )

    def _bearer_token(self) -> str | None:
        """The token named by ``token_env``, or None if the source names none.

        Raises:
            ProviderNotConfiguredError: ``token_env`` names an unset variable.
        """
        if self.source.token_env is None:
            return None
        token = self._environ.get(self.source.token_env, "").strip()
        if not token:
            raise ProviderNotConfiguredError(
                f"{self._label}: sources[].token_env names the environment variable "
                f"{self.source.token_env}, which is not set; export it with an access token "
                "for the catalogue, or remove token_env from the AOI YAML."
            )
        return token

    def _auth_headers(self) -> dict[str, str]:
        """Headers carrying the ``token_env`` token to the STAC API (and SAS endpoint).

        The Planetary Computer takes a subscription key in ``Ocp-Apim-Subscription-Key``
        (it lifts the anonymous rate limits); every other catalogue a bearer token.
        """
        token = self._bearer_token()
        if token is None:
            return {}
        if self.source.catalog == "planetary-computer":
            return {"Ocp-Apim-Subscription-Key": token}
        return {"Authorization": f"Bearer {token}"}

    def _auth_fix(self, what: str) -> str:
        """How to fix a 401/403 for ``what`` (search or asset)."""
        if self.source.token_env is not None:
            return (
                f"the token in environment variable {self.source.token_env} "
                "(sources[].token_env) was refused; renew it (access tokens expire) or check "
                "that it grants access to this catalogue."
            )
        if self.source.catalog == "cdse":
            return (
                "CDSE downloads need an access token: set sources[].token_env to the name of "
                "an environment variable holding a CDSE OAuth access token "
                "(https://documentation.dataspace.copernicus.eu/APIs/Token.html)."
            )
        if self.source.catalog == "planetary-computer" and what == "asset":
            return (
                f"the SAS token from {redact_url(self.sas_token_url)} was refused; it may have "
                "expired mid-run (run again) or the collection id in sources[].collection "
                "does not match the asset's storage container."
            )
        return (
            "check sources[].url and sources[].collection, and if this catalogue needs "
            "credentials set sources[].token_env to an environment variable holding a token."
        )

    def _translate_status(
        self, status: int | None, url: str, what: str, detail: str
    ) -> AsmspotterError:
        """One HTTP outcome of the catalogue or SAS endpoint -> our error class."""
        where = redact_url(url)
        if status in (401, 403):
            return ProviderAuthError(
                f"{self._label}: {where} refused the {what} with HTTP {status}; "
                f"{self._auth_fix(what)}"
            )
        if status is None or status == 429 or status >= 500:
            reason = f"HTTP {status}" if status is not None else "connection failed"
            return ProviderUnavailableError(
                f"{self._label}: {where} is unavailable for the {what} ({reason}: "
                f"{detail[:200]}); it will be retried."
            )
        return ProviderNotConfiguredError(
            f"{self._label}: {where} answered the {what} with HTTP {status} "
            f"({detail[:200]}); check sources[].url ({self.url}) and sources[].collection "
            f"({self.collection}) in the AOI YAML."
        )

    # ---- search -----------------------------------------------------------------------
    def _open_client(self) -> Any:
        from pystac_client import Client
        from pystac_client.stac_api_io import StacApiIO

        stac_io = StacApiIO(max_retries=self._retry(), timeout=self.timeout_s)
        return Client.open(
            self.url, headers=self._auth_headers(), stac_io=stac_io, timeout=self.timeout_s
        )

    def search(self, aoi_geometry_lonlat: BaseGeometry, window: TimeWindow) -> list[SceneRef]:
        """Scenes of the collection over the AOI in the window, at most ``max_cloud_pct``.

        Follows every page of the item search. The cloud filter is sent as a STAC
        ``query`` where the API conforms to it, and applied again here (so a
        catalogue that ignores ``query`` still gets filtered). Moves no pixels.

        Args:
            aoi_geometry_lonlat: AOI geometry, EPSG:4326.
            window: Acquisition dates, ends included (UTC).

        Returns:
            SceneRefs sorted by acquisition time; ``assets`` holds the band URLs
            (``blue``, ``green``, ``red``, ``nir``, ``scl``) and ``radiometry``.

        Raises:
            ProviderAuthError: The catalogue refused us (401/403).
            ProviderUnavailableError: Connection failed, 429, or 5xx after retries.
            ProviderNotConfiguredError: Another HTTP error (wrong URL or collection),
                or ``token_env`` names an unset variable.
        """
        from pystac_client.conformance import ConformanceClasses
        from pystac_client.exceptions import APIError

        parameters: dict[str, Any] = {
            "collections": [self.collection],
            "intersects": mapping(aoi_geometry_lonlat),
            "datetime": f"{window.start}T00:00:00Z/{window.end}T23:59:59.999Z",
            "limit": 100,
        }
        try:
            client = self._open_client()
            if client.conforms_to(ConformanceClasses.QUERY):
                parameters["query"] = {CLOUD_COVER_PROPERTY: {"lte": self.max_cloud_pct}}
            features = list(client.search(**parameters).items_as_dicts())
        except APIError as exc:
            raise self._translate_status(
                getattr(exc, "status_code", None), self.url, "search", str(exc)
            ) from exc
        except (requests.RequestException, OSError) as exc:
            raise self._translate_status(None, self.url, "search", str(exc)) from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise ProviderUnavailableError(
                f"{self._label}: {redact_url(self.url)} sent a search answer that is not STAC "
                f"({type(exc).__name__}: {exc}); it will be retried."
            ) from exc
        refs: dict[str, SceneRef] = {}
        for feature in features:
            ref = self._scene_ref(feature, aoi_geometry_lonlat, window)
            if ref is not None:
                refs[ref.scene_id] = ref
        result = sorted(refs.values(), key=lambda ref: (ref.acquired, ref.scene_id))
        logger.info(
            "%s: %d scenes in %s..%s (of %d items returned)",
            self._label,
            len(result),
            window.start,
            window.end,
            len(features),
        )
        return result

    def _scene_ref(
        self, feature: Mapping[str, Any], aoi: BaseGeometry, window: TimeWindow
    ) -> SceneRef | None:
        """A SceneRef for one item, or None if the item does not qualify."""
        item_id = str(feature.get("id"))
        properties: Mapping[str, Any] = feature.get("properties") or {}
        stamp = properties.get("datetime") or properties.get("start_datetime")
        geometry = feature.get("geometry")
        if not stamp or not geometry:
            logger.warning(
                "%s: item %s has no datetime or geometry, not used", self._label, item_id
            )
            return None
        acquired = dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
        acquired = acquired if acquired.tzinfo else acquired.replace(tzinfo=dt.UTC)
        footprint = shape(geometry)
        cloud = properties.get(CLOUD_COVER_PROPERTY)
        cloud_pct = None if cloud is None else float(cloud)
        if cloud_pct is not None and cloud_pct > self.max_cloud_pct:
            logger.info(
                "%s: %s has %.0f%% cloud > max_cloud_pct %.0f, not used",
                self._label,
                item_id,
                cloud_pct,
                self.max_cloud_pct,
            )
            return None
        if not window.contains(acquired.astimezone(dt.UTC).date()) or not footprint.intersects(aoi):
            return None
        item_assets: Mapping[str, Any] = feature.get("assets") or {}
        assets: dict[str, str] = {}
        radiometry: dict[str, list[float]] = {}
        for band, key in self.preset.asset_keys.items():
            asset = item_assets.get(key)
            if not isinstance(asset, dict):
                continue  # download names the missing asset; the flow records the skip
            assets[band] = resolve_asset_href(asset)
            if band != SCL_BAND:
                values = resolve_radiometry(properties, asset)
                radiometry[band] = [values.scale, values.offset]
        assets[RADIOMETRY_KEY] = json.dumps(radiometry)
        return SceneRef(
            provider=self.name,
            scene_id=item_id,
            acquired=acquired,
            footprint_lonlat=footprint,
            cloud_pct=cloud_pct,
            assets=assets,
        )

    # ---- download ---------------------------------------------------------------------
    def download(self, ref: SceneRef, cache_dir: Path) -> LocalScene:
        """Read the AOI window of the scene's bands and write it as a local scene.

        Writes ``<cache_dir>/sentinel-2-stac/<scene_id>/reflectance.tif`` (4 bands on
        the AOI grid, ``scene_io`` format) and ``cloudmask.tif`` (1 where the SCL
        class is in ``masked_scl_classes``). Both are written under ``partial_``
        names and renamed when complete, the mask first, so an existing
        ``reflectance.tif`` means a complete scene; a re-run reuses it without a
        single request.

        Args:
            ref: A SceneRef from :meth:`search`.
            cache_dir: The download cache root.

        Returns:
            The scene's files.

        Raises:
            SceneReadError: An asset is missing from the item, gone (404) or not a
                readable raster.
            ProviderAuthError: An asset read was refused (401/403).
            ProviderUnavailableError: Connection dropped, 429 or 5xx.
        """
        folder = scene_dir(cache_dir, self.name, ref.scene_id)
        target = folder / "reflectance.tif"
        mask_target = folder / "cloudmask.tif"
        if is_complete(target) and is_complete(mask_target) and _has_bands(target, 4):
            logger.debug("%s: %s already in the cache", self._label, ref.scene_id)
            return LocalScene(ref=ref, reflectance_path=target, cloud_mask_path=mask_target)
        missing = [b for b in (*REFLECTANCE_BANDS, SCL_BAND) if b not in ref.assets]
        if missing:
            keys = ", ".join(self.preset.asset_keys[b] for b in missing)
            raise SceneReadError(
                f"{self._label}: scene {ref.scene_id} has no asset {keys} in its STAC item "
                f"(bands {', '.join(missing)}); the scene is skipped."
            )
        radiometry = _parse_radiometry(ref)
        grid = self.grid
        reflectance = np.empty((len(REFLECTANCE_BANDS), *grid.shape), np.float32)
        with self._gdal_env():
            for index, band in enumerate(REFLECTANCE_BANDS):
                dn = self._read_on_grid(ref, band, Resampling.bilinear)
                scale, offset = radiometry.get(band, (1.0 / QUANTIFICATION_VALUE, 0.0))
                reflectance[index] = np.where(dn > 0, dn * scale + offset, np.nan)
            scl = self._read_on_grid(ref, SCL_BAND, Resampling.nearest)
        cloud: NDArray[np.bool_] = ~clear_from_scl(scl, self.masked_scl_classes)
        with atomic_write(target) as partial:
            write_scene(
                partial, grid, reflectance, ref.acquired, scene_id=ref.scene_id, cloud_mask=cloud
            )
            partial.with_name(partial.name.removesuffix(".tif") + ".cloudmask.tif").replace(
                mask_target
            )
        logger.info("%s: downloaded %s onto the AOI grid %s", self._label, ref.scene_id, grid.shape)
        return LocalScene(ref=ref, reflectance_path=target, cloud_mask_path=mask_target)

    @contextmanager
    def _gdal_env(self) -> Iterator[None]:
        """GDAL settings for reading remote COGs (and the bearer header, if any)."""
        options: dict[str, Any] = {
            # No directory listing or side-car probing: one COG = a few range reads.
            "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
            # GDAL's own retry of 429/5xx on range reads (GDAL >= 2.3; /vsicurl/ docs).
            "GDAL_HTTP_MAX_RETRY": str(self.http_tries - 1),
            # A delay of 0 turns GDAL's retry off altogether, hence the floor.
            "GDAL_HTTP_RETRY_DELAY": str(max(self.retry_backoff_s, 0.01)),
            "GDAL_HTTP_TIMEOUT": str(int(max(1, self.timeout_s))),
            "GDAL_HTTP_CONNECTTIMEOUT": str(int(max(1, min(self.timeout_s, 30)))),
            # Merge neighbouring tile reads into one request (GDAL's default, stated).
            "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
        }
        header_file: Path | None = None
        token = self._bearer_token() if self.preset.bearer_on_assets else None
        if token is not None:
            # A header file, not GDAL_HTTP_HEADERS: config values may be logged, a
            # path is harmless. NamedTemporaryFile creates it 0600.
            with tempfile.NamedTemporaryFile(
                "w", prefix="asmspotter-gdal-", suffix=".txt", delete=False
            ) as handle:
                handle.write(f"Authorization: Bearer {token}\n")
                header_file = Path(handle.name)
            options["GDAL_HTTP_HEADER_FILE"] = str(header_file)
        try:
            with rasterio.Env(**options):
                yield
        finally:
            if header_file is not None:
                header_file.unlink(missing_ok=True)

    def _read_on_grid(self, ref: SceneRef, band: str, resampling: Resampling) -> NDArray[Any]:
        """One band's AOI window warped onto the grid (0 = no data), via range reads."""
        href = ref.assets[band]
        url = self._signed(href)
        forget_remote_file(url)
        grid = self.grid
        try:
            with rasterio.open(url) as src:
                level = _overview_level(src, NATIVE_RESOLUTION_M[band], grid.resolution_m)
            opener = (
                rasterio.open(url) if level is None else rasterio.open(url, overview_level=level)
            )
            with opener as src:
                if src.crs is None:
                    raise SceneReadError(
                        f"{self._label}: scene {ref.scene_id}, asset "
                        f"{self.preset.asset_keys[band]} ({redact_url(href)}) has no CRS."
                    )
                nodata = 0 if src.nodata is None else src.nodata
                with WarpedVRT(
                    src,
                    crs=grid.crs.to_wkt(),
                    transform=grid.transform,
                    width=grid.width_px,
                    height=grid.height_px,
                    resampling=resampling,
                    src_nodata=nodata,
                    nodata=0,
                ) as vrt:
                    data: NDArray[Any] = vrt.read(1)
                    return data
        except RasterioIOError as exc:
            raise self._read_error(ref, band, href, exc) from exc

    def _read_error(
        self, ref: SceneRef, band: str, href: str, exc: RasterioIOError
    ) -> AsmspotterError:
        """A GDAL read failure -> auth, unavailable or unreadable-scene error."""
        text = _QUERY.sub("?…", _exception_text(exc))
        status = _http_status_in(text)
        key = self.preset.asset_keys[band]
        where = redact_url(href)
        if status in (401, 403):
            return ProviderAuthError(
                f"{self._label}: {where} refused the asset read (scene {ref.scene_id}, asset "
                f"{key}) with HTTP {status}; {self._auth_fix('asset')}"
            )
        if (
            status == 429
            or (status is not None and status >= 500)
            or (status is None and _SHORT_READ.search(text))
        ):
            return ProviderUnavailableError(
                f"{self._label}: reading scene {ref.scene_id}, asset {key} from {where} failed "
                f"({text[:300]}); it will be retried."
            )
        reason = "it is gone (HTTP 404)" if status == 404 else f"it is not readable ({text[:300]})"
        return SceneReadError(
            f"{self._label}: scene {ref.scene_id}, asset {key} at {where}: {reason}; the scene "
            "is skipped."
        )

    def _signed(self, href: str) -> str:
        """``href`` with a Planetary Computer SAS token appended where the catalogue needs one."""
        if not self.preset.signs_assets:
            return href
        token = self._get_sas_token()
        return f"{href}{'&' if '?' in href else '?'}{token}"

    def _get_sas_token(self) -> str:
        """A valid SAS token for the collection, fetched once and reused until near expiry.

        Raises:
            ProviderAuthError: The token endpoint refused us (401/403).
            ProviderUnavailableError: It is down, throttling or unreachable.
        """
        with self._sas_lock:
            now = dt.datetime.now(dt.UTC)
            if self._sas_token is not None and self._sas_token[1] - TOKEN_REFRESH_MARGIN > now:
                return self._sas_token[0]
            url = f"{self.sas_token_url}/{self.collection}"
            headers = self._auth_headers()
            session = requests.Session()
            session.mount("http://", HTTPAdapter(max_retries=self._retry()))
            session.mount("https://", HTTPAdapter(max_retries=self._retry()))
            try:
                response = session.get(url, headers=headers, timeout=self.timeout_s)
            except requests.RequestException as exc:
                raise self._translate_status(None, url, "SAS token request", str(exc)) from exc
            finally:
                session.close()
            if response.status_code != 200:
                raise self._translate_status(
                    response.status_code, url, "SAS token request", response.text
                )
            try:
                payload = response.json()
                sas = str(payload["token"])
                expiry_text = str(payload.get("msft:expiry") or "")
            except (ValueError, KeyError) as exc:
                raise ProviderUnavailableError(
                    f"{self._label}: {redact_url(url)} sent no SAS token ({exc}); it will be "
                    "retried."
                ) from exc
            try:
                expiry = dt.datetime.fromisoformat(expiry_text.replace("Z", "+00:00"))
            except ValueError:
                expiry = now + dt.timedelta(minutes=30)
            if expiry.tzinfo is None:
                expiry = expiry.replace(tzinfo=dt.UTC)
            self._sas_token = (sas, expiry)
            return sas


def _parse_radiometry(ref: SceneRef) -> dict[str, tuple[float, float]]:
    """The ``radiometry`` entry of a SceneRef's assets as ``{band: (scale, offset)}``."""
    try:
        raw = json.loads(ref.assets.get(RADIOMETRY_KEY, "{}"))
        return {band: (float(pair[0]), float(pair[1])) for band, pair in raw.items()}
    except (ValueError, TypeError, IndexError, AttributeError) as exc:
        raise SceneReadError(
            f"{PROVIDER_NAME}: scene {ref.scene_id}: assets[{RADIOMETRY_KEY!r}] is not valid "
            f"({exc}); search again to rebuild the scene reference."
        ) from exc


def _overview_level(src: Any, native_m: float, target_m: float) -> int | None:
    """Index of the coarsest overview still at least as fine as ``target_m``, or None.

    Overviews are used only when the AOI grid is coarser than the band's native
    pixel; then GDAL reads fewer, smaller tiles for the same result.
    """
    if target_m <= native_m * 1.0001:
        return None
    factors = src.overviews(1)
    usable = [i for i, factor in enumerate(factors) if native_m * factor <= target_m * 1.0001]
    return usable[-1] if usable else None


def _has_bands(path: Path, count: int) -> bool:
    """True if ``path`` opens as a raster with ``count`` bands (a cached file is sane)."""
    try:
        with rasterio.open(path) as src:
            return bool(src.count == count)
    except RasterioIOError:
        return False
