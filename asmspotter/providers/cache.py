"""The download cache: one folder per provider and scene, complete files only.

Every provider writes through :func:`asmspotter.atomic_write.atomic_write`: bytes
go to a ``partial_`` scratch name and are renamed to ``<name>`` only after the
writer finished and, where the provider knows a checksum, it matched. A crash or a
dropped connection therefore never leaves a file that a later run would take as
complete; the next run downloads again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def scene_dir(cache_dir: Path, provider: str, scene_id: str) -> Path:
    """``<cache_dir>/<provider>/<scene_id>/``, created if missing."""
    folder = cache_dir / provider / scene_id
    folder.mkdir(parents=True, exist_ok=True)
    return folder


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
