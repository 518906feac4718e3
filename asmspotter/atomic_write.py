"""Outputs appear only by rename: written under a scratch name, renamed when complete.

Every file the pipeline writes (downloaded scenes, COGs, chips, model weights and
cards, alert files) goes through here, so a crash, a full disk or a dropped
connection never leaves a half-written file under the name a later run or reader
takes as complete.

Scratch names are ``partial_<name>[.<role>].<pid>-<random>``: two processes writing
the same output (which the run lock prevents, but a crashed run's leftovers may
linger) never share one, and none ends in the output's suffix, so a reader that
globs ``*.tif`` never picks one up. A scratch file is created like any other file,
so the output gets the usual mode (0666 less the umask).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rasterio._err import CPLE_BaseError
from rasterio.errors import RasterioError

from asmspotter.errors import AsmspotterError, OutputWriteError


def scratch_path(path: Path, role: str = "") -> Path:
    """A temporary sibling of ``path`` that no other process or call writes.

    Args:
        path: The output it stands in for.
        role: What it holds when one output has several (``"staging"``, ``"cog"``).
    """
    tag = f".{role}" if role else ""
    return path.with_name(f"partial_{path.name}{tag}.{os.getpid()}-{uuid.uuid4().hex[:8]}")


@contextmanager
def writing_output(path: Path, *scratch: Path) -> Iterator[None]:
    """Translate a failed write of ``path`` into an error naming it; remove ``scratch``.

    On any failure the temporary files are deleted (a full disk gets its space back)
    and ``path`` itself is untouched. Errors asmspotter raised on purpose (a scene
    that failed its checksum, say) pass unchanged: they already say what failed.

    Raises:
        OutputWriteError: writing failed with an I/O or GDAL error (disk full, file
            too large, folder not writable), naming ``path`` and the free space.
    """
    try:
        yield
    except AsmspotterError:
        _remove_quietly(scratch)
        raise
    except (OSError, RasterioError, CPLE_BaseError) as exc:
        _remove_quietly(scratch)
        raise OutputWriteError(
            f"cannot write {path}: {_one_line(exc)}. {_free_space(path.parent)}; free "
            "space there or set ASMSPOTTER_DATA_DIR to a larger disk. The previous "
            f"{path.name}, if any, is unchanged."
        ) from exc
    except BaseException:
        _remove_quietly(scratch)
        raise


@contextmanager
def atomic_write(path: Path, role: str = "") -> Iterator[Path]:
    """Yield a scratch path to write; rename it to ``path`` when the block succeeds.

    The folder is created if missing. On failure the scratch file is removed and
    ``path`` is unchanged (see :func:`writing_output` for the error raised).

    Example:
        >>> with atomic_write(folder / "card.json") as scratch:  # doctest: +SKIP
        ...     scratch.write_text(text)
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = scratch_path(path, role)
    with writing_output(path, scratch):
        yield scratch
        os.replace(scratch, path)


def _one_line(exc: BaseException) -> str:
    """An exception's first line, with its type when it has no message."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _free_space(folder: Path) -> str:
    """``"<n> MB free in <folder>"`` (or why that is unknown)."""
    try:
        free_mb = shutil.disk_usage(folder).free / 1e6
    except OSError:
        return f"free space in {folder} unknown"
    return f"{free_mb:,.0f} MB free in {folder}"


def _remove_quietly(paths: tuple[Path, ...]) -> None:
    """Delete temporary files if they exist."""
    for scratch in paths:
        scratch.unlink(missing_ok=True)
