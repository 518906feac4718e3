"""Synthetic Sentinel-2 / PlanetScope scenes of Amazonian forest with artisanal gold mines.

The generator paints surface reflectance (Sentinel-2 L2A-like, 0..1) in four bands
(blue, green, red, nir) on a pixel grid of any size: closed-canopy forest on hilly
terrain, meandering turbid and blackwater rivers with point bars and oxbow lakes,
streams, laterite roads, pasture and fresh clearings, villages, aquaculture ponds,
landslide scars, wetlands and haze; and the positive class, mining sites: clusters
of turbid ponds of varied colour in bright tailings, chained along streams.
Object sizes are in metres, so the same code serves 10 m (Sentinel-2) and 3 m
(PlanetScope) pixels.

Two entry points:

- :func:`render_training_pair` draws one cloud-free chip and its mining mask, for
  training the U-Net (:mod:`asmspotter.detect.unet`); :func:`render_labelled_chip`
  also returns the land-cover class of every pixel.
- :func:`generate_scene_series` writes a time series of GeoTIFF scenes of one
  landscape on an :class:`~asmspotter.grid.AOIGrid`, with clouds, shadows and
  static, growing and new mining sites, plus truth masks and ``sites.json``; the
  demo and end-to-end tests read it like any local provider's scenes.

Reflectance values are typical surface reflectance at the Sentinel-2 band centres
(B2 490 nm, B3 560 nm, B4 665 nm, B8 842 nm), read off published spectra; each
constant in :mod:`~asmspotter.synthetic.spectra` names its source. Everything random
is drawn from one ``numpy.random.Generator``, so a seed reproduces a chip or a series
exactly (``tests/unit/test_synthetic_golden.py`` holds the hashes of a few).

Modules, from the bottom up: :mod:`~asmspotter.synthetic.spectra` (reflectance of each
land cover), :mod:`~asmspotter.synthetic.primitives` (noise, meanders, shapes),
:mod:`~asmspotter.synthetic.canvas`, :mod:`~asmspotter.synthetic.landscape`,
:mod:`~asmspotter.synthetic.mines`, :mod:`~asmspotter.synthetic.atmosphere` (haze,
clouds, sensor), then the two entry points :mod:`~asmspotter.synthetic.chips` and
:mod:`~asmspotter.synthetic.series`.
"""

from asmspotter.synthetic.chips import LabelledChip, render_labelled_chip, render_training_pair
from asmspotter.synthetic.series import (
    GeneratedScene,
    GeneratedSeries,
    TruthSite,
    generate_scene_series,
)
from asmspotter.synthetic.spectra import BAND_NAMES, LandCover

__all__ = [
    "BAND_NAMES",
    "GeneratedScene",
    "GeneratedSeries",
    "LabelledChip",
    "LandCover",
    "TruthSite",
    "generate_scene_series",
    "render_labelled_chip",
    "render_training_pair",
]
