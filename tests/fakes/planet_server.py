"""A fake Planet API on 127.0.0.1 that the real planet SDK talks to, and its scene fixtures.

The PlanetScope provider (``asmspotter/providers/planet.py``) is tested against
:class:`FakePlanetServer`: a real HTTP server (stdlib ``http.server`` in a thread)
that speaks the wire format of the Planet Data API v1 and Orders API v2, so the
SDK's own request building, paging, retries, streaming and error mapping run
unchanged. The payload shapes follow Planet's API reference
(https://docs.planet.com/develop/apis/data/, https://docs.planet.com/develop/apis/orders/)
and the fixtures of the SDK's own tests (planetlabs/planet-client-python:
``tests/data/data_item_*.json``, ``tests/integration/test_data_api.py``,
``tests/integration/test_orders_api.py``):

- ``GET  /compute/ops/bundles/spec``: the product-bundle spec the SDK validates item types with.
- ``POST /data/v1/quick-search``: filters evaluated here (And/Or/Not, DateRange, Range,
  Geometry, Asset, Permission, StringIn, NumberIn), ``page_size`` features per page and
  ``_links._next`` -> ``GET /data/v1/searches/<id>/results?_page=<token>``.
- ``GET  /data/v1/item-types/PSScene/items/<id>/assets``: asset descriptions whose
  ``status`` goes inactive -> activating -> active (with ``location`` and ``md5_digest``)
  after ``GET|POST _links.activate`` and ``activation_polls`` polls of ``_links._self``.
- ``GET  /data/v1/download?token=...``: asset bytes with ``Content-MD5`` and ``x-goog-hash``.
- ``POST /compute/ops/orders/v2``, ``GET /compute/ops/orders/v2/<id>``: the order state goes
  queued -> running -> success (or failed) over ``order_polls`` polls; on success
  ``_links.results`` lists the clipped SR and UDM2 files, a metadata JSON and
  ``manifest.json`` with md5/sha256 digests, downloaded from ``/compute/ops/download/?token=``.

Every endpoint needs ``Authorization: api-key <key>`` (or HTTP Basic with the key as
user name); anything else gets the API's 401 body. Faults are injected per route
with :meth:`FakePlanetServer.inject` (from :mod:`fakes.http`): an HTTP status,
``"drop"`` (connection closed half-way through the body) or ``"corrupt"`` (bytes that
do not match their advertised digests); and in the protocol with
:meth:`FakePlanetServer.fail_orders_for` and :meth:`FakePlanetServer.stall_activation`.

Scene data are made by code (:func:`build_planet_scene`), never downloaded.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from affine import Affine
from numpy.typing import NDArray
from rasterio.io import MemoryFile
from shapely.geometry import box, shape
from shapely.geometry.base import BaseGeometry

from asmspotter.grid import AOIGrid, to_lonlat
from asmspotter.synthetic import render_training_pair
from fakes.http import FakeHttpServer, RecordedRequest, Response, Route, json_response

ITEM_TYPE = "PSScene"
SR_ASSET = "ortho_analytic_4b_sr"
UDM2_ASSET = "ortho_udm2"
XML_ASSET = "ortho_analytic_4b_xml"
SR_SCALE = 10_000
"""PlanetScope surface reflectance is stored as reflectance x 10000 in uint16."""
UDM2_BANDS = (
    "clear",
    "snow",
    "shadow",
    "light_haze",
    "heavy_haze",
    "cloud",
    "confidence",
    "unusable",
)
"""UDM2 band order, as in Planet's UDM2 specification (band 8 = the legacy UDM bits)."""

BUNDLES_SPEC: dict[str, Any] = {
    "bundles": {
        "analytic_sr_udm2": {
            "name": "Surface Reflectance (4 band) with UDM2",
            "assets": {ITEM_TYPE: [SR_ASSET, XML_ASSET, UDM2_ASSET]},
        },
        "analytic_udm2": {
            "name": "Analytic radiance (4 band) with UDM2",
            "assets": {ITEM_TYPE: ["ortho_analytic_4b", XML_ASSET, UDM2_ASSET]},
        },
        "visual": {"name": "Visual", "assets": {ITEM_TYPE: ["ortho_visual"]}},
    }
}
"""The slice of ``/compute/ops/bundles/spec`` the SDK reads (``bundles[*].assets``)."""


# --------------------------------------------------------------------------------------
# Scene fixtures
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PlanetSceneFixture:
    """One synthetic PSScene: the files the fake serves and the answers a test expects.

    Attributes:
        item_id: PSScene item id (``YYYYMMDD_HHMMSS_xx_xxxx``).
        acquired: Acquisition time (UTC).
        cloud_cover: Scene cloud cover as the API reports it, 0..1.
        grid: The AOI grid (3 m, UTM 21N); the clipped files lie exactly on it.
        aoi_lonlat: The AOI polygon in EPSG:4326 (half a pixel inside ``grid``, so
            ``build_grid(aoi_lonlat, 3.0) == grid``).
        footprint_lonlat: The whole scene's footprint in EPSG:4326 (AOI plus a margin).
        reflectance: (4, H, W) float32 reflectance on ``grid`` after the uint16 round
            trip (DN / 10000), bands blue, green, red, nir.
        clear: (H, W) uint8 UDM2 band 1 on ``grid``: 1 = clear.
        scene_sr_tif: Whole-scene 4-band uint16 SR GeoTIFF (``ortho_analytic_4b_sr``).
        scene_udm2_tif: Whole-scene 8-band uint8 UDM2 GeoTIFF (``ortho_udm2``).
        clip_sr_tif: The SR file clipped to the AOI (what an order with clip delivers).
        clip_udm2_tif: The UDM2 file clipped to the AOI.
    """

    item_id: str
    acquired: dt.datetime
    cloud_cover: float
    grid: AOIGrid
    aoi_lonlat: BaseGeometry
    footprint_lonlat: BaseGeometry
    reflectance: NDArray[np.float32]
    clear: NDArray[np.uint8]
    scene_sr_tif: bytes
    scene_udm2_tif: bytes
    clip_sr_tif: bytes
    clip_udm2_tif: bytes

    def item(self, base_url: str) -> dict[str, Any]:
        """The item as the Data API returns it in a search (a GeoJSON Feature)."""
        return build_item_feature(
            base_url,
            self.item_id,
            acquired=self.acquired,
            cloud_cover=self.cloud_cover,
            footprint_lonlat=self.footprint_lonlat,
        )


def _geotiff_bytes(array: NDArray[Any], transform: Affine, epsg: int, **extra: Any) -> bytes:
    count, height, width = array.shape
    with MemoryFile() as memfile:
        with memfile.open(
            driver="GTiff",
            width=width,
            height=height,
            count=count,
            dtype=str(array.dtype),
            crs=f"EPSG:{epsg}",
            transform=transform,
            **extra,
        ) as dst:
            dst.write(array)
        return bytes(memfile.read())


def build_planet_scene(
    seed: int = 0,
    *,
    size_px: int = 96,
    margin_px: int = 16,
    item_id: str = "20240115_134501_12_24a3",
    acquired: dt.datetime | None = None,
) -> PlanetSceneFixture:
    """Build a synthetic PSScene over a small AOI in Suriname (UTM 21N, 3 m pixels).

    The scene is ``size_px + 2 * margin_px`` pixels square; the AOI is its central
    ``size_px`` square, so a provider must crop (assets mode) or take the clip as is
    (orders mode) and lands on the same pixels either way. Reflectance comes from
    ``asmspotter.synthetic.render_training_pair`` at 3 m; UDM2 has one elliptical cloud
    (clear = 0, cloud = 1, unusable bit 1 set) inside the AOI and clear sky elsewhere.

    Args:
        seed: Seed of the generator: the same seed gives the same bytes.
        size_px: AOI height and width in pixels.
        margin_px: Scene margin around the AOI in pixels.
        item_id: The PSScene item id.
        acquired: Acquisition time; default 2024-01-15T13:45:01Z.

    Returns:
        The fixture, with the expected answers on the AOI grid.
    """
    rng = np.random.default_rng(seed)
    resolution_m = 3.0
    epsg = 32621
    # Both multiples of 3 m, so the AOI grid's snapped origin is exactly here.
    left_m, top_m = 699_999.0, 550_002.0
    grid = AOIGrid(epsg, resolution_m, left_m, top_m, size_px, size_px)
    total = size_px + 2 * margin_px
    scene_transform = Affine(
        resolution_m,
        0.0,
        left_m - margin_px * resolution_m,
        0.0,
        -resolution_m,
        top_m + margin_px * resolution_m,
    )

    reflectance, _ = render_training_pair(rng, total, resolution_m=resolution_m)
    dn = np.clip(np.round(reflectance * SR_SCALE), 1, 65535).astype(np.uint16)

    rows, cols = np.mgrid[0:total, 0:total]
    centre_r, centre_c = margin_px + rng.uniform(0.3, 0.7, size=2) * size_px
    radius_r, radius_c = rng.uniform(0.12, 0.25, size=2) * size_px
    cloud = ((rows - centre_r) / radius_r) ** 2 + ((cols - centre_c) / radius_c) ** 2 <= 1.0
    udm2 = np.zeros((8, total, total), np.uint8)
    udm2[0] = (~cloud).astype(np.uint8)  # clear
    udm2[5] = cloud.astype(np.uint8)  # cloud
    udm2[6] = np.where(cloud, 70, 95).astype(np.uint8)  # confidence, percent
    udm2[7] = np.where(cloud, 2, 0).astype(np.uint8)  # legacy UDM: bit 1 = cloud

    inner = (
        slice(None),
        slice(margin_px, margin_px + size_px),
        slice(margin_px, margin_px + size_px),
    )
    sr_extra = {"nodata": 0}
    scene_sr = _geotiff_bytes(dn, scene_transform, epsg, **sr_extra)
    scene_udm2 = _geotiff_bytes(udm2, scene_transform, epsg)
    clip_sr = _geotiff_bytes(np.ascontiguousarray(dn[inner]), grid.transform, epsg, **sr_extra)
    clip_udm2 = _geotiff_bytes(np.ascontiguousarray(udm2[inner]), grid.transform, epsg)

    half = resolution_m / 2
    left, bottom, right, top = grid.bounds
    aoi = to_lonlat(box(left + half, bottom + half, right - half, top - half), epsg)
    scene_left, scene_top = scene_transform.c, scene_transform.f
    span = total * resolution_m
    footprint = to_lonlat(box(scene_left, scene_top - span, scene_left + span, scene_top), epsg)
    return PlanetSceneFixture(
        item_id=item_id,
        acquired=acquired or dt.datetime(2024, 1, 15, 13, 45, 1, tzinfo=dt.UTC),
        cloud_cover=round(float(cloud[inner[1:]].mean()), 2),
        grid=grid,
        aoi_lonlat=aoi,
        footprint_lonlat=footprint,
        reflectance=(dn[inner] / SR_SCALE).astype(np.float32),
        clear=np.ascontiguousarray(udm2[0][inner[1:]]),
        scene_sr_tif=scene_sr,
        scene_udm2_tif=scene_udm2,
        clip_sr_tif=clip_sr,
        clip_udm2_tif=clip_udm2,
    )


def _rfc3339(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def build_item_feature(
    base_url: str,
    item_id: str,
    *,
    acquired: dt.datetime,
    cloud_cover: float,
    footprint_lonlat: BaseGeometry,
    assets: tuple[str, ...] = (SR_ASSET, UDM2_ASSET, XML_ASSET, "ortho_visual"),
) -> dict[str, Any]:
    """A PSScene item as the Data API returns it (shape of the SDK's test data items)."""
    item_url = f"{base_url}/data/v1/item-types/{ITEM_TYPE}/items/{item_id}"
    return {
        "_links": {
            "_self": item_url,
            "assets": f"{item_url}/assets/",
            "thumbnail": f"{base_url}/data/v1/item-types/{ITEM_TYPE}/items/{item_id}/thumb",
        },
        "_permissions": [f"assets.{name}:download" for name in assets],
        "assets": list(assets),
        "geometry": json.loads(shapely.to_geojson(footprint_lonlat)),
        "id": item_id,
        "properties": {
            "acquired": _rfc3339(acquired),
            "anomalous_pixels": 0,
            "clear_percent": round(100 * (1 - cloud_cover)),
            "cloud_cover": cloud_cover,
            "cloud_percent": round(100 * cloud_cover),
            "ground_control": True,
            "gsd": 3.7,
            "instrument": "PSB.SD",
            "item_type": ITEM_TYPE,
            "pixel_resolution": 3,
            "provider": "planetscope",
            "published": _rfc3339(acquired + dt.timedelta(hours=6)),
            "publishing_stage": "finalized",
            "quality_category": "standard",
            "satellite_id": item_id.rsplit("_", 1)[-1],
            "strip_id": "7012345",
            "sun_azimuth": 128.4,
            "sun_elevation": 55.1,
            "updated": _rfc3339(acquired + dt.timedelta(hours=6)),
            "view_angle": 3.1,
        },
        "type": "Feature",
    }


# --------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------
@dataclass
class _Blob:
    data: bytes
    filename: str
    content_type: str

    @property
    def md5(self) -> str:
        return hashlib.md5(self.data).hexdigest()


@dataclass
class _Order:
    order_id: str
    request: dict[str, Any]
    item_id: str
    created: str
    polls: int = 0
    results: list[dict[str, Any]] = field(default_factory=list)


class _BadRequest(Exception):
    """An invalid request: answered with HTTP 400 and the API's error body."""


_ASSETS = "/data/v1/assets/([^/]+)"


class FakePlanetServer(FakeHttpServer):
    """A Planet API fake on 127.0.0.1; see the module docstring for what it serves.

    Routes (for :meth:`inject` and :meth:`requests_to`): ``bundles-spec``,
    ``quick-search``, ``search-page``, ``item-assets``, ``asset``, ``activate``,
    ``asset-download``, ``create-order``, ``get-order``, ``order-download``. A
    ``contains`` fault on a download route matches the served file's name.

    Example:
        >>> with FakePlanetServer() as server:  # doctest: +SKIP
        ...     server.add_scene(build_planet_scene())
        ...     provider = PlanetProvider(config.model_copy(update={"url": server.base_url}), ...)
    """

    def __init__(
        self,
        *,
        api_key: str = "test-planet-key",
        page_size: int = 2,
        activation_polls: int = 2,
        order_polls: tuple[int, int] = (1, 1),
    ) -> None:
        """Create the server (not started; use it as a context manager).

        Args:
            api_key: The only key accepted.
            page_size: Features per quick-search page.
            activation_polls: Polls of an activating asset before it turns active.
            order_polls: Polls an order spends queued, then running, before its end state.
        """
        super().__init__()
        self.api_key = api_key
        self.page_size = page_size
        self.activation_polls = activation_polls
        self.order_polls = order_polls
        self.items: dict[str, dict[str, Any]] = {}
        self.scenes: dict[str, PlanetSceneFixture] = {}
        self.orders: dict[str, _Order] = {}
        self._failing_orders: set[str] = set()
        self._stalled: set[str] = set()
        self._asset_state: dict[tuple[str, str], dict[str, Any]] = {}
        self._blobs: dict[str, _Blob] = {}
        self._searches: dict[str, list[str]] = {}

    # ---- setup -----------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``, the value for ``sources[].url``."""
        return self.root_url

    def add_scene(self, scene: PlanetSceneFixture) -> dict[str, Any]:
        """Serve a scene: its item in searches, its assets and its orders. Returns the item."""
        item = scene.item(self.base_url)
        with self._lock:
            self.items[scene.item_id] = item
            self.scenes[scene.item_id] = scene
        return item

    def add_item(self, item: dict[str, Any]) -> None:
        """Serve a search-only item (no files behind it)."""
        with self._lock:
            self.items[item["id"]] = item

    def fail_orders_for(self, item_id: str) -> None:
        """Orders of ``item_id`` end in state ``failed``."""
        with self._lock:
            self._failing_orders.add(item_id)

    def stall_activation(self, item_id: str) -> None:
        """Assets of ``item_id`` stay ``activating`` forever."""
        with self._lock:
            self._stalled.add(item_id)

    # ---- request handling ------------------------------------------------------------
    def routes(self) -> list[Route]:
        """The Data and Orders API paths the SDK uses."""
        return [
            Route("bundles-spec", ("GET",), "/compute/ops/bundles/spec", self._bundles_spec),
            Route("quick-search", ("POST",), "/data/v1/quick-search", self._quick_search),
            Route("search-page", ("GET",), "/data/v1/searches/([^/]+)/results", self._page),
            Route(
                "item-assets",
                ("GET",),
                "/data/v1/item-types/([^/]+)/items/([^/]+)/assets",
                self._item_assets,
            ),
            Route("asset", ("GET",), _ASSETS, self._poll_asset),
            Route("activate", ("GET", "POST"), f"{_ASSETS}/activate", self._activate),
            Route("asset-download", ("GET",), "/data/v1/download", self._download),
            Route("create-order", ("POST",), "/compute/ops/orders/v2", self._create_order),
            Route("get-order", ("GET",), "/compute/ops/orders/v2/([^/]+)", self._get_order),
            Route("order-download", ("GET",), "/compute/ops/download", self._download),
        ]

    def refuse(self, request: RecordedRequest) -> Response | None:
        """The API's 401 unless ``Authorization: api-key <key>`` (or Basic with the key)."""
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "api-key" and value.strip() == self.api_key:
            return None
        if scheme.lower() == "basic":
            try:
                user = base64.b64decode(value.strip()).decode().split(":", 1)[0]
            except ValueError:
                user = ""
            if user == self.api_key:
                return None
        message = "Please enter your API key, or email and password."
        return json_response({"message": message, "errors": []}, 401)

    def error(self, status: int) -> Response:
        """The API's error body for an injected status."""
        return json_response({"message": f"injected HTTP {status}", "errors": []}, status)

    def not_found(self, request: RecordedRequest) -> Response:
        """The API's 404 body."""
        return json_response({"message": f"not found: {request.path!r}", "errors": []}, 404)

    def dispatch(self, route: Route, request: RecordedRequest, match: re.Match[str]) -> Response:
        """Answer a routed request; a bad request is a 400, an unknown id a 404."""
        try:
            return route.handler(request, match)
        except _BadRequest as exc:
            return json_response({"message": str(exc), "errors": [str(exc)]}, 400)
        except KeyError as exc:
            return json_response({"message": f"not found: {exc}", "errors": []}, 404)

    # ---- Data API --------------------------------------------------------------------
    def _bundles_spec(self, request: RecordedRequest, match: re.Match[str]) -> Response:
        return json_response(BUNDLES_SPEC)

    def _quick_search(self, request: RecordedRequest, match: re.Match[str]) -> Response:
        search = json.loads(request.body or b"{}")
        if ITEM_TYPE not in search.get("item_types", []):
            raise _BadRequest(
                f"item_types must include {ITEM_TYPE}, got {search.get('item_types')}"
            )
        search_filter = search.get("filter")
        if not isinstance(search_filter, dict):
            raise _BadRequest("'filter' is required")
        with self._lock:
            items = list(self.items.values())
        matching = [item for item in items if _matches(search_filter, item)]
        # The API's default order is "published desc".
        matching.sort(key=lambda item: item["properties"]["published"], reverse=True)
        search_id = uuid.uuid4().hex
        with self._lock:
            self._searches[search_id] = [item["id"] for item in matching]
        return json_response(self._search_page(search_id, 1))

    def _page(self, request: RecordedRequest, match: re.Match[str]) -> Response:
        return json_response(
            self._search_page(match.group(1), int(request.query.get("_page", "1")))
        )

    def _search_page(self, search_id: str, page: int) -> dict[str, Any]:
        with self._lock:
            ids = self._searches[search_id]
            features = [self.items[i] for i in ids]
        start = (page - 1) * self.page_size
        results_url = f"{self.base_url}/data/v1/searches/{search_id}/results"
        links = {
            "_self": f"{results_url}?_page={page}",
            "_first": f"{results_url}?_page=1",
        }
        if start + self.page_size < len(features):
            links["_next"] = f"{results_url}?_page={page + 1}"
        return {
            "_links": links,
            "features": features[start : start + self.page_size],
            "type": "FeatureCollection",
        }

    @staticmethod
    def _asset_token(item_id: str, asset_type: str) -> str:
        # The real API's asset ids are base64url JSON like this one.
        raw = json.dumps({"i": item_id, "c": ITEM_TYPE, "t": asset_type, "ct": "item-type"})
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @staticmethod
    def asset_type_of(token: str) -> str:
        """The asset type an asset id (``/data/v1/assets/<id>``) stands for."""
        return FakePlanetServer._token_fields(token)[1]

    @staticmethod
    def _token_fields(token: str) -> tuple[str, str]:
        padded = token + "=" * (-len(token) % 4)
        fields = json.loads(base64.urlsafe_b64decode(padded))
        return str(fields["i"]), str(fields["t"])

    def _asset_json(self, item_id: str, asset_type: str) -> dict[str, Any]:
        token = self._asset_token(item_id, asset_type)
        asset_url = f"{self.base_url}/data/v1/assets/{token}"
        with self._lock:
            state = self._asset_state.setdefault((item_id, asset_type), {"status": "inactive"})
            status = state["status"]
        payload: dict[str, Any] = {
            "_links": {
                "_self": asset_url,
                "activate": f"{asset_url}/activate",
                "type": f"{self.base_url}/data/v1/asset-types/{asset_type}",
            },
            "_permissions": ["download"],
            "md5_digest": None,
            "status": status,
            "type": asset_type,
        }
        if status == "active":
            blob = self._asset_blob(item_id, asset_type)
            download_token = f"{token}.{uuid.uuid4().hex}"
            with self._lock:
                self._blobs[download_token] = blob
            payload["location"] = f"{self.base_url}/data/v1/download?token={download_token}"
            payload["md5_digest"] = blob.md5
            payload["expires_at"] = _rfc3339(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
        return payload

    def _asset_blob(self, item_id: str, asset_type: str) -> _Blob:
        scene = self.scenes[item_id]
        stem = f"{item_id}_3B"
        if asset_type == SR_ASSET:
            return _Blob(scene.scene_sr_tif, f"{stem}_AnalyticMS_SR.tif", "image/tiff")
        if asset_type == UDM2_ASSET:
            return _Blob(scene.scene_udm2_tif, f"{stem}_udm2.tif", "image/tiff")
        return _Blob(b"<metadata/>", f"{stem}_AnalyticMS_metadata.xml", "text/xml")

    def _item_assets(self, request: RecordedRequest, match: re.Match[str]) -> Response:
        item_type, item_id = match.groups()
        if item_type != ITEM_TYPE:
            raise _BadRequest(f"unknown item type {item_type!r}")
        item = self.items[item_id]
        return json_response({name: self._asset_json(item_id, name) for name in item["assets"]})

    def _activate(self, request: RecordedRequest, match: re.Match[str]) -> Response:
        item_id, asset_type = self._token_fields(match.group(1))
        if item_id not in self.scenes:
            raise KeyError(item_id)
        with self._lock:
            state = self._asset_state.setdefault((item_id, asset_type), {"status": "inactive"})
            if state["status"] == "active":
                return Response(204, content_type="")
            if state["status"] == "inactive":
                state.update(status="activating", polls=self.activation_polls)
        return Response(202, content_type="")

    def _poll_asset(self, request: RecordedRequest, match: re.Match[str]) -> Response:
        item_id, asset_type = self._token_fields(match.group(1))
        with self._lock:
            state = self._asset_state.setdefault((item_id, asset_type), {"status": "inactive"})
            if state["status"] == "activating" and item_id not in self._stalled:
                state["polls"] -= 1
                if state["polls"] <= 0:
                    state["status"] = "active"
        return json_response(self._asset_json(item_id, asset_type))

    # ---- downloads -------------------------------------------------------------------
    def _download(self, request: RecordedRequest, match: re.Match[str]) -> Response:
        with self._lock:
            blob = self._blobs.get(request.query.get("token", ""))
        if blob is None:
            return json_response({"message": "download token not found", "errors": []}, 404)
        md5_b64 = base64.b64encode(hashlib.md5(blob.data).digest()).decode()
        headers = {
            "Content-Disposition": f'attachment; filename="{blob.filename}"',
            "Content-MD5": md5_b64,
            "x-goog-hash": f"md5={md5_b64}",
        }
        return Response(200, blob.data, blob.content_type, headers, file_name=blob.filename)

    # ---- Orders API ------------------------------------------------------------------
    def _create_order(self, request: RecordedRequest, match: re.Match[str]) -> Response:
        return json_response(self._place_order(json.loads(request.body or b"{}")), 202)

    def _place_order(self, request: dict[str, Any]) -> dict[str, Any]:
        products = request.get("products")
        if not isinstance(products, list) or len(products) != 1:
            raise _BadRequest("this fake takes orders of exactly one product")
        product = products[0]
        if product.get("item_type") != ITEM_TYPE:
            raise _BadRequest(f"item_type must be {ITEM_TYPE}, got {product.get('item_type')!r}")
        bundle = product.get("product_bundle")
        if bundle not in BUNDLES_SPEC["bundles"]:
            raise _BadRequest(f"unknown product_bundle {bundle!r}")
        item_ids = product.get("item_ids") or []
        if len(item_ids) != 1 or item_ids[0] not in self.scenes:
            raise _BadRequest(f"unknown or unsupported item_ids {item_ids}")
        scene = self.scenes[item_ids[0]]
        for tool in request.get("tools", []):
            if "clip" in tool:
                aoi = shape(tool["clip"]["aoi"])
                if aoi.geom_type not in ("Polygon", "MultiPolygon"):
                    raise _BadRequest("clip aoi must be a Polygon or MultiPolygon")
                if not aoi.intersects(scene.footprint_lonlat):
                    raise _BadRequest("clip aoi does not intersect the item")
        now = _rfc3339(dt.datetime.now(dt.UTC))
        order = _Order(
            order_id=str(uuid.uuid4()), request=request, item_id=scene.item_id, created=now
        )
        with self._lock:
            self.orders[order.order_id] = order
        return self._order_json(order, "queued")

    def _get_order(self, request: RecordedRequest, match: re.Match[str]) -> Response:
        with self._lock:
            order = self.orders[match.group(1)]
            order.polls += 1
            polls, failing = order.polls, order.item_id in self._failing_orders
        queued, running = self.order_polls
        if polls <= queued:
            state = "queued"
        elif polls <= queued + running:
            state = "running"
        else:
            state = "failed" if failing else "success"
        return json_response(self._order_json(order, state))

    def _order_json(self, order: _Order, state: str) -> dict[str, Any]:
        links: dict[str, Any] = {"_self": f"{self.base_url}/compute/ops/orders/v2/{order.order_id}"}
        if state == "success":
            links["results"] = self._order_results(order)
        messages = {
            "queued": "Preparing order",
            "running": "Processing order",
            "success": "Manifest delivery completed",
            "failed": "Order failed: all products failed",
        }
        hint = "clip: the AOI does not overlap usable pixels"
        return {
            "_links": links,
            "created_on": order.created,
            "error_hints": [hint] if state == "failed" else [],
            "id": order.order_id,
            "last_message": messages[state],
            "last_modified": _rfc3339(dt.datetime.now(dt.UTC)),
            "name": order.request.get("name", ""),
            "products": order.request["products"],
            "state": state,
            "tools": order.request.get("tools", []),
        }

    def _order_results(self, order: _Order) -> list[dict[str, Any]]:
        if order.results:
            return order.results
        scene = self.scenes[order.item_id]
        clipped = any("clip" in tool for tool in order.request.get("tools", []))
        suffix = "_clip" if clipped else ""
        stem = f"{scene.item_id}_3B"
        files = {
            f"{ITEM_TYPE}/{stem}_AnalyticMS_SR{suffix}.tif": (
                scene.clip_sr_tif if clipped else scene.scene_sr_tif,
                "image/tiff",
                SR_ASSET,
            ),
            f"{ITEM_TYPE}/{stem}_udm2{suffix}.tif": (
                scene.clip_udm2_tif if clipped else scene.scene_udm2_tif,
                "image/tiff",
                UDM2_ASSET,
            ),
            f"{ITEM_TYPE}/{stem}_AnalyticMS_metadata{suffix}.xml": (
                b"<metadata/>",
                "text/xml",
                XML_ASSET,
            ),
            f"{ITEM_TYPE}/{scene.item_id}_metadata.json": (
                json.dumps(scene.item(self.base_url)).encode(),
                "application/json",
                "",
            ),
        }
        manifest = {
            "name": "",
            "files": [
                {
                    "path": path,
                    "media_type": media_type,
                    "size": len(data),
                    "digests": {
                        "md5": hashlib.md5(data).hexdigest(),
                        "sha256": hashlib.sha256(data).hexdigest(),
                    },
                    "annotations": {
                        "planet/asset_type": asset_type,
                        "planet/bundle_type": order.request["products"][0]["product_bundle"],
                        "planet/item_id": scene.item_id,
                        "planet/item_type": ITEM_TYPE,
                    },
                }
                for path, (data, media_type, asset_type) in files.items()
            ],
        }
        files["manifest.json"] = (json.dumps(manifest).encode(), "application/json", "")
        expires = _rfc3339(dt.datetime.now(dt.UTC) + dt.timedelta(days=30))
        results = []
        for path, (data, media_type, _) in files.items():
            token = uuid.uuid4().hex
            with self._lock:
                self._blobs[token] = _Blob(data, path.rsplit("/", 1)[-1], media_type)
            results.append(
                {
                    "delivery": "success",
                    "expires_at": expires,
                    "location": f"{self.base_url}/compute/ops/download/?token={token}",
                    "name": f"{order.order_id}/{path}",
                }
            )
        order.results = results
        return results


# --------------------------------------------------------------------------------------
# Search filter evaluation (the Data API's filter language, the part we use)
# --------------------------------------------------------------------------------------
def _parse_time(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _compare(value: Any, config: dict[str, Any], convert: Any) -> bool:
    checks = {
        "gt": lambda a, b: a > b,
        "gte": lambda a, b: a >= b,
        "lt": lambda a, b: a < b,
        "lte": lambda a, b: a <= b,
    }
    unknown = set(config) - set(checks)
    if unknown or not config:
        raise _BadRequest(f"range config must use gt/gte/lt/lte, got {sorted(config)}")
    return all(checks[key](convert(value), convert(bound)) for key, bound in config.items())


def _matches(search_filter: dict[str, Any], item: dict[str, Any]) -> bool:
    kind = search_filter.get("type")
    config = search_filter.get("config")
    props = item["properties"]
    if kind == "AndFilter":
        return all(_matches(f, item) for f in config or [])
    if kind == "OrFilter":
        return any(_matches(f, item) for f in config or [])
    if kind == "NotFilter":
        return not _matches(config or {}, item)
    if kind == "DateRangeFilter":
        return _compare(props[search_filter["field_name"]], config or {}, _parse_time)
    if kind == "RangeFilter":
        return _compare(props[search_filter["field_name"]], config or {}, float)
    if kind == "GeometryFilter":
        if search_filter.get("field_name") != "geometry":
            raise _BadRequest("GeometryFilter field_name must be 'geometry'")
        relation = search_filter.get("relation", "intersects")
        aoi, footprint = shape(config), shape(item["geometry"])
        return bool(getattr(footprint, relation)(aoi))
    if kind == "AssetFilter":
        return any(name in item["assets"] for name in config or [])
    if kind == "PermissionFilter":
        return True
    if kind in ("StringInFilter", "NumberInFilter"):
        return props.get(search_filter["field_name"]) in (config or [])
    raise _BadRequest(f"unknown filter type {kind!r}")
