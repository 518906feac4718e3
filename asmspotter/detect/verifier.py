"""The verifier: an ensemble of patch classifiers that learned from real Sentinel-2 pixels.

The U-Net segments mines well on generated scenes but, on real imagery, also fires on
towns, roads, bare fields and sandbars. The verifier is the second opinion Amazon Mining
Watch uses: small CNNs that look at a 480 m patch (48 x 48 px at 10 m, RGB) and say
whether it shows mining. They are trained on the real gallery chips
(:mod:`asmspotter.detect.gallery`), one member per sheet-group fold, so every member has
some places it never saw and the ensemble's score is the mean of the members'.

A verifier directory (``models/<name>/``) holds ``verifier_card.json``
(:class:`VerifierCard`: members, the harmonisation, thresholds of the confidence levels
and what they achieved on the real yardstick) and one ``member_<k>.pt`` state_dict per
member. :meth:`Verifier.score_patches` scores patches in the pipeline's radiometry (L2A
reflectance, harmonised by :mod:`asmspotter.detect.harmonise`).
"""

from __future__ import annotations

import json
import logging
from copy import deepcopy
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from asmspotter.detect.gallery import CHIP_PX
from asmspotter.detect.harmonise import gallery_reflectance, l2a_to_gallery_rgb, network_input
from asmspotter.detect.model_card import InferencePrecision
from asmspotter.errors import ModelMismatchError, ModelNotFoundError

logger = logging.getLogger(__name__)

VERIFIER_CARD_FILENAME = "verifier_card.json"
"""File name of the verifier's card inside its directory."""


def member_filename(index: int) -> str:
    """File name of ensemble member ``index``'s weights."""
    return f"member_{index}.pt"


class PatchNet(nn.Module):
    """A small CNN: (N, 3, 48, 48) harmonised RGB -> (N,) mining logit.

    Three levels of two 3x3 convolutions with batch norm, 2x max-pooling between, then
    global average and max pooling (a mine may fill the patch or be a few ponds in a
    corner) into one linear output.
    """

    def __init__(self, width: int = 24) -> None:
        super().__init__()
        self.width = width
        layers: list[nn.Module] = []
        channels = [3, width, 2 * width, 4 * width]
        for level in range(3):
            for conv_in in (channels[level], channels[level + 1]):
                layers += [
                    nn.Conv2d(conv_in, channels[level + 1], 3, padding=1, bias=False),
                    nn.BatchNorm2d(channels[level + 1]),
                    nn.ReLU(inplace=True),
                ]
            if level < 2:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(2 * channels[-1], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mining logit per patch."""
        maps = self.features(x)
        pooled = torch.cat([maps.mean(dim=(2, 3)), maps.amax(dim=(2, 3))], dim=1)
        logits: torch.Tensor = self.head(self.dropout(pooled))
        return logits.squeeze(1)


def dihedral_views(inputs: NDArray[np.float32], n_views: int) -> list[NDArray[np.float32]]:
    """``n_views`` of (N, C, P, P) patches under the square's symmetries (1, 2, 4 or 8).

    A mine seen mirrored or turned is still a mine, and the members were trained on
    flipped and turned chips: averaging their scores over the views removes the part of a
    score that depends on the patch's orientation (out-of-fold AUC 0.910 -> 0.913 with 8).
    The first 2 and the first 4 views are groups themselves (identity and mirror; then
    flip and half turn), so every choice averages over whole symmetry groups.
    """
    if n_views not in (1, 2, 4, 8):
        raise ValueError(f"n_views must be 1, 2, 4 or 8, got {n_views}.")
    turned = [np.rot90(inputs, k, axes=(2, 3)) for k in (1, 2, 3)]
    mirrored = inputs[..., ::-1]
    views = [
        inputs,
        mirrored,
        inputs[..., ::-1, :],
        turned[1],
        turned[0],
        turned[2],
        np.rot90(mirrored, 1, axes=(2, 3)),
        np.rot90(mirrored, 3, axes=(2, 3)),
    ][:n_views]
    return [np.ascontiguousarray(view) for view in views]


def inference_copy(net: nn.Module) -> nn.Module:
    """An eval-mode copy of ``net`` for scoring: batch norms folded into their convolutions.

    A folded convolution gives the same output (to float rounding, < 1e-6 here) and
    saves one pass over every feature map. The original keeps its batch norms (its
    state_dict is what is saved and trained).
    """
    copy = deepcopy(net).eval()
    if isinstance(copy, PatchNet):
        layers = list(copy.features)
        folded: list[nn.Module] = []
        index = 0
        while index < len(layers):
            layer = layers[index]
            following = layers[index + 1] if index + 1 < len(layers) else None
            if isinstance(layer, nn.Conv2d) and isinstance(following, nn.BatchNorm2d):
                folded.append(fuse_conv_bn_eval(layer, following))
                index += 2
            else:
                folded.append(layer)
                index += 1
        copy.features = nn.Sequential(*folded)
    return copy


SCORING_BATCH_IMAGES = 64
"""Images per forward pass when scoring (8 patches in 8 views). Smaller activations
than batches of 256 stay under glibc's default mmap threshold: in a process that has
not called :func:`asmspotter.memory.reuse_freed_memory` (the array API, a notebook),
512 patches in 8 views scored 1.3x faster in bf16 (48-49 -> 63-67 patches/s) and 1.45x
in fp32 (27-28 -> 40-41) on 2 cores. Where inference has tuned malloc (a pipeline run)
both sizes score alike in bf16 (75-76 patches/s) and 64 is 1.1x faster in fp32. Same
scores to 1.2e-7 (benchmarks/README.md, session 9)."""


def mean_probability(
    nets: tuple[nn.Module, ...],
    inputs: NDArray[np.float32],
    n_views: int,
    batch_size: int = SCORING_BATCH_IMAGES,
    precision: InferencePrecision = "fp32",
) -> NDArray[np.float32]:
    """Mean sigmoid over ``nets`` and ``n_views`` dihedral views of harmonised inputs.

    The views of ``batch_size // n_views`` patches go through each net as one batch of
    about ``batch_size`` images (channels last): fewer convolutions than one call per
    view, small enough to stay under glibc's default mmap threshold
    (:data:`SCORING_BATCH_IMAGES`), and memory bounded by ``batch_size``. With the
    folded batch norms (:func:`inference_copy`) this scored 8-view patches 2.4x faster
    on 2 CPU cores (11.7 -> 28 patches/s, five members, batches of 256) for the same
    scores to 1e-7. ``"bf16"`` autocast is about 1.8x faster again where the CPU has
    bf16 instructions; the card's :attr:`VerifierCard.precision_check` records what it
    changes.
    """
    scoring = [inference_copy(net) for net in nets]
    patches_per_batch = max(1, batch_size // n_views)
    scores = np.zeros(len(inputs), np.float32)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    with torch.inference_mode(), autocast:
        for start in range(0, len(inputs), patches_per_batch):
            batch = inputs[start : start + patches_per_batch]
            views = torch.from_numpy(np.concatenate(dihedral_views(batch, n_views)))
            views = views.contiguous(memory_format=torch.channels_last)
            probs = torch.stack([torch.sigmoid(net(views).float()) for net in scoring])
            per_view = probs.mean(0).reshape(n_views, len(batch))
            scores[start : start + len(batch)] = per_view.mean(0).numpy()
    return scores


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PatchScores(_Strict):
    """How a patch score did on a labelled set of real chips, with 95 % intervals."""

    threshold: float = Field(ge=0, le=1, description="Score at or above which a patch is mining.")
    """Score at or above which a patch counts as mining."""
    sensitivity: float = Field(ge=0, le=1, description="Share of mining chips flagged.")
    """Share of mining chips flagged."""
    sensitivity_ci: tuple[float, float] = Field(description="95 % interval of sensitivity.")
    """95 % interval of :attr:`sensitivity` (bootstrap over sheet groups)."""
    specificity: float = Field(ge=0, le=1, description="Share of non-mining chips not flagged.")
    """Share of non-mining chips not flagged."""
    specificity_ci: tuple[float, float] = Field(description="95 % interval of specificity.")
    """95 % interval of :attr:`specificity` (bootstrap over sheet groups)."""


class RealEvaluation(_Strict):
    """The verifier on real chips it never saw: split by sheet group."""

    data: str = Field(description="Which real chips, and how they were split.")
    """Which real chips and how they were split."""
    n_positive: int = Field(ge=0, description="Mining chips.")
    """Mining chips scored."""
    n_negative: int = Field(ge=0, description="Non-mining chips.")
    """Non-mining chips scored."""
    auc: float = Field(ge=0, le=1, description="ROC AUC.")
    """Area under the ROC curve."""
    auc_ci: tuple[float, float] = Field(description="95 % interval of the AUC.")
    """95 % interval of :attr:`auc` (bootstrap over sheet groups)."""
    levels: dict[str, PatchScores] = Field(description="Per confidence level at its threshold.")
    """Per confidence level (``high``, ``highest``): sensitivity/specificity at its
    verifier threshold."""
    notes: str = Field(default="", description="What the numbers mean and do not mean.")
    """What the numbers mean and what they do not."""


class VerifierPrecisionCheck(_Strict):
    """bf16 autocast against fp32 on real chips: what the faster precision changes."""

    data: str = Field(description="Which chips were scored.")
    """Which chips were scored (a random sample of the gallery)."""
    n_chips: int = Field(ge=1, description="Chips scored.")
    """Chips scored in both precisions."""
    max_abs_score_diff: float = Field(ge=0, description="Largest |bf16 - fp32| score.")
    """Largest difference of a chip's score between the precisions."""
    level_changes: dict[str, int] = Field(description="Chips on the other side of a threshold.")
    """Per confidence level: chips whose level differs between the precisions."""
    auc_fp32: float = Field(ge=0, le=1, description="AUC of the sample in fp32.")
    """AUC of the sample's fp32 scores (all members, so not out-of-fold)."""
    auc_bf16: float = Field(ge=0, le=1, description="AUC of the sample in bf16.")
    """AUC of the sample's bf16 scores."""
    fp32_seconds: float = Field(ge=0, description="Scoring time in fp32.")
    """Seconds to score the sample in fp32 on the machine that checked."""
    bf16_seconds: float = Field(ge=0, description="Scoring time in bf16.")
    """Seconds to score the sample in bf16 on the same machine, right after."""


class VerifierCard(_Strict):
    """The metadata of a verifier (``verifier_card.json``)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$", description="Verifier name (slug).")
    """Verifier name, the directory's name by convention."""
    version: str = Field(description="Version.")
    """Version."""
    created: datetime = Field(default_factory=lambda: datetime.now(UTC), description="When.")
    """Creation time."""
    patch_px: int = Field(default=CHIP_PX, description="Patch side, pixels.")
    """Side of a scored patch in pixels."""
    resolution_m: float = Field(default=10.0, gt=0, description="Pixel size, m.")
    """Pixel size the members were trained at, metres."""
    bands: list[str] = Field(default_factory=lambda: ["red", "green", "blue"])
    """Composite bands read, in input order."""
    width: int = Field(default=24, ge=4, description="PatchNet width.")
    """Channels of the first level of each :class:`PatchNet`."""
    n_members: int = Field(ge=1, description="Ensemble members.")
    """Number of ensemble members (``member_<k>.pt``)."""
    test_time_views: Literal[1, 2, 4, 8] = Field(
        default=1, description="Dihedral views each patch is scored in (1, 2, 4 or 8)."
    )
    """Views of each patch (mirrored, turned) whose scores are averaged
    (:func:`dihedral_views`); the yardstick and the thresholds used as many views. They
    differ from a run in two ways: the yardstick scores a chip with the one member that
    never saw it, a run averages all members; and a run keeps a site's highest patch
    score (up to 16 patches), so its specificity per site is below the per-chip one."""
    harmonisation: str = Field(description="How L1C training and L2A inference are aligned.")
    """How L1C gallery chips and L2A composites are brought to one radiometry."""
    thresholds: dict[str, float] = Field(description="Verifier score per confidence level.")
    """Verifier score at or above which a candidate reaches a level (``high``,
    ``highest``)."""
    training: dict[str, object] = Field(default_factory=dict, description="How it was trained.")
    """Data, epochs, seeds, time and software of the training run."""
    real_evaluation: RealEvaluation | None = Field(default=None, description="Real yardstick.")
    """The real-chip yardstick (:mod:`asmspotter.detect.patch_metrics`)."""
    precision_check: VerifierPrecisionCheck | None = Field(
        default=None, description="bf16 against fp32 on real chips."
    )
    """What bf16 autocast changes (``train_verifier.py --check-precision``). A run scores
    in the precision it names, else in the U-Net card's ``precision`` where the CPU has
    native bf16 and in fp32 where not (``site_verification.verifier_precision``)."""


def load_verifier_card(verifier_dir: Path) -> VerifierCard:
    """Read and validate ``verifier_dir/verifier_card.json``.

    Raises:
        ModelNotFoundError: If the directory or card is missing.
        ModelMismatchError: If the card is not a valid verifier card.
    """
    path = Path(verifier_dir) / VERIFIER_CARD_FILENAME
    if not path.is_file():
        raise ModelNotFoundError(
            f"{path}: verifier card not found. A verifier directory holds "
            f"{VERIFIER_CARD_FILENAME} and member_<k>.pt; train one with "
            "`python scripts/train_verifier.py` or name an existing one in the model card."
        )
    try:
        return VerifierCard.model_validate(json.loads(path.read_text()))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise ModelMismatchError(f"{path}: not a valid verifier card: {exc}") from exc


def save_verifier_card(card: VerifierCard, verifier_dir: Path) -> Path:
    """Write the card as indented JSON; returns its path."""
    path = Path(verifier_dir) / VERIFIER_CARD_FILENAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(card.model_dump_json(indent=2) + "\n")
    return path


@dataclass(frozen=True)
class Verifier:
    """A loaded ensemble, ready to score patches."""

    card: VerifierCard
    members: tuple[PatchNet, ...]
    directory: Path
    precision: InferencePrecision = "fp32"
    """Inference precision: a run sets it (:func:`dataclasses.replace`, ``verifier_for``)."""

    def score_inputs(
        self, inputs: NDArray[np.float32], batch_size: int = SCORING_BATCH_IMAGES
    ) -> NDArray[np.float32]:
        """Mean probability of the members and the card's views, harmonised (N, 3, P, P)."""
        return mean_probability(
            self.members, inputs, self.card.test_time_views, batch_size, self.precision
        )

    def score_gallery_rgb(self, rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
        """Scores of (N, P, P, 3) uint8 chips encoded like the gallery (L1C)."""
        return self.score_inputs(network_input(gallery_reflectance(rgb)))

    def score_patches(
        self, red: NDArray[np.floating], green: NDArray[np.floating], blue: NDArray[np.floating]
    ) -> NDArray[np.float32]:
        """Scores of (N, P, P) L2A surface-reflectance patches, per band."""
        return self.score_gallery_rgb(l2a_to_gallery_rgb(red, green, blue))


def load_verifier(verifier_dir: Path) -> Verifier:
    """Load a verifier's card and members (CPU, eval mode).

    Raises:
        ModelNotFoundError: If the card or a member's weights are missing.
        ModelMismatchError: If a member's weights do not fit the card's network.
    """
    verifier_dir = Path(verifier_dir)
    card = load_verifier_card(verifier_dir)
    members: list[PatchNet] = []
    for index in range(card.n_members):
        path = verifier_dir / member_filename(index)
        if not path.is_file():
            raise ModelNotFoundError(
                f"{path}: weights of verifier member {index} not found; the card lists "
                f"{card.n_members} members. Restore the file or retrain the verifier."
            )
        member = PatchNet(card.width)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            member.load_state_dict(state)
        except (RuntimeError, EOFError, OSError, ValueError) as exc:
            raise ModelMismatchError(
                f"{path}: cannot load these weights into a PatchNet of width {card.width} "
                f"({type(exc).__name__}: {str(exc)[:200]}); the file is damaged or belongs "
                "to another verifier: restore it or retrain."
            ) from exc
        members.append(member.eval())
    return Verifier(card=card, members=tuple(members), directory=verifier_dir)


@lru_cache(maxsize=4)
def cached_verifier(verifier_dir: Path, card_mtime_ns: int) -> Verifier:
    """:func:`load_verifier`, kept per directory and card version for repeated runs."""
    del card_mtime_ns  # part of the cache key only: a retrained verifier reloads
    return load_verifier(verifier_dir)
