"""The download cache: one folder per provider and scene, complete files only.

Every provider writes through :func:`atomic_file`: bytes go to ``partial_<name>``
and are renamed to ``<name>`` only after the writer finished and, where the
provider knows a checksum, it matched. A crash or a dropped connection therefore
never leaves a file that a later run would take as complete; the next run
resumes (if the provider can) or downloads again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def scene_dir(cache_dir: Path, provider: str, scene_id: str) -> Path:
    """``<cache_dir>/<provider>/<scene_id>/``, created if missing."""
    folder = cache_dir / provider / scene_id
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def partial_path(target: Path) -> Path:
    """Where ``target`` is written before it is complete."""
    return target.with_name(f"partial_{target.name}")


@contextmanager
def atomic_file(target: Path) -> Iterator[Path]:
    """Yield a temporary path to write; rename it to ``target`` when the block succeeds.

    If the block raises, the partial file is left for a resumable writer to continue
    (or for the next attempt to overwrite) and ``target`` is untouched.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(target)
    yield partial
    partial.replace(target)


def file_digest(path: Path, algorithm: str = "md5", chunk_bytes: int = 1 << 20) -> str:
    """Hex digest of a file, read in chunks (md5 for DHuS, as its OData API reports)."""
    digest = hashlib.new(algorithm)
    with path.open("rb") as stream:
        while chunk := stream.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def is_complete(path: Path, *, size: int | None = None, md5: str | None = None) -> bool:
    """True if ``path`` exists and matches the expected size and checksum, where known."""
    if not path.is_file():
        return False
    if size is not None and path.stat().st_size != size:
        return False
    return md5 is None or file_digest(path, "md5") == md5.lower()
