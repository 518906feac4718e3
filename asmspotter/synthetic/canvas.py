"""The canvas a scene is painted on: reflectance, labels and context, and spectrum jitter."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from asmspotter.synthetic.primitives import smooth_noise
from asmspotter.synthetic.spectra import F32, LandCover


@dataclass
class Canvas:
    """Reflectance, labels and context while a scene is being painted."""

    rng: np.random.Generator
    res_m: float
    refl: F32
    cover: NDArray[np.uint8]
    mask: NDArray[np.bool_]
    water: F32
    """Coverage of rivers/streams/oxbows: mines and clearings avoid it."""
    occupied: NDArray[np.bool_]
    """Pixels already holding a non-forest object."""
    slope_angle: F32
    """Downslope direction (radians, col axis towards row) of the terrain."""
    streams: list[F32] = field(default_factory=list)
    """Centre lines (N, 2) of rivers and streams, where mines settle."""
    stream_halfwidth_px: list[float] = field(default_factory=list)
    n_lookalikes: int = 0
    hard_lookalikes: bool = False
    """Paint the harder variants of look-alikes (see :func:`render_labelled_chip`)."""

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the canvas in pixels."""
        return (int(self.refl.shape[1]), int(self.refl.shape[2]))

    def px(self, metres: float) -> float:
        """Convert metres to pixels."""
        return metres / self.res_m

    def texture(self, scale_m: float, amp: float) -> F32:
        """Multiplicative texture field 1 + amp * noise at the given scale."""
        return (1.0 + amp * smooth_noise(self.rng, self.shape, max(self.px(scale_m), 0.6))).astype(
            np.float32
        )

    def paint(
        self,
        sl: tuple[slice, slice],
        alpha: F32,
        spectrum: F32,
        label: LandCover,
        *,
        mining: bool = False,
        occupy: bool = True,
    ) -> None:
        """Alpha-blend a spectrum ((4,) or (4, h, w)) into a window of the canvas."""
        spec = spectrum if spectrum.ndim == 3 else spectrum[:, None, None]
        window = self.refl[:, sl[0], sl[1]]
        window += alpha[None] * (spec - window)
        solid = alpha >= 0.5
        self.cover[sl][solid] = int(label)
        if mining:
            self.mask[sl] |= solid
        else:
            self.mask[sl] &= ~solid
        if occupy:
            self.occupied[sl] |= alpha > 0.2


def jitter_spectrum(rng: np.random.Generator, spectrum: F32, rel: float) -> F32:
    """A spectrum scaled by a common and a per-band random factor."""
    common = rng.uniform(1 - rel, 1 + rel)
    return (spectrum * common * rng.uniform(1 - rel / 2, 1 + rel / 2, 4)).astype(np.float32)


def mix_spectra(rng: np.random.Generator, a: F32, b: F32) -> F32:
    """A random convex mix of two spectra."""
    t = float(rng.uniform())
    return (a * (1 - t) + b * t).astype(np.float32)
