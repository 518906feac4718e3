"""Prefect tasks, one module per stage.

Each task wraps one core call from ``asmspotter`` and adds only retries, names,
concurrency and artifacts.
"""
