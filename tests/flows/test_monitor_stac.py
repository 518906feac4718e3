"""monitor_aoi end to end on the STAC provider, against a fake STAC API on 127.0.0.1.

Two Sentinel-2 L2A scenes (COGs with SCL, processing baseline 05.09 with the
-1000 DN offset) are served with HTTP range requests; the AOI covers a quarter of
the tile. The flow must search, read only the AOI window, composite, detect and
track exactly as with local scenes.
"""

from __future__ import annotations

import datetime as dt
import json
import textwrap

import numpy as np
import pytest
import rasterio
from shapely.geometry import box

from asmspotter.grid import to_lonlat
from asmspotter.settings import PROJECT_ROOT
from fakes.stac_server import FakeStacApi, build_item, write_s2_scene


@pytest.fixture(scope="module")
def stac_api(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cogs")
    scenes = [write_s2_scene(folder, f"s{i}", seed=40 + i, dn_offset=1000) for i in range(2)]
    with FakeStacApi(files_dir=folder) as api:
        for index, scene in enumerate(scenes):
            api.items.append(
                build_item(
                    scene,
                    f"S2A_21NXF_2024031{index}_0_L2A",
                    catalog="earth-search",
                    base_url=api.root_url,
                    acquired=dt.datetime(2024, 3, 10 + index, 14, tzinfo=dt.UTC),
                    cloud_pct=10.0,
                )
            )
        yield api, scenes


def test_monitor_aoi_with_the_stac_provider(stac_api, tmp_path, monkeypatch):
    from flows.monitor import monitor_aoi

    api, scenes = stac_api
    left, _, _, top = scenes[0].bounds_m
    quarter = box(left + 640, top - 2560 - 640, left + 2560 + 640, top - 640)
    coords = [list(c) for c in to_lonlat(quarter, scenes[0].epsg).exterior.coords]
    (tmp_path / "stac-e2e.yaml").write_text(
        textwrap.dedent(
            f"""
            name: stac-e2e
            title: STAC end to end
            geometry: {{type: Polygon, coordinates: [{json.dumps(coords)}]}}
            sources:
              - provider: sentinel-2-stac
                url: {api.base_url}
            schedule: {{revisit_days: 5, window_days: 30, start_date: 2024-01-01}}
            """
        )
    )
    monkeypatch.setenv("ASMSPOTTER_AOI_DIR", str(tmp_path))
    monkeypatch.setenv("ASMSPOTTER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ASMSPOTTER_MODELS_DIR", str(PROJECT_ROOT / "models"))
    api.clear_log()

    summary = monitor_aoi("stac-e2e", dt.date(2024, 3, 31))

    assert sorted(summary.scenes_used) == [item["id"] for item in api.items]
    assert summary.probability_path is not None and summary.probability_path.exists()
    file_requests = api.requests_to("file")
    reads = [r for r in file_requests if r.method == "GET"]
    assert reads and all(r.status == 206 for r in reads), "pixels come by range requests only"
    with rasterio.open(summary.composite_path) as src:
        assert src.crs.to_epsg() == scenes[0].epsg
        assert 255 <= src.width <= 258 and 255 <= src.height <= 258  # 2.56 km at 10 m
        red = src.read(3)
        valid = src.read(7)
    assert valid.max() == 2
    clear = valid > 0
    assert np.nanmedian(red[clear]) < 0.2, "reflectance is 0..1 after the -0.1 offset"


def test_unreachable_catalogue_fails_the_run_at_once_without_retries(tmp_path, monkeypatch):
    """Connection refused: the search task runs once (no 10/60/300 s retries), the
    run fails with the host named, and the run record says why."""
    import socket

    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from asmspotter.errors import ProviderUnreachableError
    from flows.monitor import monitor_aoi

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    (tmp_path / "offline.yaml").write_text(
        textwrap.dedent(
            f"""
            name: offline
            title: Offline test
            geometry: {{type: Polygon, coordinates: [[[-54.1, 5.0], [-54.0, 5.0], [-54.0, 5.1], [-54.1, 5.1], [-54.1, 5.0]]]}}
            sources:
              - provider: sentinel-2-stac
                url: http://127.0.0.1:{port}/v1
            schedule: {{revisit_days: 5, window_days: 30, start_date: 2024-01-01}}
            """
        )
    )
    monkeypatch.setenv("ASMSPOTTER_AOI_DIR", str(tmp_path))
    monkeypatch.setenv("ASMSPOTTER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ASMSPOTTER_MODELS_DIR", str(PROJECT_ROOT / "models"))

    state = monitor_aoi("offline", dt.date(2024, 3, 31), return_state=True)

    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, ProviderUnreachableError)
    assert f"127.0.0.1:{port}" in str(error) and "connection refused" in str(error)
    assert "will be retried" not in str(error)

    async def search_runs():
        async with get_client() as client:
            flow_run = await client.read_flow_run(state.state_details.flow_run_id)
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id]))
            )
            return [r for r in runs if r.name.startswith("search-")]

    import asyncio

    (search,) = asyncio.run(search_runs())
    assert search.run_count == 1, "an unreachable host is not retried"
