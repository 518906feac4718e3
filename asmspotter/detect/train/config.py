"""What one training run is: the frozen :class:`TrainConfig`, validated where it is built.

The CLI (``asmspotter model train``), the ``train`` and ``build-dataset`` flows and
``scripts/train_default_model.py`` each turn their flags or parameters into one
``TrainConfig``; everything below :func:`asmspotter.detect.train.detector.train_detector`
trusts it. Without torch, so a flow can validate a run before it loads the net.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from asmspotter.detect.model_card import DEFAULT_ARCHITECTURE, Architecture

ProgressCallback = Callable[[dict[str, Any]], None]
"""Called after each epoch with ``{"epoch", "epochs", "loss", "val_iou", "lr", "seconds"}``."""


class TrainConfig(BaseModel):
    """One training run: where the model goes, what it learns from and how.

    With ``scene_dir`` the model learns from a folder of scenes and label polygons
    (patches of ``patch_px``, split in blocks of ``block_px``); without it, from
    generated chips of ``patch_px`` at ``resolution_m`` (train, validation and test
    from three disjoint seed streams).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    out_dir: Path = Field(description="Model directory to write (models/<name>).")
    name: str = Field(min_length=1, description="Model name (slug) for the card.")
    version: str = Field(default="1.0.0", description="Model version for the card.")

    scene_dir: Path | None = Field(
        default=None,
        description="Folder of 4-band GeoTIFF scenes; None trains on generated chips.",
    )
    labels_path: Path | None = Field(
        default=None, description="Mining polygons (GeoJSON or LabelBox NDJSON), with scene_dir."
    )
    negatives_path: Path | None = Field(
        default=None, description="GeoJSON of negative areas (dismissed false positives)."
    )
    block_px: int | None = Field(
        default=None, description="Spatial split block of scene training, px (None: 2 x patch)."
    )

    resolution_m: float = Field(default=10.0, gt=0, description="Pixel size of generated chips.")
    mining_probability: float = Field(
        default=0.6, ge=0, le=1, description="Share of generated chips with mining."
    )
    hard_fraction: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="Share of generated train/val chips with the harder look-alikes.",
    )
    render_workers: int = Field(default=1, description="Processes rendering generated chips.")
    n_train: int = Field(default=1400, description="Training chips (generated) or patches.")
    n_val: int | None = Field(
        default=None, description="Generated validation chips (None: max(32, n_train // 9))."
    )
    n_test: int | None = Field(
        default=None,
        description="Generated test chips per look-alike kind (None: max(64, n_train // 6)).",
    )
    patch_px: int = Field(default=128, description="Chip or patch side, px.")

    epochs: int = Field(default=14, description="Epochs to train.")
    batch_size: int = Field(default=16, description="Chips per optimiser step.")
    seed: int = Field(default=0, description="Seed of the data, the weights and the shuffling.")
    architecture: Architecture = Field(
        default=DEFAULT_ARCHITECTURE, description="The network's layout (written to the card)."
    )
    lr: float = Field(default=2e-3, gt=0, description="Peak learning rate.")

    resume: bool = Field(default=True, description="Resume from out_dir/checkpoint.pt.")
    keep_checkpoint: bool = Field(
        default=False, description="Keep the checkpoint after a successful run."
    )
    device: str | None = Field(
        default=None, description="Torch device (cpu, cuda); None: CUDA when available."
    )
    bf16: bool = Field(default=False, description="bfloat16 autocast in training (CUDA only).")

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        """Counts at least 1, patch side a multiple of the net's, labels with scenes."""
        if self.scene_dir is not None and self.labels_path is None:
            raise ValueError(
                f"training on the scene folder {self.scene_dir} needs labels: give a GeoJSON "
                "or LabelBox NDJSON file of mining polygons (--labels)."
            )
        counts = {
            "n_train": self.n_train,
            "n_val": self.n_val_chips,
            "n_test": self.n_test_chips,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "render_workers": self.render_workers,
        }
        for field, value in counts.items():
            if value < 1:
                raise ValueError(f"TrainConfig: {field} must be >= 1, got {value}.")
        multiple = self.architecture.size_multiple
        if self.patch_px < multiple or self.patch_px % multiple:
            raise ValueError(
                f"TrainConfig: patch_px (--patch-px, chip_px) must be a multiple of the net's "
                f"size multiple {multiple} (space_to_depth x 2**depth), got {self.patch_px}."
            )
        return self

    @property
    def n_val_chips(self) -> int:
        """Generated validation chips: ``n_val``, or a ninth of ``n_train`` (at least 32)."""
        return self.n_val if self.n_val is not None else max(32, self.n_train // 9)

    @property
    def n_test_chips(self) -> int:
        """Generated test chips per look-alike kind: ``n_test``, or ``n_train // 6`` (>= 64)."""
        return self.n_test if self.n_test is not None else max(64, self.n_train // 6)
