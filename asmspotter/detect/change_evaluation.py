"""Measure the pipeline's alerts on labelled before/after image pairs.

The project's own yardstick is single-date gallery chips; the question a user asks is
bi-temporal: *does a run raise an alert where mining appeared or grew, and stay quiet
where something else changed?* :func:`evaluate_pairs` answers it for any labelled set
of pairs by running :func:`asmspotter.detect.api.detect_change` on each, exactly as a
monitoring run would alert (model, thresholds, candidates, verifier, alert levels,
tracking rules), so whoever holds real pairs measures the system and not one of its
parts.

A pair is a ``.npz`` file with ``before`` and ``after`` (4, H, W) reflectance in blue,
green, red, nir order (Sentinel-2 B2, B3, B4, B8; 0..1, or digital numbers with
``scale=1e-4`` and, for products of processing baseline 04.00 or later, ``offset=-1000``
(``BOA_ADD_OFFSET``); NaN = not clear) and ``label`` (1: mining appeared or grew, 0: any
other change or none).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from asmspotter.detect.api import DEFAULT_MODEL, ChangeResult, detect_change
from asmspotter.detect.patch_metrics import (
    roc_auc,
    sensitivity_specificity,
    sensitivity_specificity_intervals,
)
from asmspotter.errors import AsmspotterError

BAND_ORDER = ("blue", "green", "red", "nir")
"""Band order of the ``before`` / ``after`` arrays in a pair file."""


class PairFileError(AsmspotterError, ValueError):
    """A pair file lacks an array, has the wrong shape or an unreadable label."""


@dataclass(frozen=True)
class PairOutcome:
    """What the pipeline did with one pair."""

    name: str
    """The pair file's path (unique, so the bootstrap resamples pairs, not names)."""
    label: int
    raised: bool
    """Whether a run would alert (a new or expanded site at an alerting level)."""
    score: float
    """Highest verifier score of a new or expanded site (0 when none): ranks the pairs
    for the AUC. Without a verifier, 1 when raised, else 0."""


@dataclass(frozen=True)
class ChangeEvaluation:
    """Sensitivity and specificity of alerts, with 95 % bootstrap intervals (NaN: class absent)."""

    outcomes: tuple[PairOutcome, ...]
    sensitivity: float
    sensitivity_ci: tuple[float, float]
    specificity: float
    specificity_ci: tuple[float, float]
    auc: float | None
    """AUC of :attr:`PairOutcome.score`; None unless both classes are present."""

    def summary(self) -> str:
        """One paragraph for a terminal."""
        n_pos = sum(o.label == 1 for o in self.outcomes)
        auc = "n/a" if self.auc is None else f"{self.auc:.3f}"
        return (
            f"{len(self.outcomes)} pairs ({n_pos} mining, {len(self.outcomes) - n_pos} other): "
            f"alerts raised for {self.sensitivity:.3f} of mining pairs "
            f"(95 % {self.sensitivity_ci[0]:.3f}-{self.sensitivity_ci[1]:.3f}), "
            f"quiet on {self.specificity:.3f} of the others "
            f"(95 % {self.specificity_ci[0]:.3f}-{self.specificity_ci[1]:.3f}); AUC {auc}"
        )


def load_pair(
    path: Path, scale: float = 1.0, offset: float = 0.0
) -> tuple[dict[str, NDArray[np.float32]], ...]:
    """Before and after band dicts of one pair file (see the module docstring).

    Raises:
        PairFileError: If ``before``/``after`` are missing or not (4, H, W) of one shape.
    """
    with np.load(path) as data:
        missing = [key for key in ("before", "after", "label") if key not in data]
        if missing:
            raise PairFileError(
                f"{path}: no array named {', '.join(missing)}; a pair file holds before, "
                "after ((4, H, W) blue, green, red, nir) and label (1 mining, 0 not)."
            )
        before, after = (
            (np.asarray(data[key], np.float32) + offset) * scale for key in ("before", "after")
        )
    if before.ndim != 3 or before.shape[0] != len(BAND_ORDER) or before.shape != after.shape:
        raise PairFileError(
            f"{path}: before {before.shape} and after {after.shape} must both be (4, H, W) "
            "in blue, green, red, nir order."
        )
    return tuple(dict(zip(BAND_ORDER, image, strict=True)) for image in (before, after))


def pair_label(path: Path) -> int:
    """The ``label`` of a pair file as 0 or 1.

    Raises:
        PairFileError: If the label is not one number.
    """
    with np.load(path) as data:
        label = np.asarray(data["label"])
    if label.size != 1:
        raise PairFileError(
            f"{path}: label must be one number (1 mining appeared or grew, 0 not), "
            f"got an array of shape {label.shape}."
        )
    return int(label.item() != 0)


def outcome_of(name: str, label: int, change: ChangeResult) -> PairOutcome:
    """Raised or not, and the ranking score, from one :func:`detect_change` result."""
    raised = change.raised
    scores = [e.verifier_score for e in raised if e.verifier_score is not None]
    score = max(scores) if scores else float(bool(raised))
    return PairOutcome(name, label, bool(raised), float(score))


def evaluate_pairs(
    paths: Sequence[Path],
    *,
    resolution_m: float = 10.0,
    model: str | Path = DEFAULT_MODEL,
    scale: float = 1.0,
    offset: float = 0.0,
    models_dir: Path | None = None,
) -> ChangeEvaluation:
    """Run the pipeline's change detection on every pair and score its alerts.

    Raises:
        PairFileError: If a pair file is malformed.
        ValueError: If ``paths`` is empty.
    """
    if not paths:
        raise ValueError("No pair files given; pass .npz files with before, after and label.")
    outcomes = []
    for path in paths:
        before, after = load_pair(path, scale, offset)
        label = pair_label(path)
        change = detect_change(
            before, after, resolution_m=resolution_m, model=model, models_dir=models_dir
        )
        outcomes.append(outcome_of(str(path), label, change))
    labels = np.array([o.label for o in outcomes], np.int8)
    raised = np.array([o.raised for o in outcomes], np.float32)
    scores = np.array([o.score for o in outcomes], np.float32)
    names = [o.name for o in outcomes]
    sens, spec = sensitivity_specificity(raised, labels, 0.5)
    both_classes = 0 < labels.sum() < len(labels)
    # A class that is absent leaves its interval NaN (undefined), not an error.
    sens_ci, spec_ci = sensitivity_specificity_intervals(raised, labels, names, 0.5)
    return ChangeEvaluation(
        outcomes=tuple(outcomes),
        sensitivity=sens,
        sensitivity_ci=sens_ci,
        specificity=spec,
        specificity_ci=spec_ci,
        auc=roc_auc(scores, labels) if both_classes else None,
    )
