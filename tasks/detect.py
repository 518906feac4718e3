"""Detect task: U-Net inference over the composite, then polygons.

Inference is the one heavy, CPU/GPU-bound stage. The task carries the tag
``unet-inference``: create a tag concurrency limit with
``prefect concurrency-limit create unet-inference 1`` and several AOI runs on one
worker machine take turns instead of oversubscribing its cores. Without that
limit the task runs unthrottled.
"""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from asmspotter import monitor
from asmspotter.monitor import DetectionResult, RunContext

INFERENCE_TAG = "unet-inference"


@task(
    name="detect-sites",
    task_run_name="detect-{ctx.aoi.name}",
    tags=[INFERENCE_TAG],
    cache_policy=NO_CACHE,
)
def detect_sites(ctx: RunContext, composite_path: Path) -> DetectionResult:
    """Probability COG and polygons for the composite."""
    return monitor.detect_sites(ctx, composite_path)
