"""Train the mining U-Net on generated chips and write its weights and model card.

:func:`train_model` renders chips once with :func:`asmspotter.synthetic.render_training_pair`
(train, validation and test from three disjoint seed streams, so the test split is
held out), computes the model's six input bands, normalises them with training-set
statistics, and trains :class:`asmspotter.detect.unet.UNet` with BCE + Dice loss,
AdamW and a cosine learning-rate schedule. It keeps the weights of the epoch with the
best validation IoU, tunes the threshold on validation, evaluates pixel and object
metrics on the test split, and writes ``weights.pt`` and ``model_card.json``
(:mod:`asmspotter.detect.model_card`). A checkpoint after every epoch lets an
interrupted run resume. Chips can be rendered in several processes
(:mod:`asmspotter.detect.chips`, same chips whatever their number) with a share of
hard look-alike chips, and training runs on a GPU when one is there (bf16 autocast
optional). ``scripts/train_default_model.py`` trains the bundled model.
"""

from __future__ import annotations

import logging
import math
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import nn

import asmspotter
from asmspotter.detect.chips import render_chips, render_sequence
from asmspotter.detect.metrics import (
    object_metrics,
    object_params,
    pixel_metrics,
    precision_recall_f1,
)
from asmspotter.detect.model_card import (
    DEFAULT_ARCHITECTURE,
    DEFAULT_BANDS,
    WEIGHTS_FILENAME,
    Architecture,
    Metrics,
    ModelCard,
    Normalisation,
    SoftwareVersions,
    TrainingInfo,
    save_card,
    weights_digest,
)
from asmspotter.detect.runtime import build_network, configure_torch_threads, resolve_device

logger = logging.getLogger(__name__)

CHECKPOINT_FILENAME = "checkpoint.pt"
"""File name of the per-epoch training checkpoint inside the output directory."""

REFLECTANCE_BANDS: tuple[str, ...] = ("blue", "green", "red", "nir")
"""Band order of :func:`asmspotter.synthetic.render_training_pair`'s reflectance."""

THRESHOLDS: tuple[float, ...] = tuple(round(0.3 + 0.05 * i, 2) for i in range(9))
"""Thresholds tried on the validation split (0.30 to 0.70)."""

AUGMENTATION = (
    "random 90-degree rotations and flips; brightness x U(0.8, 1.2); "
    "haze: blend with a blue-heavy veil, weight U(0, 0.15), half of the chips; "
    "ndwi/ndvi recomputed after jitter"
)

RESOLUTION_JITTER = (
    "; resolution jitter: half of the chips rescaled by U(0.8, 1.25) (bilinear, mask "
    "nearest) and cropped or reflect-padded back"
)

# A thin haze veil (blue, green, red, nir reflectance): scattering is strongest in blue.
_HAZE = (0.12, 0.11, 0.10, 0.08)

ProgressCallback = Callable[[dict[str, Any]], None]


def reflectance_to_features(reflectance: torch.Tensor, bands: Sequence[str]) -> torch.Tensor:
    """Stack model input bands from (N, 4, H, W) blue/green/red/nir reflectance.

    NDWI and NDVI use the formula of :mod:`asmspotter.composite.indices`
    ((a - b) / (a + b), 0 where the sum is 0), so training sees what inference sees.

    Args:
        reflectance: (N, 4, H, W) float32 tensor, band order :data:`REFLECTANCE_BANDS`.
        bands: Output bands in order (reflectance bands, ``ndwi``, ``ndvi``).

    Returns:
        (N, len(bands), H, W) float32 tensor.

    Raises:
        ValueError: If a band is unknown.
    """
    layer = {name: reflectance[:, i] for i, name in enumerate(REFLECTANCE_BANDS)}

    def normalised_difference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        total = a + b
        return torch.where(total != 0, (a - b) / torch.where(total != 0, total, 1.0), 0.0)

    out = []
    for band in bands:
        if band in layer:
            out.append(layer[band])
        elif band == "ndwi":
            out.append(normalised_difference(layer["green"], layer["nir"]))
        elif band == "ndvi":
            out.append(normalised_difference(layer["nir"], layer["red"]))
        else:
            raise ValueError(
                f"cannot train on band {band!r}: the generated chips have "
                f"{list(REFLECTANCE_BANDS)} plus ndwi and ndvi."
            )
    return torch.stack(out, dim=1)


def _features_in_chunks(
    reflectance: NDArray[np.float32], bands: Sequence[str], chunk: int = 64
) -> torch.Tensor:
    parts = [
        reflectance_to_features(torch.from_numpy(reflectance[i : i + chunk]), bands)
        for i in range(0, len(reflectance), chunk)
    ]
    return torch.cat(parts)


def _band_mean_std(
    reflectance: NDArray[np.float32], bands: Sequence[str], chunk: int = 256
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-band mean and sample standard deviation (float64, std >= 1e-6) of the features.

    Chunk by chunk, merged with Chan et al.'s pairwise update, so memory stays at one
    chunk's features however many chips there are.
    """
    count = 0
    mean = torch.zeros(len(bands), dtype=torch.float64)
    m2 = torch.zeros(len(bands), dtype=torch.float64)
    for i in range(0, len(reflectance), chunk):
        f = reflectance_to_features(torch.from_numpy(reflectance[i : i + chunk]), bands)
        f = f.double().transpose(0, 1).reshape(len(bands), -1)
        n = f.shape[1]
        chunk_mean = f.mean(dim=1)
        chunk_m2 = ((f - chunk_mean[:, None]) ** 2).sum(dim=1)
        delta = chunk_mean - mean
        total = count + n
        mean = mean + delta * (n / total)
        m2 = m2 + chunk_m2 + delta**2 * (count * n / total)
        count = total
    std = (m2 / max(count - 1, 1)).sqrt().clamp_min(1e-6)
    return mean, std


def _rescale(
    refl: torch.Tensor, mask: torch.Tensor, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Resample one chip by ``scale`` (a coarser or finer pixel) and crop/pad it back."""
    size = refl.shape[-1]
    new = max(8, round(size * scale))
    r = F.interpolate(refl[None], size=(new, new), mode="bilinear", align_corners=False)[0]
    m = F.interpolate(mask[None], size=(new, new), mode="nearest")[0]
    if new >= size:
        off = (new - size) // 2
        return r[:, off : off + size, off : off + size], m[:, off : off + size, off : off + size]
    pad = size - new
    before, after = pad // 2, pad - pad // 2
    r = F.pad(r[None], (before, after, before, after), mode="reflect")[0]
    m = F.pad(m[None], (before, after, before, after), mode="reflect")[0]
    return r, m


def _augment(
    reflectance: torch.Tensor,
    masks: torch.Tensor,
    gen: torch.Generator,
    *,
    resolution_jitter: bool = False,
) -> Any:
    """Rotate/flip each chip with its mask, jitter brightness and haze (and pixel size).

    The random draws come from ``gen`` (a CPU generator) in a fixed order, so the result
    does not depend on the device the chips are on. Chips sharing a rotation and flip
    are transformed together (8 groups), not one by one.
    """
    n = reflectance.shape[0]
    device = reflectance.device
    ks = torch.randint(0, 4, (n,), generator=gen)
    flips = torch.rand(n, generator=gen).lt(0.5)
    scales = (0.8 + 0.45 * torch.rand(n, generator=gen)).tolist() if resolution_jitter else []
    jitter = torch.rand(n, generator=gen).lt(0.5).tolist() if resolution_jitter else []
    refl = torch.empty_like(reflectance)
    mask = torch.empty_like(masks)
    for k in range(4):
        for flip in (False, True):
            sel = torch.nonzero((ks == k) & (flips == flip))[:, 0]
            if not len(sel):
                continue
            sel = sel.to(device)
            r, m = reflectance[sel], masks[sel]
            if k:
                r, m = torch.rot90(r, k, dims=(2, 3)), torch.rot90(m, k, dims=(2, 3))
            if flip:
                r, m = torch.flip(r, dims=(3,)), torch.flip(m, dims=(3,))
            refl[sel], mask[sel] = r, m
    if resolution_jitter:
        for i in range(n):
            if jitter[i]:
                refl[i], mask[i] = _rescale(refl[i], mask[i], scales[i])
    gain = (0.8 + 0.4 * torch.rand(n, 1, 1, 1, generator=gen)).to(device)
    haze_weight = 0.15 * torch.rand(n, 1, 1, 1, generator=gen)
    haze_weight = (haze_weight * torch.rand(n, 1, 1, 1, generator=gen).lt(0.5)).to(device)
    haze = torch.tensor(_HAZE, dtype=refl.dtype, device=device)[None, :, None, None]
    refl = ((refl * gain) * (1 - haze_weight) + haze * haze_weight).clamp(0.0, 1.0)
    return refl, mask


def _loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE plus soft Dice: BCE for calibrated probabilities, Dice for the class imbalance."""
    bce = F.binary_cross_entropy_with_logits(logits, target)
    prob = torch.sigmoid(logits)
    intersection = (prob * target).sum()
    dice = 1 - (2 * intersection + 1) / (prob.sum() + target.sum() + 1)
    return bce + dice


def _predict_chips(
    model: nn.Module, features: torch.Tensor, batch_size: int
) -> NDArray[np.float32]:
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


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(f"partial_{path.name}")
    torch.save(obj, tmp)
    tmp.replace(path)


def _state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of the model's weights (what ``weights.pt`` holds, whatever the device)."""
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}


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


def train_model(
    out_dir: Path,
    *,
    name: str,
    resolution_m: float = 10.0,
    n_train_chips: int,
    n_val_chips: int,
    n_test_chips: int,
    chip_px: int = 128,
    epochs: int,
    batch_size: int = 16,
    seed: int = 0,
    architecture: Architecture = DEFAULT_ARCHITECTURE,
    lr: float = 2e-3,
    mining_probability: float = 0.6,
    version: str = "1.0.0",
    progress: ProgressCallback | None = None,
    resume: bool = True,
    keep_checkpoint: bool = False,
    hard_lookalikes: bool = False,
    hard_fraction: float | None = None,
    render_workers: int = 1,
    device: str | torch.device | None = None,
    bf16: bool = False,
) -> ModelCard:
    """Train a U-Net on generated chips and write ``weights.pt`` and ``model_card.json``.

    Chips are rendered once per call from three disjoint
    ``numpy.random.SeedSequence(seed).spawn(3)`` streams and kept in memory:
    ``(n_train + n_val + n_test) * 4 * chip_px**2 * 4`` bytes, e.g. 0.3 GB for 1,000
    chips of 128 px (on a GPU the training chips are copied there too). Train and
    validation chips are seeded one by one from their stream
    (:func:`asmspotter.detect.chips.render_chips`), so ``render_workers`` processes
    give the same chips as one, and ``hard_fraction`` of them get the harder
    look-alikes. The test split is the third stream rendered in sequence, once with
    the standard look-alikes (unless ``hard_fraction`` is 1) and once with the hard
    ones (if ``hard_fraction`` > 0): exactly the chips ``asmspotter model evaluate
    <model> generated`` and ``generated-hard`` replay. Each epoch shuffles and
    augments the training chips, trains with BCE + Dice, AdamW and a per-step cosine
    schedule, and measures validation IoU at 0.5; the best epoch's weights are kept.
    Then the threshold maximising validation pixel F1 over 0.30..0.70 is chosen and
    the test split is scored at it.

    Args:
        out_dir: Model directory to write (``models/<name>``); created if missing.
        name: Model name (slug) for the card.
        resolution_m: Pixel size of the generated chips in metres.
        n_train_chips: Training chips.
        n_val_chips: Validation chips (best epoch and threshold).
        n_test_chips: Held-out test chips per look-alike kind (metrics in the card).
        chip_px: Chip size in pixels; a multiple of ``architecture.size_multiple``.
        epochs: Epochs to train.
        batch_size: Chips per optimiser step.
        seed: Seed of the chip streams, the weight initialisation and the shuffling.
        architecture: The network's layout (written to the card).
        lr: Peak learning rate.
        mining_probability: Share of chips with mining, passed to the chip renderer.
        version: Model version for the card.
        progress: Called after each epoch with ``{"epoch", "epochs", "loss", "val_iou",
            "lr", "seconds"}``.
        resume: Resume from ``out_dir/checkpoint.pt`` if it exists (same settings only).
        keep_checkpoint: Keep the checkpoint after a successful run (else it is deleted,
            leaving only the weights and the card).
        hard_lookalikes: All chips with the harder look-alikes
            (:func:`asmspotter.synthetic.render_labelled_chip`); the same as
            ``hard_fraction=1``.
        hard_fraction: Share of train and validation chips with the harder look-alikes
            (0..1); default 1 with ``hard_lookalikes``, else 0.
        render_workers: Processes rendering the train and validation chips.
        device: Torch device to train on (``"cpu"``, ``"cuda"``); None picks CUDA when
            available, else CPU. Recorded in the card.
        bf16: bfloat16 autocast for the forward passes in training (CUDA only).

    Returns:
        The model card written.

    Raises:
        ValueError: If an argument is out of range, ``hard_lookalikes`` contradicts
            ``hard_fraction``, ``bf16`` is asked for off CUDA, or the checkpoint was
            written with other settings (pass ``resume=False`` to start over).
    """
    for arg, value in {
        "n_train_chips": n_train_chips,
        "n_val_chips": n_val_chips,
        "n_test_chips": n_test_chips,
        "epochs": epochs,
        "batch_size": batch_size,
        "render_workers": render_workers,
    }.items():
        if value < 1:
            raise ValueError(f"train_model: {arg} must be >= 1, got {value}.")
    multiple = architecture.size_multiple
    if chip_px < multiple or chip_px % multiple:
        raise ValueError(
            f"train_model: chip_px must be a multiple of the net's size multiple {multiple} "
            f"(space_to_depth x 2**depth), got {chip_px}."
        )
    if hard_fraction is None:
        hard_fraction = 1.0 if hard_lookalikes else 0.0
    elif hard_lookalikes and hard_fraction != 1.0:
        raise ValueError(
            f"train_model: hard_lookalikes means hard_fraction=1, got hard_fraction="
            f"{hard_fraction}; give one of them."
        )
    if not 0.0 <= hard_fraction <= 1.0:
        raise ValueError(f"train_model: hard_fraction must be within 0..1, got {hard_fraction}.")
    torch_device = resolve_training_device(device, bf16)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_threads = configure_torch_threads()
    bands = list(DEFAULT_BANDS)
    config: dict[str, Any] = {
        "name": name,
        "resolution_m": float(resolution_m),
        "n_train_chips": n_train_chips,
        "n_val_chips": n_val_chips,
        "n_test_chips": n_test_chips,
        "chip_px": chip_px,
        "epochs": epochs,
        "batch_size": batch_size,
        "seed": seed,
        "architecture": architecture.model_dump(),
        "lr": float(lr),
        "mining_probability": float(mining_probability),
        "bands": bands,
        # Chips seeded one by one (asmspotter.detect.chips); older checkpoints were
        # trained on chips rendered in sequence and must not be resumed on these.
        "chip_seeding": "per-chip",
        "hard_fraction": float(hard_fraction),
    }

    started = time.perf_counter()
    train_seq, val_seq, test_seq = np.random.SeedSequence(seed).spawn(3)
    chip_args = (chip_px, resolution_m, mining_probability, hard_fraction)
    train_refl, train_masks = render_chips(
        train_seq, n_train_chips, *chip_args, workers=render_workers, label="train"
    )
    val_refl, val_masks = render_chips(
        val_seq, n_val_chips, *chip_args, workers=render_workers, label="val"
    )
    # Standard and/or hard look-alike test chips: what `model evaluate` replays.
    test_kinds = [
        hard for hard in (False, True) if (hard_fraction > 0 if hard else hard_fraction < 1)
    ]
    test_parts = [
        render_sequence(
            np.random.default_rng(test_seq),
            n_test_chips,
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
        "rendered %d/%d/%d train/val/test chips of %d px in %.1f s (%d render processes, "
        "%d torch threads)",
        n_train_chips,
        n_val_chips,
        len(test_refl),
        chip_px,
        time.perf_counter() - started,
        render_workers,
        n_threads,
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
    data_description = (
        "generated chips from asmspotter.synthetic.render_training_pair "
        f"(mining_probability={mining_probability}, {resolution_m:g} m pixels{lookalikes}); "
        "streams numpy SeedSequence(seed).spawn(3): train/val chip i seeded by its "
        f"stream's child i; test: stream 3 rendered in sequence, {n_test_chips} chips "
        f"{test_text}"
    )
    return fit_and_write(
        out_dir,
        TrainingArrays(train_refl, train_masks, val_refl, val_masks, test_refl, test_masks),
        name=name,
        version=version,
        config=config,
        data_description=data_description,
        resolution_m=resolution_m,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        architecture=architecture,
        lr=lr,
        progress=progress,
        resume=resume,
        keep_checkpoint=keep_checkpoint,
        device=torch_device,
        bf16=bf16,
        card_n_test_chips=n_test_chips,
    )


@dataclass
class TrainingArrays:
    """Reflectance (N, 4, P, P) blue/green/red/nir and masks (N, P, P) per split."""

    train_reflectance: NDArray[np.float32]
    train_masks: NDArray[np.bool_]
    val_reflectance: NDArray[np.float32]
    val_masks: NDArray[np.bool_]
    test_reflectance: NDArray[np.float32]
    test_masks: NDArray[np.bool_]


def fit_and_write(
    out_dir: Path,
    data: TrainingArrays,
    *,
    name: str,
    version: str,
    config: dict[str, Any],
    data_description: str,
    resolution_m: float,
    epochs: int,
    batch_size: int,
    seed: int,
    architecture: Architecture,
    lr: float,
    progress: ProgressCallback | None = None,
    resume: bool = True,
    keep_checkpoint: bool = False,
    resolution_jitter: bool = False,
    device: str | torch.device | None = None,
    bf16: bool = False,
    card_n_test_chips: int | None = None,
) -> ModelCard:
    """Train on in-memory patches, pick the best epoch and threshold, write weights + card.

    Shared by :func:`train_model` (generated chips) and :func:`train_from_scenes` (a
    folder of scenes + labels): normalisation from the training split, BCE + Dice,
    AdamW with a per-step cosine schedule, augmentation (:func:`_augment`), the epoch
    with the best validation IoU, the threshold maximising validation pixel F1, and
    pixel + object metrics on the test split. A checkpoint after every epoch
    (``checkpoint.pt``) makes the run resumable; ``config`` must match to resume.

    On ``device`` (None: CUDA when available, else CPU) the training chips, the
    augmentation and the forward and backward passes run there, under bfloat16
    autocast with ``bf16`` (CUDA only; the loss and the evaluation stay fp32). The
    weights are saved as CPU tensors, and the card records the device. On CUDA, runs
    are not bit-for-bit reproducible (cuDNN picks its algorithms by timing).

    ``card_n_test_chips`` is the test split size to record in the card's training
    section when the test arrays hold several renderings of one stream (see
    :func:`train_model`); by default the number of test patches.

    Raises:
        ValueError: If the checkpoint was written with another ``config``, or ``bf16``
            is asked for off CUDA.
    """
    torch_device = resolve_training_device(device, bf16)
    on_cuda = torch_device.type == "cuda"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    configure_torch_threads()
    bands = list(DEFAULT_BANDS)
    train_refl, train_masks = data.train_reflectance, data.train_masks
    val_refl, val_masks = data.val_reflectance, data.val_masks
    test_refl, test_masks = data.test_reflectance, data.test_masks
    n_train_chips, n_val_chips, n_test_chips = len(train_refl), len(val_refl), len(test_refl)
    chip_px = int(train_refl.shape[-1])
    for split, n in (("train", n_train_chips), ("val", n_val_chips), ("test", n_test_chips)):
        if n < 1:
            raise ValueError(
                f"fit_and_write: the {split} split is empty; give more scenes or a larger "
                "area (each split needs at least one block of patches)."
            )
    mean_t, std_t = _band_mean_std(train_refl, bands)
    mean = mean_t.float()[None, :, None, None]
    std = std_t.float()[None, :, None, None]
    val_features = (_features_in_chunks(val_refl, bands) - mean) / std
    train_refl_t = torch.from_numpy(train_refl).to(torch_device)
    train_masks_t = torch.from_numpy(train_masks)[:, None].to(torch_device)
    mean_d, std_d = mean.to(torch_device), std.to(torch_device)
    cudnn_benchmark = torch.backends.cudnn.benchmark
    if on_cuda:
        torch.backends.cudnn.benchmark = True  # fixed chip size: time the algorithms once
        val_features = val_features.to(torch_device)

    torch.manual_seed(seed)
    model = build_network(architecture, n_bands=len(bands))
    model = model.to(torch_device, memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps_per_epoch = math.ceil(n_train_chips / batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimiser, T_max=epochs * steps_per_epoch
    )

    start_epoch = 0
    best_iou = -1.0
    best_epoch = 0
    best_state = _state_copy(model)
    history: list[dict[str, float]] = []
    elapsed_before = 0.0
    checkpoint_path = out_dir / CHECKPOINT_FILENAME
    if resume and checkpoint_path.is_file():
        checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        if checkpoint.get("config") != config:
            raise ValueError(
                f"{checkpoint_path} was written with other settings "
                f"({checkpoint.get('config')}) than this run ({config}); pass resume=False "
                "(--no-resume) to start over, or delete the checkpoint."
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
            refl, target = _augment(
                train_refl_t[idx],
                train_masks_t[idx].float(),
                gen,
                resolution_jitter=resolution_jitter,
            )
            x = (reflectance_to_features(refl, bands) - mean_d) / std_d
            x = x.contiguous(memory_format=torch.channels_last)
            optimiser.zero_grad(set_to_none=True)
            with torch.autocast(torch_device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(x)
            loss = _loss(logits.float(), target)
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
            scheduler.step()
            loss_sum += loss.detach() * len(idx)
        epoch_loss = float(loss_sum) / n_train_chips
        val_prob = _predict_chips(model, val_features, batch_size)
        val_iou = pixel_metrics(val_prob >= 0.5, val_masks)["iou"]
        if val_iou > best_iou:
            best_iou, best_epoch, best_state = val_iou, epoch + 1, _state_copy(model)
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
        _atomic_save(
            {
                "config": config,
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

    model.load_state_dict(best_state)
    val_prob = _predict_chips(model, val_features, batch_size)
    f1_by_threshold = {t: pixel_metrics(val_prob >= t, val_masks)["f1"] for t in THRESHOLDS}
    threshold = max(THRESHOLDS, key=lambda t: (f1_by_threshold[t], -abs(t - 0.5)))
    test_features = (_features_in_chunks(test_refl, bands) - mean) / std
    test_prob = _predict_chips(model, test_features, batch_size)
    test_pred = test_prob >= threshold
    pixel = pixel_metrics(test_pred, test_masks)
    counts = np.zeros(3)
    params = object_params(resolution_m)
    for pred_chip, truth_chip in zip(test_pred, test_masks, strict=True):
        obj = object_metrics(
            pred_chip,
            truth_chip,
            group_px=params["group_px"],
            min_area_px=params["min_area_px"],
        )
        counts += (obj["n_matched"], obj["n_pred"], obj["n_truth"])
    objects = precision_recall_f1(int(counts[0]), int(counts[1]), int(counts[2]))

    weights_path = out_dir / WEIGHTS_FILENAME
    _atomic_save(_state_copy(model), weights_path)
    card = ModelCard(
        weights_sha256=weights_digest(weights_path),
        name=name,
        version=version,
        architecture=architecture,
        bands=bands,
        normalisation=Normalisation(mean=[float(v) for v in mean_t], std=[float(v) for v in std_t]),
        resolution_m=resolution_m,
        threshold=threshold,
        metrics=Metrics(
            pixel_iou=pixel["iou"],
            pixel_precision=pixel["precision"],
            pixel_recall=pixel["recall"],
            pixel_f1=pixel["f1"],
            object_precision=objects["precision"],
            object_recall=objects["recall"],
            object_f1=objects["f1"],
            n_test_chips=n_test_chips,
        ),
        training=TrainingInfo(
            data=data_description,
            seed=seed,
            epochs=epochs,
            best_epoch=best_epoch,
            chip_px=chip_px,
            n_train_chips=n_train_chips,
            n_val_chips=n_val_chips,
            n_test_chips=card_n_test_chips or n_test_chips,
            batch_size=batch_size,
            lr=lr,
            loss="bce+dice",
            augmentation=AUGMENTATION + (RESOLUTION_JITTER if resolution_jitter else ""),
            seconds=round(train_seconds, 1),
            device=describe_device(torch_device, bf16),
            software=SoftwareVersions(
                torch=torch.__version__,
                numpy=np.__version__,
                asmspotter=asmspotter.__version__,
            ),
        ),
    )
    save_card(card, out_dir)
    if not keep_checkpoint:
        checkpoint_path.unlink(missing_ok=True)
    logger.info(
        "trained %s: test pixel IoU %.3f, F1 %.3f, object F1 %.3f at threshold %.2f "
        "(best epoch %d/%d, %.0f s training, python %s) -> %s",
        name,
        pixel["iou"],
        pixel["f1"],
        objects["f1"],
        threshold,
        best_epoch,
        epochs,
        train_seconds,
        platform.python_version(),
        out_dir,
    )
    return card


def train_from_scenes(
    out_dir: Path,
    *,
    name: str,
    scene_dir: Path,
    labels_path: Path,
    negatives_path: Path | None = None,
    patch_px: int = 128,
    block_px: int | None = None,
    n_train_patches: int = 1000,
    epochs: int = 14,
    batch_size: int = 16,
    seed: int = 0,
    architecture: Architecture = DEFAULT_ARCHITECTURE,
    lr: float = 2e-3,
    version: str = "1.0.0",
    progress: ProgressCallback | None = None,
    resume: bool = True,
    keep_checkpoint: bool = False,
    device: str | torch.device | None = None,
) -> ModelCard:
    """Train a U-Net on a folder of scenes and label polygons; write weights + card.

    Scenes are read and labels rasterised on each scene's grid
    (:func:`asmspotter.detect.datasets.load_labelled_scenes`); the area is split into
    blocks of ``block_px`` that go wholly to train, validation or test
    (:func:`~asmspotter.detect.datasets.plan_patches`), so no test patch overlaps a
    training one; ``n_train_patches`` training patches are drawn balanced between
    mining, look-alikes and background; validation and test use every patch of their
    blocks. Training is :func:`fit_and_write` with resolution jitter on.

    Example:
        >>> from pathlib import Path
        >>> from asmspotter.detect.train import train_from_scenes
        >>> card = train_from_scenes(  # doctest: +SKIP
        ...     Path("models/my-ps-model"), name="my-ps-model",
        ...     scene_dir=Path("data/scenes/brokopondo"), labels_path=Path("labels.geojson"),
        ... )

    Args:
        out_dir: Model directory to write.
        name: Model name for the card.
        scene_dir: Folder of 4-band GeoTIFFs (local scene format).
        labels_path: Mining polygons: GeoJSON or a LabelBox NDJSON export.
        negatives_path: Optional GeoJSON of negative areas (dismissed false positives).
        patch_px: Patch size in pixels (multiple of ``architecture.size_multiple``).
        block_px: Split block size in pixels (default 2 x ``patch_px``).
        n_train_patches: Training patches drawn per run (with replacement).
        epochs: Epochs.
        batch_size: Patches per step.
        seed: Seed of the split, sampling, weights and shuffling.
        architecture: The network's layout (written to the card).
        lr: Peak learning rate.
        version: Model version for the card.
        progress: Called after each epoch (see :func:`train_model`).
        resume: Resume from the checkpoint if it exists.
        keep_checkpoint: Keep the checkpoint after success.
        device: Torch device to train on; None picks CUDA when available, else CPU.

    Returns:
        The card written.

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

    multiple = architecture.size_multiple
    if patch_px < multiple or patch_px % multiple:
        raise ValueError(
            f"patch_px must be a multiple of the net's size multiple {multiple} "
            f"(space_to_depth x 2**depth), got {patch_px}."
        )
    labels = load_labels(Path(labels_path), negatives_path)
    scenes = load_labelled_scenes(Path(scene_dir), labels)
    resolutions = sorted(s.resolution_m for s in scenes)
    resolution_m = float(np.median(resolutions))
    if resolutions[-1] > 1.25 * resolutions[0]:
        raise ValueError(
            f"{scene_dir}: scenes have pixel sizes {resolutions[0]:g}-{resolutions[-1]:g} m; "
            "train one model per pixel size (put Sentinel-2 and PlanetScope in separate folders)."
        )
    patches = plan_patches(scenes, patch_px=patch_px, block_px=block_px, seed=seed)
    rng = np.random.default_rng(seed)
    train_patches = sample_training_patches(patches, n_train_patches, rng)
    val_patches = [p for p in patches if p.split == "val"]
    test_patches = [p for p in patches if p.split == "test"]
    train_refl, train_masks = extract_patches(scenes, train_patches)
    val_refl, val_masks = extract_patches(scenes, val_patches)
    test_refl, test_masks = extract_patches(scenes, test_patches)
    kinds = {k: sum(p.kind == k for p in train_patches) for k in ("mining", "lookalike")}
    kinds["background"] = len(train_patches) - sum(kinds.values())
    config: dict[str, Any] = {
        "name": name,
        "scene_dir": str(scene_dir),
        "labels": str(labels_path),
        "negatives": str(negatives_path) if negatives_path else None,
        "patch_px": patch_px,
        "block_px": block_px,
        "n_train_patches": n_train_patches,
        "epochs": epochs,
        "batch_size": batch_size,
        "seed": seed,
        "architecture": architecture.model_dump(),
        "lr": float(lr),
    }
    description = (
        f"{len(scenes)} scenes from {scene_dir} ({resolution_m:g} m), labels {labels_path} "
        f"({sum(not lab.negative for lab in labels)} mining polygons, "
        f"{sum(lab.negative for lab in labels)} negative areas); spatial split in blocks of "
        f"{block_px or 2 * patch_px} px (60/20/20 % train/val/test, seed {seed}); "
        f"{n_train_patches} training patches drawn by kind {kinds}; "
        f"{len(val_patches)} val and {len(test_patches)} test patches of {patch_px} px"
    )
    logger.info("training data: %s", description)
    return fit_and_write(
        out_dir,
        TrainingArrays(train_refl, train_masks, val_refl, val_masks, test_refl, test_masks),
        name=name,
        version=version,
        config=config,
        data_description=description,
        resolution_m=resolution_m,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        architecture=architecture,
        lr=lr,
        progress=progress,
        resume=resume,
        keep_checkpoint=keep_checkpoint,
        resolution_jitter=True,
        device=device,
    )


def train_detector(
    out_dir: Path,
    *,
    name: str,
    scene_dir: Path | None = None,
    labels_path: Path | None = None,
    negatives_path: Path | None = None,
    resolution_m: float = 10.0,
    n_train: int = 1400,
    epochs: int = 14,
    seed: int = 0,
    patch_px: int = 128,
    block_px: int | None = None,
    hard_lookalikes: bool = True,
    progress: ProgressCallback | None = None,
    resume: bool = True,
    device: str | None = None,
) -> ModelCard:
    """Train on a folder of scenes + labels when one is given, else on generated chips.

    The one entry point behind ``asmspotter model train`` and the ``train`` flow.

    Raises:
        ValueError: ``scene_dir`` without ``labels_path``.
    """
    if scene_dir is not None:
        if labels_path is None:
            raise ValueError(
                "training on a scene folder needs labels: give a GeoJSON or LabelBox NDJSON "
                "file of mining polygons (--labels)."
            )
        return train_from_scenes(
            out_dir,
            name=name,
            scene_dir=scene_dir,
            labels_path=labels_path,
            negatives_path=negatives_path,
            patch_px=patch_px,
            block_px=block_px,
            n_train_patches=n_train,
            epochs=epochs,
            seed=seed,
            progress=progress,
            resume=resume,
            device=device,
        )
    return train_model(
        out_dir,
        name=name,
        resolution_m=resolution_m,
        n_train_chips=n_train,
        n_val_chips=max(32, n_train // 9),
        n_test_chips=max(64, n_train // 6),
        epochs=epochs,
        seed=seed,
        progress=progress,
        resume=resume,
        hard_lookalikes=hard_lookalikes,
        device=device,
    )
