"""After the loop: the threshold from validation, metrics on the test split, weights and card.

:func:`write_model` restores the best epoch's weights, picks the threshold
maximising validation pixel F1 over 0.30..0.70, scores the held-out test split at it
(pixel and object metrics, :mod:`asmspotter.detect.metrics`) and writes ``weights.pt``
and ``model_card.json`` (:mod:`asmspotter.detect.model_card`).
"""

from __future__ import annotations

import logging
import platform
from pathlib import Path

import numpy as np
import torch

import asmspotter
from asmspotter.detect.metrics import (
    object_metrics,
    object_params,
    pixel_metrics,
    precision_recall_f1,
)
from asmspotter.detect.model_card import (
    DEFAULT_BANDS,
    WEIGHTS_FILENAME,
    Metrics,
    ModelCard,
    Normalisation,
    SoftwareVersions,
    TrainingInfo,
    save_card,
    weights_digest,
)
from asmspotter.detect.train.augment import AUGMENTATION, RESOLUTION_JITTER
from asmspotter.detect.train.config import TrainConfig
from asmspotter.detect.train.data import TrainingData
from asmspotter.detect.train.inputs import features_in_chunks
from asmspotter.detect.train.loop import (
    CHECKPOINT_FILENAME,
    FittedModel,
    atomic_save,
    describe_device,
    predict_chips,
    state_copy,
)

logger = logging.getLogger(__name__)

THRESHOLDS: tuple[float, ...] = tuple(round(0.3 + 0.05 * i, 2) for i in range(9))
"""Thresholds tried on the validation split (0.30 to 0.70)."""


def write_model(
    config: TrainConfig, data: TrainingData, fitted: FittedModel, torch_device: torch.device
) -> ModelCard:
    """Score the best epoch's weights and write them with their card into ``config.out_dir``.

    The checkpoint is deleted afterwards unless ``config.keep_checkpoint``.
    """
    out_dir = Path(config.out_dir)
    bands = list(DEFAULT_BANDS)
    model, batch_size = fitted.model, config.batch_size
    mean = fitted.mean.float()[None, :, None, None]
    std = fitted.std.float()[None, :, None, None]
    model.load_state_dict(fitted.best_state)
    val_prob = predict_chips(model, fitted.val_features, batch_size)
    f1_by_threshold = {t: pixel_metrics(val_prob >= t, data.val_masks)["f1"] for t in THRESHOLDS}
    threshold = max(THRESHOLDS, key=lambda t: (f1_by_threshold[t], -abs(t - 0.5)))
    test_features = (features_in_chunks(data.test_reflectance, bands) - mean) / std
    test_prob = predict_chips(model, test_features, batch_size)
    test_pred = test_prob >= threshold
    pixel = pixel_metrics(test_pred, data.test_masks)
    counts = np.zeros(3)
    params = object_params(data.resolution_m)
    for pred_chip, truth_chip in zip(test_pred, data.test_masks, strict=True):
        obj = object_metrics(
            pred_chip,
            truth_chip,
            group_px=params["group_px"],
            min_area_px=params["min_area_px"],
        )
        counts += (obj["n_matched"], obj["n_pred"], obj["n_truth"])
    objects = precision_recall_f1(int(counts[0]), int(counts[1]), int(counts[2]))

    weights_path = out_dir / WEIGHTS_FILENAME
    atomic_save(state_copy(model), weights_path)
    augmentation = AUGMENTATION + (RESOLUTION_JITTER if data.resolution_jitter else "")
    card = ModelCard(
        weights_sha256=weights_digest(weights_path),
        name=config.name,
        version=config.version,
        architecture=config.architecture,
        bands=bands,
        normalisation=Normalisation(
            mean=[float(v) for v in fitted.mean], std=[float(v) for v in fitted.std]
        ),
        resolution_m=data.resolution_m,
        threshold=threshold,
        metrics=Metrics(
            pixel_iou=pixel["iou"],
            pixel_precision=pixel["precision"],
            pixel_recall=pixel["recall"],
            pixel_f1=pixel["f1"],
            object_precision=objects["precision"],
            object_recall=objects["recall"],
            object_f1=objects["f1"],
            n_test_chips=len(data.test_reflectance),
        ),
        training=TrainingInfo(
            data=data.description,
            seed=config.seed,
            epochs=config.epochs,
            best_epoch=fitted.best_epoch,
            chip_px=int(data.train_reflectance.shape[-1]),
            n_train_chips=len(data.train_reflectance),
            n_val_chips=len(data.val_reflectance),
            n_test_chips=data.card_n_test_chips,
            batch_size=batch_size,
            lr=config.lr,
            loss="bce+dice",
            augmentation=augmentation,
            seconds=round(fitted.seconds, 1),
            device=describe_device(torch_device, config.bf16),
            software=SoftwareVersions(
                torch=torch.__version__,
                numpy=np.__version__,
                asmspotter=asmspotter.__version__,
            ),
        ),
    )
    save_card(card, out_dir)
    if not config.keep_checkpoint:
        (out_dir / CHECKPOINT_FILENAME).unlink(missing_ok=True)
    logger.info(
        "trained %s: test pixel IoU %.3f, F1 %.3f, object F1 %.3f at threshold %.2f "
        "(best epoch %d/%d, %.0f s training, python %s) -> %s",
        config.name,
        pixel["iou"],
        pixel["f1"],
        objects["f1"],
        threshold,
        fitted.best_epoch,
        config.epochs,
        fitted.seconds,
        platform.python_version(),
        out_dir,
    )
    return card
