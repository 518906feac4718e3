"""Outputs appear only by rename (asmspotter.atomic_write)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from asmspotter.atomic_write import atomic_write, scratch_path
from asmspotter.errors import OutputWriteError, SceneReadError


def test_the_output_appears_complete_with_the_usual_mode_and_no_scratch(tmp_path: Path) -> None:
    target = tmp_path / "new" / "card.json"
    with atomic_write(target) as scratch:
        scratch.write_text("{}")
        assert not target.exists()
    assert target.read_text() == "{}"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in target.parent.iterdir()] == ["card.json"]


def test_a_failed_write_names_the_file_removes_the_scratch_and_keeps_the_old_one(
    tmp_path: Path,
) -> None:
    target = tmp_path / "events.geojson"
    target.write_text("previous")
    expected = r"cannot write .*events\.geojson: \[Errno 28\] No space left"
    with pytest.raises(OutputWriteError, match=expected), atomic_write(target) as scratch:
        scratch.write_text("half")
        raise OSError(28, "No space left on device")
    assert target.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["events.geojson"]


def test_an_error_raised_on_purpose_passes_unchanged(tmp_path: Path) -> None:
    with (
        pytest.raises(SceneReadError, match="failed its md5 check"),
        atomic_write(tmp_path / "scene.tif") as scratch,
    ):
        scratch.write_bytes(b"bad")
        raise SceneReadError("scene x failed its md5 check")
    assert list(tmp_path.iterdir()) == []


def test_scratch_names_are_per_call_and_never_end_in_the_output_suffix(tmp_path: Path) -> None:
    target = tmp_path / "chip.tif"
    first, second = scratch_path(target), scratch_path(target, "staging")
    assert first != second and first.parent == tmp_path
    assert first.name.startswith("partial_chip.tif.")
    assert second.name.startswith("partial_chip.tif.staging.")
    assert first.suffix != ".tif" and second.suffix != ".tif"
