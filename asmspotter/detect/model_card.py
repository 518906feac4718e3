"""The model card: the JSON metadata saved beside a model's weights.

A model directory (``models/<name>/``) holds ``weights.pt`` (a torch state_dict)
and ``model_card.json``, validated by :class:`ModelCard`: input bands in order,
normalisation, the pixel size it was trained at, the probability threshold, tiling
for inference, metrics on its held-out split and how it was trained. The pipeline
calls :func:`check_model_fits` before inference and refuses a model whose bands or
resolution do not fit the composite. :mod:`asmspotter.detect.train` writes cards;
:mod:`asmspotter.detect.runtime` reads them.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from asmspotter.errors import ModelMismatchError, ModelNotFoundError

logger = logging.getLogger(__name__)

CARD_FILENAME = "model_card.json"
"""File name of the card inside a model directory."""

WEIGHTS_FILENAME = "weights.pt"
"""File name of the weights (a torch state_dict) inside a model directory."""

DEFAULT_BANDS: tuple[str, ...] = ("red", "green", "blue", "nir", "ndwi", "ndvi")
"""Input bands of the default model, in input order."""

DERIVED_BANDS: dict[str, tuple[str, str]] = {"ndwi": ("green", "nir"), "ndvi": ("red", "nir")}
"""Bands a model may take that are computed from others when a composite lacks them."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Architecture(_Strict):
    """Which network the weights belong to, and its size."""

    name: Literal["unet"] = Field(default="unet", description="Network family.")
    """Network family; only ``unet`` (:class:`asmspotter.detect.unet.UNet`) exists."""
    base_channels: int = Field(default=16, ge=1, description="Channels of the first level.")
    """Channels of the first U-Net level."""
    depth: int = Field(default=4, ge=1, description="Number of 2x down-sampling steps.")
    """Number of 2x down-sampling steps."""
    upsampling: Literal["bilinear", "transpose"] = Field(
        default="bilinear", description="Decoder upsampling."
    )
    """Decoder upsampling: bilinear or transposed convolution."""
    space_to_depth: int = Field(
        default=1, ge=1, description="Pixel block folded into channels before the net (1: off)."
    )
    """Side of the pixel block folded into channels before the first level (1: off)."""

    @property
    def size_multiple(self) -> int:
        """Chip and tile sides must be multiples of this many pixels."""
        return int(self.space_to_depth * 2**self.depth)


DEFAULT_ARCHITECTURE = Architecture(
    base_channels=32, depth=3, upsampling="transpose", space_to_depth=2
)
"""What new models are trained with: the shipped models' layout.

Field defaults above describe the classic layout (base 16, depth 4, bilinear, no
space-to-depth) that cards written before ``space_to_depth`` existed were trained
with; new training uses this one, which runs about 1.9x faster on a CPU for the same
parameter count (see :mod:`asmspotter.detect.unet`).
"""


class Normalisation(_Strict):
    """Per-band normalisation applied before the net: ``(x - mean) / std``."""

    mean: list[float] = Field(description="Mean per input band, in band order.")
    """Mean per input band, in band order (training-set statistics)."""
    std: list[float] = Field(description="Standard deviation per input band, > 0.")
    """Standard deviation per input band, in band order, each > 0."""

    @model_validator(mode="after")
    def _check(self) -> Normalisation:
        if len(self.mean) != len(self.std):
            raise ValueError(
                f"normalisation.mean has {len(self.mean)} values but normalisation.std has "
                f"{len(self.std)}; give one of each per band."
            )
        if any(s <= 0 for s in self.std):
            raise ValueError(f"normalisation.std must all be > 0, got {self.std}.")
        return self


class Metrics(_Strict):
    """Metrics on the model's held-out test split, at the card's threshold."""

    pixel_iou: float = Field(ge=0, le=1, description="Pixel intersection over union.")
    """Pixel intersection over union of the mining class."""
    pixel_precision: float = Field(ge=0, le=1, description="Pixel precision.")
    """Pixel precision."""
    pixel_recall: float = Field(ge=0, le=1, description="Pixel recall.")
    """Pixel recall."""
    pixel_f1: float = Field(ge=0, le=1, description="Pixel F1.")
    """Pixel F1 score."""
    object_precision: float = Field(ge=0, le=1, description="Object precision.")
    """Share of predicted objects matching a true one (IoU >= 0.3, one-to-one)."""
    object_recall: float = Field(ge=0, le=1, description="Object recall.")
    """Share of true objects matched by a predicted one."""
    object_f1: float = Field(ge=0, le=1, description="Object F1.")
    """Object F1 score."""
    n_test_chips: int = Field(ge=0, description="Number of test chips.")
    """Number of test chips the metrics were computed on."""


class SoftwareVersions(_Strict):
    """Versions of the software the model was trained with."""

    torch: str = Field(description="torch version.")
    """torch version."""
    numpy: str = Field(description="numpy version.")
    """numpy version."""
    asmspotter: str = Field(default="unknown", description="asmspotter version.")
    """asmspotter version."""


class TrainingInfo(_Strict):
    """How the model was trained: data, split sizes, seed and schedule."""

    data: str = Field(description="Description of the training data.")
    """Free-text description of the training data and how it was split."""
    seed: int = Field(description="Seed of the data and weight initialisation.")
    """Seed of the chip generators and the weight initialisation."""
    epochs: int = Field(ge=0, description="Epochs trained.")
    """Epochs trained."""
    best_epoch: int = Field(ge=0, description="Epoch whose weights were kept (1-based).")
    """Epoch whose weights were kept (best validation IoU), 1-based; 0 if none."""
    chip_px: int = Field(ge=1, description="Chip size in pixels.")
    """Chip size in pixels."""
    n_train_chips: int = Field(ge=0, description="Training chips.")
    """Number of training chips."""
    n_val_chips: int = Field(ge=0, description="Validation chips.")
    """Number of validation chips."""
    n_test_chips: int = Field(ge=0, description="Test chips.")
    """Number of test chips."""
    batch_size: int = Field(ge=1, description="Batch size.")
    """Batch size."""
    lr: float = Field(gt=0, description="Peak learning rate (AdamW, cosine schedule).")
    """Peak learning rate of AdamW with a cosine schedule."""
    loss: str = Field(default="bce+dice", description="Loss function.")
    """Loss function."""
    augmentation: str = Field(default="", description="Augmentations applied.")
    """Augmentations applied to training chips."""
    seconds: float = Field(default=0.0, ge=0, description="Training wall time in seconds.")
    """Training wall time in seconds."""
    device: str | None = Field(
        default=None, description="Device trained on, e.g. 'cpu' or 'cuda (<GPU>), bf16 autocast'."
    )
    """Device the model was trained on, with the GPU's name and bf16 autocast if used;
    None for cards written before it was recorded."""
    software: SoftwareVersions = Field(description="Software versions.")
    """Software versions."""


InferencePrecision = Literal["fp32", "bf16"]
"""Numeric precision of inference: float32, or bfloat16 autocast."""


class EvaluationMetrics(_Strict):
    """Pixel and object metrics of one detector on one data set, at one threshold."""

    threshold: float = Field(ge=0, le=1, description="Probability threshold used.")
    """Probability (or score) at or above which a pixel counts as mining."""
    pixel_precision: float = Field(ge=0, le=1, description="Pixel precision.")
    """Pixel precision."""
    pixel_recall: float = Field(ge=0, le=1, description="Pixel recall.")
    """Pixel recall."""
    pixel_f1: float = Field(ge=0, le=1, description="Pixel F1.")
    """Pixel F1."""
    pixel_iou: float = Field(ge=0, le=1, description="Pixel IoU.")
    """Pixel intersection over union of the mining class."""
    object_precision: float = Field(ge=0, le=1, description="Object precision.")
    """Share of predicted sites matching a labelled one at IoU >= 0.3 (one-to-one)."""
    object_recall: float = Field(ge=0, le=1, description="Object recall.")
    """Share of labelled sites matched by a predicted one."""
    object_f1: float = Field(ge=0, le=1, description="Object F1.")
    """Object F1."""
    n_pred_objects: int = Field(ge=0, description="Predicted sites.")
    """Number of predicted sites."""
    n_truth_objects: int = Field(ge=0, description="Labelled sites.")
    """Number of labelled sites."""
    area_error_pct: float | None = Field(
        default=None, ge=0, description="Relative area error of matched sites, percent."
    )
    """Sum of ``|predicted - labelled|`` areas over matched sites divided by their labelled
    area, in percent; None when nothing matched."""


class Evaluation(_Strict):
    """One run of ``asmspotter model evaluate``: the model and the spectral baseline."""

    data: str = Field(description="The DATA argument: a folder or generated[:resolution].")
    """What was evaluated: ``generated:<m>`` or a folder of scenes + labels."""
    description: str = Field(description="What the data is and how much of it.")
    """Human-readable description of the evaluation data (items, pixels, split)."""
    n_items: int = Field(ge=0, description="Chips or scenes evaluated.")
    """Number of chips (generated) or scenes (folder) evaluated."""
    n_pixels: int = Field(ge=0, description="Valid pixels evaluated.")
    """Number of valid pixels scored."""
    precision: InferencePrecision = Field(default="fp32", description="Inference precision.")
    """Inference precision the model ran at."""
    model: EvaluationMetrics = Field(description="The U-Net at the card's threshold.")
    """The U-Net's metrics at the card's threshold."""
    best_f1_threshold: float = Field(ge=0, le=1, description="Threshold maximising pixel F1.")
    """Threshold that maximises pixel F1 on this data (from the PR curve)."""
    model_at_best_f1: EvaluationMetrics = Field(description="The U-Net at best_f1_threshold.")
    """The U-Net's metrics at :attr:`best_f1_threshold`."""
    baseline: EvaluationMetrics | None = Field(
        default=None, description="The spectral baseline (asmspotter.detect.baseline)."
    )
    """The spectral rule baseline on the same data, at its own best-F1 threshold."""
    pr_curve_png: str | None = Field(default=None, description="PR curve image file.")
    """File name of the PR curve PNG (beside the card, or where --out-dir put it)."""
    evaluated: datetime = Field(
        default_factory=lambda: datetime.now(UTC), description="When (ISO 8601)."
    )
    """When the evaluation ran."""
    software: SoftwareVersions | None = Field(default=None, description="Software versions.")
    """Software versions of the evaluation run."""


class PrecisionCheck(_Strict):
    """bf16 vs fp32 inference on the held-out test split: chooses the default precision."""

    data: str = Field(description="Data the check ran on.")
    """Data the check ran on (``generated:<m>``)."""
    fp32_iou: float = Field(ge=0, le=1, description="Pixel IoU in float32.")
    """Pixel IoU at the card's threshold in float32."""
    bf16_iou: float = Field(ge=0, le=1, description="Pixel IoU with bf16 autocast.")
    """Pixel IoU at the card's threshold with bfloat16 autocast."""
    max_abs_probability_diff: float = Field(ge=0, description="Largest |p_bf16 - p_fp32|.")
    """Largest absolute difference of a pixel probability between the two."""
    bf16_supported: bool = Field(description="Whether this CPU has native bf16 instructions.")
    """Whether the CPU the check ran on has AVX512-BF16 or AMX (native bf16)."""
    fp32_seconds: float | None = Field(default=None, ge=0, description="fp32 forward time, s.")
    """Time of the fp32 forward passes over the split, seconds (interleaved with bf16)."""
    bf16_seconds: float | None = Field(default=None, ge=0, description="bf16 forward time, s.")
    """Time of the bf16 forward passes over the split, seconds (interleaved with fp32)."""
    cpu: str = Field(default="", description="CPU model the check ran on.")
    """CPU model name the check ran on (from /proc/cpuinfo)."""


class ModelCard(_Strict):
    """The metadata of a trained detection model (``model_card.json``)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$", description="Model name (slug).")
    """Model name, a slug; the model directory's name by convention."""
    version: str = Field(default="1.0.0", description="Model version.")
    """Model version."""
    created: datetime = Field(
        default_factory=lambda: datetime.now(UTC), description="Creation time (ISO 8601)."
    )
    """Creation time, ISO 8601 in the JSON."""
    architecture: Architecture = Field(default_factory=Architecture, description="Network.")
    """Network family and size."""
    bands: list[str] = Field(
        default_factory=lambda: list(DEFAULT_BANDS), description="Input bands in input order."
    )
    """Input bands in input order (composite band names)."""
    normalisation: Normalisation = Field(description="Per-band mean and std.")
    """Per-band normalisation, one value per band."""
    resolution_m: float = Field(gt=0, description="Pixel size the model was trained at, m.")
    """Pixel size in metres the model was trained at."""
    resolution_tolerance_pct: float = Field(
        default=25.0, ge=0, description="Accepted deviation of the pixel size, percent."
    )
    """Accepted relative deviation of a composite's pixel size, in percent."""
    threshold: float = Field(default=0.5, gt=0, lt=1, description="Probability threshold.")
    """Probability threshold for a mining pixel (tuned on the validation split)."""
    candidate_threshold: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="Lower probability at which regions become candidates for the verifier.",
    )
    """Probability at or above which a region that reaches no detection is a candidate the
    verifier alone may confirm (:func:`asmspotter.detect.site_verification.confirm_candidates`);
    None, or a model without a verifier: no candidates. Must be below :attr:`threshold`."""
    tile_px: int = Field(default=256, ge=16, description="Inference tile size, pixels.")
    """Inference tile size in pixels."""
    overlap_px: int = Field(default=64, ge=0, description="Inference tile overlap, pixels.")
    """Overlap between inference tiles in pixels."""
    metrics: Metrics = Field(description="Metrics on the held-out test split.")
    """Metrics on the held-out test split."""
    training: TrainingInfo = Field(description="How the model was trained.")
    """How the model was trained."""
    precision: InferencePrecision = Field(
        default="fp32", description="Default inference precision."
    )
    """Default inference precision; bf16 only where :attr:`precision_check` showed it stays
    within 0.01 IoU of fp32 and the CPU runs bf16 natively."""
    precision_check: PrecisionCheck | None = Field(
        default=None, description="bf16 vs fp32 on the test split."
    )
    """The bf16 vs fp32 measurement behind :attr:`precision`."""
    evaluations: list[Evaluation] = Field(
        default_factory=list, description="Results of `asmspotter model evaluate`."
    )
    """One entry per evaluated data set (the latest run per DATA), model and baseline."""
    weights_sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of the weights.pt written with this card.",
    )
    """The card's fingerprint of its weights: another model's weights of the same shape
    (a 3 m model under a 10 m card) load without error but map areas wrongly, so
    loading refuses weights whose digest differs. None (older cards): not checked."""
    verifier: str | None = Field(
        default=None, description="Verifier directory beside this model (models/<name>)."
    )
    """Name of the verifier (:mod:`asmspotter.detect.verifier`) that gives every site
    this model finds its confidence level; None: every site is ``nominal``."""

    @model_validator(mode="after")
    def _check(self) -> ModelCard:
        if len(self.bands) != len(set(self.bands)) or not self.bands:
            raise ValueError(f"bands must be a non-empty list without repeats, got {self.bands}.")
        if len(self.normalisation.mean) != len(self.bands):
            raise ValueError(
                f"normalisation has {len(self.normalisation.mean)} values per statistic but "
                f"there are {len(self.bands)} bands {self.bands}; give one per band."
            )
        if self.candidate_threshold is not None and self.candidate_threshold >= self.threshold:
            raise ValueError(
                f"candidate_threshold ({self.candidate_threshold}) must be below threshold "
                f"({self.threshold}); candidates are what the U-Net alone would not keep."
            )
        if self.overlap_px >= self.tile_px:
            raise ValueError(
                f"overlap_px ({self.overlap_px}) must be smaller than tile_px ({self.tile_px})."
            )
        return self


def load_card(model_dir: Path) -> ModelCard:
    """Read and validate ``model_dir/model_card.json``.

    Args:
        model_dir: The model directory, e.g. ``models/s2-unet-v1``.

    Returns:
        The validated card.

    Raises:
        ModelNotFoundError: If the directory or its card does not exist.
        ModelMismatchError: If the card exists but is not valid JSON or not a valid card.
    """
    path = Path(model_dir) / CARD_FILENAME
    if not path.is_file():
        what = "model directory" if not Path(model_dir).is_dir() else "model card"
        raise ModelNotFoundError(
            f"{path}: {what} not found. A model directory holds {CARD_FILENAME} and "
            f"{WEIGHTS_FILENAME}; train one with `asmspotter model train` (or "
            "scripts/train_default_model.py), or set detection.model in the AOI YAML to an "
            "existing model under models/."
        )
    try:
        return ModelCard.model_validate_json(path.read_text(encoding="utf-8"))
    except (ValidationError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelMismatchError(
            f"{path}: invalid model card: {exc}. Fix the file or re-train the model with "
            "`asmspotter model train`."
        ) from exc


def save_card(card: ModelCard, model_dir: Path) -> Path:
    """Write ``card`` to ``model_dir/model_card.json`` (creating the directory).

    Args:
        card: The card to write.
        model_dir: The model directory.

    Returns:
        The path written.
    """
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / CARD_FILENAME
    tmp = path.with_name(f"partial_{CARD_FILENAME}")
    tmp.write_text(card.model_dump_json(indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    logger.info("wrote model card %s", path)
    return path


def is_band_available(band: str, band_names: Sequence[str]) -> bool:
    """Return whether ``band`` is in ``band_names`` or can be computed from them."""
    if band in band_names:
        return True
    sources = DERIVED_BANDS.get(band)
    return sources is not None and all(s in band_names for s in sources)


def check_model_fits(
    card: ModelCard,
    band_names: Sequence[str],
    resolution_m: float,
    *,
    model_dir: Path | None = None,
) -> None:
    """Refuse a model whose bands or pixel size do not fit a composite.

    A band fits if the composite has it or it can be computed from the composite
    (``ndwi`` from green and nir, ``ndvi`` from red and nir). The pixel size fits if it
    is within ``card.resolution_tolerance_pct`` percent of ``card.resolution_m``.

    Args:
        card: The model's card.
        band_names: Band names of the composite.
        resolution_m: Pixel size of the composite in metres.
        model_dir: The model directory, named in the error message.

    Raises:
        ModelMismatchError: Naming the model, what the composite has, what the model
            needs, and what to do.
    """
    where = f"model {card.name!r}" + (f" ({model_dir})" if model_dir is not None else "")
    missing = [b for b in card.bands if not is_band_available(b, band_names)]
    if missing:
        raise ModelMismatchError(
            f"{where} needs bands {card.bands} but the composite has {list(band_names)} "
            f"(missing {missing}); choose another detection.model in the AOI YAML whose bands "
            "the composite has, or train a model on these bands with `asmspotter model train`."
        )
    deviation_pct = abs(resolution_m - card.resolution_m) / card.resolution_m * 100.0
    if deviation_pct > card.resolution_tolerance_pct:
        low = card.resolution_m * (1 - card.resolution_tolerance_pct / 100.0)
        high = card.resolution_m * (1 + card.resolution_tolerance_pct / 100.0)
        raise ModelMismatchError(
            f"{where} was trained at {card.resolution_m:g} m pixels and accepts "
            f"{low:g}-{high:g} m, but the composite has {resolution_m:g} m pixels; choose "
            "another detection.model in the AOI YAML trained near that resolution, or train "
            f"one at {resolution_m:g} m with `asmspotter model train --resolution-m "
            f"{resolution_m:g}`."
        )


def weights_digest(weights_path: Path) -> str:
    """SHA-256 hex digest of a weights file (the card's ``weights_sha256``)."""
    digest = hashlib.sha256()
    with weights_path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def check_weights_match_card(card: ModelCard, model_dir: Path, weights_path: Path) -> None:
    """Refuse weights that are not the ones written with the card.

    Raises:
        ModelMismatchError: the digest differs, naming the weights, the card (model,
            pixel size) and, where the weights belong to a sibling model's card, that one.
    """
    if card.weights_sha256 is None:
        return
    found = weights_digest(weights_path)
    if found == card.weights_sha256:
        return
    owner = ""
    for sibling in sorted(model_dir.parent.glob(f"*/{CARD_FILENAME}")):
        if sibling.parent == model_dir:
            continue
        try:
            other = load_card(sibling.parent)
        except (ModelMismatchError, ModelNotFoundError):
            continue
        if other.weights_sha256 == found:
            owner = (
                f"; they are the weights of model {other.name} v{other.version} "
                f"({other.resolution_m:g} m pixels, {sibling})"
            )
            break
    raise ModelMismatchError(
        f"{weights_path}: these weights were not written with {model_dir / CARD_FILENAME} "
        f"(model {card.name} v{card.version}, {card.resolution_m:g} m pixels){owner}. Their "
        f"SHA-256 is {found[:12]}…, the card expects {card.weights_sha256[:12]}…: areas "
        "would be mapped at the wrong scale. Put back the model's own weights.pt, or "
        "re-train the model (asmspotter model train)."
    )
