"""Turn each provider's cloud information into one boolean "clear" mask.

Providers deliver cloud information differently: the local provider and the
synthetic scenes ship a binary mask (1 = cloud or shadow), Sentinel-2 L2A ships the
scene classification layer (SCL), PlanetScope ships UDM2. Compositing only ever
sees ``clear`` (True = usable pixel), built here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

import numpy as np

ArrayT = TypeVar("ArrayT")

BINARY_MASK_NODATA = 255
"""Value of a binary cloud mask outside the scene footprint (after warping)."""

SCL_MASKED_CLASSES: tuple[int, ...] = (0, 1, 3, 8, 9, 10)
"""Sentinel-2 SCL classes treated as unusable: no data, saturated/defective, cloud
shadow, cloud medium and high probability, thin cirrus. See the L2A product
definition (ESA Sentinel-2 Level-2A Algorithm Theoretical Basis Document, SCL)."""


def clear_from_binary_mask(mask: ArrayT) -> ArrayT:
    """Clear where a binary cloud mask is 0 (1 = cloud/shadow, 255 = outside the scene)."""
    return mask == 0  # type: ignore[comparison-overlap,return-value]


def clear_from_scl(scl: ArrayT, masked_classes: Iterable[int] = SCL_MASKED_CLASSES) -> ArrayT:
    """Clear where the SCL class is not one of ``masked_classes``."""
    return ~np.isin(scl, list(masked_classes))  # type: ignore[return-value,arg-type]
