"""The Sentinel-2 DHuS provider against a fake DHuS hub on 127.0.0.1 (real sentinelsat client).

Known by construction: the tile is 64x64 px at 10 m and the AOI grid is the 48x48 px
window 8 px in from its top-left corner, so the scene must equal the builder's
input at ``[8:56, 8:56]``; the SCL is 9 (cloud) in its top-left quarter, 3 (shadow) in
its bottom-right quarter and 4 (vegetation) elsewhere, so half the AOI is masked.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from shapely.geometry import box

from asmspotter.composite.cloudmask import SCL_MASKED_CLASSES
from asmspotter.errors import (
    ProviderAuthError,
    ProviderNotConfiguredError,
    ProviderUnavailableError,
    SceneReadError,
)
from asmspotter.grid import AOIGrid, to_lonlat
from asmspotter.providers.base import TimeWindow
from asmspotter.providers.dhus import DhusProvider, parse_product_metadata
from asmspotter.sources import DhusSourceConfig
from asmspotter.synthetic import render_training_pair
from fakes.dhus_server import (
    FakeDhusHub,
    FakeProduct,
    SafeProduct,
    render_l1c_safe,
    render_l2a_safe,
)

EPSG = 32621  # UTM 21N: Suriname
TILE = AOIGrid(
    epsg=EPSG, resolution_m=10.0, left_m=600_000.0, top_m=560_000.0, width_px=64, height_px=64
)
OFFSET_PX = 8
AOI_GRID = AOIGrid(
    epsg=EPSG,
    resolution_m=10.0,
    left_m=TILE.left_m + OFFSET_PX * 10,
    top_m=TILE.top_m - OFFSET_PX * 10,
    width_px=48,
    height_px=48,
)
AOI_LONLAT = to_lonlat(box(*AOI_GRID.bounds), EPSG)
WINDOW = TimeWindow(dt.date(2024, 1, 1), dt.date(2024, 1, 31))
ACQUIRED = dt.datetime(2024, 1, 15, 14, 20, 29, tzinfo=dt.UTC)
SEED = 7
USER, PASSWORD = "tester", "secret"
INSIDE = np.s_[OFFSET_PX : OFFSET_PX + 48, OFFSET_PX : OFFSET_PX + 48]


@pytest.fixture(scope="session")
def l2a(tmp_path_factory: pytest.TempPathFactory) -> SafeProduct:
    return render_l2a_safe(tmp_path_factory.mktemp("safe"), TILE, seed=SEED, acquired=ACQUIRED)


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DHUS_USER", USER)
    monkeypatch.setenv("DHUS_PASSWORD", PASSWORD)


def make_provider(hub: FakeDhusHub, **options: object) -> DhusProvider:
    product_type = options.pop("product_type", "S2MSI2A")
    config = DhusSourceConfig(
        provider="sentinel-2-dhus", url=hub.url, product_type=product_type, max_cloud_pct=80
    )
    kwargs: dict = {"search_retry_delays_s": (0.0, 0.0), **options}
    return DhusProvider(config, AOI_GRID, "test-aoi", **kwargs)


def small_product(title: str, acquired: dt.datetime, **fields: object) -> FakeProduct:
    values: dict = {
        "title": title,
        "acquired": acquired,
        "footprint_lonlat": to_lonlat(box(*TILE.bounds), EPSG),
        "cloud_pct": 10.0,
        "product_type": "S2MSI2A",
        "zip_bytes": b"not a zip",
        **fields,
    }
    return FakeProduct(**values)


def test_search_pages_through_results_and_filters(l2a: SafeProduct) -> None:
    products = [
        small_product(f"S2B_MSIL2A_P{i:03d}", ACQUIRED + dt.timedelta(minutes=i))
        for i in range(104)
    ]
    products.append(l2a.as_fake_product(cloud_pct=12.5))
    far_away = to_lonlat(box(700_000, 400_000, 710_000, 410_000), EPSG)
    excluded = [
        small_product("L1C", ACQUIRED, product_type="S2MSI1C"),
        small_product("cloudy", ACQUIRED, cloud_pct=95.0),
        small_product("february", dt.datetime(2024, 2, 1, 0, 0, 1, tzinfo=dt.UTC)),
        small_product("elsewhere", ACQUIRED, footprint_lonlat=far_away),
    ]
    with FakeDhusHub(products + excluded, user=USER, password=PASSWORD) as hub:
        refs = make_provider(hub).search(AOI_LONLAT, WINDOW)
        search_starts = [r.query["start"] for r in hub.requests if r.path.endswith("/search")]

    assert len(refs) == 105, [r.scene_id for r in refs]
    assert search_starts == ["0", "100"], "105 results take two pages of 100"
    assert refs == sorted(refs, key=lambda r: (r.acquired, r.scene_id))
    ours = next(r for r in refs if r.scene_id == l2a.title)
    assert ours.provider == "sentinel-2-dhus"
    assert ours.acquired == ACQUIRED.replace(microsecond=0)
    assert ours.cloud_pct == pytest.approx(12.5)
    assert ours.assets == {"uuid": products[-1].uuid}
    assert ours.footprint_lonlat.contains(AOI_LONLAT)


def test_download_writes_the_scene_on_the_aoi_grid(l2a: SafeProduct, tmp_path: Path) -> None:
    product = l2a.as_fake_product()
    with FakeDhusHub([product], user=USER, password=PASSWORD) as hub:
        provider = make_provider(hub)
        (ref,) = provider.search(AOI_LONLAT, WINDOW)
        scene = provider.download(ref, tmp_path)
        zip_gets = hub.zip_requests

    assert scene.reflectance_path == tmp_path / "sentinel-2-dhus" / l2a.title / "reflectance.tif"
    assert len(zip_gets) == 1 and "range" not in zip_gets[0].headers
    with rasterio.open(scene.reflectance_path) as src:
        assert src.crs.to_epsg() == EPSG
        assert src.transform == AOI_GRID.transform
        assert (src.height, src.width, src.count) == (48, 48, 4)
        assert src.tags()["ACQUISITION_DATETIME"] == "2024-01-15T14:20:29Z"
        reflectance = src.read().astype(np.float64) * np.array(src.scales)[:, None, None]
    original, _ = render_training_pair(np.random.default_rng(SEED), size_px=64)
    np.testing.assert_allclose(reflectance, original[(slice(None), *INSIDE)], atol=1e-3)
    np.testing.assert_allclose(reflectance, l2a.reflectance[(slice(None), *INSIDE)], atol=1e-4)

    assert scene.cloud_mask_path is not None
    with rasterio.open(scene.cloud_mask_path) as src:
        mask = src.read(1)
    assert l2a.scl is not None
    scl_10m = np.repeat(np.repeat(l2a.scl, 2, axis=0), 2, axis=1)
    np.testing.assert_array_equal(mask, np.isin(scl_10m[INSIDE], SCL_MASKED_CLASSES))
    assert mask.sum() == 48 * 48 // 2, "cloud quarter + shadow quarter = half the AOI"
    leftovers = sorted(p.name for p in scene.reflectance_path.parent.iterdir())
    assert leftovers == ["cloudmask.tif", "reflectance.tif"], "zip deleted, no partial files"


def test_a_second_download_reuses_the_cache(l2a: SafeProduct, tmp_path: Path) -> None:
    with FakeDhusHub([l2a.as_fake_product()], user=USER, password=PASSWORD) as hub:
        provider = make_provider(hub, keep_zip=True)
        (ref,) = provider.search(AOI_LONLAT, WINDOW)
        first = provider.download(ref, tmp_path)
        before = len(hub.requests)
        again = provider.download(ref, tmp_path)
        assert again == first
        assert len(hub.requests) == before, "a written scene is reused without asking the hub"

        first.reflectance_path.unlink()
        rebuilt = provider.download(ref, tmp_path)
        assert rebuilt.reflectance_path.is_file()
        assert len(hub.zip_requests) == 1, "the complete zip is not downloaded again"


def test_a_corrupted_zip_fails_the_checksum_and_leaves_nothing(
    l2a: SafeProduct, tmp_path: Path
) -> None:
    with FakeDhusHub([l2a.as_fake_product(corrupt=True)], user=USER, password=PASSWORD) as hub:
        provider = make_provider(hub)
        (ref,) = provider.search(AOI_LONLAT, WINDOW)
        with pytest.raises(ProviderUnavailableError, match="checksum"):
            provider.download(ref, tmp_path)
    folder = tmp_path / "sentinel-2-dhus" / l2a.title
    assert sorted(p.name for p in folder.iterdir()) == [], "no zip, no partial, no scene"


def test_wrong_credentials_raise_auth_error_after_one_request(l2a: SafeProduct) -> None:
    with FakeDhusHub([l2a.as_fake_product()], user=USER, password="another") as hub:
        with pytest.raises(ProviderAuthError, match=r"DHUS_USER and DHUS_PASSWORD") as info:
            make_provider(hub).search(AOI_LONLAT, WINDOW)
        assert len(hub.requests) == 1, "refused credentials are never retried"
    assert hub.url.rstrip("/") in str(info.value)


def test_missing_credential_variable_says_what_to_export(
    l2a: SafeProduct, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DHUS_PASSWORD")
    with FakeDhusHub([l2a.as_fake_product()], user=USER, password=PASSWORD) as hub:
        with pytest.raises(ProviderNotConfiguredError, match=r"export DHUS_PASSWORD="):
            make_provider(hub).search(AOI_LONLAT, WINDOW)
        assert hub.requests == []


def test_search_retries_a_server_error(l2a: SafeProduct) -> None:
    with FakeDhusHub([l2a.as_fake_product()], user=USER, password=PASSWORD) as hub:
        hub.inject(500, route="search")
        refs = make_provider(hub).search(AOI_LONLAT, WINDOW)
        assert [r.scene_id for r in refs] == [l2a.title]
        assert len(hub.requests_to("search")) == 2

        hub.inject(503, route="search", times=10)
        with pytest.raises(ProviderUnavailableError, match="HTTP 503"):
            make_provider(hub).search(AOI_LONLAT, WINDOW)
        assert len(hub.requests_to("search")) == 2 + 3, "one try and two retries"


def test_a_dropped_download_resumes_on_the_next_call(l2a: SafeProduct, tmp_path: Path) -> None:
    with FakeDhusHub([l2a.as_fake_product()], user=USER, password=PASSWORD) as hub:
        provider = make_provider(hub, download_chunk_bytes=4096)
        (ref,) = provider.search(AOI_LONLAT, WINDOW)
        hub.inject("drop", route="product-zip")
        with pytest.raises(ProviderUnavailableError, match="connection"):
            provider.download(ref, tmp_path)
        incomplete = tmp_path / "sentinel-2-dhus" / l2a.title / f"{l2a.title}.zip.incomplete"
        assert 0 < incomplete.stat().st_size < l2a.zip_path.stat().st_size
        resumed_from = incomplete.stat().st_size

        scene = provider.download(ref, tmp_path)
        zip_gets = hub.zip_requests
    assert zip_gets[-1].headers.get("range") == f"bytes={resumed_from}-"
    with rasterio.open(scene.reflectance_path) as src:
        reflectance = src.read().astype(np.float64) * 1e-4
    np.testing.assert_allclose(reflectance, l2a.reflectance[(slice(None), *INSIDE)], atol=1e-4)


def test_a_product_without_a_band_is_a_scene_read_error(tmp_path: Path) -> None:
    broken = render_l2a_safe(tmp_path / "safe", TILE, seed=1, acquired=ACQUIRED, omit_bands=["B08"])
    with FakeDhusHub([broken.as_fake_product()], user=USER, password=PASSWORD) as hub:
        provider = make_provider(hub)
        (ref,) = provider.search(AOI_LONLAT, WINDOW)
        with pytest.raises(SceneReadError, match=rf"{broken.title}.*no band B08"):
            provider.download(ref, tmp_path / "cache")


def test_l1c_without_s2cloudless_says_how_to_get_a_mask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tile = AOIGrid(EPSG, 10.0, TILE.left_m, TILE.top_m, 96, 96)
    l1c = render_l1c_safe(tmp_path / "safe", tile, seed=3, acquired=ACQUIRED)
    monkeypatch.setitem(sys.modules, "s2cloudless", None)  # import now raises ImportError
    with FakeDhusHub([l1c.as_fake_product()], user=USER, password=PASSWORD) as hub:
        provider = make_provider(hub, product_type="S2MSI1C")
        (ref,) = provider.search(AOI_LONLAT, WINDOW)
        with pytest.raises(ProviderNotConfiguredError, match=r"pip install .*S2MSI2A"):
            provider.download(ref, tmp_path / "cache")


def test_l1c_cloud_mask_from_s2cloudless(tmp_path: Path) -> None:
    pytest.importorskip("s2cloudless")
    tile = AOIGrid(EPSG, 10.0, TILE.left_m, TILE.top_m, 96, 96)
    l1c = render_l1c_safe(tmp_path / "safe", tile, seed=3, acquired=ACQUIRED)
    with FakeDhusHub([l1c.as_fake_product()], user=USER, password=PASSWORD) as hub:
        config = DhusSourceConfig(provider="sentinel-2-dhus", url=hub.url, product_type="S2MSI1C")
        provider = DhusProvider(config, tile, "test-aoi", search_retry_delays_s=())
        (ref,) = provider.search(to_lonlat(box(*tile.bounds), EPSG), WINDOW)
        scene = provider.download(ref, tmp_path / "cache")
    assert scene.cloud_mask_path is not None
    with rasterio.open(scene.cloud_mask_path) as src:
        mask = src.read(1).astype(bool)
    # The cloud covers the top 32 rows; s2cloudless smooths and dilates by ~2 px at 60 m.
    assert mask[:24].mean() > 0.9
    assert mask[60:].mean() < 0.1
    with rasterio.open(scene.reflectance_path) as src:
        nir = src.read(4).astype(np.float64) * 1e-4
    np.testing.assert_allclose(nir[40:], l1c.reflectance[3][40:], atol=1e-4)


def test_metadata_offsets_follow_the_processing_baseline() -> None:
    old = b"<r><PROCESSING_BASELINE>02.14</PROCESSING_BASELINE></r>"
    new = b"<r><PROCESSING_BASELINE>04.00</PROCESSING_BASELINE></r>"
    listed = (
        b'<r xmlns:n1="x"><PROCESSING_BASELINE>05.09</PROCESSING_BASELINE>'
        b'<BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>'
        b'<BOA_ADD_OFFSET band_id="7">-1000</BOA_ADD_OFFSET></r>'
    )
    assert parse_product_metadata(old, "L2A").offset_for("B08") == 0.0
    assert parse_product_metadata(new, "L2A").offset_for("B08") == -1000.0
    assert parse_product_metadata(listed, "L2A").offset_dn == {"B08": -1000.0}


def test_resolve_provider_builds_the_dhus_provider(tmp_path: Path) -> None:
    from asmspotter.aoi import load_aoi
    from asmspotter.providers import resolve_provider
    from asmspotter.settings import Settings

    aoi_file = tmp_path / "dhus-test.yaml"
    aoi_file.write_text(
        "name: dhus-test\n"
        "title: DHuS test\n"
        "geometry: {type: Polygon, coordinates: [[[-55.0, 5.0], [-54.99, 5.0], [-54.99, 5.01],"
        " [-55.0, 5.01], [-55.0, 5.0]]]}\n"
        "sources:\n"
        "  - provider: sentinel-2-dhus\n"
        "    url: https://dhus.example.org/dhus/\n"
        "schedule: {start_date: 2024-01-01}\n"
    )
    aoi = load_aoi(aoi_file)
    provider = resolve_provider(aoi.config.sources[0], aoi, Settings())
    assert isinstance(provider, DhusProvider)
    assert provider.grid.epsg == 32621 and provider.resolution_m == 10.0
