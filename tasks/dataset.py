"""Dataset tasks: one label area's chips, retried while the catalogue is unavailable."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from asmspotter.detect.real_dataset import (
    ChipRecord,
    DatasetBuildConfig,
    LabelArea,
    LabelSet,
    build_area_chips,
)
from tasks.search import RETRY_DELAYS_S, retry_if_unavailable


@task(
    name="build-area-chips",
    task_run_name="chips-{area.area_id}",
    retries=len(RETRY_DELAYS_S),
    retry_delay_seconds=RETRY_DELAYS_S,
    retry_condition_fn=retry_if_unavailable,
    cache_policy=NO_CACHE,
)
def build_area_chips_task(
    area: LabelArea, label_set: LabelSet, config: DatasetBuildConfig, out_dir: Path
) -> list[ChipRecord]:
    """Search, download, composite and cut one area (chips on disk are kept)."""
    return build_area_chips(area, label_set, config, out_dir)
