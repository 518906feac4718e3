"""Contact sheet of synthetic chips next to real Sentinel-2 chips, for a visual check.

Renders 48 x 48 px chips at 10 m from :mod:`asmspotter.synthetic` exactly like the
Amazon Mining Watch training gallery (``uint8 RGB = clip([R, G, B] / 0.3, 0, 1) * 255``)
and puts them beside chips cut from the real sheets in
``shared/data/amazon-mining-watch/training_gallery/``. The real chips are L1C
(top-of-atmosphere), so by default the synthetic L2A reflectance gets a typical
path reflectance added first (:mod:`asmspotter.detect.harmonise`; ``--no-toa`` turns
that off).

Usage::

    python benchmarks/synthetic_gallery.py --out /tmp/synthetic_gallery.png

It also prints the time per 256 px training chip and per 1024 px scene.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from asmspotter.detect.harmonise import l2a_to_gallery_rgb
from asmspotter.grid import AOIGrid
from asmspotter.synthetic import generate_scene_series, render_labelled_chip

CHIP = 48
GALLERY = (
    Path(__file__).resolve().parents[1].parent / "shared/data/amazon-mining-watch/training_gallery"
)


def to_gallery_rgb(refl: NDArray[np.float32], toa: bool) -> NDArray[np.uint8]:
    """(4, H, W) blue, green, red, nir reflectance -> (H, W, 3) uint8 like the gallery.

    With ``toa`` through the verifier's own L2A -> L1C harmonisation (the path
    reflectance calibrated on the gallery), so the sheet shows what the verifier sees.
    """
    if toa:
        return l2a_to_gallery_rgb(refl[2], refl[1], refl[0])
    rgb = np.stack([refl[2], refl[1], refl[0]], axis=-1)
    return (np.clip(rgb / 0.3, 0, 1) * 255).astype(np.uint8)


def synthetic_chips(n: int, positive: bool, seed: int, toa: bool) -> list[NDArray[np.uint8]]:
    """Cut 48 px chips around a mine (positives) or a non-forest object (negatives)."""
    rng = np.random.default_rng(seed)
    chips: list[NDArray[np.uint8]] = []
    while len(chips) < n:
        chip = render_labelled_chip(rng, 112, 10.0, 1.0 if positive else 0.0)
        target = chip.mining_mask if positive else chip.land_cover > 1
        rows, cols = np.nonzero(target[CHIP // 2 : -CHIP // 2, CHIP // 2 : -CHIP // 2])
        if rows.size == 0:
            r0 = c0 = (112 - CHIP) // 2
        else:
            i = int(rng.integers(rows.size))
            r0, c0 = int(rows[i]), int(cols[i])
        rgb = to_gallery_rgb(chip.reflectance[:, r0 : r0 + CHIP, c0 : c0 + CHIP], toa)
        chips.append(rgb)
    return chips


def real_chips(pattern: str, n: int, seed: int) -> list[NDArray[np.uint8]]:
    """Random non-empty 48 px chips from the real sheets matching ``pattern``."""
    rng = np.random.default_rng(seed)
    chips: list[NDArray[np.uint8]] = []
    for path in sorted(GALLERY.glob(pattern)):
        sheet = np.asarray(Image.open(path).convert("RGB"))
        for r in range(0, sheet.shape[0] - CHIP + 1, CHIP):
            for c in range(0, sheet.shape[1] - CHIP + 1, CHIP):
                chip = sheet[r : r + CHIP, c : c + CHIP]
                if chip.mean() > 8:
                    chips.append(chip)
    if not chips:
        return [np.zeros((CHIP, CHIP, 3), np.uint8)] * n
    idx = rng.choice(len(chips), size=min(n, len(chips)), replace=False)
    return [chips[i] for i in idx]


def sheet(chips: list[NDArray[np.uint8]], cols: int) -> NDArray[np.uint8]:
    """Tile chips with a 2 px gap."""
    rows = -(-len(chips) // cols)
    out = np.zeros((rows * (CHIP + 2), cols * (CHIP + 2), 3), np.uint8)
    for i, chip in enumerate(chips):
        r, c = divmod(i, cols)
        out[r * (CHIP + 2) : r * (CHIP + 2) + CHIP, c * (CHIP + 2) : c * (CHIP + 2) + CHIP] = chip
    return out


def time_generation() -> None:
    """Print seconds per 256 px chip and per 1024 px scene, with context."""
    rng = np.random.default_rng(1)
    n = 20
    start = time.perf_counter()
    for _ in range(n):
        render_labelled_chip(rng, 256, 10.0, 0.6)
    chip_s = (time.perf_counter() - start) / n
    grid = AOIGrid(32621, 10.0, 500_000.0, 600_000.0, 1024, 1024)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        generate_scene_series(Path(tmp), grid, [datetime.date(2024, 1, 5)], seed=3)
        scene_s = time.perf_counter() - start
    sys.stdout.write(
        f"cpus={os.cpu_count()} OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}\n"
        f"render_training_pair 256x256 px @10 m: {chip_s * 1000:.1f} ms/chip (mean of {n})\n"
        f"generate_scene_series 1024x1024 px @10 m, 1 date, 6 sites, incl. GeoTIFF writing: "
        f"{scene_s:.2f} s\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/synthetic_gallery.png"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-toa", action="store_true", help="show L2A as is")
    parser.add_argument("--timing", action="store_true", help="also time the generator")
    args = parser.parse_args()
    toa = not args.no_toa
    syn = synthetic_chips(32, True, args.seed, toa) + synthetic_chips(32, False, args.seed + 1, toa)
    real = real_chips("*positives*S2L1C*", 32, args.seed) + real_chips(
        "riverbank_negatives*clear0.75*", 32, args.seed
    )
    left, right = sheet(syn, 8), sheet(real, 8)
    gap = np.full((left.shape[0], 12, 3), 255, np.uint8)
    Image.fromarray(np.concatenate([left, gap, right], axis=1)).save(args.out)
    sys.stdout.write(
        f"wrote {args.out}: left synthetic (top 4 rows mines, bottom 4 look-alikes), "
        "right real (top mines, bottom riverbank negatives)\n"
    )
    if args.timing:
        time_generation()


if __name__ == "__main__":
    main()
