"""A fake STAC catalogue with labelled mining: the scene COGs and their truth as labels.

For the dataset-build tests (``tests/integration/test_dataset_build.py``,
``tests/flows/test_dataset_flow.py``): :func:`write_labelled_scene` writes one
Sentinel-2 L2A scene with :func:`~fakes.stac_server.write_s2_scene` and
re-renders the same seed to get its mining mask; :func:`mask_polygons_lonlat` turns
that mask into label polygons, as a labeller would have drawn them.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio.features
from numpy.typing import NDArray
from rasterio.transform import from_origin
from shapely.geometry import shape

from asmspotter.synthetic import render_training_pair
from fakes.stac_server import FakeScene, FakeStacApi, build_item, write_s2_scene

SCENE_ITEMS: tuple[tuple[str, dt.datetime, float], ...] = (
    ("S2A_21NXF_20240310_0_L2A", dt.datetime(2024, 3, 10, 14, 5, 31, tzinfo=dt.UTC), 5.0),
    ("S2B_21NXF_20240320_0_L2A", dt.datetime(2024, 3, 20, 14, 5, 29, tzinfo=dt.UTC), 12.0),
    ("S2A_21NXF_20240330_0_L2A", dt.datetime(2024, 3, 30, 14, 5, 33, tzinfo=dt.UTC), 95.0),
)
"""Items served for the one scene: id, time, cloud cover (the last one too cloudy)."""


def write_labelled_scene(
    folder: Path, seed: int, size_px: int = 512
) -> tuple[FakeScene, NDArray[np.bool_]]:
    """Write a scene's COGs and return it with its (size_px, size_px) mining mask."""
    scene = write_s2_scene(folder, f"labelled{seed}", seed=seed, size_px=size_px)
    _, mask = render_training_pair(np.random.default_rng(seed), size_px=size_px)
    return scene, mask


def mask_polygons_lonlat(mask: NDArray[np.bool_], scene: FakeScene) -> gpd.GeoDataFrame:
    """One polygon per 4-connected mining patch of ``mask``, in EPSG:4326."""
    transform = from_origin(scene.left_m, scene.top_m, 10.0, 10.0)
    geometries = [
        shape(geom)
        for geom, value in rasterio.features.shapes(
            mask.astype(np.uint8), mask=mask, connectivity=4, transform=transform
        )
        if value
    ]
    return gpd.GeoDataFrame(geometry=geometries, crs=f"EPSG:{scene.epsg}").to_crs("EPSG:4326")


def serve_scene_items(api: FakeStacApi, scene: FakeScene) -> None:
    """Add :data:`SCENE_ITEMS` for ``scene`` to a running fake (Earth Search layout)."""
    for item_id, acquired, cloud_pct in SCENE_ITEMS:
        api.items.append(
            build_item(
                scene,
                item_id,
                catalog="earth-search",
                base_url=api.root_url,
                acquired=acquired,
                cloud_pct=cloud_pct,
            )
        )
