"""The core library stays light: importing it never loads Prefect, and torch only with detect."""

from __future__ import annotations

import subprocess
import sys


def loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(','.join(sorted(sys.modules)))"
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return set(output.stdout.strip().split(","))


def test_core_imports_without_prefect_or_torch():
    modules = loaded_after(
        "import asmspotter.aoi, asmspotter.monitor, asmspotter.composite.composite, "
        "asmspotter.alerts.dispatch, asmspotter.providers.local, asmspotter.cli"
    )
    assert "prefect" not in modules
    assert "torch" not in modules


def test_detect_loads_torch_but_not_prefect():
    modules = loaded_after("import asmspotter.detect.stage")
    assert "torch" in modules
    assert "prefect" not in modules


def test_train_config_validates_without_torch():
    """Flows build a TrainConfig at their edge before any task loads the net."""
    modules = loaded_after("import asmspotter.detect.train.config")
    assert "torch" not in modules
    assert "prefect" not in modules
