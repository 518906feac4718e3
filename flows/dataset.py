"""The dataset flow: real Sentinel-2 training chips for a label file, then training.

``build_dataset_flow`` reads the labels and plans their areas
(:func:`asmspotter.detect.real_dataset.load_label_set`), runs one task per area
(``chips-<area id>``: search the STAC catalogue, download, composite, cut chips;
retried while the catalogue is unavailable), writes the manifest, and, given a
``model_name``, trains ``models/<model_name>`` on the chips through the one training
entry point (:func:`asmspotter.detect.train.detector.train_detector`). An area whose task
fails is listed in the manifest's ``failed_areas`` and the others go on; the flow
then fails naming them, after the manifest is written.

Run it with ``python -m flows.dataset LABELS OUT_DIR START END [MODEL_NAME]``.
``asmspotter dataset build`` runs the same core function without Prefect.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from asmspotter.detect.real_dataset import (
    ChipRecord,
    DatasetBuildConfig,
    chip_training_inputs,
    load_label_set,
    write_labels_geojson,
    write_manifest,
)
from asmspotter.errors import DatasetBuildError
from asmspotter.settings import get_settings
from flows.logs import send_project_logs_to_prefect
from tasks.dataset import build_area_chips_task

# A worker loads this file by path (prefect.yaml's entrypoint), not as `flows.dataset`,
# so `flows/__init__` never runs there: attach the project's run-log handler here too.
send_project_logs_to_prefect()


@task(name="train-on-chips", task_run_name="train-{name}", cache_policy=NO_CACHE)
def train_on_chips_task(
    name: str, dataset_dir: Path, epochs: int, n_train: int, patch_px: int, seed: int
) -> str:
    """Train ``models/<name>`` on a built dataset; return the model folder."""
    from asmspotter.detect.train.config import TrainConfig
    from asmspotter.detect.train.detector import train_detector

    logger = get_run_logger()
    scene_dir, labels = chip_training_inputs(dataset_dir)
    out_dir = get_settings().models_dir / name
    config = TrainConfig(
        out_dir=out_dir,
        name=name,
        scene_dir=scene_dir,
        labels_path=labels,
        n_train=n_train,
        epochs=epochs,
        patch_px=patch_px,
        seed=seed,
    )
    card = train_detector(
        config,
        progress=lambda record: logger.info(
            "epoch %d/%d: loss %.4f, val IoU %.3f",
            record["epoch"],
            record["epochs"],
            record["loss"],
            record["val_iou"],
        ),
    )
    logger.info("trained %s: test pixel IoU %.3f", name, card.metrics.pixel_iou)
    return str(out_dir)


@flow(name="build-dataset", flow_run_name="dataset-{out_dir}", log_prints=False)
def build_dataset_flow(
    labels: str,
    out_dir: str,
    config: dict[str, Any] | None = None,
    model_name: str | None = None,
    epochs: int = 14,
    n_train: int = 1000,
    patch_px: int = 128,
    seed: int = 0,
) -> str:
    """Build chips for every label area (one task each), then optionally train on them.

    Args:
        labels: Label file (GeoJSON, GeoPackage, LabelBox NDJSON).
        out_dir: Dataset folder.
        config: ``DatasetBuildConfig`` fields (catalogue, window, chip size...).
        model_name: Train ``models/<model_name>`` on the chips when given.
        epochs: Training epochs.
        n_train: Training patches drawn.
        patch_px: Training patch side, pixels (<= the chip side).
        seed: Training seed.

    Returns:
        The model folder when one was trained, else the manifest path.
    """
    logger = get_run_logger()
    settings = DatasetBuildConfig.model_validate(config or {})
    folder = Path(out_dir)
    label_set = load_label_set(Path(labels), settings)
    write_labels_geojson(label_set, folder)
    logger.info("%s: %d labels in %d areas", labels, len(label_set.labels), len(label_set.areas))
    futures = [
        build_area_chips_task.submit(area, label_set, settings, folder) for area in label_set.areas
    ]
    records: list[ChipRecord] = []
    failures: list[str] = []
    for area, future in zip(label_set.areas, futures, strict=True):
        future.wait()
        state = future.state
        if state.is_completed():
            records.extend(future.result())
        else:
            failures.append(f"{area.area_id}: {state.message}")
    manifest = write_manifest(folder, label_set, records, settings, failures)
    counts = {s: sum(r.status == s for r in records) for s in ("written", "existing", "skipped")}
    logger.info("chips: %s; manifest %s", counts, manifest)
    if failures:
        raise DatasetBuildError(
            f"{len(failures)} label areas failed ({'; '.join(failures)}); the others' chips "
            f"are in {folder} and listed in {manifest}; run again to resume."
        )
    if model_name is None:
        return str(manifest)
    return train_on_chips_task(model_name, folder, epochs, n_train, patch_px, seed)


if __name__ == "__main__":
    arguments = sys.argv[1:]
    build_dataset_flow(
        arguments[0],
        arguments[1],
        config={
            "start": dt.date.fromisoformat(arguments[2]),
            "end": dt.date.fromisoformat(arguments[3]),
        },
        model_name=arguments[4] if len(arguments) > 4 else None,
    )
