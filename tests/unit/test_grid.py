"""Grid arithmetic: UTM zone choice, snapping to whole pixels."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from shapely.geometry import box

from asmspotter.grid import build_grid, to_crs, utm_epsg_for_lonlat


def test_utm_zone_of_known_places():
    assert utm_epsg_for_lonlat(-55.0, 5.0) == 32621  # Suriname: zone 21 N
    assert utm_epsg_for_lonlat(-70.0, -12.7) == 32719  # Madre de Dios: zone 19 S


@given(
    lon=st.floats(-75, -50),
    lat=st.floats(-15, 8),
    size=st.floats(0.005, 0.2),
    resolution=st.sampled_from([3.0, 10.0, 20.0]),
)
def test_grid_covers_the_aoi_on_whole_pixels(lon, lat, size, resolution):
    aoi = box(lon, lat, lon + size, lat + size)
    grid = build_grid(aoi, resolution)
    left, bottom, right, top = grid.bounds
    assert left % resolution == 0 and top % resolution == 0
    projected = to_crs(aoi, grid.epsg)
    assert box(left, bottom, right, top).buffer(1e-6).contains(projected)
    assert grid.width_px * resolution - (projected.bounds[2] - projected.bounds[0]) < 2 * resolution
