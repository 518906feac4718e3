"""A fake Sentinel-2 STAC API with COG assets, served on 127.0.0.1 for tests.

The STAC provider (``asmspotter.providers.stac``) talks to it exactly as it talks
to Earth Search, the Copernicus Data Space Ecosystem (CDSE) or the Planetary
Computer: pystac-client for the catalogue, GDAL ``/vsicurl/`` range requests for
the pixels. Nothing here touches the internet.

What it serves (paths below the base URL ``http://127.0.0.1:<port>/v1``):

* ``/v1`` landing page and ``/v1/conformance`` (core, item-search, query), shaped
  like Earth Search v1's (https://earth-search.aws.element84.com/v1);
* ``/v1/collections``, ``/v1/collections/<id>``, ``/v1/collections/<id>/items/<id>``;
* ``/v1/search``, GET and POST, with ``collections``, ``intersects``, ``bbox``,
  ``datetime``, ``query`` (``lt``/``lte``/``gt``/``gte``/``eq``) and ``limit``,
  paged with an opaque ``next`` token as stac-server (Earth Search's engine) does:
  a GET ``next`` link carries it in the query string, a POST one in its ``body``
  (STAC API - Item Search, "Pagination");
* ``/files/<name>``: the generated COGs, with HTTP Range support (206 Partial
  Content, ``Accept-Ranges``, ``Content-Range``; multi-range is answered with the
  whole first range, which GDAL accepts);
* ``/sas/token/<collection>``: a Planetary-Computer-style SAS token endpoint
  (``{"msft:expiry": ..., "token": ...}``, as ``/api/sas/v1/token/<collection>``).

Every request is logged, and faults are injected per route or file
(:meth:`FakeStacApi.inject`, from :mod:`fakes.http`): an HTTP status a number of
times (``500`` once then OK, ``401`` always, ``429``, ``404`` for a missing asset)
or ``"drop"``, which announces the full body and closes the connection half way
through it.

The COGs and items are built by :func:`write_s2_scene` and :func:`build_item`
from :func:`asmspotter.synthetic.render_training_pair` reflectance, in the style
of each real catalogue's items (asset keys, ``raster:bands``/``raster:scale``,
processing-baseline properties).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, quote

import numpy as np
import rasterio
from numpy.typing import NDArray
from rasterio.transform import from_origin
from rasterio.warp import transform_geom
from shapely.geometry import box, mapping, shape

from asmspotter.synthetic import render_training_pair
from fakes.http import (
    FakeHttpServer,
    RecordedRequest,
    Response,
    Route,
    json_response,
    ranged_response,
)

Catalog = Literal["earth-search", "cdse", "planetary-computer"]

S2_BANDS = ("blue", "green", "red", "nir")
"""The four reflectance bands, in the order of a scene file."""

ASSET_KEYS: dict[str, dict[str, str]] = {
    "earth-search": {
        "blue": "blue",
        "green": "green",
        "red": "red",
        "nir": "nir",
        "scl": "scl",
    },
    "cdse": {
        "blue": "B02_10m",
        "green": "B03_10m",
        "red": "B04_10m",
        "nir": "B08_10m",
        "scl": "SCL_20m",
    },
    "planetary-computer": {
        "blue": "B02",
        "green": "B03",
        "red": "B04",
        "nir": "B08",
        "scl": "SCL",
    },
}
"""Asset key of each band per catalogue, as in their real Sentinel-2 L2A items."""

CONFORMANCE = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/item-search#query",
    "https://api.stacspec.org/v1.0.0/item-search#sort",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
]
"""Conformance classes announced; a subset of Earth Search v1's."""

FAKE_SAS_TOKEN = (
    "st=2024-01-01T00%3A00%3A00Z&se=2099-01-01T00%3A00%3A00Z&sp=rl&sv=2021-06-08&sr=c&sig=fake"
)
"""What the fake SAS endpoint hands out (shaped like an Azure SAS query string)."""


# --------------------------------------------------------------------------------------
# Scenes: COG files and STAC items
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FakeScene:
    """One generated Sentinel-2 L2A scene: COG files and the truth behind them.

    Attributes:
        key: Short name used in file names.
        files: Band (``blue``, ``green``, ``red``, ``nir``, ``scl``) -> COG path.
        epsg: UTM EPSG code of the files.
        left_m: West edge, metres in ``epsg``.
        top_m: North edge, metres in ``epsg``.
        size_px: Width and height of the 10 m bands (the SCL has half).
        reflectance: (4, H, W) float32, the reflectance the DNs encode (after
            quantisation to 1e-4), bands blue, green, red, nir.
        scl: (H/2, W/2) uint8 scene classification at 20 m.
        dn_offset: DN added before writing (1000 for processing baseline >= 04.00
            with the offset not removed, else 0).
    """

    key: str
    files: dict[str, Path]
    epsg: int
    left_m: float
    top_m: float
    size_px: int
    reflectance: NDArray[np.float32]
    scl: NDArray[np.uint8]
    dn_offset: int

    @property
    def bounds_m(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in metres of ``epsg``."""
        size_m = self.size_px * 10.0
        return (self.left_m, self.top_m - size_m, self.left_m + size_m, self.top_m)

    @property
    def footprint_lonlat(self) -> dict[str, Any]:
        """GeoJSON footprint in EPSG:4326."""
        geometry: dict[str, Any] = transform_geom(
            f"EPSG:{self.epsg}", "EPSG:4326", mapping(box(*self.bounds_m))
        )
        return geometry


SCL_VEGETATION = 4
SCL_CLOUD_HIGH = 9
SCL_CLOUD_SHADOW = 3


def build_scl(size_px: int) -> NDArray[np.uint8]:
    """A 20 m SCL grid: vegetation, one cloud block and one shadow block.

    By construction (``n = size_px // 2`` SCL pixels a side): class 9 (cloud) on
    rows and columns ``[n/4, 3n/8)``, class 3 (shadow) on rows ``[n/4, 3n/8)`` and
    columns ``[3n/8, n/2)``, class 4 everywhere else. At 10 m each SCL pixel
    covers 2x2 pixels, so for ``size_px`` 512 the 10 m square ``[128, 256)`` holds
    64x64 cloud and 64x64 shadow pixels.
    """
    n = size_px // 2
    scl = np.full((n, n), SCL_VEGETATION, np.uint8)
    a, b, c = n // 4, 3 * n // 8, n // 2
    scl[a:b, a:b] = SCL_CLOUD_HIGH
    scl[a:b, b:c] = SCL_CLOUD_SHADOW
    return scl


def _write_cog(
    path: Path, data: NDArray[Any], epsg: int, left_m: float, top_m: float, res_m: float
) -> None:
    """Write one band as a COG: 128 px tiles (the COG driver's minimum), uncompressed."""
    profile = {
        "driver": "COG",
        "width": data.shape[1],
        "height": data.shape[0],
        "count": 1,
        "dtype": str(data.dtype),
        "crs": f"EPSG:{epsg}",
        "transform": from_origin(left_m, top_m, res_m, res_m),
        "nodata": 0,
        "blocksize": 128,
        "compress": "NONE",
        "overview_resampling": "nearest",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)


def write_s2_scene(
    folder: Path,
    key: str,
    *,
    seed: int,
    epsg: int = 32621,
    left_m: float = 600_000.0,
    top_m: float = 560_000.0,
    size_px: int = 512,
    dn_offset: int = 1000,
) -> FakeScene:
    """Generate the COGs of one Sentinel-2 L2A scene (4 bands at 10 m, SCL at 20 m).

    Reflectance comes from :func:`asmspotter.synthetic.render_training_pair`;
    DN = round(reflectance x 10000) + ``dn_offset`` (uint16, 0 = no data), the
    L2A encoding (``BOA_ADD_OFFSET`` = -1000 from processing baseline 04.00).

    Args:
        folder: Where the files go (``<key>_<band>.tif``).
        key: Scene key used in the file names.
        seed: Seed of the reflectance.
        epsg: UTM zone of the tile (default 21N: about 57°W 5°N, Suriname).
        left_m: West edge, metres.
        top_m: North edge, metres.
        size_px: Size of the 10 m bands, pixels (multiple of 128).
        dn_offset: 1000 to store DN as baseline >= 04.00 does, 0 as older baselines.

    Returns:
        The scene with its files and truth arrays.
    """
    folder.mkdir(parents=True, exist_ok=True)
    refl, _ = render_training_pair(np.random.default_rng(seed), size_px=size_px)
    dn = (np.round(refl * 10_000.0) + dn_offset).clip(1, 65535).astype(np.uint16)
    truth = ((dn.astype(np.float64) - dn_offset) * 1e-4).astype(np.float32)
    scl = build_scl(size_px)
    files: dict[str, Path] = {}
    for index, band in enumerate(S2_BANDS):
        files[band] = folder / f"{key}_{band}.tif"
        _write_cog(files[band], dn[index], epsg, left_m, top_m, 10.0)
    files["scl"] = folder / f"{key}_scl.tif"
    _write_cog(files["scl"], scl, epsg, left_m, top_m, 20.0)
    return FakeScene(key, files, epsg, left_m, top_m, size_px, truth, scl, dn_offset)


def build_item(
    scene: FakeScene,
    item_id: str,
    *,
    catalog: Catalog,
    base_url: str,
    acquired: dt.datetime,
    cloud_pct: float,
    processing_baseline: str = "05.09",
    boa_offset_applied: bool = False,
    collection: str = "sentinel-2-l2a",
    omit_assets: tuple[str, ...] = (),
) -> dict[str, Any]:
    """A STAC item for ``scene`` in the style of ``catalog``'s Sentinel-2 L2A items.

    Modelled on real items: Earth Search v1 (asset keys ``blue``..``scl``,
    ``raster:bands`` with ``scale`` 0.0001 and ``offset`` -0.1, properties
    ``s2:processing_baseline`` and ``earthsearch:boa_offset_applied``); CDSE
    (``B02_10m``..``SCL_20m``, STAC 1.1 ``raster:scale``/``raster:offset`` on the
    asset, ``processing:version``, an ``s3://eodata`` href with the HTTPS one under
    ``alternate.https``); Planetary Computer (``B02``..``SCL``, no scale/offset,
    ``s2:processing_baseline``, blob URLs that need a SAS token).

    Args:
        scene: The generated files.
        item_id: The item id.
        catalog: Which catalogue's item layout to copy.
        base_url: Server root (``http://127.0.0.1:<port>``) the asset hrefs point to.
        acquired: Item ``datetime``.
        cloud_pct: ``eo:cloud_cover``.
        processing_baseline: e.g. ``"05.09"`` (>= 04.00 carries the -1000 offset).
        boa_offset_applied: Earth Search's flag that its COGs already had it removed.
        collection: Collection id.
        omit_assets: Bands (``blue``..``scl``) left out of the item.

    Returns:
        The item as a JSON-ready dict.
    """
    keys = ASSET_KEYS[catalog]
    post_2022 = float(processing_baseline) >= 4.0
    props: dict[str, Any] = {
        "datetime": acquired.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "platform": "sentinel-2a",
        "constellation": "sentinel-2",
        "instruments": ["msi"],
        "eo:cloud_cover": cloud_pct,
        "proj:epsg": scene.epsg,
    }
    if catalog == "cdse":
        props.pop("proj:epsg")
        props.update(
            {
                "processing:version": processing_baseline,
                "product:type": "S2MSI2A",
                "grid:code": "MGRS-21NXF",
            }
        )
    else:
        props["s2:processing_baseline"] = processing_baseline
        props["s2:product_type"] = "S2MSI2A"
        props["s2:mgrs_tile"] = "21NXF"
    if catalog == "earth-search":
        props["earthsearch:boa_offset_applied"] = boa_offset_applied
    assets: dict[str, Any] = {}
    for band, path in scene.files.items():
        if band in omit_assets:
            continue
        res_m = 20 if band == "scl" else 10
        http_href = f"{base_url}/files/{path.name}"
        asset: dict[str, Any] = {
            "href": http_href,
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "roles": ["data"] if band == "scl" else ["data", "reflectance"],
            "gsd": res_m,
        }
        if catalog == "earth-search":
            raster_band: dict[str, Any] = {
                "nodata": 0,
                "data_type": "uint8" if band == "scl" else "uint16",
                "spatial_resolution": res_m,
            }
            if band != "scl":
                # Earth Search advertises the offset on every baseline >= 04.00
                # item, even where boa_offset_applied says it is already removed.
                raster_band.update({"scale": 0.0001, "offset": -0.1 if post_2022 else 0})
            asset["raster:bands"] = [raster_band]
        elif catalog == "cdse":
            asset["href"] = f"s3://eodata/Sentinel-2/MSI/L2A/{item_id}.SAFE/{path.name}"
            asset["type"] = "image/jp2"
            asset["alternate"] = {"https": {"href": http_href, "auth:refs": ["oidc"]}}
            asset["nodata"] = 0
            asset["data_type"] = "uint8" if band == "scl" else "uint16"
            if band != "scl":
                asset["raster:scale"] = 0.0001
                asset["raster:offset"] = -0.1 if post_2022 else 0.0
        assets[keys[band]] = asset
    footprint = scene.footprint_lonlat
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [
            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
        ],
        "id": item_id,
        "collection": collection,
        "geometry": footprint,
        "bbox": list(shape(footprint).bounds),
        "properties": props,
        "assets": assets,
        "links": [],
    }


# --------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------
class FakeStacApi(FakeHttpServer):
    """A fake STAC API on 127.0.0.1; use it as a context manager.

    Attributes:
        items: Items served by ``/search`` (JSON dicts), in order.
        files_dir: Folder whose files are served under ``/files/``.
        page_size: Largest page ``/search`` returns, whatever ``limit`` asks.
        require_sas_token: Asset reads without ``sig=`` in the query get 403, as
            Azure Blob Storage answers an unsigned Planetary Computer URL.
        require_bearer: Asset reads without this bearer token get 401, as the CDSE
            download service does.
        supports_query: Announce and apply the STAC ``query`` extension; when False
            the server ignores ``query``, as a catalogue without it would.

    Routes (for :meth:`inject` and :meth:`requests_to`): ``landing``, ``conformance``,
    ``collections``, ``collection``, ``item``, ``search``, ``file``, ``sas-token``.
    """

    def __init__(
        self,
        items: list[dict[str, Any]] | None = None,
        *,
        files_dir: Path | None = None,
        page_size: int = 2,
        require_sas_token: bool = False,
        require_bearer: str | None = None,
        supports_query: bool = True,
    ) -> None:
        """Hold the catalogue's items and files (not started)."""
        super().__init__()
        self.items: list[dict[str, Any]] = [] if items is None else items
        self.files_dir = files_dir
        self.page_size = page_size
        self.require_sas_token = require_sas_token
        self.require_bearer = require_bearer
        self.supports_query = supports_query

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``, the STAC API root."""
        return f"{self.root_url}/v1"

    def routes(self) -> list[Route]:
        """The STAC API's paths, the served files and the SAS token endpoint."""
        return [
            Route("landing", ("GET",), "/v1", lambda r, m: _json(self.landing_page())),
            Route(
                "conformance",
                ("GET",),
                "/v1/conformance",
                lambda r, m: _json({"conformsTo": self.conformance()}),
            ),
            Route("collections", ("GET",), "/v1/collections", self._collections),
            Route("collection", ("GET",), "/v1/collections/([^/]+)", self._collection),
            Route("item", ("GET",), "/v1/collections/([^/]+)/items/([^/]+)", self._item),
            Route("search", ("GET", "POST"), "/v1/search", self._search),
            Route("file", ("GET",), "/files/([^/]+)", self._file),
            Route("sas-token", ("GET",), "/sas/token/([^/]+)", self._sas_token),
        ]

    def error(self, status: int) -> Response:
        """A STAC API error document (429 with ``Retry-After: 0``)."""
        messages = {
            401: "Unauthorized: a valid access token is required",
            403: "Forbidden",
            404: "Not Found",
            429: "Too Many Requests",
        }
        text = messages.get(status, "Internal Server Error")
        headers = {"Retry-After": "0"} if status == 429 else {}
        return json_response({"code": str(status), "description": text}, status, headers=headers)

    def not_found(self, request: RecordedRequest) -> Response:
        """A 404 STAC error document."""
        return self.error(404)

    # ---- STAC documents ---------------------------------------------------------------
    def conformance(self) -> list[str]:
        """Conformance classes, without ``#query`` when ``supports_query`` is False."""
        return [c for c in CONFORMANCE if self.supports_query or not c.endswith("#query")]

    def landing_page(self) -> dict[str, Any]:
        """Landing page, shaped like Earth Search v1's."""
        base = self.base_url
        return {
            "type": "Catalog",
            "stac_version": "1.0.0",
            "id": "fake-earth-search",
            "title": "Fake STAC API (asmspotter tests)",
            "description": "A loopback STAC API serving generated Sentinel-2 L2A COGs.",
            "conformsTo": self.conformance(),
            "links": [
                {"rel": "self", "type": "application/json", "href": base},
                {"rel": "root", "type": "application/json", "href": base},
                {"rel": "conformance", "type": "application/json", "href": f"{base}/conformance"},
                {"rel": "data", "type": "application/json", "href": f"{base}/collections"},
                {
                    "rel": "search",
                    "type": "application/geo+json",
                    "method": "GET",
                    "href": f"{base}/search",
                },
                {
                    "rel": "search",
                    "type": "application/geo+json",
                    "method": "POST",
                    "href": f"{base}/search",
                },
            ],
        }

    def collection(self, collection_id: str) -> dict[str, Any]:
        """A minimal collection document."""
        base = self.base_url
        return {
            "type": "Collection",
            "stac_version": "1.0.0",
            "id": collection_id,
            "description": "Sentinel-2 L2A (fake)",
            "license": "proprietary",
            "extent": {
                "spatial": {"bbox": [[-180, -90, 180, 90]]},
                "temporal": {"interval": [["2015-06-27T10:25:31Z", None]]},
            },
            "links": [
                {"rel": "self", "href": f"{base}/collections/{collection_id}"},
                {"rel": "root", "href": base},
                {"rel": "items", "href": f"{base}/collections/{collection_id}/items"},
            ],
        }

    def _with_links(self, item: dict[str, Any]) -> dict[str, Any]:
        base = self.base_url
        collection = item.get("collection", "sentinel-2-l2a")
        return {
            **item,
            "links": [
                {
                    "rel": "self",
                    "type": "application/geo+json",
                    "href": f"{base}/collections/{collection}/items/{item['id']}",
                },
                {"rel": "collection", "href": f"{base}/collections/{collection}"},
                {"rel": "root", "href": base},
            ],
        }

    def search(self, params: dict[str, Any], method: str) -> tuple[int, dict[str, Any]]:
        """Run an item search; returns (status, FeatureCollection or error)."""
        try:
            filters = params if self.supports_query else {**params, "query": None}
            matched = [item for item in self.items if _matches(item, filters)]
            # Like real servers, cap the requested page size (Earth Search: 250).
            limit = min(int(params.get("limit") or self.page_size), self.page_size)
            start = int(str(params.get("next") or "0").removeprefix("p"))
        except (ValueError, TypeError, KeyError) as exc:
            return 400, {"code": "BadRequest", "description": str(exc)}
        page = matched[start : start + limit]
        links: list[dict[str, Any]] = [{"rel": "root", "href": self.base_url}]
        if start + limit < len(matched):
            token = f"p{start + limit}"
            if method == "POST":
                body = {k: v for k, v in params.items() if k != "next"}
                links.append(
                    {
                        "rel": "next",
                        "type": "application/geo+json",
                        "method": "POST",
                        "href": f"{self.base_url}/search",
                        "body": {**body, "next": token},
                        "merge": False,
                    }
                )
            else:
                query = "&".join(f"{k}={_query_value(v)}" for k, v in params.items() if k != "next")
                links.append(
                    {
                        "rel": "next",
                        "type": "application/geo+json",
                        "method": "GET",
                        "href": f"{self.base_url}/search?{query}&next={token}",
                    }
                )
        return 200, {
            "type": "FeatureCollection",
            "stac_version": "1.0.0",
            "stac_extensions": [],
            "context": {"limit": limit, "matched": len(matched), "returned": len(page)},
            "numberMatched": len(matched),
            "numberReturned": len(page),
            "features": [self._with_links(item) for item in page],
            "links": links,
        }

    # ---- routes -----------------------------------------------------------------------
    def _collections(self, request: RecordedRequest, match: re.Match[str]) -> Response:
        ids = sorted({item.get("collection", "") for item in self.items})
        return _json({"collections": [self.collection(i) for i in ids], "links": []})

    def _collection(self, request: RecordedRequest, match: re.Match[str]) -> Response:
        return _json(self.collection(match.group(1)))

    def _item(self, request: RecordedRequest, match: re.Match[str]) -> Response:
        collection_id, item_id = match.groups()
        for item in self.items:
            if item["id"] == item_id and item.get("collection") == collection_id:
                return _json(self._with_links(item))
        return self.error(404)

    def _search(self, request: RecordedRequest, match: re.Match[str]) -> Response:
        try:
            params: dict[str, Any] = (
                json.loads(request.body)
                if request.method == "POST"
                else _parse_get_params(request.query_string)
            )
        except ValueError as exc:
            return _json({"code": "BadRequest", "description": str(exc)}, 400)
        status, payload = self.search(params, request.method)
        return _json(payload, status)

    def _sas_token(self, request: RecordedRequest, match: re.Match[str]) -> Response:
        expiry = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        return _json(
            {"msft:expiry": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"), "token": FAKE_SAS_TOKEN}
        )

    def _file(self, request: RecordedRequest, match: re.Match[str]) -> Response:
        name = match.group(1)
        if self.require_sas_token and "sig=" not in request.query_string:
            return self.error(403)
        if self.require_bearer is not None and (
            request.headers.get("authorization") != f"Bearer {self.require_bearer}"
        ):
            return self.error(401)
        if self.files_dir is None or not (self.files_dir / name).is_file():
            return self.error(404)
        data = (self.files_dir / name).read_bytes()
        return ranged_response(request, data, "image/tiff", file_name=name)


def _json(payload: dict[str, Any], status: int = 200) -> Response:
    """A STAC JSON answer: GeoJSON for features and feature collections."""
    geojson = payload.get("type") in ("FeatureCollection", "Feature")
    return json_response(
        payload, status, content_type="application/geo+json" if geojson else "application/json"
    )


def _query_value(value: Any) -> str:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return quote(",".join(value))
    if isinstance(value, dict | list):
        return quote(json.dumps(value))
    return quote(str(value))


def _parse_get_params(query: str) -> dict[str, Any]:
    raw = {k: v[-1] for k, v in parse_qs(query).items()}
    params: dict[str, Any] = dict(raw)
    if "collections" in raw:
        params["collections"] = raw["collections"].split(",")
    for key in ("intersects", "query"):
        if key in raw:
            params[key] = json.loads(raw[key])
    if "bbox" in raw:
        params["bbox"] = [float(v) for v in raw["bbox"].split(",")]
    return params


def _parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _matches(item: dict[str, Any], params: dict[str, Any]) -> bool:
    """Whether an item passes the search filters (collections, space, time, query)."""
    collections = params.get("collections")
    if collections and item.get("collection") not in collections:
        return False
    footprint = shape(item["geometry"])
    if params.get("intersects") and not footprint.intersects(shape(params["intersects"])):
        return False
    if params.get("bbox") and not footprint.intersects(box(*params["bbox"][:4])):
        return False
    if params.get("datetime"):
        when = _parse_time(item["properties"]["datetime"])
        start_text, _, end_text = str(params["datetime"]).partition("/")
        if start_text not in ("", "..") and when < _parse_time(start_text):
            return False
        if end_text not in ("", "..") and when > _parse_time(end_text):
            return False
    for prop, ops in (params.get("query") or {}).items():
        value = item["properties"].get(prop)
        if value is None:
            return False
        checks = {
            "lt": lambda a, b: a < b,
            "lte": lambda a, b: a <= b,
            "gt": lambda a, b: a > b,
            "gte": lambda a, b: a >= b,
            "eq": lambda a, b: a == b,
        }
        for op, operand in ops.items():
            if op not in checks or not checks[op](value, operand):
                return False
    return True


_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
