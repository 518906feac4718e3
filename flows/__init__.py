"""Prefect flows: wiring of tasks and per-AOI failure isolation, no domain logic."""
