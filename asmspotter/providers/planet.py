"""The PlanetScope provider: PSScene 4-band surface reflectance through the planet SDK.

``search`` is one Data API quick-search (paged). ``download`` fetches the SR image
and its UDM2 cloud mask in one of two modes (``sources[].mode``):

- ``orders-clip`` (default): an Orders API v2 order of bundle ``analytic_sr_udm2`` with
  the ``clip`` tool set to the AOI, so only the AOI's pixels are delivered and paid for;
  the order id is kept in the scene folder so a re-run resumes it instead of ordering
  again; files are checked against the digests in the order's ``manifest.json``.
- ``assets``: the Data API assets ``ortho_analytic_4b_sr`` and ``ortho_udm2`` of the whole
  scene are activated, awaited and downloaded, and checked against their ``md5_digest``.

Either way both rasters are warped onto the AOI grid and written in the local scene
format (``asmspotter.scene_io.write_scene``) to
``<cache>/planetscope/<item_id>/reflectance.tif`` (+ ``reflectance.cloudmask.tif``).

The planet SDK is async-first; each public call here runs one coroutine with its own
``planet.Session`` (so no event loop or thread outlives the call). Vendor exceptions are
translated once, in :meth:`PlanetProvider._call`. Neighbours: ``base.py`` (the protocol),
``cache.py`` (atomic files), ``local.py`` (the simplest provider); the fake API the tests
use is ``tests/fakes/planet_server.py``; user docs: ``docs/providers/planetscope.md``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import logging
import math
import os
import shutil
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import rasterio
import shapely
from numpy.typing import NDArray
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.vrt import WarpedVRT
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from asmspotter.atomic_write import atomic_write
from asmspotter.errors import (
    AOIConfigError,
    ProviderAuthError,
    ProviderNotConfiguredError,
    ProviderUnavailableError,
    SceneReadError,
)
from asmspotter.grid import AOIGrid
from asmspotter.providers.base import LocalScene, SceneRef, TimeWindow
from asmspotter.providers.cache import file_digest, is_complete, scene_dir
from asmspotter.scene_io import write_scene
from asmspotter.sources import PlanetSourceConfig

logger = logging.getLogger(__name__)

T = TypeVar("T")

PROVIDER_NAME = "planetscope"
ITEM_TYPE = "PSScene"
SR_ASSET = "ortho_analytic_4b_sr"
UDM2_ASSET = "ortho_udm2"
ORDER_BUNDLE = "analytic_sr_udm2"
SR_CLIP_SUFFIX = "_AnalyticMS_SR_clip.tif"
UDM2_CLIP_SUFFIX = "_udm2_clip.tif"
MANIFEST_NAME = "manifest.json"
ORDER_FILE = "order.json"
"""Where the id of a placed order is kept, so a re-run resumes it."""
SR_SCALE = 10_000.0
"""PlanetScope SR stores reflectance x 10000 as uint16 (Planet's Surface Reflectance
product specification); DN 0 is no data."""
UDM2_CLEAR_BAND = 1
"""UDM2 band 1 "clear": 1 = clear, 0 = not clear (cloud, shadow, haze, snow, no data)."""
UDM2_UNUSABLE_BAND = 8
"""UDM2 band 8 "unusable pixels": the legacy UDM bit field (blackfill, cloud, missing or
suspect band data); any bit set makes the pixel unusable (Planet's UDM2 specification)."""
PIP_PACKAGE = "planet"


def _import_planet() -> Any:
    """Import the planet SDK, or say which package to install."""
    try:
        import planet
        import planet.specs
    except ImportError as exc:
        raise ProviderNotConfiguredError(
            "provider 'planetscope' needs the planet SDK, which is not installed; "
            f"run `pip install {PIP_PACKAGE}`."
        ) from exc
    return planet


def _run_sync(make_coro: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from synchronous code.

    ``asyncio.run`` refuses to start inside a running loop (a notebook, an async
    flow); there the coroutine runs on a fresh loop in a worker thread instead.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coro())
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="planet") as pool:
        return pool.submit(lambda: asyncio.run(make_coro())).result()


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def _parse_acquired(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _geojson(geometry: BaseGeometry) -> dict[str, Any]:
    """A shapely geometry as a plain GeoJSON dict (lists, not tuples)."""
    result: dict[str, Any] = json.loads(shapely.to_geojson(geometry))
    return result


class PlanetProvider:
    """PlanetScope scenes (item type PSScene) from Planet's Data and Orders APIs.

    Example:
        >>> config = PlanetSourceConfig(provider="planetscope")  # doctest: +SKIP
        >>> grid = build_grid(aoi.geometry_lonlat, config.resolution_m)  # doctest: +SKIP
        >>> provider = PlanetProvider(config, grid, aoi.geometry_lonlat, aoi.name)  # doctest: +SKIP
        >>> refs = provider.search(aoi.geometry_lonlat, TimeWindow(start, end))  # doctest: +SKIP
        >>> scene = provider.download(refs[0], Path("cache"))  # doctest: +SKIP
    """

    name = PROVIDER_NAME

    def __init__(
        self,
        config: PlanetSourceConfig,
        grid: AOIGrid,
        aoi_geometry_lonlat: BaseGeometry,
        aoi_name: str,
        *,
        poll_interval_s: float = 10.0,
        max_wait_s: float = 3600.0,
        max_retries: int = 5,
        max_retry_backoff_s: float = 64.0,
        read_timeout_s: float = 125.0,
    ) -> None:
        """Create a provider for one AOI; reads the API key now.

        Args:
            config: The validated ``sources[]`` entry.
            grid: The AOI grid every download is warped onto.
            aoi_geometry_lonlat: AOI polygon in EPSG:4326 (the clip tool's AOI).
            aoi_name: AOI slug, used in order names and messages.
            poll_interval_s: Seconds between polls of an activating asset or a running order.
            max_wait_s: Seconds to wait for an asset to activate or an order to finish
                before the scene is given up for this run.
            max_retries: Retries the SDK makes on HTTP 429/502 and connection errors
                inside one call, before the error reaches the caller.
            max_retry_backoff_s: Upper bound of the SDK's exponential retry back-off, s.
            read_timeout_s: Seconds to wait for data on an open connection.

        Raises:
            ProviderNotConfiguredError: the planet SDK is missing, or no API key is set
                in ``config.api_key_env`` / the Secret block ``config.api_key_secret_block``.
        """
        self._planet = _import_planet()
        self.config = config
        self.grid = grid
        self.aoi_geometry_lonlat = aoi_geometry_lonlat
        self.aoi_name = aoi_name
        self.resolution_m = config.resolution_m
        self.base_url = config.url.rstrip("/")
        self.poll_interval_s = poll_interval_s
        self.max_wait_s = max_wait_s
        self.max_retries = max_retries
        self.max_retry_backoff_s = max_retry_backoff_s
        self.read_timeout_s = read_timeout_s
        self._api_key = self._resolve_api_key()

    # ---- credentials -----------------------------------------------------------------
    @property
    def _key_source(self) -> str:
        """Where the key comes from, as a user would fix it."""
        block = self.config.api_key_secret_block
        if block:
            return f"the Prefect Secret block {block!r} (sources[].api_key_secret_block)"
        return f"the environment variable {self.config.api_key_env} (sources[].api_key_env)"

    def _resolve_api_key(self) -> str:
        block = self.config.api_key_secret_block
        if block:
            # Imported here only: asmspotter's core runs without Prefect.
            try:
                from prefect.blocks.system import Secret
            except ImportError as exc:
                raise ProviderNotConfiguredError(
                    f"AOI {self.aoi_name}: sources[].api_key_secret_block {block!r} needs "
                    "Prefect, which is not installed; run `pip install prefect` or use "
                    f"sources[].api_key_env ({self.config.api_key_env}) instead."
                ) from exc

            try:
                secret: Any = Secret.load(block)
                key = str(secret.get())
            except ValueError as exc:
                raise ProviderNotConfiguredError(
                    f"AOI {self.aoi_name}: provider 'planetscope' reads its API key from the "
                    f"Prefect Secret block {block!r}, which could not be loaded ({exc}); create "
                    f"it with `prefect block create secret` or in Python: "
                    f"`Secret(value='<key>').save('{block}')`."
                ) from exc
            if not key.strip():
                raise ProviderNotConfiguredError(
                    f"AOI {self.aoi_name}: the Prefect Secret block {block!r} is empty; "
                    "store your Planet API key in it."
                )
            return key.strip()
        key = os.environ.get(self.config.api_key_env, "").strip()
        if not key:
            raise ProviderNotConfiguredError(
                f"AOI {self.aoi_name}: provider 'planetscope' needs a Planet API key in the "
                f"environment variable {self.config.api_key_env}, which is not set; export it "
                "(https://www.planet.com/account/#/user-settings) or name a Prefect Secret "
                "block in sources[].api_key_secret_block."
            )
        return key

    # ---- SDK plumbing ----------------------------------------------------------------
    def _session(self) -> Any:
        """A new SDK session with this provider's key, timeouts and bounded retries."""
        planet = self._planet
        session = planet.Session(
            auth=planet.Auth.from_key(self._api_key), read_timeout_secs=self.read_timeout_s
        )
        # The SDK retries 429, 502 and connection errors with exponential back-off
        # (2**n s + jitter, up to 64 s, 5 times); bound both so a run is not stalled
        # for minutes and tests stay fast. Everything else is retried by Prefect.
        session.max_retries = self.max_retries
        session.max_retry_backoff = self.max_retry_backoff_s
        return session

    async def _ensure_bundles_spec(self, session: Any) -> None:
        """Load the SDK's product-bundle spec from ``config.url``, not its public host.

        The SDK validates item types against ``/compute/ops/bundles/spec``, which it
        fetches on first use from https://api.planet.com whatever base URL a client
        has (planet 2.x/3.x ``planet/specs.py``). Filling its cache from our base URL
        keeps a mirror or a test fake self-contained. If a future SDK drops this
        cache, nothing is filled and the SDK fetches the spec itself.
        """
        loader = getattr(self._planet.specs, "PRODUCT_BUNDLES", None)
        if loader is None or not hasattr(loader, "__getitem__"):
            return
        if getattr(loader, "cache", None) is not None:
            return
        response = await session.request(
            method="GET", url=f"{self.base_url}/compute/ops/bundles/spec"
        )
        bundles = response.json()["bundles"]
        item_types = set(
            itertools.chain.from_iterable(spec["assets"].keys() for spec in bundles.values())
        )
        loader.cache = {
            "bundles": bundles,
            "bundle_names": bundles.keys(),
            "item_types": item_types,
        }

    def _call(
        self, make_coro: Callable[[], Coroutine[Any, Any, T]], *, action: str, item_id: str = ""
    ) -> T:
        """Run one SDK coroutine and translate the SDK's errors into ours.

        Args:
            make_coro: Builds the coroutine to run.
            action: What was being done, for messages ("search", "download").
            item_id: The scene concerned, if any.

        Raises:
            ProviderAuthError: HTTP 401/403.
            ProviderUnavailableError: HTTP 429/5xx or a connection error (retried by Prefect).
            SceneReadError: the scene cannot be had (HTTP 404 or 400 on a download, a
                checksum mismatch, an order that failed).
            AOIConfigError: the API rejected the search (HTTP 400), usually the geometry.
        """
        import httpx

        exceptions = self._planet.exceptions
        what = f"planetscope {action}" + (f" of item {item_id}" if item_id else "")
        try:
            return _run_sync(make_coro)
        except (exceptions.InvalidAPIKey, exceptions.NoPermission) as exc:
            status = 401 if isinstance(exc, exceptions.InvalidAPIKey) else 403
            reason = (
                "rejected the API key"
                if status == 401
                else "refused access (the key lacks permission for this item or API)"
            )
            raise ProviderAuthError(
                f"{what}: {self.base_url} {reason} (HTTP {status}); set a valid Planet API "
                f"key in {self._key_source}."
            ) from exc
        except (
            exceptions.TooManyRequests,
            exceptions.OverQuota,
            exceptions.ServerError,
            exceptions.BadGateway,
        ) as exc:
            raise ProviderUnavailableError(
                f"{what}: {self.base_url} is throttling or failing ({type(exc).__name__}: "
                f"{_short(exc)}); the task will retry."
            ) from exc
        except (exceptions.BadQuery, exceptions.MissingResource, exceptions.Conflict) as exc:
            if item_id:
                raise SceneReadError(
                    f"{what}: {self.base_url} answered {type(exc).__name__} ({_short(exc)}); "
                    "the scene is skipped for this run."
                ) from exc
            if isinstance(exc, exceptions.MissingResource):
                raise ProviderNotConfiguredError(
                    f"{what}: {self.base_url} has no Planet Data API (HTTP 404); check "
                    "sources[].url."
                ) from exc
            raise AOIConfigError(
                f"{what} for AOI {self.aoi_name}: the API rejected the search ({_short(exc)}); "
                "check the AOI geometry (a valid polygon in EPSG:4326)."
            ) from exc
        except exceptions.APIError as exc:
            # Statuses the SDK has no class for (503, 504, ...): treat as an outage.
            raise ProviderUnavailableError(
                f"{what}: {self.base_url} answered an unexpected error ({_short(exc)}); "
                "the task will retry."
            ) from exc
        except httpx.TransportError as exc:
            raise ProviderUnavailableError(
                f"{what}: connection to {self.base_url} failed ({type(exc).__name__}: {exc}); "
                "the task will retry."
            ) from exc
        except exceptions.ClientError as exc:
            raise ProviderUnavailableError(
                f"{what}: the planet SDK failed ({exc}); the task will retry."
            ) from exc

    # ---- search ----------------------------------------------------------------------
    def build_search_filter(
        self, aoi_geometry_lonlat: BaseGeometry, window: TimeWindow
    ) -> dict[str, Any]:
        """The Data API filter: AOI, acquired in the window, cloud cover, assets present.

        ``acquired`` runs from the window's first day 00:00 UTC up to (not including)
        the day after its last; ``cloud_cover`` is a 0..1 fraction in the API; the two
        asset filters are ANDed because one AssetFilter matches *any* of its assets.
        """
        data_filter = self._planet.data_filter
        return dict(
            data_filter.and_filter(
                [
                    data_filter.geometry_filter(_geojson(aoi_geometry_lonlat)),
                    data_filter.date_range_filter(
                        "acquired",
                        gte=_day_start(window.start),
                        lt=_day_start(window.end + dt.timedelta(days=1)),
                    ),
                    data_filter.range_filter("cloud_cover", lte=self.config.max_cloud_pct / 100),
                    data_filter.asset_filter([SR_ASSET]),
                    data_filter.asset_filter([UDM2_ASSET]),
                    data_filter.permission_filter(),
                ]
            )
        )

    def search(self, aoi_geometry_lonlat: BaseGeometry, window: TimeWindow) -> list[SceneRef]:
        """PSScene items over the AOI in the window with SR and UDM2 assets. Moves no pixels.

        Follows every result page (``_links._next``).

        Raises:
            ProviderAuthError: the key was refused.
            ProviderUnavailableError: the API is down or throttling.
            AOIConfigError: the API rejected the search geometry.
        """
        search_filter = self.build_search_filter(aoi_geometry_lonlat, window)

        async def run() -> list[dict[str, Any]]:
            async with self._session() as session:
                await self._ensure_bundles_spec(session)
                client = self._planet.DataClient(session, base_url=f"{self.base_url}/data/v1")
                return [
                    item
                    async for item in client.search(
                        [ITEM_TYPE], search_filter=search_filter, limit=0
                    )
                ]

        items = self._call(run, action="search")
        refs: dict[str, SceneRef] = {}
        for item in items:
            props = item.get("properties", {})
            cloud_cover = props.get("cloud_cover")
            refs[item["id"]] = SceneRef(
                provider=self.name,
                scene_id=item["id"],
                acquired=_parse_acquired(props["acquired"]),
                footprint_lonlat=shape(item["geometry"]),
                cloud_pct=None if cloud_cover is None else float(cloud_cover) * 100.0,
                assets={},
            )
        result = sorted(refs.values(), key=lambda ref: (ref.acquired, ref.scene_id))
        logger.info(
            "planetscope search for AOI %s, %s..%s: %d scenes (max cloud %.0f%%)",
            self.aoi_name,
            window.start,
            window.end,
            len(result),
            self.config.max_cloud_pct,
        )
        return result

    # ---- download --------------------------------------------------------------------
    def download(self, ref: SceneRef, cache_dir: Path) -> LocalScene:
        """Fetch a scene onto the AOI grid in ``cache_dir/planetscope/<item_id>/``.

        A complete ``reflectance.tif`` already there is reused without any API call.
        Raw downloads are checksummed, then warped and written through
        :func:`~asmspotter.atomic_write.atomic_write`; they are deleted afterwards.

        Raises:
            ProviderAuthError: the key was refused.
            ProviderUnavailableError: outage, throttling or a dropped connection; a
                re-run resumes (orders-clip resumes the same order).
            SceneReadError: the order failed, an asset never activated, a checksum did
                not match, or a delivered file is unreadable: skip the scene.
        """
        folder = scene_dir(cache_dir, self.name, ref.scene_id)
        reflectance_path = folder / "reflectance.tif"
        mask_path = folder / "reflectance.cloudmask.tif"
        if is_complete(reflectance_path) and is_complete(mask_path):
            logger.debug("planetscope: reusing %s", reflectance_path)
            return LocalScene(ref=ref, reflectance_path=reflectance_path, cloud_mask_path=mask_path)
        raw_dir = folder / "raw"
        raw_dir.mkdir(exist_ok=True)
        if self.config.mode == "assets":
            sr_path, udm2_path = self._call(
                lambda: self._fetch_assets(ref.scene_id, raw_dir),
                action="download",
                item_id=ref.scene_id,
            )
        else:
            sr_path, udm2_path = self._call(
                lambda: self._fetch_order(ref.scene_id, folder, raw_dir),
                action="download",
                item_id=ref.scene_id,
            )
        self._write_local_scene(ref, sr_path, udm2_path, reflectance_path, mask_path)
        shutil.rmtree(raw_dir, ignore_errors=True)
        logger.info("planetscope: downloaded item %s to %s", ref.scene_id, reflectance_path)
        return LocalScene(ref=ref, reflectance_path=reflectance_path, cloud_mask_path=mask_path)

    async def _download_checked(
        self,
        fetch: Callable[[Path], Coroutine[Any, Any, Any]],
        target: Path,
        *,
        item_id: str,
        what: str,
        digests: dict[str, str],
    ) -> Path:
        """Download to a ``partial_`` scratch name, check its digest, rename to ``target``.

        Args:
            fetch: Downloads the bytes to the given path (an SDK call).
            target: Final path of the raw file.
            item_id: Item id, for messages.
            what: Asset or file name, for messages.
            digests: Algorithm -> expected hex digest (sha256 is checked if given, else md5).

        Raises:
            SceneReadError: the digest did not match; the partial file is deleted.
        """
        with atomic_write(target) as partial:
            await fetch(partial)
            algorithm = "sha256" if "sha256" in digests else "md5" if "md5" in digests else ""
            if algorithm:
                found = file_digest(partial, algorithm)
                expected = digests[algorithm].lower()
                if found != expected:
                    partial.unlink(missing_ok=True)
                    raise SceneReadError(
                        f"planetscope item {item_id}: {what} from {self.base_url} failed its "
                        f"{algorithm} check (expected {expected}, got {found}); the file was "
                        "discarded and the scene is skipped for this run."
                    )
            else:
                logger.warning(
                    "planetscope item %s: %s came without a checksum; not verified",
                    item_id,
                    what,
                )
        return target

    async def _fetch_assets(self, item_id: str, raw_dir: Path) -> tuple[Path, Path]:
        """Activate, await and download the SR and UDM2 assets of a whole scene."""
        exceptions = self._planet.exceptions
        max_attempts = max(1, math.ceil(self.max_wait_s / max(self.poll_interval_s, 1e-3)))
        async with self._session() as session:
            client = self._planet.DataClient(session, base_url=f"{self.base_url}/data/v1")
            assets = await client.list_item_assets(ITEM_TYPE, item_id)
            wanted: dict[str, dict[str, Any]] = {}
            for asset_type in (SR_ASSET, UDM2_ASSET):
                if asset_type not in assets:
                    raise SceneReadError(
                        f"planetscope item {item_id}: asset {asset_type} is not offered "
                        f"(available: {sorted(assets)}); the scene is skipped."
                    )
                wanted[asset_type] = assets[asset_type]
                # Asks for activation only if the asset is inactive.
                await client.activate_asset(wanted[asset_type])
            paths = []
            for asset_type, asset in wanted.items():
                try:
                    active = await client.wait_asset(
                        asset, delay=self.poll_interval_s, max_attempts=max_attempts
                    )
                except exceptions.ClientError as exc:
                    raise SceneReadError(
                        f"planetscope item {item_id}: asset {asset_type} did not become active "
                        f"within {self.max_wait_s:.0f} s (status {asset.get('status')!r}, "
                        f"{exc}); the scene is skipped for this run."
                    ) from exc
                md5 = active.get("md5_digest")

                async def fetch(path: Path, active: dict[str, Any] = active) -> Any:
                    return await client.download_asset(
                        active,
                        filename=path.name,
                        directory=path.parent,
                        overwrite=True,
                        progress_bar=False,
                    )

                paths.append(
                    await self._download_checked(
                        fetch,
                        raw_dir / f"{asset_type}.tif",
                        item_id=item_id,
                        what=f"asset {asset_type}",
                        digests={"md5": md5} if md5 else {},
                    )
                )
        return paths[0], paths[1]

    def build_order_request(self, item_id: str) -> dict[str, Any]:
        """The Orders API v2 request: one PSScene item, SR + UDM2, clipped to the AOI.

        Built as a plain dict (the documented request body) rather than with
        ``planet.order_request.product``, which validates bundle names against a spec
        the SDK downloads from its public host.
        """
        return {
            "name": f"asmspotter-{self.aoi_name}-{item_id}",
            "products": [
                {"item_ids": [item_id], "item_type": ITEM_TYPE, "product_bundle": ORDER_BUNDLE}
            ],
            "tools": [{"clip": {"aoi": _geojson(self.aoi_geometry_lonlat)}}],
        }

    async def _fetch_order(self, item_id: str, folder: Path, raw_dir: Path) -> tuple[Path, Path]:
        """Place (or resume) a clipped order, await it, download and check its files."""
        exceptions = self._planet.exceptions
        order_file = folder / ORDER_FILE
        max_attempts = max(1, math.ceil(self.max_wait_s / max(self.poll_interval_s, 1e-3)))
        async with self._session() as session:
            client = self._planet.OrdersClient(session, base_url=f"{self.base_url}/compute/ops")
            order_id = _read_order_id(order_file)
            if order_id is not None:
                try:
                    await client.get_order(order_id)
                    logger.info("planetscope item %s: resuming order %s", item_id, order_id)
                except exceptions.MissingResource:
                    order_id = None
            if order_id is None:
                order = await client.create_order(self.build_order_request(item_id))
                order_id = str(order["id"])
                with atomic_write(order_file) as partial:
                    partial.write_text(json.dumps({"order_id": order_id, "item_id": item_id}))
                logger.info("planetscope item %s: placed order %s", item_id, order_id)
            try:
                state = await client.wait(
                    order_id, delay=self.poll_interval_s, max_attempts=max_attempts
                )
            except exceptions.ClientError as exc:
                raise SceneReadError(
                    f"planetscope item {item_id}: order {order_id} did not finish within "
                    f"{self.max_wait_s:.0f} s ({exc}); the scene is skipped for this run and "
                    "the next run resumes the same order."
                ) from exc
            order = await client.get_order(order_id)
            try:
                return await self._download_order_files(client, order, state, item_id, raw_dir)
            except SceneReadError:
                if state in ("success", "partial"):
                    raise  # e.g. a checksum mismatch: the order itself is fine
                # This order will never deliver: the next run places a new one.
                order_file.unlink(missing_ok=True)
                raise
            except exceptions.MissingResource:
                # The download links expired (orders are kept for a limited time).
                order_file.unlink(missing_ok=True)
                raise

    async def _download_order_files(
        self, client: Any, order: dict[str, Any], state: str, item_id: str, raw_dir: Path
    ) -> tuple[Path, Path]:
        """Download the manifest, then the clipped SR and UDM2 files checked against it."""
        order_id = order["id"]
        if state not in ("success", "partial"):
            hints = "; ".join(order.get("error_hints") or [])
            raise SceneReadError(
                f"planetscope item {item_id}: order {order_id} ended {state!r} "
                f"({order.get('last_message', '')}{'; ' + hints if hints else ''}); "
                f"bundle {ORDER_BUNDLE}, assets {SR_ASSET} + {UDM2_ASSET}; "
                "the scene is skipped for this run."
            )
        results = order.get("_links", {}).get("results") or []
        by_suffix: dict[str, dict[str, Any]] = {}
        missing = []
        for suffix in (MANIFEST_NAME, SR_CLIP_SUFFIX, UDM2_CLIP_SUFFIX):
            match = next((r for r in results if r["name"].endswith(suffix)), None)
            if match is None:
                missing.append(suffix)
            else:
                by_suffix[suffix] = match
        if missing:
            raise SceneReadError(
                f"planetscope item {item_id}: order {order_id} ({state}) delivered no "
                f"*{', *'.join(missing)} (got {[r['name'] for r in results]}); "
                "the scene is skipped for this run."
            )

        def fetcher(location: str) -> Callable[[Path], Coroutine[Any, Any, Any]]:
            async def fetch(path: Path) -> Any:
                return await client.download_asset(
                    location,
                    filename=path.name,
                    directory=path.parent,
                    overwrite=True,
                    progress_bar=False,
                )

            return fetch

        manifest_path = await self._download_checked(
            fetcher(by_suffix[MANIFEST_NAME]["location"]),
            raw_dir / MANIFEST_NAME,
            item_id=item_id,
            what=MANIFEST_NAME,
            digests={},
        )
        try:
            manifest = json.loads(manifest_path.read_text())
            digests = {entry["path"]: entry["digests"] for entry in manifest["files"]}
        except (ValueError, KeyError, TypeError) as exc:
            manifest_path.unlink(missing_ok=True)
            raise SceneReadError(
                f"planetscope item {item_id}: order {order_id} has an unreadable "
                f"{MANIFEST_NAME} ({exc}); the scene is skipped for this run."
            ) from exc
        paths: list[Path] = []
        for suffix in (SR_CLIP_SUFFIX, UDM2_CLIP_SUFFIX):
            result = by_suffix[suffix]
            # Result names are "<order id>/<path in the manifest>".
            manifest_key = result["name"].split("/", 1)[-1]
            expected = digests.get(manifest_key)
            if expected is None:
                raise SceneReadError(
                    f"planetscope item {item_id}: {manifest_key} of order {order_id} is not "
                    f"in its {MANIFEST_NAME}; the scene is skipped for this run."
                )
            paths.append(
                await self._download_checked(
                    fetcher(result["location"]),
                    raw_dir / Path(manifest_key).name,
                    item_id=item_id,
                    what=manifest_key,
                    digests={k.lower(): str(v) for k, v in expected.items()},
                )
            )
        return paths[0], paths[1]

    # ---- onto the AOI grid -----------------------------------------------------------
    def _warped(
        self, path: Path, item_id: str, *, bands: list[int], resampling: Resampling
    ) -> NDArray[Any]:
        grid = self.grid
        try:
            with rasterio.open(path) as src:
                if src.count < max(bands):
                    raise SceneReadError(
                        f"planetscope item {item_id}: {path.name} has {src.count} bands, "
                        f"expected at least {max(bands)}; the scene is skipped."
                    )
                with WarpedVRT(
                    src,
                    crs=f"EPSG:{grid.epsg}",
                    transform=grid.transform,
                    width=grid.width_px,
                    height=grid.height_px,
                    resampling=resampling,
                    nodata=0,
                ) as vrt:
                    data: NDArray[Any] = vrt.read(indexes=bands)
        except RasterioIOError as exc:
            raise SceneReadError(
                f"planetscope item {item_id}: {path} is not a readable GeoTIFF ({exc}); "
                "the scene is skipped."
            ) from exc
        return data

    def _write_local_scene(
        self, ref: SceneRef, sr_path: Path, udm2_path: Path, reflectance_path: Path, mask_path: Path
    ) -> None:
        """Warp SR (bilinear) and UDM2 (nearest) onto the grid; write the local format.

        Reflectance = DN / 10000 where every band is > 0, else no data. Cloud mask =
        UDM2 clear != 1, or any unusable bit set. The mask is moved into place before
        the reflectance file, whose presence marks the scene complete.
        """
        dn = self._warped(sr_path, ref.scene_id, bands=[1, 2, 3, 4], resampling=Resampling.bilinear)
        udm2 = self._warped(
            udm2_path,
            ref.scene_id,
            bands=[UDM2_CLEAR_BAND, UDM2_UNUSABLE_BAND],
            resampling=Resampling.nearest,
        )
        valid = (dn > 0).all(axis=0)
        reflectance = np.where(valid, dn.astype(np.float32) / np.float32(SR_SCALE), np.nan)
        cloud_mask = (udm2[0] != 1) | (udm2[1] != 0)
        with atomic_write(reflectance_path) as partial:
            write_scene(
                partial,
                self.grid,
                reflectance,
                ref.acquired,
                scene_id=ref.scene_id,
                cloud_mask=cloud_mask,
            )
            partial.with_name(partial.name.removesuffix(".tif") + ".cloudmask.tif").replace(
                mask_path
            )


def _read_order_id(order_file: Path) -> str | None:
    """The id of an order placed by an earlier run, if one was recorded."""
    try:
        return str(json.loads(order_file.read_text())["order_id"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


def _short(exc: BaseException, limit: int = 200) -> str:
    """An SDK error's text (often the response body), cut to ``limit`` characters."""
    text = str(exc).strip().replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "..."
