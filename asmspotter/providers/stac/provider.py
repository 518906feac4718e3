"""The Sentinel-2 STAC provider: search a catalogue's items, download an AOI's part of each scene.

Presets live in :mod:`.catalogs`, the DN-to-reflectance rule in :mod:`.radiometry`,
asset URLs in :mod:`.hrefs`, GDAL's error text and cache in :mod:`.gdal_errors` and
:mod:`.vsicurl_cache`. The package docstring (:mod:`asmspotter.providers.stac`) says
how errors are translated.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import requests
from numpy.typing import NDArray
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.vrt import WarpedVRT
from shapely.geometry import mapping, shape
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
from asmspotter.providers.cache import is_complete, scene_dir
from asmspotter.providers.http_retry import RequestRetry
from asmspotter.providers.stac.catalogs import (
    CATALOG_PRESETS,
    CLOUD_COVER_PROPERTY,
    NATIVE_RESOLUTION_M,
    PROVIDER_NAME,
    RADIOMETRY_KEY,
    REFLECTANCE_BANDS,
    SCL_BAND,
)
from asmspotter.providers.stac.gdal_errors import (
    QUERY_STRING,
    SHORT_READ,
    exception_text,
    http_status_in,
)
from asmspotter.providers.stac.hrefs import redact_url, resolve_asset_href
from asmspotter.providers.stac.radiometry import (
    QUANTIFICATION_VALUE,
    parse_radiometry,
    resolve_radiometry,
)
from asmspotter.providers.stac.vsicurl_cache import forget_remote_file
from asmspotter.scene_io import write_scene
from asmspotter.scenes import LocalScene, SceneRef, TimeWindow, clear_from_scl
from asmspotter.sources import StacSourceConfig

logger = logging.getLogger(__name__)

PC_SAS_TOKEN_URL = "https://planetarycomputer.microsoft.com/api/sas/v1/token"
"""Planetary Computer SAS token endpoint: GET ``<this>/<collection>`` answers
``{"msft:expiry": ..., "token": ...}``; the token is appended to blob URLs as a query
string (planetary-computer-sdk-for-python, ``planetary_computer/sas.py``)."""

TOKEN_REFRESH_MARGIN = dt.timedelta(minutes=5)
"""Fetch a new SAS token when the cached one expires within this margin."""


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
            http_tries: Attempts per HTTP request on 5xx or a broken read
                inside one search or read (>= 1).
            retry_backoff_s: Back-off factor between those attempts, seconds
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
        self.request_retry = RequestRetry(max(1, http_tries), retry_backoff_s)
        self.timeout_s = timeout_s
        self._environ: Mapping[str, str] = os.environ if environ is None else environ
        self._sas_token: tuple[str, dt.datetime] | None = None
        self._sas_lock = threading.Lock()

    # ---- shared plumbing ------------------------------------------------------------
    @property
    def _label(self) -> str:
        return f"AOI {self.aoi_name}: {self.name} ({self.source.catalog})"

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

        stac_io = StacApiIO(max_retries=self.request_retry.urllib3_retry(), timeout=self.timeout_s)
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
        radiometry = parse_radiometry(ref)
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
            # The same one-request retry as every other client (http_retry).
            **self.request_retry.gdal_options(),
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
        text = QUERY_STRING.sub("?…", exception_text(exc))
        status = http_status_in(text)
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
            or (status is None and SHORT_READ.search(text))
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
            session = self.request_retry.mount_on(requests.Session())
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
