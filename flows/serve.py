"""Serve the monitoring flows from this process, without a work pool or worker.

``python -m flows.serve`` registers two deployments with the Prefect API
(``monitor-all/daily`` on a daily schedule, ``monitor-aoi/on-demand``) and runs
their flow runs here until stopped with Ctrl-C. For workers, use
``prefect deploy --all`` with ``prefect.yaml`` instead.
"""

from __future__ import annotations

from prefect import serve

from flows.monitor import monitor_all, monitor_aoi

DAILY_CRON = "0 6 * * *"


def main() -> None:
    """Serve both deployments until interrupted."""
    daily = monitor_all.to_deployment(
        name="daily", cron=DAILY_CRON, tags=["asmspotter", "scheduled"]
    )
    on_demand = monitor_aoi.to_deployment(
        name="on-demand", parameters={"aoi_name": "demo"}, tags=["asmspotter", "on-demand"]
    )
    serve(daily, on_demand)  # type: ignore[arg-type]  # sync context: never a coroutine


if __name__ == "__main__":
    main()
