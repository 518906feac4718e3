"""Patch-level yardstick: AUC, sensitivity and specificity with 95 % intervals.

Chips of one sheet group (the same sampling locations) are not independent: a model
that gets one wrong tends to get its neighbours wrong. Intervals therefore come from a
bootstrap that resamples whole groups (a cluster bootstrap), which is wider and more
honest than resampling chips.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray
from scipy.stats import rankdata

BOOTSTRAP_ROUNDS = 1000
"""Resamples behind every interval."""


def roc_auc(scores: NDArray[np.floating], labels: NDArray[np.integer]) -> float:
    """Area under the ROC curve (Mann-Whitney U over both classes; ties count half).

    Raises:
        ValueError: If either class is absent.
    """
    positive = labels == 1
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"AUC needs both classes; got {n_pos} positive, {n_neg} negative.")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def sensitivity_specificity(
    scores: NDArray[np.floating], labels: NDArray[np.integer], threshold: float
) -> tuple[float, float]:
    """Share of positives scored >= threshold, share of negatives scored below it."""
    flagged = scores >= threshold
    positive = labels == 1
    sens = float(flagged[positive].mean()) if positive.any() else float("nan")
    spec = float((~flagged[~positive]).mean()) if (~positive).any() else float("nan")
    return sens, spec


def threshold_for_specificity(
    scores: NDArray[np.floating], labels: NDArray[np.integer], specificity: float
) -> float:
    """The lowest score threshold whose specificity on these chips reaches ``specificity``."""
    negatives = np.sort(scores[labels == 0])
    if negatives.size == 0:
        raise ValueError("No negative chips: a specificity target needs some.")
    index = min(int(np.ceil(specificity * negatives.size)), negatives.size - 1)
    cut = float(negatives[index - 1]) if index > 0 else float(negatives[0])
    return float(np.nextafter(np.float32(cut), np.float32(np.inf)))


def group_bootstrap(
    statistic: Callable[[NDArray[np.floating], NDArray[np.integer]], float],
    scores: NDArray[np.floating],
    labels: NDArray[np.integer],
    groups: Sequence[str],
    *,
    rounds: int = BOOTSTRAP_ROUNDS,
    seed: int = 0,
) -> tuple[float, float]:
    """95 % percentile interval of ``statistic`` under resampling of whole groups.

    Positive and negative groups are resampled separately, so every round holds both
    classes in the same number of groups as the data.
    """
    group_array = np.asarray(groups)
    names = np.unique(group_array)
    members = {name: np.flatnonzero(group_array == name) for name in names}
    by_class = [[n for n in names if labels[members[n][0]] == cls] for cls in (0, 1)]
    rng = np.random.default_rng(seed)
    values: list[float] = []
    for _ in range(rounds):
        picked = [
            members[name]
            for pool in by_class
            if pool
            for name in rng.choice(pool, size=len(pool), replace=True)
        ]
        index = np.concatenate(picked)
        try:
            values.append(statistic(scores[index], labels[index]))
        except ValueError:
            continue
    finite = [value for value in values if np.isfinite(value)]
    if not finite:
        # The statistic is undefined on these data (e.g. sensitivity without positives).
        return float("nan"), float("nan")
    low, high = np.percentile(finite, [2.5, 97.5])
    return float(low), float(high)


def sensitivity_specificity_intervals(
    scores: NDArray[np.floating],
    labels: NDArray[np.integer],
    groups: Sequence[str],
    threshold: float,
) -> tuple[tuple[float, float], tuple[float, float]]:
    """95 % group-bootstrap intervals of sensitivity and of specificity at ``threshold``."""

    def sensitivity(s: NDArray[np.floating], y: NDArray[np.integer]) -> float:
        return sensitivity_specificity(s, y, threshold)[0]

    def specificity(s: NDArray[np.floating], y: NDArray[np.integer]) -> float:
        return sensitivity_specificity(s, y, threshold)[1]

    return (
        group_bootstrap(sensitivity, scores, labels, groups),
        group_bootstrap(specificity, scores, labels, groups),
    )
