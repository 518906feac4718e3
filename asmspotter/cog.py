"""Write float32 Cloud-Optimised GeoTIFFs chunk by chunk, compressing every tile once.

The composite and the probability map are COGs: 512 px tiles, internal overviews,
every IFD at the start of the file. GDAL's COG driver only copies a finished dataset,
so both used to be streamed into an uncompressed staging file, given overviews there
and copied into a COG: 27.6 s of a 45 s composite at 12,000 km² on 2 cores (staging
7.9 s, overviews 6.4 s, compressing copy 13.3 s; benchmarks/README.md, session 10),
and 28 bytes of temporary disk per composite pixel. :class:`ChunkedCogWriter` instead
lets the task that computed a chunk compress its own tiles, and those of its averages
on the overview levels it covers whole (the first overview for 1,024 px chunks), append
them to the file and write its share of the next level into a raw scratch file, so
compression runs beside the compute, on the same threads or Dask workers.
:meth:`ChunkedCogWriter.finish` builds the smaller overviews from that level, appends
them, smallest first, and writes into the room kept at the file's start what GDAL's
COG driver puts there (https://gdal.org/drivers/raster/cog.html): the BigTIFF header,
GDAL's structural metadata and every IFD. Each tile carries its size before it and its last 4 bytes
after it, as GDAL writes them. :class:`TileAssembler` gathers pieces that do not fall
on tiles (the probability map's strips) into whole ones.

One difference from GDAL's COG: the tiles the chunks encode (full resolution and, for
1,024 px chunks, the first overview) lie in the order the chunks finished, before the
other overviews, not row-major after them, so GDAL does not report ``LAYOUT=COG``
(the structural metadata does not claim ``BLOCK_ORDER``).
Readers find every tile through the IFDs as in any tiled GeoTIFF; putting them in
order cost a copy of the whole file (8.5 s at 12,000 km²).

Tiles are pixel-interleaved float32 (nodata NaN, or a value such as the probability
map's -1), the TIFF floating-point predictor (3) and ZSTD (TIFF compression 50000) at
:data:`ZSTD_LEVEL`. Overviews are the mean of the pixels with data of each 2 x 2 block
of the level above: GDAL's ``average`` where the level's sizes are even.
"""

from __future__ import annotations

import math
import os
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
import zstandard
from affine import Affine
from numpy.typing import NDArray

from asmspotter.atomic_write import scratch_path, writing_output
from asmspotter.cluster import task_core_budget
from asmspotter.errors import OutputWriteError

BLOCK_PX = 512
"""Block (tile) size of every COG the pipeline writes."""


def overview_factors(width: int, height: int, smallest_px: int = BLOCK_PX) -> list[int]:
    """Decimation factors 2, 4, 8, ... until the overview fits in ``smallest_px``."""
    factors: list[int] = []
    factor = 2
    while max(width, height) / (factor // 2) > smallest_px:
        factors.append(factor)
        factor *= 2
    return factors


GHOST_AREA = (
    "LAYOUT=IFDS_BEFORE_DATA\n"
    "BLOCK_LEADER=SIZE_AS_UINT4\n"
    "BLOCK_TRAILER=LAST_4_BYTES_REPEATED\n"
    "KNOWN_INCOMPATIBLE_EDITION=NO\n "
)
"""GDAL's structural metadata of a COG: readers may rely on the layout it declares."""

ZSTD_COMPRESSION = 50000
ZSTD_LEVEL = -1
"""The first of ZSTD's fast (negative) levels, below the 1 GDAL lets one ask for (any
level decodes alike). On a 512 px tile of a real composite after the predictor: 3.3 ms instead of
9.2 to compress and 0.9 instead of 4.8 ms to decompress, for 11 % more bytes (76.5 %
instead of 69 % of the raw size): the mantissas' low bytes are noise that level 1
spends entropy coding on, and every reader of the composite pays the decoding."""
FLOATING_POINT_PREDICTOR = 3
_SHORT, _LONG, _ASCII, _DOUBLE, _LONG8 = 3, 4, 2, 12, 16
_TYPE_FORMAT = {_SHORT: "H", _LONG: "I", _DOUBLE: "d", _LONG8: "Q"}


@dataclass(frozen=True)
class TileRecord:
    """Where one compressed tile lies in the file."""

    level: int
    row: int
    col: int
    offset: int
    nbytes: int


def encode_tile(tile: NDArray[np.float32], level: int = ZSTD_LEVEL) -> bytes:
    """A full (P, P, bands) float32 tile as TIFF predictor-3 bytes, ZSTD-compressed.

    The floating-point predictor (Adobe's TIFF Technote 3, as libtiff writes it): each
    row's samples are split into byte planes, most significant first, and each byte
    becomes its difference to the byte one pixel (``bands`` bytes) before it.
    """
    rows, _, bands = tile.shape
    as_bytes = np.ascontiguousarray(tile, dtype="<f4").view(np.uint8).reshape(rows, -1, 4)
    planes = np.ascontiguousarray(as_bytes[:, :, ::-1].transpose(0, 2, 1)).reshape(rows, -1)
    differenced = planes.copy()
    np.subtract(planes[:, bands:], planes[:, :-bands], out=differenced[:, bands:])
    return zstandard.ZstdCompressor(level=level).compress(differenced.data)


def average_2x2(block: NDArray[np.float32]) -> NDArray[np.float32]:
    """(H, W, bands) -> (ceil(H/2), ceil(W/2), bands): 2 x 2 means of the non-NaN pixels.

    NaN where all four are NaN; a block cut by the image's edge averages what it has.
    This is GDAL's ``average`` wherever a level's size is even (tested). Where it is
    odd, GDAL spreads windows of slightly more than 2 px across the whole row, so its
    overview drifts by up to one overview pixel towards the right and bottom edges
    against ours, which keeps exact 2 x 2 blocks; overviews serve display only.
    """
    rows, cols, bands = block.shape
    padded = block
    if rows % 2 or cols % 2:
        padded = np.full((rows + rows % 2, cols + cols % 2, bands), np.nan, np.float32)
        padded[:rows, :cols] = block
    quarters = [padded[i::2, j::2] for i in (0, 1) for j in (0, 1)]
    if not np.isnan(padded).any():
        total = quarters[0] + quarters[1]
        total += quarters[2]
        total += quarters[3]
        total *= np.float32(0.25)
        return total
    total = np.zeros(quarters[0].shape, np.float32)
    counts = np.zeros(quarters[0].shape, np.float32)
    for quarter in quarters:
        clear = ~np.isnan(quarter)
        total += np.where(clear, quarter, np.float32(0))
        counts += clear
    out = np.full(total.shape, np.nan, np.float32)
    np.divide(total, counts, out=out, where=counts > 0)
    return out


def average_2x2_with_nodata(block: NDArray[np.float32], nodata: float) -> NDArray[np.float32]:
    """:func:`average_2x2` for an image whose missing pixels hold ``nodata``, not NaN."""
    if math.isnan(nodata):
        return average_2x2(block)
    half = average_2x2(np.where(block == np.float32(nodata), np.float32(np.nan), block))
    half[np.isnan(half)] = nodata
    return half


def _padded_tile(
    data: NDArray[np.float32], row: int, col: int, nodata: float = math.nan
) -> NDArray[np.float32]:
    """Tile (row, col) of a (H, W, bands) array, padded with ``nodata`` to BLOCK_PX square."""
    part = data[row * BLOCK_PX : (row + 1) * BLOCK_PX, col * BLOCK_PX : (col + 1) * BLOCK_PX]
    if part.shape[:2] == (BLOCK_PX, BLOCK_PX):
        return part
    tile = np.full((BLOCK_PX, BLOCK_PX, data.shape[2]), nodata, np.float32)
    tile[: part.shape[0], : part.shape[1]] = part
    return tile


class ChunkedCogWriter:
    """Write a (bands, H, W) float32 image chunk by chunk into a COG at ``path``.

    Call :meth:`write_chunk` for every chunk (any order, from several threads or, with a
    ``distributed.Lock`` and shared storage, from Dask workers), then :meth:`finish`
    with all the records they returned. Chunks are the cells of a ``chunk_px`` grid from
    the top left (:data:`BLOCK_PX` times a power of 2), cut only by the image's edge.
    The file grows under a scratch name beside ``path``, the IFDs' room kept at its
    start; the overviews' pixels wait in temporary raw files. :meth:`finish` or
    :meth:`discard` removes them.
    """

    def __init__(
        self,
        path: Path,
        *,
        width: int,
        height: int,
        band_names: Sequence[str],
        transform: Affine,
        epsg: int,
        nodata: float = math.nan,
        chunk_px: int = BLOCK_PX,
        lock: AbstractContextManager[Any] | None = None,
    ) -> None:
        if chunk_px < BLOCK_PX or chunk_px & (chunk_px - 1):
            raise ValueError(f"chunk_px must be {BLOCK_PX} times a power of 2, got {chunk_px}.")
        if transform.b or transform.d or not 0 < epsg < 2**16:
            raise ValueError(
                f"{path}: the COG writer takes north-up grids in a projected CRS with an "
                f"EPSG code (as AOI grids are), got transform {tuple(transform)[:6]} and "
                f"EPSG {epsg}."
            )
        self.path = Path(path)
        self.nodata = float(nodata)
        self.width, self.height = width, height
        self.band_names = list(band_names)
        self.transform = transform
        self.epsg = epsg
        self.lock: AbstractContextManager[Any] = lock if lock is not None else threading.Lock()
        self.factors = overview_factors(width, height)
        self.level_shapes = [(height, width)] + [
            (math.ceil(height / f), math.ceil(width / f)) for f in self.factors
        ]
        self.chunk_px = chunk_px
        # Levels whose tiles the chunk tasks encode themselves: a chunk's share of level
        # L is chunk_px / 2**L px, whole tiles while that is at least BLOCK_PX. The next
        # level waits in a raw file (the "raw level") for finish() to average on.
        self.raw_level = min(chunk_px // BLOCK_PX, 2 ** len(self.factors)).bit_length()
        self.partial = scratch_path(self.path, "cog")
        self.levels = [
            scratch_path(self.path, f"overview{i}")
            for i in range(self.raw_level, len(self.level_shapes))
        ]
        self.ifd_offsets, data_start = self._ifd_layout()
        try:
            with open(self.partial, "wb") as out:
                out.truncate(data_start)
            if self.levels:
                with open(self.levels[0], "wb") as first:
                    first.truncate(
                        self._row_bytes(self.raw_level) * self.level_shapes[self.raw_level][0]
                    )
        except BaseException:
            self.discard()
            raise

    def __getstate__(self) -> dict[str, Any]:
        """Pickle for Dask workers: a thread lock stays behind (workers get a cluster lock)."""
        state = dict(self.__dict__)
        if isinstance(state["lock"], type(threading.Lock())):
            raise TypeError("a thread lock cannot go to Dask workers: pass a distributed.Lock")
        return state

    def __dask_tokenize__(self) -> tuple[str, str]:
        """Dask names tasks by their inputs: one writer is one output file."""
        return ("ChunkedCogWriter", str(self.partial))

    def _row_bytes(self, level: int) -> int:
        return self.level_shapes[level][1] * len(self.band_names) * 4

    def _append(self, payloads: list[tuple[int, int, int, bytes]]) -> list[TileRecord]:
        """Append compressed tiles to the file (under the lock); where each one went.

        Each tile goes with its size before it and its last 4 bytes after it, as GDAL's
        COG driver writes them (``BLOCK_LEADER``, ``BLOCK_TRAILER``).
        """
        records = []
        # "r+b", not "ab": a task still running after a failed write was cleaned up
        # must not create the file again.
        with self.lock, open(self.partial, "r+b") as out:
            offset = out.seek(0, os.SEEK_END)
            for level, row, col, payload in payloads:
                out.write(struct.pack("<I", len(payload)) + payload + payload[-4:])
                records.append(TileRecord(level, row, col, offset + 4, len(payload)))
                offset += len(payload) + 8
        return records

    def write_chunk(self, chunk: NDArray[np.float32], row0: int, col0: int) -> list[TileRecord]:
        """Compress the tiles of ``chunk`` (bands, h, w) at pixel (row0, col0).

        Also the tiles of its averages on the overview levels it covers whole (one level
        for 1,024 px chunks), and its share of the next level into that level's raw
        file. Returns where its tiles went, for :meth:`finish`.
        """
        self._check_chunk(chunk.shape, row0, col0)
        data = np.ascontiguousarray(np.moveaxis(np.asarray(chunk, np.float32), 0, -1))
        payloads = self._encoded_tiles(0, data, row0, col0)
        for level in range(1, self.raw_level):
            data = average_2x2_with_nodata(data, self.nodata)
            payloads += self._encoded_tiles(level, data, row0 >> level, col0 >> level)
        if self.levels:
            level = self.raw_level
            data = average_2x2_with_nodata(data, self.nodata)
            self._write_rows(level, row0 >> level, col0 >> level, data)
        return self._append(payloads)

    def _encoded_tiles(
        self,
        level: int,
        data: NDArray[np.float32],
        row0: int,
        col0: int,
        mapper: Callable[..., Iterator[bytes]] = map,
    ) -> list[tuple[int, int, int, bytes]]:
        """The tiles of ``data`` (h, w, bands), at (row0, col0) of ``level``, encoded.

        ``mapper`` runs the encoding (``ThreadPoolExecutor.map`` to use several cores).
        """
        tiles = [
            (r, c)
            for r in range(math.ceil(data.shape[0] / BLOCK_PX))
            for c in range(math.ceil(data.shape[1] / BLOCK_PX))
        ]
        encoded = mapper(
            lambda rc: encode_tile(_padded_tile(data, rc[0], rc[1], self.nodata)), tiles
        )
        return [
            (level, row0 // BLOCK_PX + r, col0 // BLOCK_PX + c, payload)
            for (r, c), payload in zip(tiles, encoded, strict=True)
        ]

    def _check_chunk(self, shape: tuple[int, ...], row0: int, col0: int) -> None:
        """A chunk is one cell of a ``chunk_px`` grid: that size, or cut by the image's edge."""
        bands, rows, cols = shape
        fits = bands == len(self.band_names)
        for origin, size, extent in ((row0, rows, self.height), (col0, cols, self.width)):
            fits = fits and origin % self.chunk_px == 0
            fits = fits and size == min(self.chunk_px, extent - origin)
        if not fits:
            raise ValueError(
                f"{self.path}: a chunk of shape {shape} at ({row0}, {col0}) does not cover "
                f"whole {BLOCK_PX} px tiles of the {len(self.band_names)}-band "
                f"{self.height} x {self.width} image: chunks must be {self.chunk_px} px "
                "squares on a grid from the top left, cut only by the image's edge."
            )

    def _write_rows(self, level: int, row0: int, col0: int, block: NDArray[np.float32]) -> None:
        """Write ``block`` (h, w, bands) at (row0, col0) of overview ``level``'s raw file.

        Under the lock: neighbouring chunks' rows share file pages, and an NFS client
        may write back a whole page, with its neighbour's old bytes, unless writers of
        a page take turns.
        """
        pixel_bytes = len(self.band_names) * 4
        with self.lock, open(self.levels[level - self.raw_level], "r+b") as raw:
            for index, row in enumerate(block):
                raw.seek((row0 + index) * self._row_bytes(level) + col0 * pixel_bytes)
                raw.write(row.tobytes())

    def _read_rows(self, level: int, row0: int, n_rows: int) -> NDArray[np.float32]:
        """Rows ``row0``.. (at most ``n_rows``) of overview ``level``, (rows, W, bands)."""
        rows = min(n_rows, self.level_shapes[level][0] - row0)
        shape = (rows, self.level_shapes[level][1], len(self.band_names))
        with open(self.levels[level - self.raw_level], "rb") as raw:
            raw.seek(row0 * self._row_bytes(level))
            data = np.frombuffer(raw.read(rows * self._row_bytes(level)), np.float32)
        return data.reshape(shape)

    def finish(self, records: Sequence[TileRecord]) -> Path:
        """Add the overviews and the IFDs, then rename the file to ``path``."""
        with writing_output(self.path, self.partial, *self.levels):
            self._check_complete(records, levels=self.raw_level)
            self._average_overviews()
            all_records = list(records) + self._write_overviews()
            self._check_complete(all_records, levels=len(self.level_shapes))
            self._check_tiles_on_disk(all_records)
            self._write_ifds(all_records)
            self.partial.replace(self.path)
        self.discard()
        return self.path

    def discard(self) -> None:
        """Remove the temporary files (after :meth:`finish`, or when giving up)."""
        for temporary in (self.partial, *self.levels):
            temporary.unlink(missing_ok=True)

    def _average_overviews(self) -> None:
        """Overview levels below the raw level from the level above, strip by strip."""
        for level in range(self.raw_level + 1, len(self.level_shapes)):
            with open(self.levels[level - self.raw_level], "wb") as raw:
                raw.truncate(self._row_bytes(level) * self.level_shapes[level][0])
            for top in range(0, self.level_shapes[level - 1][0], BLOCK_PX):
                half = average_2x2_with_nodata(
                    self._read_rows(level - 1, top, BLOCK_PX), self.nodata
                )
                self._write_rows(level, top // 2, 0, half)

    def _write_overviews(self) -> list[TileRecord]:
        """Compress the overviews from the raw level on, smallest first, each row-major."""
        records: list[TileRecord] = []
        with ThreadPoolExecutor(max(1, task_core_budget())) as pool:
            for level in reversed(range(self.raw_level, len(self.level_shapes))):
                for top in range(0, self.level_shapes[level][0], BLOCK_PX):
                    strip = self._read_rows(level, top, BLOCK_PX)
                    records += self._append(
                        self._encoded_tiles(level, strip, top, 0, mapper=pool.map)
                    )
        return records

    def _tile_grid(self, level: int) -> tuple[int, int]:
        rows, cols = self.level_shapes[level]
        return math.ceil(rows / BLOCK_PX), math.ceil(cols / BLOCK_PX)

    def _keys(self, level: int) -> list[tuple[int, int, int]]:
        rows, cols = self._tile_grid(level)
        return [(level, r, c) for r in range(rows) for c in range(cols)]

    def _check_tiles_on_disk(self, records: Sequence[TileRecord]) -> None:
        """Every tile's leader and trailer are where its record says (8 bytes read per tile).

        Two writers appending at once (a cluster lock handed out twice after a lease
        timed out) or storage that lost a write would otherwise give a COG whose
        offsets point at the wrong bytes.
        """
        with open(self.partial, "rb") as written:
            for record in records:
                written.seek(record.offset - 4)
                leader = written.read(4)
                written.seek(record.offset + record.nbytes - 4)
                last4, trailer = written.read(4), written.read(4)
                if leader != struct.pack("<I", record.nbytes) or last4 != trailer:
                    raise OutputWriteError(
                        f"{self.partial}, being written for {self.path}: tile "
                        f"{(record.level, record.row, record.col)} is not where it was "
                        "written. Two writers appended at once or the storage lost a "
                        "write: check the cluster and the storage, then run again; the "
                        f"previous {self.path.name}, if any, is unchanged."
                    )

    def _check_complete(self, records: Sequence[TileRecord], levels: int) -> None:
        """Every tile of the first ``levels`` levels is written, each once."""
        expected = {key for level in range(levels) for key in self._keys(level)}
        got = [(rec.level, rec.row, rec.col) for rec in records if rec.level < levels]
        if len(got) != len(set(got)) or set(got) != expected:
            missing = sorted(expected - set(got))[:5]
            raise ValueError(
                f"{self.path}: tiles missing or written twice (first missing: {missing})."
            )

    def _ghost(self) -> bytes:
        size = f"GDAL_STRUCTURAL_METADATA_SIZE={len(GHOST_AREA):06d} bytes\n"
        return (size + GHOST_AREA).encode()

    def _ifd_layout(self) -> tuple[list[int], int]:
        """File offsets of the IFDs and where the tiles start (IFD sizes depend on counts)."""
        offsets = [_align(16 + len(self._ghost()))]
        for level in range(len(self.level_shapes)):
            zeros = [0] * len(self._keys(level))
            offsets.append(offsets[-1] + _ifd_size(self._ifd_tags(level, zeros, zeros)))
        return offsets[:-1], offsets[-1]

    def _write_ifds(self, records: Sequence[TileRecord]) -> None:
        """The header, GDAL's structural metadata and every IFD, into the room kept for them."""
        by_key = {(r.level, r.row, r.col): r for r in records}
        head = bytearray(struct.pack("<2sHHHQ", b"II", 43, 8, 0, self.ifd_offsets[0]))
        head += self._ghost()
        for level, at in enumerate(self.ifd_offsets):
            keys = self._keys(level)
            last = level + 1 == len(self.ifd_offsets)
            next_ifd = 0 if last else self.ifd_offsets[level + 1]
            head += b"\0" * (at - len(head))
            offsets = [by_key[k].offset for k in keys]
            counts = [by_key[k].nbytes for k in keys]
            head += _ifd_bytes(self._ifd_tags(level, offsets, counts), at, next_ifd)
        with open(self.partial, "r+b") as out:
            out.write(bytes(head))

    def _ifd_tags(
        self, level: int, offsets: list[int], counts: list[int]
    ) -> list[tuple[int, int, Any]]:
        rows, cols = self.level_shapes[level]
        bands = len(self.band_names)
        tags: list[tuple[int, int, Any]] = []
        if level:
            tags.append((254, _LONG, [1]))  # NewSubfileType: reduced-resolution image
        tags += [
            (256, _LONG, [cols]),
            (257, _LONG, [rows]),
            (258, _SHORT, [32] * bands),
            (259, _SHORT, [ZSTD_COMPRESSION]),
            (262, _SHORT, [1]),  # min-is-black
            (277, _SHORT, [bands]),
            (284, _SHORT, [1]),  # pixel-interleaved
            (317, _SHORT, [FLOATING_POINT_PREDICTOR]),
            (322, _SHORT, [BLOCK_PX]),
            (323, _SHORT, [BLOCK_PX]),
            (324, _LONG8, offsets),
            (325, _LONG, counts),
        ]
        if bands > 1:
            tags.append((338, _SHORT, [0] * (bands - 1)))  # extra samples: unspecified
        tags.append((339, _SHORT, [3] * bands))  # IEEE floating point
        if level == 0:
            a = self.transform
            tags += [
                (33550, _DOUBLE, [a.a, -a.e, 0.0]),
                (33922, _DOUBLE, [0.0, 0.0, 0.0, a.c, a.f, 0.0]),
                # Projected, pixel is area, EPSG code, metres.
                (
                    34735,
                    _SHORT,
                    [
                        1,
                        1,
                        0,
                        4,
                        1024,
                        0,
                        1,
                        1,
                        1025,
                        0,
                        1,
                        1,
                        3072,
                        0,
                        1,
                        self.epsg,
                        3076,
                        0,
                        1,
                        9001,
                    ],
                ),
                (42112, _ASCII, self._gdal_metadata()),
            ]
        nodata = "nan" if math.isnan(self.nodata) else f"{self.nodata:.17g}"
        tags.append((42113, _ASCII, nodata.encode() + b"\0"))
        return tags

    def _gdal_metadata(self) -> bytes:
        items = "".join(
            f'  <Item name="DESCRIPTION" sample="{i}" role="description">{escape(name)}</Item>\n'
            for i, name in enumerate(self.band_names)
        )
        return f"<GDALMetadata>\n{items}</GDALMetadata>\0".encode()


def _align(offset: int) -> int:
    return offset + (-offset % 8)


def _value_bytes(kind: int, values: Any) -> bytes:
    if kind == _ASCII:
        return bytes(values)
    return struct.pack(f"<{len(values)}{_TYPE_FORMAT[kind]}", *values)


def _ifd_size(tags: Sequence[tuple[int, int, Any]]) -> int:
    size = 8 + 20 * len(tags) + 8
    for kind, values in ((k, v) for _, k, v in tags):
        data = _value_bytes(kind, values)
        if len(data) > 8:
            size += _align(len(data))
    return size


def _ifd_bytes(tags: Sequence[tuple[int, int, Any]], at: int, next_ifd: int) -> bytes:
    """A BigTIFF IFD at file offset ``at``, values longer than 8 bytes right after it."""
    entries = bytearray(struct.pack("<Q", len(tags)))
    extra = bytearray()
    extra_at = at + 8 + 20 * len(tags) + 8
    for tag, kind, values in sorted(tags, key=lambda t: t[0]):
        data = _value_bytes(kind, values)
        count = len(data) if kind == _ASCII else len(values)
        if len(data) <= 8:
            entries += struct.pack("<HHQ", tag, kind, count) + data.ljust(8, b"\0")
        else:
            entries += struct.pack("<HHQQ", tag, kind, count, extra_at + len(extra))
            extra += data + b"\0" * (-len(data) % 8)
    return bytes(entries + struct.pack("<Q", next_ifd) + extra)


class TileAssembler:
    """Gathers pieces of any size, in any order, into whole tiles for a :class:`ChunkedCogWriter`.

    For writers whose pieces do not fall on the COG's tiles (the probability map comes
    in strips cut where the U-Net's overlapping tiles end): a tile is compressed as soon
    as its last pixel arrives, so memory holds only the tiles that are partly filled:
    for the probability map predicted in column blocks, the tiles astride a block's
    edge wait for the next block (28 MiB at 10,954 px wide, 46 MiB at 20,000 px); on a
    cluster, whose strips arrive as they finish, up to ~60 % of the map's tiles in the
    worst order seen (280 MiB at 10,954 px, 64 worker threads). Pieces must not
    overlap: one that lands in a tile already complete is refused (an overlap that also
    leaves a gap of the same size inside a tile is not detected).
    """

    def __init__(self, writer: ChunkedCogWriter) -> None:
        self.writer = writer
        self.pending: dict[tuple[int, int], list[Any]] = {}
        self.written: set[tuple[int, int]] = set()
        self.records: list[TileRecord] = []

    def add(self, row0: int, col0: int, piece: NDArray[np.float32]) -> None:
        """Place ``piece`` (bands, h, w) at pixel (row0, col0); write the tiles it completes."""
        _, height, width = piece.shape
        if (
            row0 < 0
            or col0 < 0
            or row0 + height > self.writer.height
            or col0 + width > self.writer.width
        ):
            raise ValueError(
                f"{self.writer.path}: a piece of {height} x {width} px at ({row0}, {col0}) "
                f"lies outside the {self.writer.height} x {self.writer.width} image."
            )
        side = self.writer.chunk_px
        for tile_row in range(row0 // side, (row0 + height - 1) // side + 1):
            for tile_col in range(col0 // side, (col0 + width - 1) // side + 1):
                self._fill(tile_row, tile_col, row0, col0, piece)

    def _fill(self, tile_row: int, tile_col: int, row0: int, col0: int, piece: Any) -> None:
        side = self.writer.chunk_px
        top, left = tile_row * side, tile_col * side
        bottom = min(top + side, self.writer.height)
        right = min(left + side, self.writer.width)
        key = (tile_row, tile_col)
        if key in self.written:
            raise ValueError(f"{self.writer.path}: tile {key} is complete; pieces overlap.")
        if key not in self.pending:
            bands = len(self.writer.band_names)
            tile = np.full((bands, bottom - top, right - left), self.writer.nodata, np.float32)
            self.pending[key] = [tile, 0]
        tile, filled = self.pending[key]
        r0, r1 = max(top, row0), min(bottom, row0 + piece.shape[1])
        c0, c1 = max(left, col0), min(right, col0 + piece.shape[2])
        tile[:, r0 - top : r1 - top, c0 - left : c1 - left] = piece[
            :, r0 - row0 : r1 - row0, c0 - col0 : c1 - col0
        ]
        filled += (r1 - r0) * (c1 - c0)
        if filled == tile.shape[1] * tile.shape[2]:
            del self.pending[key]
            self.written.add(key)
            self.records += self.writer.write_chunk(tile, top, left)
        else:
            self.pending[key][1] = filled

    def finish(self) -> Path:
        """Write the COG (:meth:`ChunkedCogWriter.finish`) once every tile is complete."""
        if self.pending:
            first = sorted(self.pending)[:5]
            raise ValueError(f"{self.writer.path}: pieces missing in tiles {first}.")
        return self.writer.finish(self.records)
