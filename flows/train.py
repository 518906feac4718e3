"""The training flow: fit a U-Net, evaluate it against the baseline, record it in the card.

``train_model_flow`` wires three steps of the core library
(:mod:`asmspotter.detect.train`, :mod:`asmspotter.detect.evaluate`): train (on a folder
of scenes + label polygons, or on generated chips when no folder is given; the flow's
parameters become one validated :class:`~asmspotter.detect.train.config.TrainConfig`), evaluate
the model and the spectral baseline on the held-out split, and measure bf16 against
fp32 to choose the default precision. Progress is visible in the Prefect UI: one log
line per epoch (loss, validation IoU) and a progress artifact ``train-<name>``.

Run it with ``python -m flows.train NAME [SCENE_DIR LABELS]``, or deploy it
(``prefect.yaml``: deployment ``train``). ``asmspotter model train`` runs the same
core functions without Prefect.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact

from asmspotter.detect.train.config import TrainConfig
from asmspotter.settings import get_settings
from flows.logs import send_project_logs_to_prefect

# A worker loads this file by path (prefect.yaml's entrypoint), not as `flows.<name>`,
# so `flows/__init__` never runs there: attach the project's run-log handler here too.
send_project_logs_to_prefect()


def _progress_reporter(name: str, epochs: int) -> Any:
    """Return a per-epoch callback that logs and updates a progress artifact."""
    logger = get_run_logger()
    artifact_id = create_progress_artifact(
        progress=0.0, key=f"train-{name}", description=f"Training {name}: epochs done (%)"
    )

    def report(record: dict[str, Any]) -> None:
        logger.info(
            "epoch %d/%d: loss %.4f, val IoU %.3f, lr %.2e, %.0f s",
            record["epoch"],
            record["epochs"],
            record["loss"],
            record["val_iou"],
            record["lr"],
            record["seconds"],
        )
        if isinstance(artifact_id, UUID):
            update_progress_artifact(artifact_id, progress=100.0 * record["epoch"] / epochs)

    return report


@task(task_run_name="train-{config.name}", persist_result=False)
def train_task(config: TrainConfig) -> str:
    """Train and write the model; return the card's JSON summary of metrics."""
    from asmspotter.detect.train.detector import train_detector

    card = train_detector(config, progress=_progress_reporter(config.name, config.epochs))
    return card.metrics.model_dump_json()


@task(task_run_name="evaluate-{data}", persist_result=False)
def evaluate_task(out_dir: Path, data: str) -> str:
    """Evaluate the model and the baseline on ``data``; record it in the card."""
    from asmspotter.detect.evaluate import evaluate_model

    evaluation = evaluate_model(out_dir, data)
    return evaluation.model_dump_json(include={"model", "baseline", "best_f1_threshold"})


@task(task_run_name="precision-check", persist_result=False)
def precision_task(out_dir: Path) -> str:
    """Measure bf16 against fp32 on the generated test split; set the default."""
    from asmspotter.detect.evaluate import check_bf16

    return check_bf16(out_dir, "generated-hard").model_dump_json()


@flow(name="train-model", flow_run_name="train-{name}", log_prints=False)
def train_model_flow(
    name: str,
    scene_dir: str | None = None,
    labels: str | None = None,
    negatives: str | None = None,
    resolution_m: float = 10.0,
    epochs: int = 14,
    n_train: int = 1400,
    seed: int = 0,
    resume: bool = True,
) -> str:
    """Train ``models/<name>``, then evaluate it with the baseline and check bf16.

    Args:
        name: Model folder under the models directory.
        scene_dir: Folder of 4-band GeoTIFF scenes; None trains on generated chips.
        labels: GeoJSON or LabelBox NDJSON of mining polygons (with ``scene_dir``).
        negatives: Optional GeoJSON of negative areas (dismissed false positives).
        resolution_m: Pixel size of generated chips (without ``scene_dir``).
        epochs: Epochs.
        n_train: Training chips or patches.
        seed: Seed.
        resume: Resume from the model folder's checkpoint.

    Returns:
        The model directory.
    """
    logger = get_run_logger()
    out_dir = get_settings().models_dir / name
    config = TrainConfig(
        out_dir=out_dir,
        name=name,
        scene_dir=Path(scene_dir) if scene_dir else None,
        labels_path=Path(labels) if labels else None,
        negatives_path=Path(negatives) if negatives else None,
        resolution_m=resolution_m,
        n_train=n_train,
        epochs=epochs,
        seed=seed,
        resume=resume,
    )
    metrics = train_task(config)
    logger.info("trained %s: %s", name, metrics)
    if scene_dir is None:
        logger.info("evaluation: %s", evaluate_task(out_dir, "generated-hard"))
        logger.info("precision check: %s", precision_task(out_dir))
    return str(out_dir)


if __name__ == "__main__":
    arguments = sys.argv[1:]
    train_model_flow(
        arguments[0],
        scene_dir=arguments[1] if len(arguments) > 1 else None,
        labels=arguments[2] if len(arguments) > 2 else None,
    )
