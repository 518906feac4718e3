"""Serve the monitoring flows from this process, without a work pool or worker.

``python -m flows.serve`` (or ``asmspotter serve``) registers two deployments with
the Prefect API, ``monitor-all/served-daily`` (daily at 06:00 UTC) and
``monitor-aoi/served-on-demand``, and runs their flow runs here until stopped with
Ctrl-C. Their names differ from the worker deployments of ``prefect.yaml``
(``daily``, ``on-demand``, ...) on purpose: Prefect pauses a served deployment's
schedule when the serve stops and overwrites a deployment of the same name when
it starts, so sharing names let a stopped serve pause, and strip the pull steps
and job variables of, the deployments a worker runs.
"""

from __future__ import annotations

from prefect import serve
from prefect.schedules import Cron

from flows.monitor import monitor_all, monitor_aoi

DAILY_CRON = "0 6 * * *"
DAILY_TIMEZONE = "UTC"
SERVED_DAILY = "served-daily"
SERVED_ON_DEMAND = "served-on-demand"
"""Deployment names of the served flows; never the names ``prefect.yaml`` deploys."""


def main() -> None:
    """Serve both deployments until interrupted."""
    daily = monitor_all.to_deployment(
        name=SERVED_DAILY,
        schedule=Cron(DAILY_CRON, timezone=DAILY_TIMEZONE),
        tags=["asmspotter", "scheduled", "served"],
    )
    on_demand = monitor_aoi.to_deployment(
        name=SERVED_ON_DEMAND,
        parameters={"aoi_name": "demo"},
        tags=["asmspotter", "on-demand", "served"],
    )
    serve(daily, on_demand)  # type: ignore[arg-type]  # sync context: never a coroutine


if __name__ == "__main__":
    main()
