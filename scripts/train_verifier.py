"""Train the bundled verifier ``s2-verifier-v1`` on the real gallery chips; write its card.

Deals the Amazon Mining Watch gallery's sheet groups into folds, trains one
:class:`~asmspotter.detect.verifier.PatchNet` per fold on the other folds (plus
generated chips, ``--generated``), scores every real chip out-of-fold, sets the
confidence-level thresholds from those scores and writes ``member_<k>.pt`` and
``verifier_card.json`` with the by-sheet yardstick (AUC, sensitivity, specificity and
group-bootstrap 95 % intervals). It prints the yardstick, per fold, per cloud filter
and under radiometric shifts (how much the L1C/L2A harmonisation matters).

Usage::

    python scripts/train_verifier.py                       # models/s2-verifier-v1
    python scripts/train_verifier.py --epochs 1 --out-dir /tmp/v --folds 2
    python scripts/train_verifier.py --rescore --views 8 --version 1.1.0 --skip-shifts

``--rescore`` keeps the members in ``--out-dir`` and only scores the gallery again
(out-of-fold, each chip by its fold's members) with ``--views`` dihedral views, then
rewrites the thresholds, the yardstick and ``out_of_fold.npz``: minutes instead of the
47 of a training run.

``--add-members DIR`` appends the members of another training run on the same folds
(another ``--seed``) to those in ``--out-dir`` and rescores: each fold is then judged by
the mean of its members, as a run averages all of them, so the yardstick measures the
ensemble that ships::

    python scripts/train_verifier.py --seed 100 --out-dir /tmp/seed100 --skip-shifts
    python scripts/train_verifier.py --add-members /tmp/seed100 --version 1.2.0 --skip-shifts
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

import asmspotter
from asmspotter.detect.gallery import GalleryChips, group_folds, load_gallery
from asmspotter.detect.harmonise import (
    PATH_REFLECTANCE,
    TRANSMITTANCE,
    encode_like_gallery,
    gallery_reflectance,
)
from asmspotter.detect.patch_metrics import roc_auc
from asmspotter.detect.review_chips import load_review_chips
from asmspotter.detect.verifier import (
    PatchNet,
    VerifierCard,
    load_verifier,
    member_filename,
    save_verifier_card,
)
from asmspotter.detect.verifier_training import (
    VerifierTrainingConfig,
    check_precision,
    cross_validate,
    level_thresholds,
    real_evaluation,
    score_out_of_fold,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT_OF_FOLD_FILENAME = "out_of_fold.npz"
GALLERY = REPO_ROOT.parent / "shared/data/amazon-mining-watch/training_gallery"

HARMONISATION = (
    "L2A surface reflectance -> pseudo-L1C: toa = 0.95 * boa + path reflectance "
    "(R 0.025, G 0.035, B 0.065, calibrated on the gallery's dark objects), encoded like "
    "the gallery (uint8, saturating at 0.3); then, for L1C and L2A alike, per-chip "
    "dark-object subtraction (2nd percentile per band, capped at R 0.10 G 0.12 B 0.13) "
    "and /0.3. Training adds veils of -0.5x..+1x that path reflectance and gains of "
    "0.85-1.15, then shifts of place: per-band gains 0.92-1.08, a zoom of 0.8-1.25 on half "
    "the chips, a 3x3 binomial blur on a quarter (asmspotter.detect.harmonise, "
    "verifier_training.augment)."
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gallery", type=Path, default=GALLERY, help="training_gallery folder")
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "models/s2-verifier-v1")
    parser.add_argument("--name", default="s2-verifier-v1")
    parser.add_argument("--version", default="1.0.0")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--width", type=int, default=24)
    parser.add_argument("--generated", type=int, default=1000, help="generated chips added")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument(
        "--views", type=int, choices=(1, 2, 4, 8), default=8, help="test-time dihedral views"
    )
    parser.add_argument(
        "--rescore", action="store_true", help="keep the members in --out-dir, score again"
    )
    parser.add_argument(
        "--extra-chips",
        type=Path,
        action="append",
        default=[],
        metavar="NPZ",
        help="chips of reviewed sites (`asmspotter sites export-chips`) added to every "
        "member's training; repeatable",
    )
    parser.add_argument(
        "--add-members",
        type=Path,
        default=None,
        metavar="DIR",
        help="append the members of another training run on the same folds, then rescore",
    )
    parser.add_argument(
        "--check-precision",
        type=int,
        default=None,
        metavar="N",
        help="only compare bf16 with fp32 on N random gallery chips with the members in "
        "--out-dir and record it in the card (precision_check)",
    )
    parser.add_argument(
        "--skip-shifts",
        action="store_true",
        help="do not re-measure the radiometric shifts (two more passes over the gallery); "
        "a rescore keeps the card's earlier figures under a key naming their views and version",
    )
    return parser.parse_args(argv)


def shifted(rgb: NDArray[np.uint8], kind: str) -> NDArray[np.uint8]:
    """Gallery chips under a radiometric shift, re-encoded like the gallery.

    ``l2a-raw``: the chips as an L2A image of the place would look if fed in without
    harmonisation step 1 (path reflectance removed). ``hazier``: one more veil of path
    reflectance on top.
    """
    toa = np.moveaxis(gallery_reflectance(rgb), -3, -1)
    if kind == "l2a-raw":
        out = (toa - PATH_REFLECTANCE) / TRANSMITTANCE
    elif kind == "hazier":
        out = toa + PATH_REFLECTANCE
    else:
        out = toa
    return encode_like_gallery(out)


def report(
    gallery: GalleryChips,
    folds: NDArray[np.int8],
    oof: NDArray[np.float32],
    members: tuple[PatchNet, ...],
    n_views: int,
    shifts: bool = True,
) -> dict[str, object]:
    """Print and return the breakdowns that do not fit the card's fixed fields."""
    labels = gallery.label
    per_fold = {}
    for fold in range(int(folds.max()) + 1):
        m = folds == fold
        per_fold[str(fold)] = round(roc_auc(oof[m], labels[m]), 4)
    cloud = {}
    for tag in ("clear0.05", "clear0.75"):
        m = (labels == 1) | np.array([tag in sheet for sheet in gallery.sheet])
        if (labels[m] == 0).any():
            cloud[f"negatives {tag} vs all positives"] = round(roc_auc(oof[m], labels[m]), 4)
    out: dict[str, object] = {"auc_per_fold": per_fold, "auc_by_cloud_filter": cloud}
    if shifts:
        under_shift = {"as stored (L1C)": round(roc_auc(oof, labels), 4)}
        for kind in ("l2a-raw", "hazier"):
            scores = score_out_of_fold(members, shifted(gallery.rgb, kind), folds, n_views)
            under_shift[kind] = round(roc_auc(scores, labels), 4)
        out["auc_under_shift"] = under_shift
    for key, value in out.items():
        sys.stdout.write(f"{key}: {value}\n")
    return out


def print_line(line: str) -> None:
    """Progress to standard output."""
    sys.stdout.write(line + "\n")


def train(
    args: argparse.Namespace, gallery: GalleryChips, config: VerifierTrainingConfig
) -> tuple[tuple[PatchNet, ...], NDArray[np.int8], NDArray[np.float32], dict[str, object]]:
    """Train one member per fold; write their weights. Returns members, folds, scores, info."""
    started = time.perf_counter()
    extra = [load_review_chips(path) for path in args.extra_chips]
    joined = (
        (np.concatenate([c.rgb for c in extra]), np.concatenate([c.label for c in extra]))
        if extra
        else None
    )
    result = cross_validate(gallery, config, progress=print_line, extra=joined)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for index, member in enumerate(result.members):
        torch.save(member.state_dict(), args.out_dir / member_filename(index))
    training: dict[str, object] = {
        "data": f"{len(gallery)} real chips of {args.gallery.name} (48 px RGB L1C) + "
        f"{args.generated} generated chips (asmspotter.synthetic, half mines, half hard "
        "look-alikes, rendered through the same harmonisation)"
        + "".join(
            f" + {len(c)} chips of reviewed sites from {path.name} "
            f"({int(c.label.sum())} confirmed, {int((c.label == 0).sum())} dismissed)"
            for path, c in zip(args.extra_chips, extra, strict=True)
        ),
        "split": "by sheet group (asmspotter.detect.gallery.group_folds): member k trains "
        "on every fold but k",
        "epochs": args.epochs,
        "batch_size": config.batch_size,
        "lr": config.lr,
        "seed": args.seed,
        "seconds": round(time.perf_counter() - started, 1),
        "device": "cpu",
        "software": {
            "torch": torch.__version__,
            "numpy": np.__version__,
            "asmspotter": asmspotter.__version__,
        },
    }
    return result.members, result.folds, result.out_of_fold, training


def rescore(
    args: argparse.Namespace, gallery: GalleryChips, config: VerifierTrainingConfig
) -> tuple[tuple[PatchNet, ...], NDArray[np.int8], NDArray[np.float32], dict[str, object]]:
    """Score the gallery again with the members already in ``--out-dir``."""
    verifier = load_verifier(args.out_dir)
    folds = checked_folds(args.out_dir, verifier.card.n_members, gallery, config)
    out_of_fold = score_out_of_fold(verifier.members, gallery.rgb, folds, config.test_time_views)
    command = f"--rescore --views {config.test_time_views}" + (
        " --skip-shifts" if args.skip_shifts else ""
    )
    training = kept_training(verifier.card, args.skip_shifts)
    training["rescored"] = (
        f"{args.version}: the same members, every chip scored in {config.test_time_views} "
        f"dihedral views (scripts/train_verifier.py {command}); thresholds and yardstick "
        "from those scores"
    )
    return verifier.members, folds, out_of_fold, training


def add_members(
    args: argparse.Namespace, gallery: GalleryChips, config: VerifierTrainingConfig
) -> tuple[tuple[PatchNet, ...], NDArray[np.int8], NDArray[np.float32], dict[str, object]]:
    """Append ``--add-members``' members to ``--out-dir``'s, write them, score the ensemble."""
    kept = load_verifier(args.out_dir)
    added = load_verifier(args.add_members)
    if added.card.width != kept.card.width:
        raise SystemExit(
            f"{args.add_members}: members of width {added.card.width}, but "
            f"{args.out_dir} holds width {kept.card.width}; an ensemble needs one network."
        )
    if not (args.add_members / OUT_OF_FOLD_FILENAME).is_file():
        raise SystemExit(
            f"{args.add_members}: no {OUT_OF_FOLD_FILENAME}, so nothing shows which folds "
            "its members held out; add only members trained by this script."
        )
    folds = checked_folds(args.out_dir, kept.card.n_members, gallery, config)
    checked_folds(args.add_members, added.card.n_members, gallery, config)
    members = kept.members + added.members
    for index, member in enumerate(added.members, start=len(kept.members)):
        torch.save(member.state_dict(), args.out_dir / member_filename(index))
    out_of_fold = score_out_of_fold(members, gallery.rgb, folds, config.test_time_views)
    training = kept_training(kept.card, args.skip_shifts)
    seeds = [
        *as_list(kept.card.training.get("seeds", kept.card.training.get("seed"))),
        *as_list(added.card.training.get("seeds", added.card.training.get("seed"))),
    ]
    training["seeds"] = seeds
    training["members_per_fold"] = len(members) // config.n_folds
    training.pop("seed", None)
    training["seconds"] = round(
        float(str(kept.card.training.get("seconds", 0)))
        + float(str(added.card.training.get("seconds", 0))),
        1,
    )
    training["rescored"] = (
        f"{args.version}: members of seeds {seeds} ({len(members) // config.n_folds} per "
        f"fold); every chip scored by the mean of its fold's members in "
        f"{config.test_time_views} dihedral views (scripts/train_verifier.py --add-members)"
    )
    return members, folds, out_of_fold, training


def as_list(value: object) -> list[object]:
    """A card's ``seed`` (one) or ``seeds`` (several) as a list."""
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def kept_training(card: VerifierCard, skip_shifts: bool) -> dict[str, object]:
    """The card's training record without the figures a rescore measures again."""
    training = {
        key: value
        for key, value in card.training.items()
        if key not in ("auc_per_fold", "auc_by_cloud_filter", "auc_under_shift", "rescored")
    }
    if skip_shifts and "auc_under_shift" in card.training:
        views = f"{card.test_time_views} view{'s' if card.test_time_views > 1 else ''}"
        training[f"auc_under_shift ({views}, v{card.version})"] = card.training["auc_under_shift"]
    return training


def checked_folds(
    verifier_dir: Path, n_members: int, gallery: GalleryChips, config: VerifierTrainingConfig
) -> NDArray[np.int8]:
    """The gallery's folds, refused unless the members in ``verifier_dir`` were trained on them."""
    if n_members % config.n_folds:
        raise SystemExit(
            f"{verifier_dir}: {n_members} members, but --folds is {config.n_folds}; "
            "rescoring needs whole sets of one member per fold."
        )
    folds = group_folds(gallery, config.n_folds)
    check_same_folds(verifier_dir / OUT_OF_FOLD_FILENAME, gallery, folds)
    return folds


def check_same_folds(saved: Path, gallery: GalleryChips, folds: NDArray[np.int8]) -> None:
    """Refuse to rescore when the gallery's folds differ from the ones the members saw.

    A member would then score chips it trained on and inflate the yardstick silently.
    """
    if not saved.is_file():
        return
    with np.load(saved) as data:
        same = (
            data["fold"].shape == folds.shape
            and bool((data["fold"] == folds).all())
            and bool((data["group"] == np.asarray(gallery.group)).all())
        )
    if not same:
        raise SystemExit(
            f"{saved}: the gallery's chips or sheet groups differ from those the members "
            "were trained on; rescoring would score chips a member saw. Retrain instead."
        )


def record_precision_check(args: argparse.Namespace, gallery: GalleryChips) -> None:
    """Compare bf16 with fp32 on real chips and write it into ``--out-dir``'s card."""
    verifier = load_verifier(args.out_dir)
    check = check_precision(verifier, gallery, args.check_precision, args.seed)
    save_verifier_card(verifier.card.model_copy(update={"precision_check": check}), args.out_dir)
    sys.stdout.write(f"{check.model_dump_json(indent=2)}\n")


def main(argv: list[str] | None = None) -> None:
    """Train (or rescore), evaluate, write."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    gallery = load_gallery(args.gallery)
    if args.check_precision:
        record_precision_check(args, gallery)
        return
    config = VerifierTrainingConfig(
        n_folds=args.folds,
        epochs=args.epochs,
        width=args.width,
        seed=args.seed,
        n_generated=args.generated,
        test_time_views=args.views,
    )
    sys.stdout.write(
        f"{len(gallery)} real chips ({int(gallery.label.sum())} mining) in "
        f"{len(set(gallery.group))} sheet groups; {config}\n"
    )
    step = add_members if args.add_members else rescore if args.rescore else train
    members, folds, out_of_fold, training = step(args, gallery, config)
    thresholds = level_thresholds(out_of_fold, gallery.label)
    evaluation = real_evaluation(gallery, out_of_fold, thresholds, config.n_folds)
    breakdown = report(
        gallery, folds, out_of_fold, members, config.test_time_views, not args.skip_shifts
    )
    # Out-of-fold scores let the level thresholds be re-derived without retraining.
    np.savez_compressed(
        args.out_dir / OUT_OF_FOLD_FILENAME,
        score=out_of_fold,
        label=gallery.label,
        fold=folds,
        group=np.asarray(gallery.group),
    )
    card = VerifierCard(
        name=args.name,
        version=args.version,
        width=members[0].width,
        n_members=len(members),
        test_time_views=config.test_time_views,
        harmonisation=HARMONISATION,
        thresholds=thresholds,
        training={**training, **breakdown},
        real_evaluation=evaluation,
    )
    path = save_verifier_card(card, args.out_dir)
    sys.stdout.write(f"AUC {evaluation.auc:.3f} {evaluation.auc_ci}\n")
    for level, scores in evaluation.levels.items():
        sys.stdout.write(
            f"{level}: threshold {scores.threshold:.3f} "
            f"sensitivity {scores.sensitivity:.3f} {scores.sensitivity_ci} "
            f"specificity {scores.specificity:.3f} {scores.specificity_ci}\n"
        )
    sys.stdout.write(f"wrote {path}\n")


if __name__ == "__main__":
    main()
