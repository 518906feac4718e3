"""Measure the pipeline's alerts on labelled before/after pairs (``.npz`` files).

Runs :func:`asmspotter.detect.change_evaluation.evaluate_pairs`: every pair goes
through ``detect_change`` exactly as a monitoring run alerts, and the script prints
the share of mining pairs that raise an alert, the share of other changes that stay
quiet (95 % bootstrap intervals) and the AUC of the verifier score, then one line per
pair.

Usage::

    python scripts/evaluate_change.py PAIRS_DIR                 # reflectance 0..1
    python scripts/evaluate_change.py PAIRS_DIR --scale 1e-4 --offset -1000   # L2A digital numbers
    python scripts/evaluate_change.py a.npz b.npz --model s2-unet-v1 --csv out.csv
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from asmspotter.detect.api import DEFAULT_MODEL
from asmspotter.detect.change_evaluation import PairFileError, evaluate_pairs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pairs", nargs="+", type=Path, help=".npz pair files or folders of them")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model name or directory")
    parser.add_argument("--resolution-m", type=float, default=10.0, help="pixel size, metres")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplier to reflectance")
    parser.add_argument(
        "--offset", type=float, default=0.0, help="added before --scale (L2A 04.00+: -1000)"
    )
    parser.add_argument("--csv", type=Path, default=None, help="write one row per pair here")
    return parser.parse_args(argv)


def pair_files(inputs: list[Path]) -> list[Path]:
    """Every ``.npz`` named or inside a named folder, sorted."""
    files: list[Path] = []
    for item in inputs:
        files += sorted(item.glob("*.npz")) if item.is_dir() else [item]
    return files


def main(argv: list[str] | None = None) -> int:
    """Evaluate and print; returns the exit status."""
    args = parse_args(argv)
    files = pair_files(args.pairs)
    try:
        result = evaluate_pairs(
            files,
            resolution_m=args.resolution_m,
            model=args.model,
            scale=args.scale,
            offset=args.offset,
        )
    except (PairFileError, ValueError, OSError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    sys.stdout.write(result.summary() + "\n")
    for outcome in result.outcomes:
        sys.stdout.write(
            f"{outcome.name}\tlabel {outcome.label}\traised {int(outcome.raised)}\t"
            f"score {outcome.score:.3f}\n"
        )
    if args.csv is not None:
        with args.csv.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["pair", "label", "raised", "score"])
            for o in result.outcomes:
                writer.writerow([o.name, o.label, int(o.raised), f"{o.score:.4f}"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
