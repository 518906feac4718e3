"""Search task: ask the AOI's provider for the window's scenes (no pixels move)."""

from __future__ import annotations

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State as StateModel
from prefect.client.schemas.objects import TaskRun

from asmspotter import monitor
from asmspotter.errors import ProviderUnavailableError, ProviderUnreachableError
from asmspotter.monitor import RunContext
from asmspotter.scenes import SceneRef

RETRY_DELAYS_S: list[float] = [10, 60, 300]
"""Growing delays: a provider that is down for minutes gets a few chances, not a storm."""


def retry_if_unavailable(
    task: Task[..., object], task_run: TaskRun, state: StateModel[object]
) -> bool:
    """Retry only when the provider is down or throttling.

    Never on bad credentials, and never on an unreachable host (DNS failure, refused
    connection): minutes of waiting do not bring a network back, so that run fails in
    seconds with the host named.
    """
    try:
        state.result()
    except ProviderUnreachableError:
        return False
    except ProviderUnavailableError:
        return True
    except Exception:
        return False
    return False


@task(
    name="search-scenes",
    task_run_name="search-{ctx.aoi.name}",
    retries=len(RETRY_DELAYS_S),
    retry_delay_seconds=RETRY_DELAYS_S,
    retry_condition_fn=retry_if_unavailable,
    cache_policy=NO_CACHE,
)
def search_scenes(ctx: RunContext) -> tuple[RunContext, list[SceneRef]]:
    """Find the window's scenes from the highest-priority source that has any."""
    return monitor.search_scenes(ctx)
