"""Prefect flows: wiring of tasks and per-AOI failure isolation, no domain logic."""

from flows.logs import send_project_logs_to_prefect

send_project_logs_to_prefect()
