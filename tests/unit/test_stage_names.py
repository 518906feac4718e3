"""One name per stage: each monitoring task wraps the ``monitor`` function of its name.

The Prefect UI shows task names, the code's readers see function names, and a stage
is found by one name at every level (README, "Stages"). Tasks reach the store and
the core only through ``asmspotter.monitor``.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
from prefect import Task

from asmspotter import monitor

TASKS_DIR = Path(__file__).resolve().parents[2] / "tasks"
STAGE_MODULES = ["run", "search", "download", "composite", "detect", "track", "alert"]


def monitor_calls(function: ast.FunctionDef) -> list[str]:
    """Names of the ``monitor.<name>(...)`` calls in a function body."""
    return [
        node.func.attr
        for node in ast.walk(function)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "monitor"
    ]


@pytest.mark.parametrize("module_name", STAGE_MODULES)
def test_each_stage_task_calls_the_monitor_function_of_its_name(module_name: str):
    module = importlib.import_module(f"tasks.{module_name}")
    tasks = {name: obj for name, obj in vars(module).items() if isinstance(obj, Task)}
    tasks = {name: t for name, t in tasks.items() if t.fn.__module__ == module.__name__}
    assert tasks, f"tasks/{module_name}.py defines no task"
    tree = ast.parse((TASKS_DIR / f"{module_name}.py").read_text())
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    for name, prefect_task in tasks.items():
        assert prefect_task.name == name.replace("_", "-"), (module_name, name)
        assert monitor_calls(functions[name]) == [name], (module_name, name)
        assert callable(getattr(monitor, name))


@pytest.mark.parametrize("path", sorted(TASKS_DIR.glob("*.py")), ids=lambda p: p.name)
def test_no_task_opens_the_store(path: Path):
    tree = ast.parse(path.read_text())
    from_storage = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("asmspotter.storage")
        for alias in node.names
    }
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    names |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    assert "Store" not in from_storage and "Store" not in names
    assert "open_store" not in names
