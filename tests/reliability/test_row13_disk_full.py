"""Row 13 (rest): the disk fills up while a COG is written.

Before: ``TIFFRewriteDirectory: Error fetching directory count``, no path named,
and the previous output could be left half-written. Now the error names the file
and the free space, the temporary files are removed and the previous output is
byte for byte what it was. The fault is real: the writer runs in a child process
whose file-size limit (RLIMIT_FSIZE) makes the write fail as a full disk does.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

from asmspotter.cog import staging_profile, staging_to_cog


def _staging(path: Path, seed: int, size_px: int = 1024) -> Path:
    data = np.random.default_rng(seed).random((3, size_px, size_px), dtype=np.float32)
    profile = staging_profile(
        height=size_px,
        width=size_px,
        count=3,
        dtype="float32",
        crs="EPSG:32621",
        transform=Affine(10, 0, 600_000, 0, -10, 560_000),
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def test_disk_full_names_the_file_and_keeps_the_previous_output(tmp_path):
    out = tmp_path / "composite.tif"
    staging_to_cog(_staging(tmp_path / "first.staging.tif", 0), out)
    before = hashlib.sha256(out.read_bytes()).hexdigest()
    new_staging = _staging(tmp_path / "second.staging.tif", 1)
    limit_bytes = 2_000_000  # the new COG (~12 MB of random floats) cannot fit
    script = textwrap.dedent(
        f"""
        import resource, signal, sys
        from pathlib import Path
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, ({limit_bytes}, {limit_bytes}))
        from asmspotter.cog import staging_to_cog
        from asmspotter.errors import OutputWriteError
        try:
            staging_to_cog(Path({str(new_staging)!r}), Path({str(out)!r}))
        except OutputWriteError as exc:
            print(exc)
            sys.exit(3)
        """
    )
    child = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert child.returncode == 3, child.stdout + child.stderr
    assert f"cannot write {out}" in child.stdout and "MB free in" in child.stdout
    assert hashlib.sha256(out.read_bytes()).hexdigest() == before, "previous output intact"
    with rasterio.open(out) as src:
        assert src.count == 3
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("partial_"))
    assert leftovers == [] and not new_staging.exists()


def test_disk_full_while_the_composite_writes_its_tiles(tmp_path):
    """The chunked COG writer (the composite's): same promise, the fault as real."""
    out = tmp_path / "composite.tif"
    out.write_bytes(b"the previous composite")
    script = textwrap.dedent(
        f"""
        import resource, signal, sys
        from pathlib import Path
        import numpy as np
        from affine import Affine
        from asmspotter.cog_writer import ChunkedCogWriter
        from asmspotter.errors import OutputWriteError
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2_000_000, 2_000_000))
        data = np.random.default_rng(0).random((7, 1024, 1024), dtype=np.float32)
        try:
            from asmspotter.atomic_write import writing_output
            with writing_output(Path({str(out)!r})):
                writer = ChunkedCogWriter(
                    Path({str(out)!r}), width=1024, height=1024, band_names=list("abcdefg"),
                    transform=Affine(10, 0, 600_000, 0, -10, 560_000), epsg=32621,
                )
                try:
                    writer.finish(writer.write_chunk(data, 0, 0))
                finally:
                    writer.discard()
        except OutputWriteError as exc:
            print(exc)
            sys.exit(3)
        """
    )
    child = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert child.returncode == 3, child.stdout + child.stderr
    assert f"cannot write {out}" in child.stdout and "MB free in" in child.stdout
    assert out.read_bytes() == b"the previous composite"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["composite.tif"]
