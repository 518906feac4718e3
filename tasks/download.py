"""Download task: one scene into the cache, retried while the provider is unavailable."""

from __future__ import annotations

from collections.abc import Sequence

from prefect import task
from prefect.cache_policies import NO_CACHE

from asmspotter import monitor
from asmspotter.monitor import RunContext, SkippedScene
from asmspotter.scenes import LocalScene, SceneRef
from tasks.search import RETRY_DELAYS_S, retry_if_unavailable


@task(
    name="download-scene",
    task_run_name="download-{ref.scene_id}",
    retries=len(RETRY_DELAYS_S),
    retry_delay_seconds=RETRY_DELAYS_S,
    retry_condition_fn=retry_if_unavailable,
    cache_policy=NO_CACHE,
)
def download_scene(ctx: RunContext, ref: SceneRef) -> LocalScene:
    """Download one scene (idempotent: a verified cached copy is reused)."""
    return monitor.download_scene(ctx, ref)


@task(name="record-scenes", task_run_name="record-scenes-{ctx.aoi.name}", cache_policy=NO_CACHE)
def record_scenes(
    ctx: RunContext, used: Sequence[LocalScene], skipped: Sequence[SkippedScene]
) -> None:
    """Record used and skipped scenes (with reasons) in the store."""
    monitor.record_scenes(ctx, used, skipped)
