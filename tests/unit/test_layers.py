"""Imports point down the layers: the [tool.importlinter] contracts in pyproject.toml hold.

The contracts say which package may import which (cli and web on top, the scene
vocabulary at the bottom; the core never imports flows/ or tasks/; providers
never import compositing or the demo generator). A new upward arrow breaks one
and this test names it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def lint_imports(*arguments: str) -> subprocess.CompletedProcess[str]:
    """Run import-linter on this checkout in a fresh interpreter (its graph cache off)."""
    code = "from importlinter.cli import lint_imports_command; lint_imports_command()"
    return subprocess.run(
        [sys.executable, "-c", code, "--no-cache", *arguments],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )


def test_every_import_contract_is_kept():
    result = lint_imports(str(ROOT / "pyproject.toml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout, result.stdout


def test_an_upward_import_breaks_a_contract(tmp_path):
    """The contracts can fail: a provider that imports compositing is reported."""
    config = tmp_path / "contracts.toml"
    config.write_text(
        "[tool.importlinter]\n"
        'root_packages = ["asmspotter"]\n'
        "[[tool.importlinter.contracts]]\n"
        'name = "compositing may not use the scene vocabulary (false on purpose)"\n'
        'type = "forbidden"\n'
        'source_modules = ["asmspotter.composite"]\n'
        'forbidden_modules = ["asmspotter.scenes"]\n'
    )
    result = lint_imports(str(config))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "asmspotter.composite.composite -> asmspotter.scenes" in result.stdout, result.stdout
