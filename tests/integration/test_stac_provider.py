"""The Sentinel-2 STAC provider against the loopback fake STAC API (no internet).

Fixture scenes are generated once per session (``fakes.stac_server``):
512x512 px bands at 10 m (128 px COG tiles, uncompressed) and a 256x256 SCL at
20 m, in UTM 21N with the tile's top-left corner at (600000, 560000). The AOI is
the 128x128 px square of 10 m pixels [128, 256) in rows and columns of that tile:
1/16 of its area, one COG tile per band. By construction (``build_scl``) the AOI holds a 64x64 px cloud block
(SCL 9) and a 64x64 px shadow block (SCL 3): 8192 masked pixels of 16384.
"""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.vrt import WarpedVRT
from shapely.geometry import box

from asmspotter.composite.composite import composite_scenes
from asmspotter.errors import (
    ProviderAuthError,
    ProviderNotConfiguredError,
    ProviderUnavailableError,
    SceneReadError,
)
from asmspotter.grid import build_grid, to_lonlat
from asmspotter.providers.stac import StacProvider
from asmspotter.providers.stac.catalogs import RADIOMETRY_KEY
from asmspotter.providers.stac.hrefs import redact_url, resolve_asset_href
from asmspotter.providers.stac.radiometry import resolve_radiometry
from asmspotter.scenes import TimeWindow
from asmspotter.sources import StacSourceConfig
from fakes.stac_server import (
    FAKE_SAS_TOKEN,
    FakeScene,
    FakeStacApi,
    build_item,
    write_s2_scene,
)

EPSG = 32621
TILE_LEFT_M, TILE_TOP_M = 600_000.0, 560_000.0
AOI_FIRST_PX, AOI_SIZE_PX = 128, 128
MASKED_IN_AOI_PX = 8192  # 64x64 cloud + 64x64 shadow
WINDOW = TimeWindow(dt.date(2024, 3, 1), dt.date(2024, 3, 31))
ACQUIRED = dt.datetime(2024, 3, 10, 14, 5, 31, tzinfo=dt.UTC)


# --------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, FakeScene]:
    """Scene ``raw``: DN = reflectance x 1e4 + 1000 (baseline >= 04.00, offset kept);
    scene ``harmonised``: DN = reflectance x 1e4 (older baseline, or offset removed)."""
    folder = tmp_path_factory.mktemp("s2-cogs")
    return {
        "raw": write_s2_scene(folder, "raw", seed=11, dn_offset=1000),
        "harmonised": write_s2_scene(folder, "harmonised", seed=12, dn_offset=0),
    }


@pytest.fixture(scope="session")
def files_dir(scenes: dict[str, FakeScene]) -> Path:
    return scenes["raw"].files["blue"].parent


@pytest.fixture(scope="session")
def aoi_lonlat():
    """The AOI, inset 1 m inside its pixels so the AOI grid is exactly 128x128 px."""
    left = TILE_LEFT_M + AOI_FIRST_PX * 10 + 1
    top = TILE_TOP_M - AOI_FIRST_PX * 10 - 1
    right = TILE_LEFT_M + (AOI_FIRST_PX + AOI_SIZE_PX) * 10 - 1
    bottom = TILE_TOP_M - (AOI_FIRST_PX + AOI_SIZE_PX) * 10 + 1
    return to_lonlat(box(left, bottom, right, top), EPSG)


@pytest.fixture(scope="session")
def grid(aoi_lonlat):
    grid = build_grid(aoi_lonlat, 10.0)
    assert (grid.epsg, grid.width_px, grid.height_px) == (EPSG, AOI_SIZE_PX, AOI_SIZE_PX)
    return grid


@pytest.fixture()
def api(files_dir: Path):
    with FakeStacApi(files_dir=files_dir) as running:
        yield running


def make_provider(api: FakeStacApi, grid, **options) -> StacProvider:
    config = {"provider": "sentinel-2-stac", "url": api.base_url, **options}
    environ = config.pop("environ", {})
    return StacProvider(
        StacSourceConfig.model_validate(config),
        grid,
        "test-aoi",
        sas_token_url=f"{api.root_url}/sas/token",
        retry_backoff_s=0.0,
        environ=environ,
    )


def add_item(api: FakeStacApi, scene: FakeScene, item_id: str, **options) -> dict:
    options.setdefault("catalog", "earth-search")
    options.setdefault("acquired", ACQUIRED)
    options.setdefault("cloud_pct", 5.0)
    item = build_item(scene, item_id, base_url=api.root_url, **options)
    api.items.append(item)
    return item


def truth_window(scene: FakeScene) -> np.ndarray:
    window = slice(AOI_FIRST_PX, AOI_FIRST_PX + AOI_SIZE_PX)
    return scene.reflectance[:, window, window]


def truth_mask(scene: FakeScene, classes=(0, 1, 3, 8, 9, 10)) -> np.ndarray:
    rows = np.arange(AOI_FIRST_PX, AOI_FIRST_PX + AOI_SIZE_PX) // 2
    return np.isin(scene.scl[np.ix_(rows, rows)], classes)


def read_scene(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        data = src.read().astype(np.float64)
        return data * np.array(src.scales)[:, None, None] + np.array(src.offsets)[:, None, None]


def search_one(provider: StacProvider, aoi_lonlat):
    refs = provider.search(aoi_lonlat, WINDOW)
    assert len(refs) == 1, refs
    return refs[0]


# --------------------------------------------------------------------------------------
# Search
# --------------------------------------------------------------------------------------
def test_search_follows_every_page(api, grid, aoi_lonlat, scenes):
    """Five items at two per page: three POST pages, five SceneRefs."""
    for day in range(1, 6):
        add_item(
            api,
            scenes["raw"],
            f"S2A_21NXF_202403{day:02d}_0_L2A",
            acquired=ACQUIRED.replace(day=day),
        )
    refs = make_provider(api, grid).search(aoi_lonlat, WINDOW)

    assert [r.scene_id for r in refs] == [f"S2A_21NXF_202403{d:02d}_0_L2A" for d in range(1, 6)]
    assert len(api.requests_to("search")) == 3
    assert {r.method for r in api.requests_to("search")} == {"POST"}
    ref = refs[0]
    assert ref.provider == "sentinel-2-stac"
    assert ref.acquired == ACQUIRED.replace(day=1)
    assert ref.cloud_pct == 5.0
    assert ref.footprint_lonlat.contains(aoi_lonlat)
    assert ref.assets["red"] == f"{api.root_url}/files/raw_red.tif"
    assert set(ref.assets) == {"blue", "green", "red", "nir", "scl", RADIOMETRY_KEY}


def test_search_leaves_out_other_dates_and_places(api, grid, aoi_lonlat, scenes):
    add_item(api, scenes["raw"], "in-window")
    add_item(
        api, scenes["raw"], "too-late", acquired=dt.datetime(2024, 4, 1, 0, 0, 1, tzinfo=dt.UTC)
    )
    far = write_s2_scene(
        scenes["raw"].files["blue"].parent / "far", "far", seed=3, size_px=64, left_m=200_000.0
    )
    add_item(api, far, "elsewhere")
    refs = make_provider(api, grid).search(aoi_lonlat, WINDOW)
    assert [r.scene_id for r in refs] == ["in-window"]


@pytest.mark.parametrize("supports_query", [True, False], ids=["server-filter", "client-filter"])
def test_cloud_filter(api, grid, aoi_lonlat, scenes, supports_query):
    """max_cloud_pct 40 keeps 10 % and 40 %, drops 41 % and 90 %, with or without ``query``."""
    api.supports_query = supports_query
    for cloud in (10.0, 40.0, 41.0, 90.0):
        add_item(api, scenes["raw"], f"cloud-{cloud:.0f}", cloud_pct=cloud)
    refs = make_provider(api, grid, max_cloud_pct=40).search(aoi_lonlat, WINDOW)

    assert sorted(r.scene_id for r in refs) == ["cloud-10", "cloud-40"]
    sent_query = any("eo:cloud_cover" in r.query_string for r in api.requests_to("search"))
    assert len(api.requests_to("search")) == (1 if supports_query else 2)
    assert not sent_query  # POST: the query travels in the body, never in the URL


def test_search_retries_a_500_once(api, grid, aoi_lonlat, scenes):
    add_item(api, scenes["raw"], "only")
    api.inject(500, route="search", times=1)
    refs = make_provider(api, grid).search(aoi_lonlat, WINDOW)
    assert [r.scene_id for r in refs] == ["only"]
    assert [r.status for r in api.requests_to("search")] == [500, 200]


def test_search_5xx_that_persists_is_unavailable(api, grid, aoi_lonlat, scenes):
    add_item(api, scenes["raw"], "only")
    api.inject(503, route="search", times=None)
    with pytest.raises(ProviderUnavailableError, match=r"HTTP 503.*retried"):
        make_provider(api, grid).search(aoi_lonlat, WINDOW)
    assert len(api.requests_to("search")) == 3  # http_tries


def test_search_429_is_unavailable_without_inner_retry(api, grid, aoi_lonlat):
    api.inject(429, route="search", times=None)
    with pytest.raises(ProviderUnavailableError, match="HTTP 429"):
        make_provider(api, grid).search(aoi_lonlat, WINDOW)
    assert len(api.requests_to("search")) == 1


def test_search_401_is_auth_error_naming_the_fix_and_not_retried(api, grid, aoi_lonlat):
    api.inject(401, route="search", times=None)
    provider = make_provider(api, grid, token_env="STAC_TOKEN", environ={"STAC_TOKEN": "s3cret"})
    with pytest.raises(
        ProviderAuthError, match=r"HTTP 401.*environment variable STAC_TOKEN"
    ) as info:
        provider.search(aoi_lonlat, WINDOW)
    assert "s3cret" not in str(info.value)
    assert "test-aoi" in str(info.value) and api.base_url in str(info.value)
    assert len(api.requests_to("search")) == 1
    assert "authorization" in api.requests_to("search")[0].headers


def test_unset_token_env_is_not_configured(api, grid, aoi_lonlat):
    provider = make_provider(api, grid, token_env="STAC_TOKEN", environ={})
    with pytest.raises(ProviderNotConfiguredError, match="STAC_TOKEN, which is not set"):
        provider.search(aoi_lonlat, WINDOW)
    assert api.requests == []


def test_unreachable_catalogue_is_unavailable(grid, aoi_lonlat, files_dir):
    with FakeStacApi(files_dir=files_dir) as gone:
        provider = make_provider(gone, grid)
    with pytest.raises(ProviderUnavailableError, match="connection failed"):
        provider.search(aoi_lonlat, WINDOW)


# --------------------------------------------------------------------------------------
# Download
# --------------------------------------------------------------------------------------
def test_download_reads_only_the_aoi_window(api, grid, aoi_lonlat, scenes, tmp_path):
    add_item(api, scenes["raw"], "window")
    provider = make_provider(api, grid)
    ref = search_one(provider, aoi_lonlat)
    api.clear_log()
    scene = provider.download(ref, tmp_path)

    reads = [r for r in api.requests_to("file") if r.method == "GET"]
    assert reads and all("range" in r.headers and r.status == 206 for r in reads), reads
    served = sum(r.body_bytes for r in api.requests_to("file"))
    file_bytes = sum(p.stat().st_size for p in scenes["raw"].files.values())
    # The AOI is 1/16 of the tile, one 128 px tile per band; GDAL also reads each
    # file's first 16 KiB (header) at open.
    assert served < 0.15 * file_bytes, (served, file_bytes)
    assert scene.reflectance_path == tmp_path / "sentinel-2-stac" / "window" / "reflectance.tif"
    with rasterio.open(scene.reflectance_path) as src:
        assert (src.count, src.width, src.height) == (4, AOI_SIZE_PX, AOI_SIZE_PX)
        assert src.crs.to_epsg() == EPSG and src.transform == grid.transform
        assert src.tags()["SCENE_ID"] == "window"


CASES = {
    # Earth Search, baseline 05.09, offset still in the DN: apply raster:bands -0.1.
    "earth-search-raw": ("earth-search", "raw", "05.09", False),
    # Earth Search, offset already removed: raster:bands still say -0.1; the flag wins.
    "earth-search-offset-applied": ("earth-search", "harmonised", "05.09", True),
    # Earth Search, baseline 02.14 (2021): no offset.
    "earth-search-old-baseline": ("earth-search", "harmonised", "02.14", False),
    # Planetary Computer: raw DN, no raster metadata; baseline >= 04.00 -> -1000 DN.
    "planetary-computer-raw": ("planetary-computer", "raw", "05.10", False),
    "planetary-computer-old-baseline": ("planetary-computer", "harmonised", "03.01", False),
    # CDSE: raster:scale / raster:offset on the asset, processing:version.
    "cdse-raw": ("cdse", "raw", "05.00", False),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_scale_and_offset_give_reflectance(api, grid, aoi_lonlat, scenes, tmp_path, case):
    catalog, scene_key, baseline, applied = CASES[case]
    scene = scenes[scene_key]
    options = {"catalog": catalog}
    if catalog == "planetary-computer":
        api.require_sas_token = True
    if catalog == "cdse":
        api.require_bearer = "cdse-token"
        options.update(token_env="CDSE_TOKEN", environ={"CDSE_TOKEN": "cdse-token"})
    add_item(
        api,
        scene,
        f"{case}-item",
        catalog=catalog,
        processing_baseline=baseline,
        boa_offset_applied=applied,
    )
    provider = make_provider(api, grid, **options)
    local = provider.download(search_one(provider, aoi_lonlat), tmp_path)

    got = read_scene(local.reflectance_path)
    np.testing.assert_allclose(got, truth_window(scene), atol=1.5e-4)
    if catalog == "planetary-computer":
        assert len(api.requests_to("sas-token")) == 1  # fetched once, reused
        assert all(FAKE_SAS_TOKEN in r.query_string for r in api.requests_to("file"))
    if catalog == "cdse":
        assert all("authorization" in r.headers for r in api.requests_to("file"))


def test_scl_classes_become_the_cloud_mask(api, grid, aoi_lonlat, scenes, tmp_path):
    add_item(api, scenes["raw"], "scl")
    provider = make_provider(api, grid)
    local = provider.download(search_one(provider, aoi_lonlat), tmp_path / "default")
    with rasterio.open(local.cloud_mask_path) as src:
        mask = src.read(1).astype(bool)
    assert mask.sum() == MASKED_IN_AOI_PX
    np.testing.assert_array_equal(mask, truth_mask(scenes["raw"]))

    clouds_only = make_provider(api, grid, masked_scl_classes=[9])
    local = clouds_only.download(search_one(clouds_only, aoi_lonlat), tmp_path / "clouds")
    with rasterio.open(local.cloud_mask_path) as src:
        assert src.read(1).sum() == 64 * 64


def test_dropped_connection_leaves_no_file_and_the_next_try_succeeds(
    api, grid, aoi_lonlat, scenes, tmp_path
):
    add_item(api, scenes["raw"], "dropped")
    provider = make_provider(api, grid)
    ref = search_one(provider, aoi_lonlat)
    api.inject("drop", contains="raw_nir.tif", times=None)
    with pytest.raises(ProviderUnavailableError, match=r"scene dropped, asset nir"):
        provider.download(ref, tmp_path)
    folder = tmp_path / "sentinel-2-stac" / "dropped"
    assert not (folder / "reflectance.tif").exists()
    assert not (folder / "cloudmask.tif").exists()

    api.clear_faults()
    local = provider.download(ref, tmp_path)
    np.testing.assert_allclose(
        read_scene(local.reflectance_path), truth_window(scenes["raw"]), atol=1.5e-4
    )


def test_asset_503_once_is_retried_within_the_download(api, grid, aoi_lonlat, scenes, tmp_path):
    add_item(api, scenes["raw"], "blip")
    provider = make_provider(api, grid)
    ref = search_one(provider, aoi_lonlat)
    api.inject(503, contains="raw_green.tif", times=1)
    provider.download(ref, tmp_path)
    assert [r.status for r in api.requests_to("file") if r.path.endswith("raw_green.tif")][:2] == [
        503,
        200,
    ]


def test_asset_5xx_that_persists_is_unavailable_and_not_cached(
    api, grid, aoi_lonlat, scenes, tmp_path
):
    """Three 503s outlast the in-download retries; the next attempt in the same
    process reaches the server again (GDAL's cached failure is dropped) and succeeds."""
    add_item(api, scenes["raw"], "busy")
    provider = make_provider(api, grid)
    ref = search_one(provider, aoi_lonlat)
    api.inject(503, contains="raw_green.tif", times=3)
    with pytest.raises(ProviderUnavailableError, match=r"scene busy, asset green.*503"):
        provider.download(ref, tmp_path)
    assert not (tmp_path / "sentinel-2-stac" / "busy" / "reflectance.tif").exists()
    local = provider.download(ref, tmp_path)
    assert local.reflectance_path.exists()


def test_missing_asset_is_a_scene_read_error(api, grid, aoi_lonlat, scenes, tmp_path):
    add_item(api, scenes["raw"], "S2B_21NXF_20240310_0_L2A")
    provider = make_provider(api, grid)
    ref = search_one(provider, aoi_lonlat)
    api.inject(404, contains="raw_red.tif", times=None)
    with pytest.raises(SceneReadError, match=r"scene S2B_21NXF_20240310_0_L2A, asset red .*404"):
        provider.download(ref, tmp_path)
    assert not (tmp_path / "sentinel-2-stac" / ref.scene_id / "reflectance.tif").exists()


def test_asset_absent_from_the_item_is_a_scene_read_error(api, grid, aoi_lonlat, scenes, tmp_path):
    add_item(api, scenes["raw"], "no-scl", catalog="cdse", omit_assets=("scl",))
    provider = make_provider(api, grid, catalog="cdse", token_env="T", environ={"T": "x"})
    ref = search_one(provider, aoi_lonlat)
    with pytest.raises(SceneReadError, match="scene no-scl has no asset SCL_20m"):
        provider.download(ref, tmp_path)
    assert api.requests_to("file") == []


def test_asset_401_is_auth_error_naming_token_env(api, grid, aoi_lonlat, scenes, tmp_path):
    """CDSE without a token: the first asset request is refused, and nothing is retried."""
    api.require_bearer = "needed"
    add_item(api, scenes["raw"], "cdse-no-token", catalog="cdse")
    provider = make_provider(api, grid, catalog="cdse")
    ref = search_one(provider, aoi_lonlat)
    api.clear_log()
    with pytest.raises(ProviderAuthError, match=r"HTTP 401.*set sources\[\]\.token_env"):
        provider.download(ref, tmp_path)
    assert len(api.requests_to("file")) == 1


def test_redownload_reuses_the_cache_without_requests(api, grid, aoi_lonlat, scenes, tmp_path):
    add_item(api, scenes["raw"], "cached")
    provider = make_provider(api, grid)
    ref = search_one(provider, aoi_lonlat)
    first = provider.download(ref, tmp_path)
    stamp = first.reflectance_path.stat().st_mtime_ns
    api.clear_log()

    second = make_provider(api, grid).download(ref, tmp_path)
    assert api.requests == []
    assert second.reflectance_path == first.reflectance_path
    assert second.reflectance_path.stat().st_mtime_ns == stamp


def test_partial_file_is_never_taken_as_complete(api, grid, aoi_lonlat, scenes, tmp_path):
    add_item(api, scenes["raw"], "partial")
    provider = make_provider(api, grid)
    ref = search_one(provider, aoi_lonlat)
    folder = tmp_path / "sentinel-2-stac" / "partial"
    folder.mkdir(parents=True)
    (folder / "partial_reflectance.tif").write_bytes(b"half a file")
    local = provider.download(ref, tmp_path)
    assert read_scene(local.reflectance_path).shape == (4, AOI_SIZE_PX, AOI_SIZE_PX)


def test_coarser_grid_reads_overviews(api, aoi_lonlat, scenes, tmp_path):
    """On a 40 m grid the band is read from the COG's x4 overview (built with nearest),
    so the result equals that overview's pixels exactly (aligned grids)."""
    grid_40m = build_grid(aoi_lonlat, 40.0)
    add_item(api, scenes["raw"], "coarse")
    provider = make_provider(api, grid_40m, resolution_m=40)
    local = provider.download(search_one(provider, aoi_lonlat), tmp_path)
    got = read_scene(local.reflectance_path)
    assert got.shape == (4, 32, 32)

    with rasterio.open(scenes["raw"].files["red"], overview_level=1) as src:
        assert src.res == (40.0, 40.0)
        with WarpedVRT(
            src,
            crs=grid_40m.crs.to_wkt(),
            transform=grid_40m.transform,
            width=grid_40m.width_px,
            height=grid_40m.height_px,
        ) as vrt:
            overview_dn = vrt.read(1).astype(np.float64)
    np.testing.assert_allclose(got[2], (overview_dn - 1000) * 1e-4, atol=1.5e-4)


@pytest.mark.filterwarnings("ignore:All-NaN slice encountered:RuntimeWarning")
def test_downloaded_scene_composites(api, grid, aoi_lonlat, scenes, tmp_path):
    """What monitor_aoi does next: the scene loads in composite_scenes; half is clear."""
    add_item(api, scenes["raw"], "composite")
    provider = make_provider(api, grid)
    local = provider.download(search_one(provider, aoi_lonlat), tmp_path)
    result = composite_scenes([local], grid, tmp_path / "composite.tif")
    assert result.n_scenes == 1
    assert result.clear_fraction == pytest.approx(1 - MASKED_IN_AOI_PX / AOI_SIZE_PX**2)
    with rasterio.open(result.path) as src:
        red = src.read(3)
    clear = ~truth_mask(scenes["raw"])
    np.testing.assert_allclose(red[clear], truth_window(scenes["raw"])[2][clear], atol=1.5e-4)
    assert np.isnan(red[~clear]).all()


def test_resolve_provider_builds_the_stac_provider(api, aoi_lonlat, tmp_path):
    from asmspotter.aoi import load_aoi
    from asmspotter.providers import resolve_provider
    from asmspotter.settings import Settings

    coords = [list(map(float, xy)) for xy in aoi_lonlat.exterior.coords]
    path = tmp_path / "stac-aoi.yaml"
    path.write_text(
        textwrap.dedent(f"""
        name: stac-aoi
        title: STAC AOI
        geometry: {{type: Polygon, coordinates: [{coords}]}}
        sources:
          - provider: sentinel-2-stac
            catalog: earth-search
            url: {api.base_url}
            max_cloud_pct: 30
        schedule:
          start_date: 2024-01-01
        """)
    )
    aoi = load_aoi(path)
    provider = resolve_provider(aoi.config.sources[0], aoi, Settings())
    assert isinstance(provider, StacProvider)
    assert (provider.url, provider.collection, provider.max_cloud_pct) == (
        api.base_url,
        "sentinel-2-l2a",
        30,
    )
    assert provider.grid.shape == (AOI_SIZE_PX, AOI_SIZE_PX)


# --------------------------------------------------------------------------------------
# The rules, as plain functions
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("properties", "asset", "expected"),
    [
        (
            {"s2:processing_baseline": "05.09"},
            {"raster:bands": [{"scale": 0.0001, "offset": -0.1}]},
            (1e-4, -0.1),
        ),
        (
            {"s2:processing_baseline": "05.09", "earthsearch:boa_offset_applied": True},
            {"raster:bands": [{"scale": 0.0001, "offset": -0.1}]},
            (1e-4, 0.0),
        ),
        (
            {"s2:processing_baseline": "02.14"},
            {"raster:bands": [{"scale": 0.0001, "offset": -0.1}]},
            (1e-4, 0.0),
        ),
        ({"s2:processing_baseline": "04.00"}, {}, (1e-4, -0.1)),
        ({"s2:processing_baseline": "03.01"}, {}, (1e-4, 0.0)),
        (
            {"processing:version": "05.11"},
            {"raster:scale": 0.0001, "raster:offset": -0.1},
            (1e-4, -0.1),
        ),
        ({}, {}, (1e-4, 0.0)),
    ],
)
def test_resolve_radiometry(properties, asset, expected):
    got = resolve_radiometry(properties, asset)
    assert (got.scale, got.offset) == pytest.approx(expected)


def test_cdse_s3_href_resolves_to_its_https_alternate():
    asset = {"href": "s3://eodata/x.jp2", "alternate": {"https": {"href": "https://zipper/x"}}}
    assert resolve_asset_href(asset) == "https://zipper/x"


def test_redact_url_drops_tokens():
    assert redact_url("https://u:p@blob.example:8443/a/b.tif?sig=abc") == (
        "https://blob.example:8443/a/b.tif"
    )
