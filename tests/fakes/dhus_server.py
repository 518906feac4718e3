"""A fake DHuS hub on 127.0.0.1 and builders of tiny Sentinel-2 SAFE zips.

:class:`FakeDhusHub` speaks the part of the Data Hub Software API that sentinelsat
1.2 uses, in the shapes the real hubs answered with (modelled on sentinelsat's
recorded cassettes ``tests/fixtures/vcr_cassettes/test_s2_cloudcover.yaml`` and
``test_download_single.yaml``, and on ``sentinelsat/sentinel.py``/``download.py``):

- ``GET  <root>search?format=json&rows=..&start=..&q=..``: OpenSearch, JSON
  ``{"feed": {"opensearch:totalResults": "N", "entry": [...]}}``; each entry has
  ``date``/``int``/``double``/``str`` lists of ``{"name", "content"}`` and, as DHuS
  does, a one-element list is sent as a bare object.
- ``GET  <root>odata/v1/Products('<uuid>')?$format=json``: OData product (Id, Name,
  ContentLength, Checksum {Algorithm: MD5, Value}, Online, ContentDate, ...).
- ``HEAD/GET <root>odata/v1/Products('<uuid>')/$value``: the zip, with
  ``Content-Disposition`` and ``Range: bytes=N-`` support (206) for resuming.
- ``GET  <root>odata/v1/Products('<uuid>')/Online/$value``: ``true``.

Every request must carry HTTP Basic credentials; wrong ones get Tomcat's 401 page,
as DHuS sent. Faults are injected with :meth:`FakeDhusHub.inject` (from
:mod:`fakes.http`): an HTTP status (500, 401, 429, ...) or a connection dropped
half-way through a zip. Every request is recorded in :attr:`FakeDhusHub.requests`.

The builders (:func:`build_l2a_safe`, :func:`build_l1c_safe` and the seeded
:func:`render_l2a_safe` / :func:`render_l1c_safe`) write SAFE zips with the real
layout, lossless JPEG2000 bands and the metadata fields the provider reads.
The provider under test is :mod:`asmspotter.providers.dhus`.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import tempfile
import uuid as uuid_module
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import rasterio
import rasterio.drivers
import shapely
from numpy.typing import NDArray
from shapely.geometry import MultiPolygon, Polygon, box
from shapely.geometry.base import BaseGeometry

from asmspotter.grid import AOIGrid, to_lonlat
from asmspotter.synthetic import render_training_pair
from fakes.http import (
    FakeHttpServer,
    RecordedRequest,
    Response,
    Route,
    json_response,
    ranged_response,
)

BAND_RESOLUTION_M: dict[str, int] = {
    "B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20,
    "B08": 10, "B8A": 20, "B09": 60, "B10": 60, "B11": 20, "B12": 20,
}  # fmt: skip
"""Native pixel size of each Sentinel-2 band, metres."""

_BAND_ORDER = tuple(BAND_RESOLUTION_M)

FOREST_L1C: dict[str, float] = {
    "B01": 0.030, "B02": 0.020, "B03": 0.045, "B04": 0.025, "B05": 0.070, "B06": 0.200,
    "B07": 0.270, "B08": 0.300, "B8A": 0.310, "B09": 0.100, "B10": 0.003, "B11": 0.150,
    "B12": 0.070,
}  # fmt: skip
"""Top-of-atmosphere reflectance of closed-canopy forest, roughly (clear sky)."""

CLOUD_L1C: dict[str, float] = {
    "B01": 0.550, "B02": 0.550, "B03": 0.550, "B04": 0.560, "B05": 0.580, "B06": 0.600,
    "B07": 0.610, "B08": 0.620, "B8A": 0.620, "B09": 0.350, "B10": 0.080, "B11": 0.450,
    "B12": 0.350,
}  # fmt: skip
"""Top-of-atmosphere reflectance of a thick cumulus, roughly: bright and flat."""

_HTML = "text/html;charset=utf-8"

_TOMCAT_401 = (
    '<!doctype html><html lang="en"><head><title>HTTP Status 401 - Unauthorized</title>'
    "</head><body><h1>HTTP Status 401 - Unauthorized</h1><hr/><p><b>Type</b> Status Report"
    "</p><p><b>Message</b> Unauthorized</p><p><b>Description</b> The request has not been "
    "applied because it lacks valid authentication credentials for the target resource.</p>"
    "<hr/><h3>Apache Tomcat/8.5.42</h3></body></html>"
)


# ---------------------------------------------------------------------- products
@dataclass
class FakeProduct:
    """One product the fake hub holds.

    Attributes:
        title: Product name, e.g. ``S2B_MSIL2A_20240115T142029_N0509_R010_T21NYF_...``.
        acquired: Sensing start (UTC).
        footprint_lonlat: Product footprint, EPSG:4326.
        cloud_pct: ``cloudcoverpercentage``.
        product_type: ``S2MSI2A`` or ``S2MSI1C``.
        zip_bytes: The SAFE zip served by ``$value``.
        uuid: The hub's product id.
        corrupt: Serve bytes that do not match the MD5 the OData entry reports.
    """

    title: str
    acquired: dt.datetime
    footprint_lonlat: BaseGeometry
    cloud_pct: float
    product_type: str
    zip_bytes: bytes
    uuid: str = field(default_factory=lambda: str(uuid_module.uuid4()))
    corrupt: bool = False

    @property
    def md5(self) -> str:
        """MD5 of the true zip, as the hub reports it."""
        return hashlib.md5(self.zip_bytes).hexdigest()

    @property
    def served_bytes(self) -> bytes:
        """What ``$value`` sends: the zip, or a damaged copy if ``corrupt``."""
        if not self.corrupt:
            return self.zip_bytes
        middle = len(self.zip_bytes) // 2
        return (
            self.zip_bytes[:middle]
            + bytes([self.zip_bytes[middle] ^ 0xFF])
            + (self.zip_bytes[middle + 1 :])
        )


def _dhus_time(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _odata_time(when: dt.datetime) -> str:
    return f"/Date({int(when.timestamp() * 1000)})/"


def _single_or_list(items: list[dict[str, str]]) -> dict[str, str] | list[dict[str, str]]:
    # DHuS serialises a one-element list as the bare element (sentinelsat handles both).
    return items[0] if len(items) == 1 else items


def _gml(footprint: BaseGeometry) -> str:
    polygon = footprint if isinstance(footprint, Polygon) else footprint.convex_hull
    coords = " ".join(f"{lat:.6f},{lon:.6f}" for lon, lat in polygon.exterior.coords)
    return (
        '<gml:Polygon srsName="http://www.opengis.net/gml/srs/epsg.xml#4326" '
        'xmlns:gml="http://www.opengis.net/gml">\n   <gml:outerBoundaryIs>\n      '
        f"<gml:LinearRing>\n         <gml:coordinates>{coords}</gml:coordinates>\n      "
        "</gml:LinearRing>\n   </gml:outerBoundaryIs>\n</gml:Polygon>"
    )


def _multipolygon_wkt(footprint: BaseGeometry) -> str:
    geometry = MultiPolygon([footprint]) if isinstance(footprint, Polygon) else footprint
    return str(shapely.to_wkt(geometry, rounding_precision=8, trim=True))


def _search_entry(product: FakeProduct, root: str) -> dict[str, Any]:
    odata = f"{root}odata/v1/Products('{product.uuid}')"
    size_mb = len(product.zip_bytes) / 1e6
    level = "Level-2A" if product.product_type == "S2MSI2A" else "Level-1C"
    tile = re.search(r"_T(\d\d[A-Z]{3})_", product.title)
    baseline = re.search(r"_N(\d\d)(\d\d)_", product.title)
    strings = {
        "footprint": _multipolygon_wkt(product.footprint_lonlat),
        "gmlfootprint": _gml(product.footprint_lonlat),
        "tileid": tile.group(1) if tile else "",
        "format": "SAFE",
        "processingbaseline": f"{baseline.group(1)}.{baseline.group(2)}" if baseline else "",
        "platformname": "Sentinel-2",
        "filename": f"{product.title}.SAFE",
        "instrumentname": "Multi-Spectral Instrument",
        "instrumentshortname": "MSI",
        "size": f"{size_mb:.2f} MB",
        "producttype": product.product_type,
        "platformserialidentifier": f"Sentinel-{product.title[1:3]}",
        "processinglevel": level,
        "identifier": product.title,
        "uuid": product.uuid,
    }
    stamp = _dhus_time(product.acquired)
    return {
        "title": product.title,
        "link": [
            {"href": f"{odata}/$value"},
            {"rel": "alternative", "href": f"{odata}/"},
            {"rel": "icon", "href": f"{odata}/Products('Quicklook')/$value"},
        ],
        "id": product.uuid,
        "summary": f"Date: {stamp}, Instrument: MSI, Satellite: Sentinel-2, Size: {size_mb:.2f} MB",
        "ondemand": "false",
        "date": [
            {"name": "datatakesensingstart", "content": stamp},
            {"name": "beginposition", "content": stamp},
            {"name": "endposition", "content": stamp},
            {
                "name": "ingestiondate",
                "content": _dhus_time(product.acquired + dt.timedelta(hours=3)),
            },
        ],
        "int": [
            {"name": "orbitnumber", "content": "45123"},
            {"name": "relativeorbitnumber", "content": "10"},
        ],
        "double": _single_or_list(
            [{"name": "cloudcoverpercentage", "content": f"{product.cloud_pct:.4f}"}]
        ),
        "str": [{"name": name, "content": value} for name, value in strings.items()],
    }


def _odata_entry(product: FakeProduct, root: str) -> dict[str, Any]:
    odata = f"{root}odata/v1/Products('{product.uuid}')"
    ingested = product.acquired + dt.timedelta(hours=3)
    return {
        "d": {
            "__metadata": {
                "id": odata,
                "uri": odata,
                "type": "DHuS.Product",
                "content_type": "application/octet-stream",
                "media_src": f"{odata}/$value",
                "edit_media": f"{odata}/$value",
            },
            "Id": product.uuid,
            "Name": product.title,
            "ContentType": "application/octet-stream",
            "ContentLength": str(len(product.zip_bytes)),
            "ChildrenNumber": "0",
            "Value": None,
            "CreationDate": _odata_time(ingested),
            "IngestionDate": _odata_time(ingested),
            "ModificationDate": _odata_time(ingested),
            "EvictionDate": None,
            "Online": True,
            "OnDemand": False,
            "ContentDate": {
                "__metadata": {"type": "DHuS.TimeRange"},
                "Start": _odata_time(product.acquired),
                "End": _odata_time(product.acquired),
            },
            "Checksum": {
                "__metadata": {"type": "DHuS.Checksum"},
                "Algorithm": "MD5",
                "Value": product.md5.upper(),
            },
            "ContentGeometry": _gml(product.footprint_lonlat),
            "Products": {"__deferred": {"uri": f"{odata}/Products"}},
            "Nodes": {"__deferred": {"uri": f"{odata}/Nodes"}},
            "Attributes": {"__deferred": {"uri": f"{odata}/Attributes"}},
            "Class": {"__deferred": {"uri": f"{odata}/Class"}},
        }
    }


# ---------------------------------------------------------------------- the query
_RANGE = r'\["?([^"\]]+?)"? TO "?([^"\]]+?)"?\]'


def _matches(product: FakeProduct, query: str) -> bool:
    """Apply the Solr clauses sentinelsat sends (the ones the provider uses)."""
    for attribute, value in re.findall(r'(platformname|producttype):"([^"]*)"', query):
        actual = "Sentinel-2" if attribute == "platformname" else product.product_type
        if actual != value:
            return False
    if match := re.search(r"beginPosition:" + _RANGE, query, re.IGNORECASE):
        start, end = (_parse_solr_time(text) for text in match.groups())
        if not start <= product.acquired <= end:
            return False
    if match := re.search(r"cloudcoverpercentage:" + _RANGE, query):
        low, high = (float(text) for text in match.groups())
        if not low <= product.cloud_pct <= high:
            return False
    match = re.search(r'footprint:"Intersects\((.+)\)"', query)
    return not (match and not shapely.from_wkt(match.group(1)).intersects(product.footprint_lonlat))


def _parse_solr_time(text: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


# ---------------------------------------------------------------------- the server
_PRODUCT = r"odata/v1/Products\('([^']+)'\)"


class FakeDhusHub(FakeHttpServer):
    """A DHuS hub on 127.0.0.1, as a context manager.

    Routes (for :meth:`inject` and :meth:`requests_to`): ``search``, ``product``,
    ``product-online``, ``product-zip``.

    Example:
        >>> with FakeDhusHub([product], user="u", password="p") as hub:  # doctest: +SKIP
        ...     api = SentinelAPI("u", "p", api_url=hub.url)
    """

    server_header = "Apache-Coyote/1.1"

    def __init__(
        self,
        products: Iterable[FakeProduct] = (),
        *,
        user: str = "tester",
        password: str = "secret",
        root_path: str = "/dhus/",
        page_limit: int = 100,
    ) -> None:
        """Hold ``products`` and accept the credentials ``user``/``password``.

        Args:
            products: What the hub serves.
            user: Accepted user name.
            password: Accepted password.
            root_path: Path of the API root (``/dhus/`` as on most DHuS hubs).
            page_limit: Most rows one search page returns (DHuS: 100).
        """
        super().__init__()
        self.products = {product.uuid: product for product in products}
        self.user = user
        self.password = password
        self.root_path = root_path
        self.page_limit = page_limit

    @property
    def url(self) -> str:
        """The API root, e.g. ``http://127.0.0.1:PORT/dhus/``."""
        return f"{self.root_url}{self.root_path}"

    def add(self, product: FakeProduct) -> FakeProduct:
        """Serve one more product."""
        self.products[product.uuid] = product
        return product

    @property
    def zip_requests(self) -> list[RecordedRequest]:
        """The GET requests for product zips (``Products('<uuid>')/$value``), in order."""
        return [r for r in self.requests_to("product-zip") if r.method == "GET"]

    def routes(self) -> list[Route]:
        """OpenSearch, a product's OData entry, its Online flag and its zip."""
        root = re.escape(self.root_path)
        return [
            Route("search", ("GET",), f"{root}search", self._search),
            Route("product", ("GET",), f"{root}{_PRODUCT}", self._product),
            Route("product-online", ("GET",), rf"{root}{_PRODUCT}/Online/\$value", self._online),
            Route("product-zip", ("GET",), rf"{root}{_PRODUCT}/\$value", self._zip),
        ]

    def refuse(self, request: RecordedRequest) -> Response | None:
        """Tomcat's 401 page unless the request carries the hub's Basic credentials."""
        header = request.headers.get("authorization", "")
        try:
            decoded = base64.b64decode(header.removeprefix("Basic ")).decode()
        except ValueError:
            decoded = ""
        if header.startswith("Basic ") and decoded == f"{self.user}:{self.password}":
            return None
        realm = 'Basic realm="Sentinels Scientific Data Hub Search"'
        return Response(401, _TOMCAT_401.encode(), _HTML, {"WWW-Authenticate": realm})

    def error(self, status: int) -> Response:
        """Tomcat's 401 page, or the hub's maintenance page with ``Retry-After``."""
        if status == 401:
            return Response(401, _TOMCAT_401.encode(), _HTML)
        body = (
            f"<html><body><h1>HTTP Status {status}</h1><p>The Sentinels Scientific Data Hub "
            "is under maintenance; please try again later.</p></body></html>"
        ).encode()
        return Response(status, body, _HTML, {"Retry-After": "1"})

    def not_found(self, request: RecordedRequest) -> Response:
        """A plain 404."""
        return Response(404, b"Not Found", "text/plain")

    # -------------------------------------------------------------- endpoints
    def _found(self, match: re.Match[str]) -> FakeProduct | Response:
        product = self.products.get(match.group(1))
        if product is not None:
            return product
        message = {
            "error": {
                "code": None,
                "message": {"lang": "en", "value": "Invalid key (Id) to access Products"},
            }
        }
        return json_response(message, 404)

    def _product(self, request: RecordedRequest, match: re.Match[str]) -> Response:
        product = self._found(match)
        if isinstance(product, Response):
            return product
        return json_response(_odata_entry(product, self.url))

    def _online(self, request: RecordedRequest, match: re.Match[str]) -> Response:
        product = self._found(match)
        return product if isinstance(product, Response) else Response(200, b"true", "text/plain")

    def _zip(self, request: RecordedRequest, match: re.Match[str]) -> Response:
        product = self._found(match)
        if isinstance(product, Response):
            return product
        headers = {
            "Content-Disposition": f'inline;filename="{product.title}.zip"',
            "ETag": product.md5,
        }
        return ranged_response(
            request,
            product.served_bytes,
            "application/octet-stream",
            headers=headers,
            file_name=f"{product.title}.zip",
        )

    def _search(self, request: RecordedRequest, match: re.Match[str]) -> Response:
        q = request.query.get("q", "")
        rows = min(int(request.query.get("rows", "10")), self.page_limit)
        start = int(request.query.get("start", "0"))
        found = sorted(
            (p for p in self.products.values() if _matches(p, q)),
            key=lambda p: (p.acquired, p.title),
        )
        page = [_search_entry(p, self.url) for p in found[start : start + rows]]
        feed: dict[str, Any] = {
            "xmlns:opensearch": "http://a9.com/-/spec/opensearch/1.1/",
            "xmlns": "http://www.w3.org/2005/Atom",
            "title": f"Sentinels Scientific Data Hub search results for: {q}",
            "subtitle": f"Displaying {len(page)} results. Request done in 0.001 seconds.",
            "opensearch:totalResults": str(len(found)),
            "opensearch:startIndex": str(start),
            "opensearch:itemsPerPage": str(rows),
            "opensearch:Query": {"role": "request", "searchTerms": q, "startPage": "1"},
        }
        if page:
            feed["entry"] = page[0] if len(page) == 1 else page
        return json_response({"feed": feed})


# ---------------------------------------------------------------------- SAFE builders
@dataclass(frozen=True)
class SafeProduct:
    """A SAFE zip written by a builder, and what it holds.

    Attributes:
        title: Product name (the zip is ``<title>.zip``, its folder ``<title>.SAFE``).
        zip_path: The zip on disk.
        product_type: ``S2MSI2A`` or ``S2MSI1C``.
        acquired: Sensing start (UTC).
        grid: The 10 m tile grid the bands cover.
        reflectance: (4, H, W) float32 blue, green, red, nir at 10 m, exactly what the
            stored DNs decode to: (DN + offset) / 10000.
        scl: (H/2, W/2) uint8 scene classification at 20 m (L2A), else None.
    """

    title: str
    zip_path: Path
    product_type: str
    acquired: dt.datetime
    grid: AOIGrid
    reflectance: NDArray[np.float32]
    scl: NDArray[np.uint8] | None

    @property
    def footprint_lonlat(self) -> BaseGeometry:
        """The tile's outline in EPSG:4326."""
        return to_lonlat(box(*self.grid.bounds), self.grid.epsg)

    def as_fake_product(self, *, cloud_pct: float = 10.0, corrupt: bool = False) -> FakeProduct:
        """This product as the fake hub serves it."""
        return FakeProduct(
            title=self.title,
            acquired=self.acquired,
            footprint_lonlat=self.footprint_lonlat,
            cloud_pct=cloud_pct,
            product_type=self.product_type,
            zip_bytes=self.zip_path.read_bytes(),
            corrupt=corrupt,
        )


def s2_title(level: Literal["L2A", "L1C"], acquired: dt.datetime, tile: str, baseline: str) -> str:
    """A product name in the Sentinel-2 naming convention."""
    stamp = acquired.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S")
    return f"S2B_MSI{level}_{stamp}_N{baseline.replace('.', '')}_R010_T{tile}_{stamp}"


def _jp2_driver() -> str:
    # GDAL opens a band by its content, not its name: where the JPEG2000 driver is
    # missing, a GeoTIFF under the .jp2 name reads the same.
    extensions = rasterio.drivers.raster_driver_extensions()
    return "JP2OpenJPEG" if extensions.get("jp2") == "JP2OpenJPEG" else "GTiff"


def _write_band(path: Path, dn: NDArray[np.uint16], grid: AOIGrid, resolution_m: float) -> None:
    driver = _jp2_driver()
    # Lossless JPEG2000 (reversible 5/3 wavelet), so the test can compare exact DNs.
    options = {"QUALITY": "100", "REVERSIBLE": "YES"} if driver == "JP2OpenJPEG" else {}
    transform = rasterio.Affine(resolution_m, 0, grid.left_m, 0, -resolution_m, grid.top_m)
    with rasterio.open(
        path, "w", driver=driver, width=dn.shape[1], height=dn.shape[0], count=1,
        dtype="uint16", crs=f"EPSG:{grid.epsg}", transform=transform, **options,
    ) as dst:  # fmt: skip
        dst.write(dn, 1)


def _metadata_xml(
    level: str, title: str, acquired: dt.datetime, baseline: str, offset: int | None
) -> str:
    """``MTD_MSIL2A.xml`` / ``MTD_MSIL1C.xml`` with the fields the provider reads."""
    if level == "L2A":
        root, tag, wrapper = "Level-2A_User_Product", "BOA_ADD_OFFSET", "BOA_ADD_OFFSET_VALUES_LIST"
        quant = (
            "<QUANTIFICATION_VALUES_LIST>"
            '<BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>'
            '<AOT_QUANTIFICATION_VALUE unit="none">1000.0</AOT_QUANTIFICATION_VALUE>'
            "</QUANTIFICATION_VALUES_LIST>"
        )
    else:
        root, tag, wrapper = "Level-1C_User_Product", "RADIO_ADD_OFFSET", "Radiometric_Offset_List"
        quant = '<QUANTIFICATION_VALUE unit="none">10000</QUANTIFICATION_VALUE>'
    offsets = ""
    if offset is not None:
        lines = "".join(f'<{tag} band_id="{i}">{offset}</{tag}>' for i in range(len(_BAND_ORDER)))
        offsets = f"<{wrapper}>{lines}</{wrapper}>"
    psd = f"https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_{root[:8]}.xsd"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<n1:{root} xmlns:n1="{psd}"><n1:General_Info><Product_Info>'
        f"<PRODUCT_START_TIME>{_dhus_time(acquired)}</PRODUCT_START_TIME>"
        f"<PRODUCT_URI>{title}.SAFE</PRODUCT_URI>"
        f"<PROCESSING_LEVEL>Level-{level[1:]}</PROCESSING_LEVEL>"
        f"<PRODUCT_TYPE>S2MSI{level[1:]}</PRODUCT_TYPE>"
        f"<PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>"
        f"</Product_Info><Product_Image_Characteristics>{quant}{offsets}"
        f"</Product_Image_Characteristics></n1:General_Info></n1:{root}>"
    )


def _encode(reflectance: NDArray[np.floating], offset: int | None) -> NDArray[np.uint16]:
    """DN = reflectance x 10000 - offset, kept >= 1 (0 means no data)."""
    dn = np.round(np.asarray(reflectance, np.float64) * 10_000.0) - (offset or 0)
    return np.clip(dn, 1, 65535).astype(np.uint16)


def _decode(dn: NDArray[np.uint16], offset: int | None) -> NDArray[np.float32]:
    return ((dn.astype(np.float64) + (offset or 0)) / 10_000.0).astype(np.float32)


def _write_safe_zip(
    zip_path: Path, title: str, metadata_name: str, metadata: str, bands: Mapping[str, Path]
) -> None:
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{title}.SAFE/{metadata_name}", metadata)
        archive.writestr(f"{title}.SAFE/manifest.safe", "<xfdu:XFDU/>")
        for member, source in bands.items():
            archive.write(source, f"{title}.SAFE/{member}")


def build_l2a_safe(
    folder: Path,
    grid: AOIGrid,
    reflectance: NDArray[np.floating],
    scl: NDArray[np.integer],
    *,
    acquired: dt.datetime,
    tile: str = "21NYF",
    baseline: str = "05.09",
    boa_add_offset: int | None = -1000,
    omit_bands: Iterable[str] = (),
) -> SafeProduct:
    """Write an L2A SAFE zip: B02, B03, B04, B08 at 10 m, SCL at 20 m, MTD_MSIL2A.xml.

    Args:
        folder: Where ``<title>.zip`` goes.
        grid: 10 m tile grid; its width and height must be even (SCL is at 20 m).
        reflectance: (4, H, W) surface reflectance, blue, green, red, nir.
        scl: (H/2, W/2) scene classification classes.
        acquired: Sensing time (UTC).
        tile: MGRS tile id in the product name.
        baseline: Processing baseline, e.g. ``"05.09"``.
        boa_add_offset: ``BOA_ADD_OFFSET`` of every band, DN; None leaves the list out.
        omit_bands: Band names (``"B08"``, ``"SCL"``) to leave out of the zip.

    Returns:
        The product, with the reflectance exactly as its DNs decode.
    """
    omitted = set(omit_bands)
    title = s2_title("L2A", acquired, tile, baseline)
    stamp = acquired.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S")
    granule = f"GRANULE/L2A_T{tile}_A045123_{stamp}/IMG_DATA"
    dn = _encode(reflectance, boa_add_offset)
    with tempfile.TemporaryDirectory() as scratch:
        members: dict[str, Path] = {}
        for index, band in enumerate(("B02", "B03", "B04", "B08")):
            if band in omitted:
                continue
            path = Path(scratch) / f"{band}.jp2"
            _write_band(path, dn[index], grid, 10)
            members[f"{granule}/R10m/T{tile}_{stamp}_{band}_10m.jp2"] = path
        if "SCL" not in omitted:
            path = Path(scratch) / "SCL.jp2"
            _write_band(path, np.asarray(scl, np.uint16), grid, 20)
            members[f"{granule}/R20m/T{tile}_{stamp}_SCL_20m.jp2"] = path
        metadata = _metadata_xml("L2A", title, acquired, baseline, boa_add_offset)
        zip_path = folder / f"{title}.zip"
        _write_safe_zip(zip_path, title, "MTD_MSIL2A.xml", metadata, members)
    return SafeProduct(
        title, zip_path, "S2MSI2A", acquired, grid, _decode(dn, boa_add_offset),
        np.asarray(scl, np.uint8),
    )  # fmt: skip


def build_l1c_safe(
    folder: Path,
    grid: AOIGrid,
    band_reflectance: Mapping[str, NDArray[np.floating]],
    *,
    acquired: dt.datetime,
    tile: str = "21NYF",
    baseline: str = "05.09",
    radio_add_offset: int | None = -1000,
) -> SafeProduct:
    """Write an L1C SAFE zip: all 13 bands at their native resolution, MTD_MSIL1C.xml.

    Args:
        folder: Where ``<title>.zip`` goes.
        grid: 10 m tile grid; width and height must be multiples of 6 (60 m bands).
        band_reflectance: Band name -> top-of-atmosphere reflectance at that band's
            resolution (see :data:`BAND_RESOLUTION_M`).
        acquired: Sensing time (UTC).
        tile: MGRS tile id in the product name.
        baseline: Processing baseline.
        radio_add_offset: ``RADIO_ADD_OFFSET`` of every band, DN; None leaves it out.

    Returns:
        The product; ``reflectance`` holds B02, B03, B04, B08 as their DNs decode.
    """
    title = s2_title("L1C", acquired, tile, baseline)
    stamp = acquired.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S")
    granule = f"GRANULE/L1C_T{tile}_A045123_{stamp}/IMG_DATA"
    decoded: dict[str, NDArray[np.float32]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        members: dict[str, Path] = {}
        for band, values in band_reflectance.items():
            dn = _encode(values, radio_add_offset)
            decoded[band] = _decode(dn, radio_add_offset)
            path = Path(scratch) / f"{band}.jp2"
            _write_band(path, dn, grid, BAND_RESOLUTION_M[band])
            members[f"{granule}/T{tile}_{stamp}_{band}.jp2"] = path
        metadata = _metadata_xml("L1C", title, acquired, baseline, radio_add_offset)
        zip_path = folder / f"{title}.zip"
        _write_safe_zip(zip_path, title, "MTD_MSIL1C.xml", metadata, members)
    reflectance = np.stack([decoded[b] for b in ("B02", "B03", "B04", "B08")])
    return SafeProduct(title, zip_path, "S2MSI1C", acquired, grid, reflectance, None)


def render_l2a_safe(
    folder: Path, grid: AOIGrid, *, seed: int, acquired: dt.datetime, **options: Any
) -> SafeProduct:
    """A seeded L2A product: synthetic forest/mining reflectance and a known SCL.

    The SCL is vegetation (4) everywhere, with cloud high probability (9) in the
    top-left quarter and cloud shadow (3) in the bottom-right quarter, so with the
    default masked classes exactly half of the 20 m pixels are masked.

    Args:
        folder: Where the zip goes.
        grid: 10 m tile grid, even width and height.
        seed: Seed of the reflectance (:func:`asmspotter.synthetic.render_training_pair`).
        acquired: Sensing time.
        **options: Passed to :func:`build_l2a_safe` (baseline, omit_bands, ...).
    """
    if grid.width_px != grid.height_px:
        raise ValueError(f"render_l2a_safe needs a square grid, got {grid.shape}")
    reflectance, _ = render_training_pair(np.random.default_rng(seed), size_px=grid.width_px)
    half = (grid.height_px // 2, grid.width_px // 2)
    scl = np.full(half, 4, np.uint8)
    scl[: half[0] // 2, : half[1] // 2] = 9
    scl[half[0] // 2 :, half[1] // 2 :] = 3
    return build_l2a_safe(folder, grid, reflectance, scl, acquired=acquired, **options)


def render_l1c_safe(
    folder: Path, grid: AOIGrid, *, seed: int, acquired: dt.datetime, **options: Any
) -> SafeProduct:
    """A seeded L1C product: forest everywhere, a thick cloud over the top third.

    The 10 m bands carry the synthetic reflectance (plus the cloud); the other bands
    the flat spectra :data:`FOREST_L1C` / :data:`CLOUD_L1C`.
    """
    rows = grid.height_px
    reflectance, _ = render_training_pair(np.random.default_rng(seed), size_px=grid.width_px)
    bands: dict[str, NDArray[np.floating]] = {}
    for band, resolution_m in BAND_RESOLUTION_M.items():
        factor = resolution_m // 10
        shape = (rows // factor, grid.width_px // factor)
        if band in ("B02", "B03", "B04", "B08"):
            values = reflectance[("B02", "B03", "B04", "B08").index(band)].copy()
        else:
            values = np.full(shape, FOREST_L1C[band], np.float32)
        values[: shape[0] // 3] = CLOUD_L1C[band]
        bands[band] = values
    return build_l1c_safe(folder, grid, bands, acquired=acquired, **options)


__all__ = [
    "BAND_RESOLUTION_M",
    "FakeDhusHub",
    "FakeProduct",
    "SafeProduct",
    "build_l1c_safe",
    "build_l2a_safe",
    "render_l1c_safe",
    "render_l2a_safe",
    "s2_title",
]
