"""The one entry point of training: :func:`train_detector` (CLI, flows and scripts call it)."""

from __future__ import annotations

from pathlib import Path

from asmspotter.detect.model_card import ModelCard
from asmspotter.detect.runtime import configure_torch_threads
from asmspotter.detect.train.config import ProgressCallback, TrainConfig
from asmspotter.detect.train.data import generated_chips, labelled_scene_patches
from asmspotter.detect.train.evaluation import write_model
from asmspotter.detect.train.loop import fit, resolve_training_device


def train_detector(config: TrainConfig, progress: ProgressCallback | None = None) -> ModelCard:
    """Train a U-Net and write ``weights.pt`` and ``model_card.json`` into ``config.out_dir``.

    On ``config.scene_dir`` and its labels when given
    (:func:`~asmspotter.detect.train.data.labelled_scene_patches`, pixel-size jitter
    on), else on generated chips (:func:`~asmspotter.detect.train.data.generated_chips`).
    Then :func:`~asmspotter.detect.train.loop.fit` trains and
    :func:`~asmspotter.detect.train.evaluation.write_model` scores the held-out test
    split and writes the model.

    Example:
        >>> from pathlib import Path
        >>> from asmspotter.detect.train.config import TrainConfig
        >>> card = train_detector(  # doctest: +SKIP
        ...     TrainConfig(
        ...         out_dir=Path("models/my-ps-model"), name="my-ps-model",
        ...         scene_dir=Path("data/scenes/brokopondo"), labels_path=Path("labels.geojson"),
        ...     )
        ... )

    Args:
        config: The run, validated where it was built.
        progress: Called after each epoch with ``{"epoch", "epochs", "loss", "val_iou",
            "lr", "seconds"}``.

    Returns:
        The model card written.

    Raises:
        ValueError: If ``bf16`` is asked for off CUDA, CUDA is asked for and missing,
            a split is empty, the scenes' pixel sizes differ, or the checkpoint was
            written with other settings (``resume=False`` starts over).
        LabelReadError: If the labels cannot be read.
        SceneReadError: If the scene folder holds no readable scene.
    """
    torch_device = resolve_training_device(config.device, config.bf16)
    if config.scene_dir is not None:
        data = labelled_scene_patches(config)
    else:
        data = generated_chips(config)
    for split, reflectance in (
        ("train", data.train_reflectance),
        ("val", data.val_reflectance),
        ("test", data.test_reflectance),
    ):
        if len(reflectance) < 1:
            raise ValueError(
                f"train_detector: the {split} split is empty; give more scenes or a larger "
                "area (each split needs at least one block of patches)."
            )
    Path(config.out_dir).mkdir(parents=True, exist_ok=True)
    configure_torch_threads()
    fitted = fit(config, data, torch_device, progress)
    return write_model(config, data, fitted, torch_device)
