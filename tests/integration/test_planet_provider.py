"""The PlanetScope provider against a fake Planet API on 127.0.0.1, through the real SDK.

The fake (``tests/fakes/planet_server.py``) serves a synthetic 3 m scene whose
AOI-sized centre is known pixel by pixel, so both download modes must reproduce it
exactly (DN / 10000) and reproduce the UDM2 clear band as the cloud mask.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import planet.specs
import pytest
import rasterio
from shapely.geometry import box, shape

from asmspotter.errors import (
    ProviderAuthError,
    ProviderNotConfiguredError,
    ProviderUnavailableError,
    SceneReadError,
)
from asmspotter.grid import build_grid
from asmspotter.providers.base import LocalScene, SceneRef, TimeWindow
from asmspotter.providers.planet import PlanetProvider
from asmspotter.sources import PlanetSourceConfig
from fakes.planet_server import (
    FakePlanetServer,
    PlanetSceneFixture,
    build_item_feature,
    build_planet_scene,
)

KEY = "test-planet-key"
JANUARY = TimeWindow(dt.date(2024, 1, 1), dt.date(2024, 1, 31))


@pytest.fixture(scope="module")
def scene() -> PlanetSceneFixture:
    return build_planet_scene(seed=3)


@pytest.fixture
def server(scene: PlanetSceneFixture) -> FakePlanetServer:
    with FakePlanetServer(api_key=KEY, page_size=2) as srv:
        srv.add_scene(scene)
        yield srv


@pytest.fixture(autouse=True)
def _planet_env(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Set the key; empty the SDK's bundle-spec cache and forbid its own spec fetch."""
    monkeypatch.setenv("PL_API_KEY", KEY)
    monkeypatch.setattr(planet.specs.PRODUCT_BUNDLES, "cache", None, raising=False)
    sdk_fetches: list[str] = []

    def no_public_spec(url: str, *args: object, **kwargs: object) -> object:
        sdk_fetches.append(url)
        raise AssertionError(f"the planet SDK fetched {url} itself")

    monkeypatch.setattr(planet.specs.httpx, "get", no_public_spec)
    return sdk_fetches


def make_provider(
    server: FakePlanetServer, scene: PlanetSceneFixture, mode: str = "orders-clip", **kwargs: object
) -> PlanetProvider:
    config = PlanetSourceConfig(
        provider="planetscope", url=server.base_url, mode=mode, max_cloud_pct=50
    )
    options: dict = {
        "poll_interval_s": 0.01,
        "max_wait_s": 5.0,
        "max_retries": 2,
        "max_retry_backoff_s": 0.01,
        **kwargs,
    }
    grid = build_grid(scene.aoi_lonlat, config.resolution_m)
    return PlanetProvider(config, grid, scene.aoi_lonlat, "brokopondo", **options)


def ref_for(scene: PlanetSceneFixture) -> SceneRef:
    return SceneRef(
        provider="planetscope",
        scene_id=scene.item_id,
        acquired=scene.acquired,
        footprint_lonlat=scene.footprint_lonlat,
        cloud_pct=scene.cloud_cover * 100,
    )


def assert_matches_fixture(local: LocalScene, scene: PlanetSceneFixture) -> None:
    with rasterio.open(local.reflectance_path) as src:
        assert src.count == 4
        assert src.crs.to_epsg() == scene.grid.epsg
        assert src.transform.almost_equals(scene.grid.transform)
        assert (src.height, src.width) == scene.grid.shape
        reflectance = src.read().astype(np.float64) * np.array(src.scales)[:, None, None]
        assert src.tags()["SCENE_ID"] == scene.item_id
    np.testing.assert_allclose(reflectance, scene.reflectance, atol=1e-3)
    assert local.cloud_mask_path is not None
    with rasterio.open(local.cloud_mask_path) as src:
        mask = src.read(1)
    np.testing.assert_array_equal(mask, (scene.clear != 1).astype(np.uint8))
    # Known by construction: the fixture has one cloud ellipse inside the AOI.
    assert 0 < mask.sum() < mask.size


def test_fixture_aoi_builds_the_fixture_grid(scene: PlanetSceneFixture) -> None:
    """The AOI is half a pixel inside the grid, so snapping gives the grid back."""
    assert build_grid(scene.aoi_lonlat, 3.0) == scene.grid


def test_search_pages_and_sends_the_documented_filters(
    server: FakePlanetServer, scene: PlanetSceneFixture, _planet_env: list[str]
) -> None:
    base, far = scene.footprint_lonlat, box(10.0, 10.0, 10.1, 10.1)

    def add(item_id: str, day: int, cloud: float, footprint=base, **kw: object) -> None:
        acquired = dt.datetime(2024, 1, day, 14, 0, tzinfo=dt.UTC) if day else None
        server.add_item(
            build_item_feature(
                server.base_url,
                item_id,
                acquired=acquired or dt.datetime(2023, 12, 1, 14, 0, tzinfo=dt.UTC),
                cloud_cover=cloud,
                footprint_lonlat=footprint,
                **kw,
            )
        )

    add("20240103_140000_00_aaaa", 3, 0.10)
    add("20240131_140000_00_bbbb", 31, 0.50)  # cloud exactly at the limit: kept
    add("20240112_140000_00_cccc", 12, 0.90)  # too cloudy
    add("20231201_140000_00_dddd", 0, 0.00)  # before the window
    add("20240105_140000_00_eeee", 5, 0.00, footprint=far)  # elsewhere
    add("20240106_140000_00_ffff", 6, 0.00, assets=("ortho_analytic_4b_sr",))  # no UDM2

    refs = make_provider(server, scene).search(scene.aoi_lonlat, JANUARY)

    assert [r.scene_id for r in refs] == [
        "20240103_140000_00_aaaa",
        scene.item_id,
        "20240131_140000_00_bbbb",
    ]
    assert all(r.provider == "planetscope" and r.assets == {} for r in refs)
    assert refs[0].cloud_pct == pytest.approx(10.0)
    assert refs[1].acquired == scene.acquired
    assert refs[1].footprint_lonlat.equals_exact(scene.footprint_lonlat, 1e-9)
    # Three results at two per page: the SDK followed _links._next once.
    assert len(server.requests_to("quick-search")) == 1
    assert len(server.requests_to("search-page")) == 1

    request = server.requests_to("quick-search")[0]
    assert request.headers["authorization"] == f"api-key {KEY}"
    body = request.json()
    assert body["item_types"] == ["PSScene"]
    assert body["filter"]["type"] == "AndFilter"
    by_type: dict[str, list[dict]] = {}
    for flt in body["filter"]["config"]:
        by_type.setdefault(flt["type"], []).append(flt)
    (geometry,) = by_type["GeometryFilter"]
    assert geometry["field_name"] == "geometry"
    assert shape(geometry["config"]).equals_exact(scene.aoi_lonlat, 1e-9)
    (dates,) = by_type["DateRangeFilter"]
    assert dates["field_name"] == "acquired"
    assert dates["config"] == {
        "gte": "2024-01-01T00:00:00+00:00",
        "lt": "2024-02-01T00:00:00+00:00",
    }
    (cloud,) = by_type["RangeFilter"]
    assert cloud == {"type": "RangeFilter", "field_name": "cloud_cover", "config": {"lte": 0.5}}
    assert sorted(f["config"] for f in by_type["AssetFilter"]) == [
        ["ortho_analytic_4b_sr"],
        ["ortho_udm2"],
    ]
    # The SDK's bundle spec came from the configured base URL, never its public host.
    assert len(server.requests_to("bundles-spec")) == 1
    assert _planet_env == []


def test_orders_clip_download_matches_input_and_clips_to_the_aoi(
    server: FakePlanetServer, scene: PlanetSceneFixture, tmp_path: Path
) -> None:
    provider = make_provider(server, scene, mode="orders-clip")
    local = provider.download(ref_for(scene), tmp_path)

    assert local.reflectance_path == tmp_path / "planetscope" / scene.item_id / "reflectance.tif"
    assert_matches_fixture(local, scene)
    (create,) = server.requests_to("create-order")
    order = create.json()
    assert order["products"] == [
        {"item_ids": [scene.item_id], "item_type": "PSScene", "product_bundle": "analytic_sr_udm2"}
    ]
    (tool,) = order["tools"]
    assert set(tool) == {"clip"}
    assert shape(tool["clip"]["aoi"]).equals_exact(scene.aoi_lonlat, 1e-9)
    # queued -> running -> success, then one read of the finished order
    assert len(server.requests_to("get-order")) == 4
    names = [r.query["token"] for r in server.requests_to("order-download")]
    assert len(names) == 3  # manifest, SR clip, UDM2 clip; not the XML or metadata JSON
    assert not (local.reflectance_path.parent / "raw").exists()
    assert not list(local.reflectance_path.parent.glob("partial_*"))

    # A re-run reuses the cache and asks the API nothing.
    seen = len(server.requests)
    again = provider.download(ref_for(scene), tmp_path)
    assert again == local
    assert len(server.requests) == seen


def test_assets_download_activates_polls_and_matches_input(
    server: FakePlanetServer, scene: PlanetSceneFixture, tmp_path: Path
) -> None:
    provider = make_provider(server, scene, mode="assets")
    local = provider.download(ref_for(scene), tmp_path)

    assert_matches_fixture(local, scene)  # the 128 px scene was cropped to the 96 px AOI
    activated = {server.asset_type_of(r.path.split("/")[4]) for r in server.requests_to("activate")}
    assert activated == {"ortho_analytic_4b_sr", "ortho_udm2"}
    assert len(server.requests_to("asset")) >= 2  # polled until active
    assert len(server.requests_to("asset-download")) == 2
    assert not server.requests_to("create-order")

    seen = len(server.requests)
    provider.download(ref_for(scene), tmp_path)
    assert len(server.requests) == seen


@pytest.mark.parametrize(
    ("mode", "route", "match"),
    [("assets", "asset-download", "SR"), ("orders-clip", "order-download", "SR_clip")],
)
def test_checksum_mismatch_leaves_no_file(
    server: FakePlanetServer,
    scene: PlanetSceneFixture,
    tmp_path: Path,
    mode: str,
    route: str,
    match: str,
) -> None:
    server.inject("corrupt", route=route, contains=match)
    with pytest.raises(SceneReadError, match=rf"{scene.item_id}.*(md5|sha256) check"):
        make_provider(server, scene, mode=mode).download(ref_for(scene), tmp_path)
    folder = tmp_path / "planetscope" / scene.item_id
    assert not (folder / "reflectance.tif").exists()
    assert not [p for p in folder.rglob("*.tif")]


def test_rejected_key_is_an_auth_error_after_one_request(
    server: FakePlanetServer, scene: PlanetSceneFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PL_API_KEY", "not-the-key")
    with pytest.raises(
        ProviderAuthError,
        match=r"HTTP 401.*set a valid Planet API key in the environment variable PL_API_KEY",
    ) as info:
        make_provider(server, scene).search(scene.aoi_lonlat, JANUARY)
    assert server.base_url in str(info.value)
    assert len(server.requests) == 1  # never retried


def test_bad_gateway_is_retried_inside_the_sdk(
    server: FakePlanetServer, scene: PlanetSceneFixture
) -> None:
    server.inject(502, route="quick-search")
    refs = make_provider(server, scene).search(scene.aoi_lonlat, JANUARY)
    assert [r.scene_id for r in refs] == [scene.item_id]
    assert len(server.requests_to("quick-search")) == 2


def test_server_error_is_unavailable_then_the_retry_succeeds(
    server: FakePlanetServer, scene: PlanetSceneFixture
) -> None:
    """HTTP 500 is not retried by the SDK; the Prefect task retries the call."""
    provider = make_provider(server, scene)
    server.inject(500, route="quick-search")
    with pytest.raises(ProviderUnavailableError, match="the task will retry"):
        provider.search(scene.aoi_lonlat, JANUARY)
    assert [r.scene_id for r in provider.search(scene.aoi_lonlat, JANUARY)] == [scene.item_id]


def test_dropped_connection_then_the_next_call_resumes_the_order(
    server: FakePlanetServer, scene: PlanetSceneFixture, tmp_path: Path
) -> None:
    provider = make_provider(server, scene)
    server.inject("drop", route="order-download", contains="SR_clip")
    with pytest.raises(ProviderUnavailableError, match="connection to"):
        provider.download(ref_for(scene), tmp_path)
    assert not (tmp_path / "planetscope" / scene.item_id / "reflectance.tif").exists()

    local = provider.download(ref_for(scene), tmp_path)
    assert_matches_fixture(local, scene)
    assert len(server.requests_to("create-order")) == 1  # the second call resumed it


def test_dropped_asset_download_then_the_next_call_succeeds(
    server: FakePlanetServer, scene: PlanetSceneFixture, tmp_path: Path
) -> None:
    provider = make_provider(server, scene, mode="assets")
    server.inject("drop", route="asset-download", contains="udm2")
    with pytest.raises(ProviderUnavailableError):
        provider.download(ref_for(scene), tmp_path)
    assert_matches_fixture(provider.download(ref_for(scene), tmp_path), scene)


def test_failed_order_is_a_scene_read_error(
    server: FakePlanetServer, scene: PlanetSceneFixture, tmp_path: Path
) -> None:
    server.fail_orders_for(scene.item_id)
    with pytest.raises(SceneReadError, match=rf"{scene.item_id}: order .* ended 'failed'"):
        make_provider(server, scene).download(ref_for(scene), tmp_path)
    folder = tmp_path / "planetscope" / scene.item_id
    assert not (folder / "reflectance.tif").exists()
    assert not (folder / "order.json").exists()  # the next run orders afresh


def test_asset_that_never_activates_is_a_scene_read_error(
    server: FakePlanetServer, scene: PlanetSceneFixture, tmp_path: Path
) -> None:
    server.stall_activation(scene.item_id)
    provider = make_provider(server, scene, mode="assets", max_wait_s=0.05)
    with pytest.raises(SceneReadError, match="ortho_analytic_4b_sr did not become active"):
        provider.download(ref_for(scene), tmp_path)


def test_missing_key_names_the_variable(
    scene: PlanetSceneFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PL_API_KEY")
    config = PlanetSourceConfig(provider="planetscope", url="http://127.0.0.1:9")
    with pytest.raises(ProviderNotConfiguredError, match="PL_API_KEY"):
        PlanetProvider(config, scene.grid, scene.aoi_lonlat, "brokopondo")


def test_key_from_a_prefect_secret_block(
    server: FakePlanetServer, scene: PlanetSceneFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded: list[str] = []

    class Secret:
        @classmethod
        def load(cls, name: str) -> Secret:
            loaded.append(name)
            return cls()

        def get(self) -> str:
            return KEY

    fake = types.ModuleType("prefect.blocks.system")
    fake.Secret = Secret  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "prefect.blocks.system", fake)
    monkeypatch.delenv("PL_API_KEY")
    config = PlanetSourceConfig(
        provider="planetscope", url=server.base_url, api_key_secret_block="planet-api-key"
    )
    provider = PlanetProvider(
        config, scene.grid, scene.aoi_lonlat, "brokopondo", poll_interval_s=0.01
    )
    assert [r.scene_id for r in provider.search(scene.aoi_lonlat, JANUARY)] == [scene.item_id]
    assert loaded == ["planet-api-key"]


def test_search_from_inside_a_running_event_loop(
    server: FakePlanetServer, scene: PlanetSceneFixture
) -> None:
    """Called from async code (a notebook, an async flow) the SDK runs on its own loop."""
    provider = make_provider(server, scene)

    async def caller() -> list[SceneRef]:
        return provider.search(scene.aoi_lonlat, JANUARY)

    assert [r.scene_id for r in asyncio.run(caller())] == [scene.item_id]


def test_resolve_provider_builds_it_from_aoi_yaml(
    server: FakePlanetServer, scene: PlanetSceneFixture, tmp_path: Path
) -> None:
    from asmspotter.aoi import load_aoi
    from asmspotter.providers import resolve_provider
    from asmspotter.settings import Settings

    coords = [list(map(float, xy)) for xy in scene.aoi_lonlat.exterior.coords]
    path = tmp_path / "brokopondo.yaml"
    path.write_text(
        textwrap.dedent(f"""
        name: brokopondo
        title: Brokopondo
        geometry: {{type: Polygon, coordinates: [{coords}]}}
        sources:
          - provider: planetscope
            url: {server.base_url}
            mode: assets
            max_cloud_pct: 40
        schedule:
          start_date: 2024-01-01
        """)
    )
    aoi = load_aoi(path)
    provider = resolve_provider(aoi.config.sources[0], aoi, Settings())
    assert isinstance(provider, PlanetProvider)
    assert provider.grid == scene.grid
    assert (provider.config.mode, provider.resolution_m, provider.aoi_name) == (
        "assets",
        3.0,
        "brokopondo",
    )
