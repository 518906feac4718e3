"""Quicklook PNGs: size, content, and outlines drawn where the sites are."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import box

from asmspotter.alerts.quicklook import (
    build_run_quicklooks,
    render_quicklook,
    render_thumbnail_data_uri,
)
from asmspotter.composite.composite import COMPOSITE_BANDS
from asmspotter.events import SiteEvent

EPSG = 32621
LEFT, TOP, RES = 600_000.0, 560_000.0, 10.0
SIZE = 200  # 200 x 200 px at 10 m: a 2 km square


def write_composite(path: Path, seed: int) -> Path:
    """A dark-green forest composite with one bright bare patch, all bands 0..1."""
    rng = np.random.default_rng(seed)
    data = np.zeros((len(COMPOSITE_BANDS), SIZE, SIZE), dtype=np.float32)
    base = {"blue": 0.03, "green": 0.06, "red": 0.03, "nir": 0.3}
    for name, value in base.items():
        data[COMPOSITE_BANDS.index(name)] = value + rng.normal(0, 0.005, (SIZE, SIZE))
    for name in ("blue", "green", "red"):
        data[COMPOSITE_BANDS.index(name), 50:70, 50:70] = 0.25
    data[COMPOSITE_BANDS.index("valid")] = 3
    profile = {
        "driver": "GTiff",
        "width": SIZE,
        "height": SIZE,
        "count": data.shape[0],
        "dtype": "float32",
        "crs": f"EPSG:{EPSG}",
        "transform": from_origin(LEFT, TOP, RES, RES),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def event(site_id: str, kind: str, geometry) -> SiteEvent:  # type: ignore[no-untyped-def]
    return SiteEvent(
        site_id=site_id,
        kind=kind,
        geometry=geometry,
        area_ha=geometry.area / 1e4,  # type: ignore[arg-type]
        previous_area_ha=None,
        growth_ha=2.0 if kind == "expanded" else None,
        growth_pct=40.0 if kind == "expanded" else None,
        mean_probability=0.9,
        centroid_lon=-55.0,
        centroid_lat=5.0,
        first_seen=dt.date(2024, 1, 31),
        clear_observations=3,
    )


@pytest.fixture
def sites() -> list[SiteEvent]:
    """A new site in the north-west quarter, an expanded one in the south-east (metres)."""
    return [
        event("t-0001", "new", box(LEFT + 400, TOP - 800, LEFT + 800, TOP - 400)),
        event("t-0002", "expanded", box(LEFT + 1200, TOP - 1600, LEFT + 1600, TOP - 1200)),
    ]


def near_colour(image: np.ndarray, x: float, y: float, rgb: tuple[int, int, int]) -> bool:
    """True if a pixel within 2 px of (x, y) is within 40 levels of the colour."""
    r0, c0 = round(y), round(x)
    patch = image[max(r0 - 2, 0) : r0 + 3, max(c0 - 2, 0) : c0 + 3, :3].astype(int)
    return bool((np.abs(patch - np.array(rgb)).max(axis=-1) < 40).any())


def test_quicklook_png_has_size_content_and_outlines_at_sites(tmp_path, sites):
    import matplotlib.image as mpimg

    composite = write_composite(tmp_path / "composite.tif", seed=1)
    ql = render_quicklook(composite, sites, EPSG, tmp_path / "ql.png", title="t", size_px=600)
    image = (mpimg.imread(ql.overview) * 255).astype(np.uint8)
    assert image.shape[:2] == (600, 600)
    assert image[..., :3].std() > 10, "the quicklook is not blank"
    colours = {"t-0001": (255, 32, 32), "t-0002": (255, 160, 0)}
    for site_id, rgb in colours.items():
        vertices = ql.outline_pixels[site_id]
        hits = sum(near_colour(image, x, y, rgb) for x, y in vertices)
        assert hits >= len(vertices) - 1, f"{site_id} outline not drawn at its vertices"
    # Where no site is (the centre of the NE quarter), no outline colour appears.
    assert not near_colour(image, 450, 150, (255, 32, 32))
    # The new site (NW) is drawn left of and above the expanded one (SE).
    x_new = np.mean([x for x, _ in ql.outline_pixels["t-0001"]])
    x_exp = np.mean([x for x, _ in ql.outline_pixels["t-0002"]])
    assert x_new < x_exp


def test_before_after_pair_for_each_expanded_site(tmp_path, sites):
    before = write_composite(tmp_path / "before.tif", seed=2)
    after = write_composite(tmp_path / "after.tif", seed=3)
    ql = build_run_quicklooks(
        after, sites, EPSG, tmp_path / "ql", title="t", previous_composite=before
    )
    assert set(ql.before_after) == {"t-0002"}, "only expanded sites get a before/after pair"
    assert ql.before_after["t-0002"].stat().st_size > 5_000
    assert ql.paths[0] == ql.overview
    uri = render_thumbnail_data_uri(ql.overview)
    assert uri.startswith("data:image/png;base64,") and len(uri) < 400_000


def _overlaps(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_labels_are_whole_inside_the_map_and_clear_of_legend_and_arrow(tmp_path):
    """Sites in the corners (where the arrow and legend used to be) keep whole, clear labels."""
    composite = write_composite(tmp_path / "composite.tif", seed=4)
    corners = [
        event("demo-0006", "new", box(LEFT + 1850, TOP - 150, LEFT + 1950, TOP - 50)),  # NE
        event("demo-0007", "expanded", box(LEFT + 1850, TOP - 1950, LEFT + 1950, TOP - 1850)),
        event("demo-0008", "new", box(LEFT + 1900, TOP - 1000, LEFT + 1990, TOP - 900)),  # E edge
    ]
    ql = render_quicklook(composite, corners, EPSG, tmp_path / "ql.png", title="t", size_px=900)
    assert ql.map_box is not None and len(ql.furniture_boxes) == 2
    mx0, my0, mx1, my1 = ql.map_box
    for site in ("demo-0006", "demo-0007", "demo-0008"):
        x0, y0, x1, y1 = ql.label_boxes[site]
        assert mx0 <= x0 and x1 <= mx1 and my0 <= y0 and y1 <= my1, f"{site} label cut"
        for furniture in ql.furniture_boxes:
            assert not _overlaps(ql.label_boxes[site], furniture), f"{site} under legend/arrow"


def test_quicklook_png_is_small(tmp_path, sites):
    """A 900 px quicklook of noisy imagery stays well under the e-mail budget (palette PNG)."""
    composite = write_composite(tmp_path / "composite.tif", seed=5)
    ql = render_quicklook(composite, sites, EPSG, tmp_path / "ql.png", title="t", size_px=900)
    assert ql.overview.stat().st_size < 300_000
    from PIL import Image

    with Image.open(ql.overview) as image:
        assert image.mode == "P" and image.size == (900, 900)


def test_images_fit_the_email_budget(tmp_path):
    """An overview over budget is shrunk; pairs that do not fit are left out, in order."""
    from PIL import Image

    from asmspotter.alerts.quicklook import fit_images_to_budget

    rng = np.random.default_rng(0)
    paths = []
    for name, px in (("quicklook.png", 900), ("before-after-a.png", 300), ("ba-b.png", 300)):
        noise = rng.integers(0, 255, (px, px, 3), dtype=np.uint8)  # incompressible
        Image.fromarray(noise).save(tmp_path / name)
        paths.append(tmp_path / name)
    assert paths[0].stat().st_size > 2_000_000
    kept, left_out = fit_images_to_budget(paths, 500_000, tmp_path / "small")
    assert kept[0] == tmp_path / "small" / "quicklook.png"
    total = sum(p.stat().st_size for p in kept) * 4 / 3
    assert total <= 500_000
    assert kept[1:] + left_out == paths[1:]
    assert left_out, "two incompressible 270 KB pairs cannot both fit beside the overview"
    with Image.open(kept[0]) as image:
        assert image.size[0] < 900
