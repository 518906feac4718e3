"""Train the bundled default models: ``s2-unet-v1`` (Sentinel-2, 10 m), ``ps-unet-v1`` (3 m).

``--preset s2`` (default) or ``--preset ps`` sets the name, output directory and pixel
size; with the defaults (1,400 chips, 14 epochs) each finishes in a few minutes on 2
idle CPU cores; the shipped v2.0.0 models used more (see the README).
Training runs on a GPU when one is there (``--device``; ``--bf16`` for bfloat16
autocast on CUDA), chips render in ``--render-workers`` processes (the same chips
whatever their number), and ``--hard-fraction`` mixes standard and hard look-alike chips.
The card records the settings, the seed, the software versions and the held-out test
metrics; then ``asmspotter model evaluate models/<name> generated-hard`` adds the
evaluation with the spectral baseline and the PR curve.
Interrupt it at any time: run it again and it resumes from the last epoch
(``checkpoint.pt`` in the output directory), unless ``--no-resume``.

Usage::

    python scripts/train_default_model.py --hard-lookalikes              # models/s2-unet-v1
    python scripts/train_default_model.py --preset ps --hard-lookalikes  # models/ps-unet-v1
    python scripts/train_default_model.py --epochs 1 --n-train-chips 64 --out-dir /tmp/m
    python scripts/train_default_model.py --hard-fraction 0.5 --n-train-chips 10000 \
        --n-val-chips 800 --epochs 40 --batch-size 32 --device cuda --bf16 --render-workers 15
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from asmspotter.detect.model_card import DEFAULT_ARCHITECTURE, Architecture
from asmspotter.detect.train.config import TrainConfig
from asmspotter.detect.train.detector import train_detector

logger = logging.getLogger("train_default_model")

REPO_ROOT = Path(__file__).resolve().parent.parent

PRESETS: dict[str, tuple[str, float]] = {"s2": ("s2-unet-v1", 10.0), "ps": ("ps-unet-v1", 3.0)}
"""Preset name to (model name, pixel size in metres)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--preset", choices=sorted(PRESETS), default="s2", help="model name and pixel size"
    )
    parser.add_argument("--out-dir", type=Path, default=None, help="model dir")
    parser.add_argument("--name", default=None, help="model name in the card")
    parser.add_argument("--version", default="1.0.0", help="model version in the card")
    parser.add_argument("--resolution-m", type=float, default=None, help="pixel size, m")
    parser.add_argument("--n-train-chips", type=int, default=1400, help="training chips")
    parser.add_argument("--n-val-chips", type=int, default=150, help="validation chips")
    parser.add_argument("--n-test-chips", type=int, default=250, help="held-out test chips")
    parser.add_argument(
        "--hard-lookalikes", action="store_true", help="harder negatives in all chips"
    )
    parser.add_argument(
        "--hard-fraction",
        type=float,
        default=None,
        help="share of train/val chips with the harder negatives, 0..1 "
        "(default 1 with --hard-lookalikes, else 0)",
    )
    parser.add_argument(
        "--render-workers", type=int, default=1, help="processes rendering the chips"
    )
    parser.add_argument(
        "--device", default=None, help="torch device, e.g. cpu or cuda (default: CUDA if present)"
    )
    parser.add_argument(
        "--bf16", action="store_true", help="bfloat16 autocast in training (CUDA only)"
    )
    parser.add_argument("--chip-px", type=int, default=128, help="chip size, pixels")
    parser.add_argument("--epochs", type=int, default=14, help="epochs")
    parser.add_argument("--batch-size", type=int, default=16, help="chips per step")
    parser.add_argument(
        "--base-channels",
        type=int,
        default=DEFAULT_ARCHITECTURE.base_channels,
        help="U-Net base channels",
    )
    parser.add_argument("--depth", type=int, default=DEFAULT_ARCHITECTURE.depth, help="U-Net depth")
    parser.add_argument(
        "--upsampling",
        choices=["bilinear", "transpose"],
        default=DEFAULT_ARCHITECTURE.upsampling,
        help="decoder upsampling",
    )
    parser.add_argument(
        "--space-to-depth",
        type=int,
        default=DEFAULT_ARCHITECTURE.space_to_depth,
        help="pixel block folded into channels before the net (1: off)",
    )
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    parser.add_argument("--seed", type=int, default=0, help="seed")
    parser.add_argument(
        "--no-resume", dest="resume", action="store_false", help="ignore an existing checkpoint"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser.parse_args(argv)


def _config(args: argparse.Namespace, hard_fraction: float) -> TrainConfig:
    """The validated run the command line asks for."""
    name = args.name or PRESETS[args.preset][0]
    return TrainConfig(
        out_dir=args.out_dir or REPO_ROOT / "models" / name,
        name=name,
        version=args.version,
        resolution_m=args.resolution_m or PRESETS[args.preset][1],
        hard_fraction=hard_fraction,
        render_workers=args.render_workers,
        device=args.device,
        bf16=args.bf16,
        n_train=args.n_train_chips,
        n_val=args.n_val_chips,
        n_test=args.n_test_chips,
        patch_px=args.chip_px,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        architecture=Architecture(
            base_channels=args.base_channels,
            depth=args.depth,
            upsampling=args.upsampling,
            space_to_depth=args.space_to_depth,
        ),
        lr=args.lr,
        resume=args.resume,
    )


def main(argv: list[str] | None = None) -> int:
    """Train and write the model; return the exit status."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.hard_lookalikes and args.hard_fraction not in (None, 1.0):
        logger.error(
            "--hard-lookalikes means --hard-fraction 1, got --hard-fraction %s; give one of them.",
            args.hard_fraction,
        )
        return 2
    if args.hard_fraction is not None:
        hard_fraction = args.hard_fraction
    else:
        hard_fraction = 1.0 if args.hard_lookalikes else 0.0
    try:
        config = _config(args, hard_fraction)
    except ValueError as exc:
        logger.error("%s", exc)
        return 2
    card = train_detector(config)
    logger.info("model card: %s", card.model_dump_json(include={"metrics", "threshold"}))
    if card.metrics.pixel_iou < 0.8:
        logger.warning(
            "test pixel IoU %.3f is below the 0.8 target; train longer (--epochs) or on more "
            "chips (--n-train-chips)",
            card.metrics.pixel_iou,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
