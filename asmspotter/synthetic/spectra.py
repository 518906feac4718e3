"""Surface reflectance of every land cover the generator paints, at S2 B2, B3, B4, B8.

Each spectrum names the published source it was read off; :class:`LandCover` codes
the classes of :attr:`~asmspotter.synthetic.chips.LabelledChip.land_cover`.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
from numpy.typing import NDArray

BAND_NAMES: tuple[str, str, str, str] = ("blue", "green", "red", "nir")
"""Band order of every reflectance array and GeoTIFF this package writes."""

F32 = NDArray[np.float32]

# Closed-canopy lowland tropical forest: green peak ~0.04-0.05, red chlorophyll
# absorption ~0.02-0.03, NIR plateau ~0.25-0.35 (Asner 1998, "Biophysical and
# biochemical sources of variability in canopy reflectance", Remote Sens. Environ. 64;
# USGS Spectral Library v7, Kokaly et al. 2017, USGS Data Series 1035, tropical leaf
# and canopy spectra). NDVI ~0.85.
FOREST = np.array([0.020, 0.045, 0.025, 0.300], np.float32)
# Secondary forest / capoeira: denser young leaves, brighter green and NIR.
SECONDARY = np.array([0.024, 0.056, 0.030, 0.360], np.float32)
# Palm swamp / flooded forest: wet background lowers NIR.
WETLAND = np.array([0.022, 0.042, 0.030, 0.190], np.float32)
# Turbid "white-water" Amazon rivers (Madeira, Solimoes, rivers below mines):
# suspended-sediment reflectance peaks in red, NIR 0.05-0.10 (Lobo, Costa & Novo 2015,
# "Time-series analysis of Landsat-MSS/TM/OLI images over Amazonian waters impacted
# by gold mining activities", Remote Sens. Environ. 157).
RIVER_TURBID = np.array([0.060, 0.100, 0.120, 0.075], np.float32)
# Blackwater (Rio Negro type) rivers: humic CDOM absorbs the visible, water the NIR:
# ~0.02-0.03 visible, 0.01-0.02 NIR.
RIVER_BLACK = np.array([0.022, 0.028, 0.024, 0.014], np.float32)
# Oxbow lakes: still water, darker than the river, often phytoplankton-green.
OXBOW_DARK = np.array([0.025, 0.040, 0.030, 0.020], np.float32)
OXBOW_GREEN = np.array([0.035, 0.075, 0.045, 0.040], np.float32)
# Quartz sand of point bars (USGS splib07 quartz sand, damped by moisture and
# iron coatings): blue ~0.10, green ~0.14, red ~0.18, NIR ~0.22-0.28.
SANDBAR = np.array([0.100, 0.140, 0.180, 0.250], np.float32)
# Laterite road surface (reddish Oxisol, ECOSTRESS soil library, Meerdink et al.
# 2019): strong ferric-iron red, blue ~0.06, green ~0.09, red ~0.14, NIR ~0.20.
LATERITE = np.array([0.060, 0.090, 0.140, 0.200], np.float32)
# Pasture grass (USGS splib07 "Lawn grass"/dry grass mix at 10 m): NDVI 0.5-0.7.
PASTURE = np.array([0.040, 0.080, 0.060, 0.300], np.float32)
PASTURE_DRY = np.array([0.055, 0.090, 0.095, 0.270], np.float32)
# Fresh slash-and-burn clearing: ash, dead wood and bare soil.
BARE_CLEARING = np.array([0.055, 0.075, 0.090, 0.180], np.float32)
# Roofs: galvanised metal (USGS splib07 "galvanized sheet metal") and rusty/clay.
ROOF_METAL = np.array([0.250, 0.270, 0.280, 0.300], np.float32)
ROOF_CLAY = np.array([0.080, 0.100, 0.180, 0.250], np.float32)
# Aquaculture ponds: eutrophic, chlorophyll-green water.
AQUA_WATER = np.array([0.040, 0.085, 0.050, 0.045], np.float32)
# Landslide scar: fresh saprolite / rock, brighter than laterite.
LANDSLIDE = np.array([0.070, 0.105, 0.150, 0.220], np.float32)
# Mining tailings: washed quartz sand and kaolinitic clay with iron stains, bright
# pinkish beige (Lobo et al. 2016, "Mapping mining areas in the Brazilian Amazon
# using MSI/Sentinel-2 imagery", Remote Sens. 8; USGS splib07 kaolinite + quartz).
TAILINGS_BEIGE = np.array([0.120, 0.180, 0.250, 0.290], np.float32)
TAILINGS_PINK = np.array([0.110, 0.145, 0.225, 0.270], np.float32)
TAILINGS_PALE = np.array([0.150, 0.195, 0.245, 0.280], np.float32)
MUD_WET = np.array([0.070, 0.090, 0.110, 0.140], np.float32)
REGROWTH = np.array([0.035, 0.070, 0.050, 0.270], np.float32)
# Mining-pond water: sediment-laden, brown/tan to green-turquoise or dark
# (Lobo et al. 2015, above; Espejo et al. 2018, "Deforestation and forest degradation
# due to gold mining in the Peruvian Amazon", Remote Sens. 10, their pond spectra).
POND_PALETTE = np.array(
    [
        [0.060, 0.100, 0.130, 0.100],  # brown, high suspended sediment
        [0.085, 0.135, 0.155, 0.130],  # tan, very turbid
        [0.085, 0.150, 0.090, 0.050],  # turquoise / green-blue, fine clay in suspension
        [0.040, 0.070, 0.060, 0.045],  # dark, settled
        [0.050, 0.095, 0.065, 0.060],  # algal green
        [0.065, 0.090, 0.085, 0.070],  # grey
    ],
    np.float32,
)
POND_WEIGHTS = np.array([0.28, 0.18, 0.16, 0.14, 0.12, 0.12])


class LandCover(IntEnum):
    """Land-cover class codes of :attr:`LabelledChip.land_cover`."""

    FOREST = 0
    SECONDARY_FOREST = 1
    WETLAND = 2
    RIVER_TURBID = 3
    RIVER_BLACKWATER = 4
    STREAM = 5
    OXBOW = 6
    SANDBAR = 7
    ROAD = 8
    PASTURE = 9
    BARE_CLEARING = 10
    VILLAGE = 11
    AQUACULTURE = 12
    LANDSLIDE = 13
    MINE_POND = 14
    MINE_GROUND = 15
