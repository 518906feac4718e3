"""Evaluate a model (and the spectral baseline) on labelled data; record it in the card.

``asmspotter model evaluate MODEL DATA`` calls :func:`evaluate_model`. DATA is either
``generated[:<resolution_m>]`` (the model's held-out generated test split: the third
``SeedSequence(seed).spawn(3)`` stream of
:func:`asmspotter.detect.train.data.generated_chips`, re-rendered with the current
generator) or a folder of scenes with ``labels.geojson`` or ``labels.ndjson``
(LabelBox) and optional ``negatives.geojson`` beside them
(:mod:`asmspotter.detect.datasets`; scenes are predicted whole with tiled inference).

Reported, for the U-Net at the card's threshold and at the threshold that maximises
pixel F1, and for :mod:`asmspotter.detect.baseline` at its best-F1 threshold: pixel
precision/recall/F1/IoU, object precision/recall/F1 (a predicted site matches a
labelled one at IoU >= 0.3, :func:`asmspotter.detect.metrics.object_metrics`), the
relative area error of matched sites, and a PR curve PNG. Probability histograms
(1,000 bins) keep memory constant whatever the data size.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

import asmspotter
from asmspotter.detect.baseline import BASELINE_NAME, baseline_score
from asmspotter.detect.features import build_features
from asmspotter.detect.metrics import object_metrics, object_params, pr_curve_from_histograms
from asmspotter.detect.model_card import (
    Evaluation,
    EvaluationMetrics,
    InferencePrecision,
    ModelCard,
    PrecisionCheck,
    SoftwareVersions,
    save_card,
)
from asmspotter.detect.predict import predict_probabilities
from asmspotter.detect.runtime import LoadedModel, cpu_has_native_bf16, load_model, run_precision

logger = logging.getLogger(__name__)

N_BINS = 1000
"""Probability histogram bins for the PR curve (threshold resolution 0.001)."""

REFLECTANCE_BANDS = ("blue", "green", "red", "nir")

BF16_MIN_SPEEDUP = 0.9
"""bf16 becomes the default only if it takes under 90 % of fp32's time: a smaller gain
is within the noise of a shared machine and not worth the rounding."""


@dataclass
class _Scores:
    """Running sums for one detector at a few thresholds, plus probability histograms."""

    thresholds: list[float]
    pos_hist: NDArray[np.int64] = field(default_factory=lambda: np.zeros(N_BINS, np.int64))
    neg_hist: NDArray[np.int64] = field(default_factory=lambda: np.zeros(N_BINS, np.int64))
    masks: list[tuple[NDArray[np.float16], NDArray[np.bool_], NDArray[np.bool_], float]] = field(
        default_factory=list
    )

    def add(
        self,
        prob: NDArray[np.float32],
        truth: NDArray[np.bool_],
        valid: NDArray[np.bool_],
        resolution_m: float,
    ) -> None:
        bins = np.clip((prob[valid] * N_BINS).astype(np.int64), 0, N_BINS - 1)
        t = truth[valid]
        self.pos_hist += np.bincount(bins[t], minlength=N_BINS)
        self.neg_hist += np.bincount(bins[~t], minlength=N_BINS)
        # Masks are kept to score objects at a threshold chosen after all data is seen;
        # as float16 probability (2 bytes/px) plus two bool masks.
        self.masks.append((prob.astype(np.float16), truth, valid, resolution_m))

    def best_f1_threshold(self) -> float:
        curve = pr_curve_from_histograms(self.pos_hist, self.neg_hist)
        return float(curve["threshold"][int(np.argmax(curve["f1"]))])

    def metrics_at(self, threshold: float) -> EvaluationMetrics:
        tp = fp = fn = 0
        counts = np.zeros(5)
        for prob, truth, valid, resolution_m in self.masks:
            pred = (prob.astype(np.float32) >= threshold) & valid
            tp += int(np.count_nonzero(pred & truth))
            fp += int(np.count_nonzero(pred & ~truth))
            fn += int(np.count_nonzero(~pred & truth & valid))
            params = object_params(resolution_m)
            obj = object_metrics(
                pred,
                truth & valid,
                group_px=params["group_px"],
                min_area_px=params["min_area_px"],
            )
            counts += (
                obj["n_matched"],
                obj["n_pred"],
                obj["n_truth"],
                obj["area_abs_error_px"],
                obj["area_truth_px"],
            )
        precision = tp / (tp + fp) if tp + fp else (1.0 if fn == 0 else 0.0)
        recall = tp / (tp + fn) if tp + fn else (1.0 if fp == 0 else 0.0)
        f1 = 2 * tp / (2 * tp + fp + fn) if (tp + fp + fn) else 1.0
        iou = tp / (tp + fp + fn) if (tp + fp + fn) else 1.0
        n_matched, n_pred, n_truth = int(counts[0]), int(counts[1]), int(counts[2])
        o_precision = n_matched / n_pred if n_pred else (1.0 if n_truth == 0 else 0.0)
        o_recall = n_matched / n_truth if n_truth else (1.0 if n_pred == 0 else 0.0)
        o_f1 = 2 * n_matched / (n_pred + n_truth) if (n_pred + n_truth) else 1.0
        return EvaluationMetrics(
            threshold=round(float(threshold), 4),
            pixel_precision=precision,
            pixel_recall=recall,
            pixel_f1=f1,
            pixel_iou=iou,
            object_precision=o_precision,
            object_recall=o_recall,
            object_f1=o_f1,
            n_pred_objects=n_pred,
            n_truth_objects=n_truth,
            area_error_pct=(100.0 * counts[3] / counts[4]) if counts[4] > 0 else None,
        )


def parse_data_spec(data: str, default_resolution_m: float) -> tuple[str, float | Path]:
    """Parse DATA: ``generated[-hard][:<m>]`` gives ("generated[-hard]", m); else ("folder", path).

    Raises:
        ValueError: If the resolution after ``generated:`` is not a positive number.
    """
    match = re.fullmatch(r"(generated(?:-hard)?)(?::(.*))?", data.strip())
    if match:
        if not match.group(2):
            return match.group(1), default_resolution_m
        try:
            resolution_m = float(match.group(2).removesuffix("m"))
        except ValueError:
            resolution_m = -1.0
        if resolution_m <= 0:
            raise ValueError(
                f"DATA {data!r}: give generated:<pixel size in metres>, e.g. generated:10."
            )
        return match.group(1), resolution_m
    return "folder", Path(data)


def generated_test_split(
    card: ModelCard,
    resolution_m: float,
    mining_probability: float = 0.6,
    *,
    hard_lookalikes: bool = False,
) -> Iterator[tuple[NDArray[np.float32], NDArray[np.bool_]]]:
    """Yield the card's held-out generated test chips (reflectance (4, P, P), mask).

    The same stream :func:`asmspotter.detect.train.data.generated_chips` used for its test
    split (seed, chip size and count from the card), rendered with the current generator.
    """
    from asmspotter.synthetic import render_training_pair

    test_rng = np.random.default_rng(np.random.SeedSequence(card.training.seed).spawn(3)[2])
    for _ in range(card.training.n_test_chips):
        yield render_training_pair(
            test_rng,
            size_px=card.training.chip_px,
            resolution_m=resolution_m,
            mining_probability=mining_probability,
            hard_lookalikes=hard_lookalikes,
        )


def _predict_chip_batch(
    model: LoadedModel, reflectance: NDArray[np.float32], precision: InferencePrecision
) -> NDArray[np.float32]:
    """Probabilities (N, P, P) for reflectance chips (N, 4, P, P), one forward pass."""
    card = model.card
    layers = {b: reflectance[:, i] for i, b in enumerate(REFLECTANCE_BANDS)}
    feats = np.stack(
        [
            build_features({k: v[j] for k, v in layers.items()}, card.bands)
            for j in range(len(reflectance))
        ]
    )
    mean = np.asarray(card.normalisation.mean, np.float32)[None, :, None, None]
    std = np.asarray(card.normalisation.std, np.float32)[None, :, None, None]
    x = torch.from_numpy((feats - mean) / std).to(model.device)
    x = x.contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    with torch.inference_mode(), autocast:
        return torch.sigmoid(model.module(x).float())[:, 0].cpu().numpy()  # type: ignore[no-any-return]


def _iter_items(
    model: LoadedModel, data: str, precision: InferencePrecision
) -> Iterator[
    tuple[NDArray[np.float32], NDArray[np.bool_], NDArray[np.bool_], NDArray[np.float32], float]
]:
    """Yield (model probability, truth, valid, baseline score, resolution) per item."""
    kind, value = parse_data_spec(data, model.card.resolution_m)
    if kind.startswith("generated"):
        resolution_m = float(value)  # type: ignore[arg-type]
        hard = kind == "generated-hard"
        chips = list(generated_test_split(model.card, resolution_m, hard_lookalikes=hard))
        for start in range(0, len(chips), 16):
            batch = chips[start : start + 16]
            refl = np.stack([c[0] for c in batch])
            probs = _predict_chip_batch(model, refl, precision)
            for (r, m), p in zip(batch, probs, strict=True):
                yield p, m, np.ones_like(m), baseline_score(r, resolution_m), resolution_m
        return
    from asmspotter.detect.datasets import load_labelled_scenes
    from asmspotter.detect.labels import load_labels

    folder = Path(value)  # type: ignore[arg-type]
    labels_path = next(
        (folder / n for n in ("labels.geojson", "labels.ndjson") if (folder / n).is_file()), None
    )
    if labels_path is None:
        raise FileNotFoundError(
            f"{folder}: no labels.geojson or labels.ndjson beside the scenes; put the label "
            "polygons there (GeoJSON or a LabelBox NDJSON export)."
        )
    negatives = folder / "negatives.geojson"
    labels = load_labels(labels_path, negatives if negatives.is_file() else None)
    for scene in load_labelled_scenes(folder, labels):
        refl = scene.reflectance
        valid: NDArray[np.bool_] = np.asarray(np.isfinite(refl).all(axis=0), dtype=bool)
        feats = build_features(dict(zip(REFLECTANCE_BANDS, refl, strict=True)), model.card.bands)
        prob = predict_probabilities(feats, model, valid_mask=valid, precision=precision)
        yield (
            prob,
            scene.mining,
            valid,
            baseline_score(refl, scene.resolution_m),
            scene.resolution_m,
        )


def render_pr_curve(
    path: Path, curves: dict[str, _Scores], marks: dict[str, float], title: str
) -> Path:
    """Draw precision-recall curves (one per detector) with their best-F1 points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4.5), dpi=100)
    for name, scores in curves.items():
        curve = pr_curve_from_histograms(scores.pos_hist, scores.neg_hist)
        ax.plot(curve["recall"], curve["precision"], label=name)
        i = int(np.argmax(curve["f1"]))
        ax.plot(curve["recall"][i], curve["precision"][i], "o", color="black")
        ax.annotate(
            f"F1 {curve['f1'][i]:.3f} @ {marks.get(name, curve['threshold'][i]):.2f}",
            (curve["recall"][i], curve["precision"][i]),
            textcoords="offset points",
            xytext=(-90, -14),
            fontsize=8,
        )
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.01), ylim=(0, 1.01), title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _data_slug(data: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", data.strip("/")).strip("-") or "data"


def evaluate_model(
    model_dir: Path,
    data: str,
    *,
    precision: InferencePrecision | None = None,
    out_dir: Path | None = None,
    update_card: bool = True,
    device: str | None = None,
) -> Evaluation:
    """Evaluate a model and the spectral baseline on DATA; optionally record it in the card.

    Args:
        model_dir: The model directory.
        data: ``generated[:<m>]`` or a folder of scenes + ``labels.geojson``/``.ndjson``.
        precision: Inference precision; None uses the card's, or fp32 where the device
            has no native bf16 (:func:`asmspotter.detect.runtime.run_precision`).
        out_dir: Where the PR curve PNG goes (default: the model directory).
        update_card: Replace the card's evaluation of the same DATA with this one.
        device: Torch device; None picks CUDA when available.

    Returns:
        The evaluation.

    Raises:
        ModelNotFoundError: If the model does not exist.
        FileNotFoundError: If a data folder has no labels.
        ValueError: If DATA is malformed.
    """
    model_dir = Path(model_dir)
    model = load_model(model_dir, device=device)
    card = model.card
    used_precision: InferencePrecision = precision or run_precision(card.precision, model.device)
    unet = _Scores([card.threshold])
    base = _Scores([0.5])
    n_items = n_pixels = 0
    resolution_m = card.resolution_m
    for prob, truth, valid, score, item_resolution_m in _iter_items(model, data, used_precision):
        resolution_m = item_resolution_m
        unet.add(prob, truth, valid, item_resolution_m)
        base.add(score, truth, valid, item_resolution_m)
        n_items += 1
        n_pixels += int(valid.sum())
    best = unet.best_f1_threshold()
    base_best = base.best_f1_threshold()
    at_card = unet.metrics_at(card.threshold)
    at_best = unet.metrics_at(best)
    baseline = base.metrics_at(base_best)
    png_name = f"pr_curve_{_data_slug(data)}.png"
    png_path = render_pr_curve(
        Path(out_dir or model_dir) / png_name,
        {card.name: unet, BASELINE_NAME: base},
        {card.name: best, BASELINE_NAME: base_best},
        f"{card.name} on {data}",
    )
    kind, _ = parse_data_spec(data, card.resolution_m)
    description = (
        f"held-out {kind} test split: {n_items} chips of {card.training.chip_px} px at "
        f"{resolution_m:g} m (seed {card.training.seed}, stream 3 of 3), current generator"
        if kind.startswith("generated")
        else f"{n_items} scenes of {data} with their labels, predicted whole (tiled)"
    )
    evaluation = Evaluation(
        data=data,
        description=description,
        n_items=n_items,
        n_pixels=n_pixels,
        precision=used_precision,
        model=at_card,
        best_f1_threshold=best,
        model_at_best_f1=at_best,
        baseline=baseline,
        pr_curve_png=str(png_path if out_dir else png_name),
        software=SoftwareVersions(
            torch=torch.__version__, numpy=np.__version__, asmspotter=asmspotter.__version__
        ),
    )
    logger.info(
        "%s on %s: pixel IoU %.3f, object F1 %.3f at %.2f; baseline IoU %.3f, object F1 %.3f",
        card.name,
        data,
        at_card.pixel_iou,
        at_card.object_f1,
        card.threshold,
        baseline.pixel_iou,
        baseline.object_f1,
    )
    if update_card:
        others = [e for e in card.evaluations if e.data != data]
        save_card(card.model_copy(update={"evaluations": [*others, evaluation]}), model_dir)
    return evaluation


def cpu_model_name() -> str:
    """The CPU model name from /proc/cpuinfo ('' where unavailable)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def check_bf16(
    model_dir: Path, data: str = "generated", *, update_card: bool = True
) -> PrecisionCheck:
    """Compare bf16 autocast with fp32 on DATA and set the card's default precision.

    bf16 becomes the default only if its pixel IoU is within 0.01 of fp32's, the CPU
    runs bf16 natively, and its forward passes (timed interleaved with fp32's) take
    under :data:`BF16_MIN_SPEEDUP` of fp32's time here.
    """
    model_dir = Path(model_dir)
    model = load_model(model_dir, device="cpu")
    card = model.card
    sums = {"fp32": np.zeros(3), "bf16": np.zeros(3)}
    seconds = {"fp32": 0.0, "bf16": 0.0}
    max_diff = 0.0
    kind, value = parse_data_spec(data, card.resolution_m)
    if not kind.startswith("generated"):
        raise ValueError(f"check_bf16 runs on generated data, got {data!r}.")
    chips = list(
        generated_test_split(card, float(value), hard_lookalikes=kind == "generated-hard")  # type: ignore[arg-type]
    )
    for start in range(0, len(chips), 16):
        batch = chips[start : start + 16]
        refl = np.stack([c[0] for c in batch])
        truth = np.stack([c[1] for c in batch])
        started = time.perf_counter()
        p32 = _predict_chip_batch(model, refl, "fp32")
        seconds["fp32"] += time.perf_counter() - started
        started = time.perf_counter()
        p16 = _predict_chip_batch(model, refl, "bf16")
        seconds["bf16"] += time.perf_counter() - started
        max_diff = max(max_diff, float(np.abs(p32 - p16).max()))
        for name, p in (("fp32", p32), ("bf16", p16)):
            pred = p >= card.threshold
            sums[name] += np.asarray(
                [np.count_nonzero(pred & truth), np.count_nonzero(pred | truth), 0], dtype=float
            )
    iou = {k: float(v[0] / v[1]) if v[1] else 1.0 for k, v in sums.items()}
    check = PrecisionCheck(
        data=data,
        fp32_iou=iou["fp32"],
        bf16_iou=iou["bf16"],
        max_abs_probability_diff=max_diff,
        bf16_supported=cpu_has_native_bf16(),
        fp32_seconds=round(seconds["fp32"], 3),
        bf16_seconds=round(seconds["bf16"], 3),
        cpu=cpu_model_name(),
    )
    # bf16 only when it is accurate enough, native, and actually faster here.
    choice: InferencePrecision = (
        "bf16"
        if abs(iou["bf16"] - iou["fp32"]) <= 0.01
        and check.bf16_supported
        and seconds["bf16"] < BF16_MIN_SPEEDUP * seconds["fp32"]
        else "fp32"
    )
    logger.info(
        "%s: fp32 IoU %.4f, bf16 IoU %.4f (max |dp| %.3f); default precision %s",
        card.name,
        iou["fp32"],
        iou["bf16"],
        max_diff,
        choice,
    )
    if update_card:
        save_card(
            card.model_copy(update={"precision_check": check, "precision": choice}), model_dir
        )
    return check
