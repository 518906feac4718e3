"""Render generated training chips, in parallel and reproducibly, with a hard look-alike mix.

Chip ``i`` of a split is rendered by :func:`asmspotter.synthetic.render_training_pair`
from its own generator, seeded with the ``i``-th child of the split's
:class:`numpy.random.SeedSequence` (``stream.spawn(n)[i]`` of a fresh stream). So a
chip depends only on the seed, its index and whether it is a hard look-alike chip,
never on how many worker processes rendered the split or in which order the blocks
finished. Which chips get the harder look-alikes is drawn once from the split's own
seed: exactly ``round(hard_fraction * n)`` of them, without replacement.

This module imports only numpy and :mod:`asmspotter.synthetic` (no torch), so worker
processes start quickly.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

import numpy as np
from numpy.typing import NDArray

logger = logging.getLogger(__name__)

RENDER_BLOCK_CHIPS = 64
"""Chips per unit of work handed to a render worker."""

ChipArrays = tuple[NDArray[np.float32], NDArray[np.bool_]]


def as_seed_sequence(seed: np.random.SeedSequence | int) -> np.random.SeedSequence:
    """Return ``seed`` as a SeedSequence (an int ``s`` gives ``SeedSequence(s)``)."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    return np.random.SeedSequence(seed)


def chip_seed(stream: np.random.SeedSequence, index: int) -> np.random.SeedSequence:
    """The seed of chip ``index``: the ``index``-th child of a fresh ``stream``.

    Unlike ``stream.spawn``, this neither depends on nor changes how many children
    ``stream`` has spawned already.
    """
    return np.random.SeedSequence(
        stream.entropy, spawn_key=(*stream.spawn_key, index), pool_size=stream.pool_size
    )


def hard_chip_flags(
    stream: np.random.SeedSequence | int, n_chips: int, hard_fraction: float
) -> NDArray[np.bool_]:
    """Which of ``n_chips`` chips get the harder look-alikes.

    Exactly ``round(hard_fraction * n_chips)`` chips (halves round up), chosen without
    replacement by a generator seeded with ``stream`` itself (not one of its
    children, so the choice is independent of every chip's content).

    Raises:
        ValueError: If ``hard_fraction`` is outside 0..1.
    """
    if not 0.0 <= hard_fraction <= 1.0:
        raise ValueError(f"hard_fraction must be within 0..1, got {hard_fraction}.")
    n_hard = min(n_chips, math.floor(hard_fraction * n_chips + 0.5))
    flags = np.zeros(n_chips, dtype=bool)
    if n_hard == n_chips:
        flags[:] = True
    elif n_hard > 0:
        order = np.random.default_rng(as_seed_sequence(stream)).permutation(n_chips)
        flags[order[:n_hard]] = True
    return flags


def render_sequence(
    rng: np.random.Generator,
    n_chips: int,
    chip_px: int,
    resolution_m: float,
    mining_probability: float,
    hard_lookalikes: bool = False,
) -> ChipArrays:
    """Render ``n_chips`` chips one after the other from one generator.

    This is how :func:`asmspotter.detect.evaluate.generated_test_split` replays a
    model's held-out test split, so the training test split is rendered this way too.

    Returns:
        Reflectance (N, 4, H, W) float32 (blue, green, red, nir) and masks (N, H, W) bool.
    """
    from asmspotter.synthetic import render_training_pair

    reflectance = np.empty((n_chips, 4, chip_px, chip_px), dtype=np.float32)
    masks = np.empty((n_chips, chip_px, chip_px), dtype=bool)
    for i in range(n_chips):
        reflectance[i], masks[i] = render_training_pair(
            rng,
            size_px=chip_px,
            resolution_m=resolution_m,
            mining_probability=mining_probability,
            hard_lookalikes=hard_lookalikes,
        )
    return reflectance, masks


def _render_block(
    stream: np.random.SeedSequence,
    start: int,
    hard: NDArray[np.bool_],
    chip_px: int,
    resolution_m: float,
    mining_probability: float,
) -> tuple[int, NDArray[np.float32], NDArray[np.bool_]]:
    """Render chips ``start .. start + len(hard)``, each from its own seed."""
    from asmspotter.synthetic import render_training_pair

    n = len(hard)
    reflectance = np.empty((n, 4, chip_px, chip_px), dtype=np.float32)
    masks = np.empty((n, chip_px, chip_px), dtype=bool)
    for j in range(n):
        reflectance[j], masks[j] = render_training_pair(
            np.random.default_rng(chip_seed(stream, start + j)),
            size_px=chip_px,
            resolution_m=resolution_m,
            mining_probability=mining_probability,
            hard_lookalikes=bool(hard[j]),
        )
    return start, reflectance, masks


def render_chips(
    stream: np.random.SeedSequence | int,
    n_chips: int,
    chip_px: int,
    resolution_m: float,
    mining_probability: float,
    hard_fraction: float = 0.0,
    *,
    workers: int = 1,
    block_chips: int = RENDER_BLOCK_CHIPS,
    label: str = "chips",
) -> ChipArrays:
    """Render ``n_chips`` generated chips, in ``workers`` processes when more than 1.

    The result is the same for any ``workers`` and ``block_chips`` (see the module
    docstring): chip ``i`` comes from :func:`chip_seed` ``(stream, i)``, hard or not
    as :func:`hard_chip_flags` says. Worker processes are started with ``spawn``
    (safe next to torch's threads) and take blocks of ``block_chips`` chips; progress
    is logged about every tenth of the split.

    Args:
        stream: Seed of the split (one SeedSequence per split keeps splits disjoint).
        n_chips: Chips to render.
        chip_px: Chip height and width in pixels.
        resolution_m: Pixel size in metres.
        mining_probability: Share of chips with mining.
        hard_fraction: Share of chips with the harder look-alikes (0..1).
        workers: Processes to render in; 1 renders here.
        block_chips: Chips per unit of work.
        label: Name of the split in log messages.

    Returns:
        Reflectance (N, 4, H, W) float32 (blue, green, red, nir) and masks (N, H, W) bool.

    Raises:
        ValueError: If ``hard_fraction`` is outside 0..1, or ``workers`` or
            ``block_chips`` is below 1.
    """
    if workers < 1 or block_chips < 1:
        raise ValueError(
            f"render_chips: workers and block_chips must be >= 1, got {workers}, {block_chips}."
        )
    stream = as_seed_sequence(stream)
    flags = hard_chip_flags(stream, n_chips, hard_fraction)
    reflectance = np.empty((n_chips, 4, chip_px, chip_px), dtype=np.float32)
    masks = np.empty((n_chips, chip_px, chip_px), dtype=bool)
    starts = list(range(0, n_chips, block_chips))
    args = [
        (stream, s, flags[s : s + block_chips], chip_px, resolution_m, mining_probability)
        for s in starts
    ]
    started = time.perf_counter()
    done = 0
    next_report = max(1, n_chips // 10)

    def store(result: tuple[int, NDArray[np.float32], NDArray[np.bool_]]) -> None:
        nonlocal done, next_report
        start, refl, mask = result
        reflectance[start : start + len(refl)] = refl
        masks[start : start + len(mask)] = mask
        done += len(refl)
        if done >= next_report or done == n_chips:
            next_report = done + max(1, n_chips // 10)
            logger.info(
                "rendered %d/%d %s chips (%.1f s)",
                done,
                n_chips,
                label,
                time.perf_counter() - started,
            )

    n_workers = min(workers, len(starts))
    if n_workers <= 1:
        for a in args:
            store(_render_block(*a))
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=n_workers, mp_context=context) as pool:
            futures = [pool.submit(_render_block, *a) for a in args]
            for future in as_completed(futures):
                store(future.result())
    logger.info(
        "%s: %d chips of %d px (%d hard look-alike) in %.1f s with %d process(es)",
        label,
        n_chips,
        chip_px,
        int(flags.sum()),
        time.perf_counter() - started,
        max(1, n_workers),
    )
    return reflectance, masks
