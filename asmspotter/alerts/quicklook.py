"""Quicklook PNGs for alerts and run reports: the AOI composite with site outlines.

:func:`render_quicklook` draws the run's true-colour composite (2-98 percentile
stretch) with every site outline coloured by its event, a scale bar, a north arrow
and lat/lon ticks. :func:`render_before_after` draws one expanded site from the
previous and the current composite side by side. Both use matplotlib's Agg
backend (no display) and write PNG files; ``asmspotter.alerts.dispatch`` attaches
them to alerts and ``tasks/report.py`` embeds a thumbnail in the run artifact.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from numpy.typing import NDArray
from pyproj import Transformer
from rasterio.windows import Window, from_bounds

from asmspotter.events import SiteEvent
from asmspotter.exports import EVENT_COLOURS

logger = logging.getLogger(__name__)

__all__ = [
    "EMAIL_BUDGET_BYTES",
    "EVENT_COLOURS",
    "Quicklook",
    "fit_images_to_budget",
    "render_before_after",
    "render_quicklook",
]

# Stretch each band between these percentiles of its clear pixels: robust to the
# few very bright cloud remnants and dark water pixels a median composite keeps.
_STRETCH_PCT = (2.0, 98.0)
_DPI = 100
_PNG_COLOURS = 256


@dataclass(frozen=True)
class Quicklook:
    """The PNGs of one run.

    Attributes:
        overview: The AOI quicklook.
        before_after: One before/after PNG per expanded site, by site id.
        outline_pixels: Site id -> outline vertices in overview PNG pixel coordinates
            (column, row from the top left); lets tests and callers find the sites.
        label_boxes: Site id -> its label's box (x0, y0, x1, y1) in overview PNG pixels
            (origin top left).
        map_box: The map's box in the same pixels; the labels stay inside it.
        furniture_boxes: Boxes of the legend and north arrow, which no label overlaps.
    """

    overview: Path
    before_after: dict[str, Path] = field(default_factory=dict)
    outline_pixels: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    label_boxes: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)
    map_box: tuple[float, float, float, float] | None = None
    furniture_boxes: tuple[tuple[float, float, float, float], ...] = ()

    @property
    def paths(self) -> list[Path]:
        """Every PNG, overview first."""
        return [self.overview, *self.before_after.values()]


def _read_rgb(
    path: Path, bounds: tuple[float, float, float, float] | None = None
) -> tuple[NDArray[np.float32], tuple[float, float, float, float]]:
    """Read red, green, blue of a composite COG, stretched to 0..1.

    Returns:
        (rows, cols, 3) float32 image and its extent (left, right, bottom, top) in
        the composite CRS (metres).
    """
    from asmspotter.composite.composite import COMPOSITE_BANDS

    with rasterio.open(path) as src:
        if bounds is None:
            window = Window(0, 0, src.width, src.height)
        else:
            window = from_bounds(*bounds, transform=src.transform).round_offsets().round_lengths()
            window = window.intersection(Window(0, 0, src.width, src.height))
        indexes = [COMPOSITE_BANDS.index(b) + 1 for b in ("red", "green", "blue")]
        rgb = src.read(indexes, window=window, masked=True).astype(np.float32)
        left, bottom, right, top = rasterio.windows.bounds(window, src.transform)
    data = np.ma.filled(rgb, np.nan)
    out = np.zeros((*data.shape[1:], 3), dtype=np.float32)
    for i in range(3):
        band = data[i]
        finite = band[np.isfinite(band)]
        if finite.size == 0:
            continue
        lo, hi = np.percentile(finite, _STRETCH_PCT)
        out[..., i] = np.clip((band - lo) / max(hi - lo, 1e-6), 0, 1)
    out[~np.isfinite(out)] = 0
    return out, (left, right, bottom, top)


def _nice_length_m(span_m: float) -> float:
    """A round scale-bar length of about a fifth of the map width."""
    target = span_m / 5
    magnitude = 10 ** np.floor(np.log10(target))
    for step in (5, 2, 1):
        if step * magnitude <= target:
            return float(step * magnitude)
    return float(magnitude)


def save_compact_png(fig: Any, out_path: Path, colours: int = _PNG_COLOURS) -> Path:
    """Save a figure as a palette PNG: a quarter of the RGBA size, so e-mails stay small.

    A 900 px composite quicklook is ~1.6 MB as RGBA and ~250 KB with 256 colours,
    with no visible loss on a screen (median-cut palette, no dithering noise).
    """
    import io

    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=_DPI, format="png")
    buffer.seek(0)
    with Image.open(buffer) as image:
        palette = image.convert("RGB").quantize(colors=colours, method=Image.Quantize.MEDIANCUT)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    palette.save(out_path, format="PNG", optimize=True)
    return out_path


def _decorate(
    ax: Any,
    extent: tuple[float, float, float, float],
    epsg: int,
    *,
    north_outside: bool = False,
) -> None:
    """Scale bar, north arrow and lat/lon ticks on a map axis in a projected CRS.

    ``north_outside`` puts the north arrow in the right margin, off the map, so it
    never hides a site or its label.
    """
    left, right, bottom, top = extent
    width = right - left
    length = _nice_length_m(width)
    x0, y0 = left + 0.05 * width, bottom + 0.06 * (top - bottom)
    ax.plot([x0, x0 + length], [y0, y0], color="white", linewidth=5, solid_capstyle="butt")
    ax.plot([x0, x0 + length], [y0, y0], color="black", linewidth=2, solid_capstyle="butt")
    label = f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m"
    ax.text(
        x0 + length / 2,
        y0 + 0.02 * (top - bottom),
        label,
        ha="center",
        va="bottom",
        color="white",
        fontsize=9,
        fontweight="bold",
    )
    # Grid north equals true north within a degree or so in UTM near the equator.
    ax.annotate(
        "N",
        xy=(1.08, 0.98) if north_outside else (0.93, 0.95),
        xytext=(1.08, 0.84) if north_outside else (0.93, 0.80),
        xycoords="axes fraction",
        ha="center",
        va="center",
        color="black" if north_outside else "white",
        fontsize=11,
        fontweight="bold",
        arrowprops={
            "arrowstyle": "-|>",
            "color": "black" if north_outside else "white",
            "linewidth": 2,
        },
        annotation_clip=False,
    )
    to_lonlat = Transformer.from_crs(epsg, 4326, always_xy=True)
    xticks = np.linspace(left, right, 4)[1:-1]
    yticks = np.linspace(bottom, top, 4)[1:-1]
    mid_x, mid_y = (left + right) / 2, (bottom + top) / 2
    lons = [to_lonlat.transform(x, mid_y)[0] for x in xticks]
    lats = [to_lonlat.transform(mid_x, y)[1] for y in yticks]
    ax.set_xticks(xticks, [f"{abs(v):.3f}°{'E' if v >= 0 else 'W'}" for v in lons], fontsize=8)
    ax.set_yticks(yticks, [f"{abs(v):.3f}°{'N' if v >= 0 else 'S'}" for v in lats], fontsize=8)
    ax.set_xlim(left, right)
    ax.set_ylim(bottom, top)


def _exteriors(geometry: Any) -> list[NDArray[np.float64]]:
    """Exterior rings of a polygon or multipolygon as (n, 2) arrays."""
    polys = list(getattr(geometry, "geoms", [geometry]))
    return [np.asarray(p.exterior.coords) for p in polys if hasattr(p, "exterior")]


def render_quicklook(
    composite_path: Path,
    events: Sequence[SiteEvent],
    epsg: int,
    out_path: Path,
    *,
    title: str = "",
    size_px: int = 900,
) -> Quicklook:
    """Draw the AOI composite with every site outline coloured by its event.

    Args:
        composite_path: The run's composite COG (bands as in ``COMPOSITE_BANDS``).
        events: The run's site events, geometries in ``EPSG:<epsg>``.
        epsg: CRS of the composite and the geometries.
        out_path: PNG to write; parents are created.
        title: Figure title (AOI and window).
        size_px: Width and height of the PNG in pixels.

    Returns:
        The quicklook, with the outline vertices of each site in PNG pixels.

    Example:
        >>> ql = render_quicklook(Path("composite.tif"), events, 32621,  # doctest: +SKIP
        ...                       Path("quicklook.png"), title="demo 2024-02-29")
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import patheffects
    from matplotlib.lines import Line2D

    rgb, extent = _read_rgb(composite_path)
    fig = plt.figure(figsize=(size_px / _DPI, size_px / _DPI), dpi=_DPI)
    # The right margin holds the north arrow and the legend, off the map.
    ax = fig.add_axes((0.1, 0.08, 0.74, 0.84))
    ax.imshow(rgb, extent=extent, origin="upper", interpolation="nearest")
    kinds_drawn: list[str] = []
    labels: dict[str, Any] = {}
    left, right, bottom, top = extent
    for event in events:
        colour = EVENT_COLOURS.get(event.kind, "#ffffff")
        for ring in _exteriors(event.geometry):
            ax.plot(ring[:, 0], ring[:, 1], color=colour, linewidth=2.2)
        if event.kind in ("new", "expanded"):
            x, y = event.geometry.centroid.x, event.geometry.centroid.y
            # The whole id, as in the message; it leans towards the map's centre so
            # that it never runs off the edge.
            east = (x - left) / (right - left) > 0.6
            north = (y - bottom) / (top - bottom) > 0.6
            labels[event.site_id] = ax.annotate(
                event.site_id,
                (x, y),
                xytext=(-8 if east else 8, -8 if north else 8),
                textcoords="offset points",
                ha="right" if east else "left",
                va="top" if north else "bottom",
                color=colour,
                fontsize=9,
                fontweight="bold",
                path_effects=[patheffects.withStroke(linewidth=2.5, foreground="black")],
            )
        if event.kind not in kinds_drawn:
            kinds_drawn.append(event.kind)
    _decorate(ax, extent, epsg, north_outside=True)
    if title:
        ax.set_title(title, fontsize=11)
    legend = None
    if kinds_drawn:
        handles = [Line2D([], [], color=EVENT_COLOURS.get(k, "#fff"), lw=2.2) for k in kinds_drawn]
        legend = ax.legend(
            handles,
            [k.replace("_", " ") for k in kinds_drawn],
            loc="lower left",
            bbox_to_anchor=(1.01, 0.0),
            borderaxespad=0.0,
            fontsize=8,
            framealpha=0.8,
        )
    fig.canvas.draw()
    outline_pixels: dict[str, list[tuple[float, float]]] = {}
    for event in events:
        points = []
        for ring in _exteriors(event.geometry):
            display = ax.transData.transform(ring)
            points += [(float(x), float(size_px - y)) for x, y in display]
        outline_pixels[event.site_id] = points
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]  # Agg canvas

    def box(artist: Any) -> tuple[float, float, float, float]:
        extent_px = artist.get_window_extent(renderer)
        return (extent_px.x0, size_px - extent_px.y1, extent_px.x1, size_px - extent_px.y0)

    north = [t for t in ax.texts if t.get_text() == "N"]
    furniture = tuple(box(a) for a in [*north, *([legend] if legend is not None else [])])
    save_compact_png(fig, out_path)
    plt.close(fig)
    logger.info("Wrote quicklook %s (%d sites)", out_path, len(events))
    return Quicklook(
        overview=out_path,
        outline_pixels=outline_pixels,
        label_boxes={site: box(text) for site, text in labels.items()},
        map_box=box(ax),
        furniture_boxes=furniture,
    )


def render_before_after(
    previous_composite: Path,
    current_composite: Path,
    event: SiteEvent,
    epsg: int,
    out_path: Path,
    *,
    previous_geometry: Any = None,
    margin_m: float = 300.0,
    labels: tuple[str, str] = ("before", "after"),
) -> Path:
    """Draw one site from two composites side by side, the outline on both.

    Args:
        previous_composite: Composite of the previous completed run.
        current_composite: Composite of this run.
        event: The (expanded) site event; its outline is drawn in the event colour.
        epsg: CRS of both composites and the geometry.
        out_path: PNG to write.
        previous_geometry: The site's previous outline (drawn dashed on both), if known.
        margin_m: Context around the site's bounds, metres.
        labels: Panel titles (e.g. the two window ends).

    Returns:
        ``out_path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minx, miny, maxx, maxy = event.geometry.bounds
    half = max(maxx - minx, maxy - miny) / 2 + margin_m
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    bounds = (cx - half, cy - half, cx + half, cy + half)
    fig, axes = plt.subplots(1, 2, figsize=(8, 4.3), dpi=_DPI)
    colour = EVENT_COLOURS.get(event.kind, "#ffffff")
    for ax, path, label in zip(axes, (previous_composite, current_composite), labels, strict=True):
        rgb, extent = _read_rgb(path, bounds)
        ax.imshow(rgb, extent=extent, origin="upper", interpolation="nearest")
        if previous_geometry is not None:
            for ring in _exteriors(previous_geometry):
                ax.plot(ring[:, 0], ring[:, 1], color="white", linewidth=1.4, linestyle="--")
        for ring in _exteriors(event.geometry):
            ax.plot(ring[:, 0], ring[:, 1], color=colour, linewidth=2)
        _decorate(ax, extent, epsg)
        ax.set_title(label, fontsize=10)
    fig.suptitle(f"{event.site_id}: {event.kind}, {event.area_ha:.1f} ha", fontsize=11)
    fig.tight_layout()
    save_compact_png(fig, out_path)
    plt.close(fig)
    return out_path


def render_thumbnail_data_uri(png_path: Path, max_px: int = 360) -> str:
    """A small PNG of an image as a ``data:`` URI, for Prefect markdown artifacts."""
    import base64
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt

    image = mpimg.imread(png_path)
    step = max(1, int(np.ceil(max(image.shape[:2]) / max_px)))
    small = image[::step, ::step]
    buffer = io.BytesIO()
    plt.imsave(buffer, small, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def build_run_quicklooks(
    composite_path: Path,
    events: Sequence[SiteEvent],
    epsg: int,
    out_dir: Path,
    *,
    title: str,
    previous_composite: Path | None = None,
    labels: tuple[str, str] = ("before", "after"),
) -> Quicklook:
    """Render a run's overview quicklook and a before/after PNG per expanded site.

    Args:
        composite_path: This run's composite.
        events: Every event of the run (all are outlined; expanded ones get a pair).
        epsg: CRS of the composites and geometries.
        out_dir: Folder for the PNGs (``quicklook.png``, ``before-after-<site>.png``).
        title: Overview title.
        previous_composite: The previous completed run's composite; without it no
            before/after pairs are drawn.
        labels: Titles of the before and after panels.

    Returns:
        The quicklook with every PNG written.
    """
    overview = render_quicklook(
        composite_path, events, epsg, out_dir / "quicklook.png", title=title
    )
    pairs: dict[str, Path] = {}
    if previous_composite is not None and previous_composite.is_file():
        for event in events:
            if event.kind != "expanded":
                continue
            pairs[event.site_id] = render_before_after(
                previous_composite,
                composite_path,
                event,
                epsg,
                out_dir / f"before-after-{event.site_id}.png",
                labels=labels,
            )
    return dataclasses.replace(overview, before_after=pairs)


EMAIL_BUDGET_BYTES = 500_000
"""Most bytes an alert e-mail may have: small enough for a field phone on a weak link."""

_BASE64_GROWTH = 4 / 3  # MIME attachments travel base64-encoded


def fit_images_to_budget(
    images: Sequence[Path], budget_bytes: int, reduced_dir: Path
) -> tuple[list[Path], list[Path]]:
    """Choose the images an e-mail can carry within a byte budget, first ones first.

    The first image (the overview) is shrunk into ``reduced_dir`` when it alone is
    over the budget; later images (before/after pairs) that do not fit are left out
    of the message (they stay in the run folder and the evidence packet).

    Args:
        images: PNGs in order of importance.
        budget_bytes: Bytes left for images once the body and other files are counted.
        reduced_dir: Where a shrunken copy of the first image is written.

    Returns:
        (images to attach, images left out).
    """
    from PIL import Image

    kept: list[Path] = []
    left_out: list[Path] = []
    used = 0.0
    for index, path in enumerate(images):
        size = path.stat().st_size * _BASE64_GROWTH
        if used + size > budget_bytes and index == 0:
            scale = max(0.2, (budget_bytes / size) ** 0.5 * 0.9)
            reduced_dir.mkdir(parents=True, exist_ok=True)
            smaller = reduced_dir / path.name
            with Image.open(path) as image:
                width, height = image.size
                resized = image.convert("RGB").resize(
                    (max(1, int(width * scale)), max(1, int(height * scale))),
                    Image.Resampling.LANCZOS,
                )
            resized.quantize(colors=_PNG_COLOURS).save(smaller, format="PNG", optimize=True)
            path, size = smaller, smaller.stat().st_size * _BASE64_GROWTH
        if used + size <= budget_bytes:
            kept.append(path)
            used += size
        else:
            left_out.append(path)
    return kept, left_out
