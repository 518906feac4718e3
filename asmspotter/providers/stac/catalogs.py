"""The STAC catalogues we read Sentinel-2 L2A from, and the names a scene reference carries.

Each preset says where a catalogue lives and how its items name their assets; the
provider (:mod:`.provider`) reads them, :mod:`.radiometry` reads the item properties.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

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

CLOUD_COVER_PROPERTY = "eo:cloud_cover"


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
