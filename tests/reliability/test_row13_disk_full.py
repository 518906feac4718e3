"""Row 13 (rest): the disk fills up while a COG is written.

Before: ``TIFFRewriteDirectory: Error fetching directory count``, no path named,
and the previous output could be left half-written. Now the error names the file
and the free space, the temporary files are removed and the previous output is
byte for byte what it was. The fault is real: the writer runs in a child process
whose file-size limit (RLIMIT_FSIZE) makes the write fail as a full disk does.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_disk_full_while_the_composite_writes_its_tiles(tmp_path):
    """The COG writer (composite and probability map): the fault is as real as a full disk."""
    out = tmp_path / "composite.tif"
    out.write_bytes(b"the previous composite")
    script = textwrap.dedent(
        f"""
        import resource, signal, sys
        from pathlib import Path
        import numpy as np
        from affine import Affine
        from asmspotter.cog import ChunkedCogWriter
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
