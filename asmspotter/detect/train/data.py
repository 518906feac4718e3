"""Training data of a run: the three splits in memory, and what the card says about them.

:func:`generated_chips` renders chips with :func:`asmspotter.synthetic.render_training_pair`
(train, validation and test from three disjoint seed streams, so the test split is
held out; :mod:`asmspotter.detect.chips` renders them in several processes, the same
chips whatever their number); :func:`labelled_scene_patches` cuts patches from a
folder of scenes and label polygons, split in blocks so no test patch overlaps a
training one (:mod:`asmspotter.detect.datasets`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from asmspotter.detect.chips import render_chips, render_sequence
from asmspotter.detect.model_card import DEFAULT_BANDS
from asmspotter.detect.train.config import TrainConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingData:
    """Reflectance (N, 4, P, P) blue/green/red/nir and masks (N, P, P) per split.

    Besides the arrays: the pixel size, the card's description of the data, whether
    training jitters the pixel size, the test split size the card records, and the
    settings a checkpoint must match to be resumed.
    """

    train_reflectance: NDArray[np.float32]
    train_masks: NDArray[np.bool_]
    val_reflectance: NDArray[np.float32]
    val_masks: NDArray[np.bool_]
    test_reflectance: NDArray[np.float32]
    test_masks: NDArray[np.bool_]
    resolution_m: float
    """Pixel size of the patches, metres (the card's ``resolution_m``)."""
    description: str
    """The card's ``training.data``."""
    resolution_jitter: bool
    """Rescale half of the training chips by U(0.8, 1.25) in augmentation."""
    card_n_test_chips: int
    """The card's ``training.n_test_chips`` (one rendering of the test stream)."""
    resume_key: dict[str, Any]
    """What a checkpoint must hold to be resumed by this run (stored in ``checkpoint.pt``;
    the layout of checkpoints written before :class:`TrainConfig`, so they still resume)."""


def generated_chips(config: TrainConfig) -> TrainingData:
    """Render the train, validation and test chips of ``config`` (no ``scene_dir``).

    Chips come from three disjoint ``numpy.random.SeedSequence(seed).spawn(3)``
    streams and are kept in memory: ``(n_train + n_val + n_test) * 4 * patch_px**2 * 4``
    bytes, e.g. 0.3 GB for 1,000 chips of 128 px. Train and validation chips are
    seeded one by one from their stream (:func:`asmspotter.detect.chips.render_chips`),
    and ``hard_fraction`` of them get the harder look-alikes. The test split is the
    third stream rendered in sequence, once with the standard look-alikes (unless
    ``hard_fraction`` is 1) and once with the hard ones (if ``hard_fraction`` > 0):
    exactly the chips ``asmspotter model evaluate <model> generated`` and
    ``generated-hard`` replay.
    """
    n_train, n_val, n_test = config.n_train, config.n_val_chips, config.n_test_chips
    chip_px, resolution_m = config.patch_px, config.resolution_m
    mining_probability, hard_fraction = config.mining_probability, config.hard_fraction
    started = time.perf_counter()
    train_seq, val_seq, test_seq = np.random.SeedSequence(config.seed).spawn(3)
    chip_args = (chip_px, resolution_m, mining_probability, hard_fraction)
    workers = config.render_workers
    train_refl, train_masks = render_chips(
        train_seq, n_train, *chip_args, workers=workers, label="train"
    )
    val_refl, val_masks = render_chips(val_seq, n_val, *chip_args, workers=workers, label="val")
    # Standard and/or hard look-alike test chips: what `model evaluate` replays.
    test_kinds = [
        hard for hard in (False, True) if (hard_fraction > 0 if hard else hard_fraction < 1)
    ]
    test_parts = [
        render_sequence(
            np.random.default_rng(test_seq),
            n_test,
            chip_px,
            resolution_m,
            mining_probability,
            hard_lookalikes=hard,
        )
        for hard in test_kinds
    ]
    test_refl = np.concatenate([part[0] for part in test_parts])
    test_masks = np.concatenate([part[1] for part in test_parts])
    logger.info(
        "rendered %d/%d/%d train/val/test chips of %d px in %.1f s (%d render processes)",
        n_train,
        n_val,
        len(test_refl),
        chip_px,
        time.perf_counter() - started,
        workers,
    )
    if hard_fraction == 0:
        lookalikes = ""
    elif hard_fraction == 1:
        lookalikes = ", hard look-alikes"
    else:
        lookalikes = f", hard look-alikes in {hard_fraction:.0%} of train/val chips"
    test_text = " and ".join(
        "hard-look-alike (= generated-hard)" if hard else "standard (= generated)"
        for hard in test_kinds
    )
    description = (
        "generated chips from asmspotter.synthetic.render_training_pair "
        f"(mining_probability={mining_probability}, {resolution_m:g} m pixels{lookalikes}); "
        "streams numpy SeedSequence(seed).spawn(3): train/val chip i seeded by its "
        f"stream's child i; test: stream 3 rendered in sequence, {n_test} chips "
        f"{test_text}"
    )
    resume_key: dict[str, Any] = {
        "name": config.name,
        "resolution_m": float(resolution_m),
        "n_train_chips": n_train,
        "n_val_chips": n_val,
        "n_test_chips": n_test,
        "chip_px": chip_px,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "seed": config.seed,
        "architecture": config.architecture.model_dump(),
        "lr": float(config.lr),
        "mining_probability": float(mining_probability),
        "bands": list(DEFAULT_BANDS),
        # Chips seeded one by one (asmspotter.detect.chips); older checkpoints were
        # trained on chips rendered in sequence and must not be resumed on these.
        "chip_seeding": "per-chip",
        "hard_fraction": float(hard_fraction),
    }
    return TrainingData(
        train_refl,
        train_masks,
        val_refl,
        val_masks,
        test_refl,
        test_masks,
        resolution_m=resolution_m,
        description=description,
        resolution_jitter=False,
        card_n_test_chips=n_test,
        resume_key=resume_key,
    )


def labelled_scene_patches(config: TrainConfig) -> TrainingData:
    """Read ``config.scene_dir`` and its labels; cut the train, validation and test patches.

    Scenes are read and labels rasterised on each scene's grid
    (:func:`asmspotter.detect.datasets.load_labelled_scenes`); the area is split into
    blocks of ``block_px`` that go wholly to train, validation or test
    (:func:`~asmspotter.detect.datasets.plan_patches`), so no test patch overlaps a
    training one; ``n_train`` training patches are drawn (with replacement) balanced
    between mining, look-alikes and background; validation and test use every patch
    of their blocks.

    Raises:
        LabelReadError: If the labels cannot be read.
        SceneReadError: If the folder holds no readable scene.
        ValueError: If the scenes are too small for three splits, or all pixel sizes
            differ by more than 25 %.
    """
    from asmspotter.detect.datasets import (
        extract_patches,
        load_labelled_scenes,
        plan_patches,
        sample_training_patches,
    )
    from asmspotter.detect.labels import load_labels

    scene_dir, labels_path = config.scene_dir, config.labels_path
    if scene_dir is None or labels_path is None:
        raise ValueError(
            "labelled_scene_patches: the TrainConfig has no scene_dir or labels_path; "
            "generated_chips trains without scenes."
        )
    negatives_path, patch_px, block_px = config.negatives_path, config.patch_px, config.block_px
    labels = load_labels(labels_path, negatives_path)
    scenes = load_labelled_scenes(scene_dir, labels)
    resolutions = sorted(s.resolution_m for s in scenes)
    resolution_m = float(np.median(resolutions))
    if resolutions[-1] > 1.25 * resolutions[0]:
        raise ValueError(
            f"{scene_dir}: scenes have pixel sizes {resolutions[0]:g}-{resolutions[-1]:g} m; "
            "train one model per pixel size (put Sentinel-2 and PlanetScope in separate folders)."
        )
    patches = plan_patches(scenes, patch_px=patch_px, block_px=block_px, seed=config.seed)
    rng = np.random.default_rng(config.seed)
    train_patches = sample_training_patches(patches, config.n_train, rng)
    val_patches = [p for p in patches if p.split == "val"]
    test_patches = [p for p in patches if p.split == "test"]
    train_refl, train_masks = extract_patches(scenes, train_patches)
    val_refl, val_masks = extract_patches(scenes, val_patches)
    test_refl, test_masks = extract_patches(scenes, test_patches)
    kinds = {k: sum(p.kind == k for p in train_patches) for k in ("mining", "lookalike")}
    kinds["background"] = len(train_patches) - sum(kinds.values())
    resume_key: dict[str, Any] = {
        "name": config.name,
        "scene_dir": str(scene_dir),
        "labels": str(labels_path),
        "negatives": str(negatives_path) if negatives_path else None,
        "patch_px": patch_px,
        "block_px": block_px,
        "n_train_patches": config.n_train,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "seed": config.seed,
        "architecture": config.architecture.model_dump(),
        "lr": float(config.lr),
    }
    description = (
        f"{len(scenes)} scenes from {scene_dir} ({resolution_m:g} m), labels {labels_path} "
        f"({sum(not lab.negative for lab in labels)} mining polygons, "
        f"{sum(lab.negative for lab in labels)} negative areas); spatial split in blocks of "
        f"{block_px or 2 * patch_px} px (60/20/20 % train/val/test, seed {config.seed}); "
        f"{config.n_train} training patches drawn by kind {kinds}; "
        f"{len(val_patches)} val and {len(test_patches)} test patches of {patch_px} px"
    )
    logger.info("training data: %s", description)
    return TrainingData(
        train_refl,
        train_masks,
        val_refl,
        val_masks,
        test_refl,
        test_masks,
        resolution_m=resolution_m,
        description=description,
        resolution_jitter=True,
        card_n_test_chips=len(test_refl),
        resume_key=resume_key,
    )
