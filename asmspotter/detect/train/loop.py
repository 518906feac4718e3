"""The training loop: epochs of augmented batches, the best epoch kept, a checkpoint per epoch.

:func:`fit` normalises with the training split's statistics, trains with BCE + Dice,
AdamW and a per-step cosine schedule, measures validation IoU at 0.5 after every
epoch and keeps the best epoch's weights. ``checkpoint.pt`` after every epoch makes
an interrupted run resumable (with the same settings only).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import nn

from asmspotter.detect.metrics import pixel_metrics
from asmspotter.detect.model_card import DEFAULT_BANDS
from asmspotter.detect.runtime import build_network, resolve_device
from asmspotter.detect.train.augment import augment
from asmspotter.detect.train.config import ProgressCallback, TrainConfig
from asmspotter.detect.train.data import TrainingData
from asmspotter.detect.train.inputs import (
    band_mean_std,
    features_in_chunks,
    reflectance_to_features,
)

logger = logging.getLogger(__name__)

CHECKPOINT_FILENAME = "checkpoint.pt"
"""File name of the per-epoch training checkpoint inside the output directory."""


@dataclass(frozen=True)
class FittedModel:
    """What the loop hands to evaluation: the net, its best weights and the statistics."""

    model: nn.Module
    """The net after the last epoch (load ``best_state`` before scoring)."""
    best_state: dict[str, torch.Tensor]
    """CPU copy of the weights of the epoch with the best validation IoU."""
    best_epoch: int
    """1-based epoch of ``best_state``."""
    seconds: float
    """Training time, resumed runs included."""
    mean: torch.Tensor
    """Per-band mean (float64) of the training split's features."""
    std: torch.Tensor
    """Per-band standard deviation (float64, >= 1e-6) of the training split's features."""
    val_features: torch.Tensor
    """Normalised validation features (on the training device on CUDA)."""


def describe_device(device: torch.device, bf16: bool = False) -> str:
    """Human-readable training device for the card, e.g. ``cuda (NVIDIA H100), bf16 autocast``."""
    text = device.type
    if device.type == "cuda":
        text += f" ({torch.cuda.get_device_name(device)})"
    return text + (", bf16 autocast" if bf16 else "")


def resolve_training_device(device: str | torch.device | None, bf16: bool) -> torch.device:
    """``device`` as a torch device (None: CUDA when available, else CPU); checks ``bf16``.

    Raises:
        ValueError: If ``bf16`` is asked for on a device other than CUDA, or CUDA is
            asked for and not available.
    """
    torch_device = device if isinstance(device, torch.device) else resolve_device(device)
    if torch_device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"training device {str(torch_device)!r} asked for, but CUDA is not available "
            "here; pass device='cpu' (--device cpu) or leave it unset."
        )
    if bf16 and torch_device.type != "cuda":
        raise ValueError(
            f"bf16 autocast in training runs on CUDA only, and the device is {torch_device}; "
            "drop bf16 (--bf16) or train on a GPU."
        )
    return torch_device


def loss_of(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE plus soft Dice: BCE for calibrated probabilities, Dice for the class imbalance."""
    bce = F.binary_cross_entropy_with_logits(logits, target)
    prob = torch.sigmoid(logits)
    intersection = (prob * target).sum()
    dice = 1 - (2 * intersection + 1) / (prob.sum() + target.sum() + 1)
    return bce + dice


def predict_chips(model: nn.Module, features: torch.Tensor, batch_size: int) -> NDArray[np.float32]:
    """Return probabilities (N, H, W) of normalised features (N, C, H, W), in fp32.

    ``features`` may be on the CPU or on the model's device; batches are moved there.
    """
    model.eval()
    device = next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for i in range(0, len(features), batch_size):
            x = features[i : i + batch_size].to(device)
            x = x.contiguous(memory_format=torch.channels_last)
            out.append(torch.sigmoid(model(x).float())[:, 0].cpu().numpy())
    return np.concatenate(out).astype(np.float32)


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a ``partial_`` sibling, then rename: never a half-written file."""
    tmp = path.with_name(f"partial_{path.name}")
    torch.save(obj, tmp)
    tmp.replace(path)


def state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of the model's weights (what ``weights.pt`` holds, whatever the device)."""
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}


def fit(
    config: TrainConfig,
    data: TrainingData,
    torch_device: torch.device,
    progress: ProgressCallback | None = None,
) -> FittedModel:
    """Train on the in-memory splits for ``config.epochs``; keep the best epoch's weights.

    On ``torch_device`` the training chips, the augmentation and the forward and
    backward passes run there, under bfloat16 autocast with ``config.bf16`` (CUDA only;
    the loss and the evaluation stay fp32). On CUDA, runs are not bit-for-bit
    reproducible (cuDNN picks its algorithms by timing).

    Raises:
        ValueError: If the checkpoint was written with other settings
            (``data.resume_key``).
    """
    on_cuda = torch_device.type == "cuda"
    epochs, batch_size, seed, bf16 = config.epochs, config.batch_size, config.seed, config.bf16
    bands = list(DEFAULT_BANDS)
    n_train_chips = len(data.train_reflectance)
    mean_t, std_t = band_mean_std(data.train_reflectance, bands)
    mean = mean_t.float()[None, :, None, None]
    std = std_t.float()[None, :, None, None]
    val_features = (features_in_chunks(data.val_reflectance, bands) - mean) / std
    train_refl_t = torch.from_numpy(data.train_reflectance).to(torch_device)
    train_masks_t = torch.from_numpy(data.train_masks)[:, None].to(torch_device)
    mean_d, std_d = mean.to(torch_device), std.to(torch_device)
    cudnn_benchmark = torch.backends.cudnn.benchmark
    if on_cuda:
        torch.backends.cudnn.benchmark = True  # fixed chip size: time the algorithms once
        val_features = val_features.to(torch_device)

    torch.manual_seed(seed)
    model = build_network(config.architecture, n_bands=len(bands))
    model = model.to(torch_device, memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-4)
    steps_per_epoch = math.ceil(n_train_chips / batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimiser, T_max=epochs * steps_per_epoch
    )

    start_epoch = 0
    best_iou = -1.0
    best_epoch = 0
    best_state = state_copy(model)
    history: list[dict[str, float]] = []
    elapsed_before = 0.0
    checkpoint_path = Path(config.out_dir) / CHECKPOINT_FILENAME
    if config.resume and checkpoint_path.is_file():
        checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        if checkpoint.get("config") != data.resume_key:
            raise ValueError(
                f"{checkpoint_path} was written with other settings "
                f"({checkpoint.get('config')}) than this run ({data.resume_key}); pass "
                "resume=False (--no-resume) to start over, or delete the checkpoint."
            )
        model.load_state_dict(checkpoint["model"])
        optimiser.load_state_dict(checkpoint["optimiser"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        start_epoch = int(checkpoint["epoch"])
        best_iou = float(checkpoint["best_iou"])
        best_epoch = int(checkpoint["best_epoch"])
        best_state = checkpoint["best_state"]
        history = list(checkpoint["history"])
        elapsed_before = float(checkpoint["seconds"])
        logger.info("resuming %s after epoch %d/%d", checkpoint_path, start_epoch, epochs)

    train_started = time.perf_counter()
    for epoch in range(start_epoch, epochs):
        epoch_started = time.perf_counter()
        # One generator per epoch, seeded from (seed, epoch): a resumed run shuffles and
        # augments exactly as an uninterrupted one.
        gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
        order = torch.randperm(n_train_chips, generator=gen)
        model.train()
        # Summed on the device: no host round trip per step.
        loss_sum = torch.zeros((), device=torch_device)
        for step in range(steps_per_epoch):
            idx = order[step * batch_size : (step + 1) * batch_size].to(torch_device)
            refl, target = augment(
                train_refl_t[idx],
                train_masks_t[idx].float(),
                gen,
                resolution_jitter=data.resolution_jitter,
            )
            x = (reflectance_to_features(refl, bands) - mean_d) / std_d
            x = x.contiguous(memory_format=torch.channels_last)
            optimiser.zero_grad(set_to_none=True)
            with torch.autocast(torch_device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(x)
            loss = loss_of(logits.float(), target)
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
            scheduler.step()
            loss_sum += loss.detach() * len(idx)
        epoch_loss = float(loss_sum) / n_train_chips
        val_prob = predict_chips(model, val_features, batch_size)
        val_iou = pixel_metrics(val_prob >= 0.5, data.val_masks)["iou"]
        if val_iou > best_iou:
            best_iou, best_epoch, best_state = val_iou, epoch + 1, state_copy(model)
        seconds = time.perf_counter() - epoch_started
        record = {
            "epoch": epoch + 1,
            "epochs": epochs,
            "loss": epoch_loss,
            "val_iou": val_iou,
            "lr": float(scheduler.get_last_lr()[0]),
            "seconds": seconds,
        }
        history.append(record)
        logger.info(
            "epoch %d/%d: loss %.4f, val IoU %.3f (best %.3f @ %d), %.1f s",
            epoch + 1,
            epochs,
            epoch_loss,
            val_iou,
            best_iou,
            best_epoch,
            seconds,
        )
        atomic_save(
            {
                "config": data.resume_key,
                "model": model.state_dict(),
                "optimiser": optimiser.state_dict(),
                "scheduler": scheduler.state_dict(),
                "epoch": epoch + 1,
                "best_iou": best_iou,
                "best_epoch": best_epoch,
                "best_state": best_state,
                "history": history,
                "seconds": elapsed_before + time.perf_counter() - train_started,
            },
            checkpoint_path,
        )
        if progress is not None:
            progress(record)
    train_seconds = elapsed_before + time.perf_counter() - train_started
    torch.backends.cudnn.benchmark = cudnn_benchmark
    del train_refl_t, train_masks_t
    return FittedModel(model, best_state, best_epoch, train_seconds, mean_t, std_t, val_features)
