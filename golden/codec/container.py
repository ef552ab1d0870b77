"""Container files: a table set (``fit`` output) and a coded array (``encode`` output).

Layouts are normative in ``docs/bitstream.md`` ("Container"). Every integer is little-endian;
payload words are stored big-endian, so the payload bytes are the bit sequence in order. A
CRC-32 (zlib's) of every preceding byte ends each file. Parsing checks the size, the CRC, the
magic and the version first, then every field, before allocating anything sized by the file,
so a corrupt file raises ``ContainerError`` (or ``CorruptStreamError`` from the payload) and
never hangs or returns a wrong array unnoticed.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from golden.codec.errors import CorruptStreamError, HuffmanError, check_word_bits
from golden.codec.lanes import LANE_COUNTS, check_lanes, decode_lanes, encode_lanes
from golden.codec.lengths import MAX_LEN_LIMIT
from golden.codec.plain import check_groups, decode_groups, encode_groups
from golden.codec.runlength import decode_rl_tile, encode_rl_tile
from golden.codec.tables import HuffmanTable

__all__ = [
    "Coded",
    "ContainerError",
    "TableSet",
    "decode_array",
    "encode_array",
    "pack_container",
    "pack_tables",
    "parse_table",
    "unpack_container",
    "unpack_tables",
]

MAGIC_TABLES = b"ACHT"
MAGIC_STREAM = b"ACHC"
VERSION_PLAIN = 1
VERSION_RUN_LENGTH = 2
VERSION_LANES = 3
DTYPES = ("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64")
_HEAD = struct.Struct("<4sBBBBQIHH")  # magic, version, W, flags, dtype, N, K, G, lanes (v3)
_GROUP = struct.Struct("<IBBHI")      # hi, signed, reserved, reserved, table length
MAX_ROWS = 1 << 40


class ContainerError(HuffmanError):
    """A container or serialized table is corrupt, truncated or of an unknown version."""


def parse_table(data, signed=True):
    """Parse ``HuffmanTable.serialize()`` bytes; the whole of ``data`` must be one table.

    Raises
    ------
    ContainerError
        On a truncated or inconsistent table.
    """
    data = bytes(data)
    if len(data) < 4:
        raise ContainerError("Table is truncated: header needs 4 bytes")
    bits, L, flags, run_log = data[0], data[1], data[2], data[3]
    if not 1 <= bits <= 8:
        raise ContainerError(f"Table symbol width must be between 1 and 8, not {bits}")
    if not 1 <= L <= MAX_LEN_LIMIT:
        raise ContainerError(f"Table maximum length must be between 1 and 24, not {L}")
    if flags & ~3:
        raise ContainerError(f"Table flags 0x{flags:02x} have reserved bits set")
    run_mode = bool(flags & 2)
    if not run_mode and run_log:
        raise ContainerError("Table reserved byte must be 0 in plain mode")
    if run_log > 8:
        raise ContainerError(f"Table run-length exponent must be at most 8, not {run_log}")
    run_max = (1 << run_log) if run_mode else 0
    end = 4 + 2 * L
    if len(data) < end:
        raise ContainerError("Table is truncated in its length counts")
    counts = np.frombuffer(data[4:end], dtype="<u2").astype(np.int64)
    n = int(counts.sum())
    size = (1 << bits) + 1 + run_max
    if n == 0 or n > size:
        raise ContainerError(f"Table codes {n} entries; must be 1..{size}")
    if len(data) < end + 2 * n:
        raise ContainerError("Table is truncated in its symbol list")
    syms = np.frombuffer(data[end:end + 2 * n], dtype="<u2").astype(np.int64)
    if np.any(syms >= size) or np.unique(syms).size != n:
        raise ContainerError("Table symbol list has an index out of range or repeated")
    lengths = np.zeros(size, dtype=np.int64)
    lengths[syms] = np.repeat(np.arange(1, L + 1), counts)
    # Canonical order within each length must ascend with the index.
    start = 0
    for c in counts:
        seg = syms[start:start + c]
        if np.any(np.diff(seg) <= 0):
            raise ContainerError("Table symbols are not in canonical order")
        start += c
    try:
        table = HuffmanTable(bits, L, lengths, escape=bool(flags & 1), signed=signed,
                             run_max=run_max)
    except ValueError as e:
        raise ContainerError(f"Invalid table: {e}") from None
    if len(data) != end + 2 * n:
        raise ContainerError(f"Table has {len(data) - end - 2 * n} trailing bytes")
    return table


@dataclass
class TableSet:
    """Tables for the column groups of an (N, K) array: ``tables[g]`` codes columns
    ``bounds[g] .. bounds[g + 1] - 1``. All plain (version 1) or all run-length (version 2);
    ``lanes`` (1, 2, 4 or 8; plain tables only) makes the set version 3, coded in that many
    lanes."""

    tables: list
    bounds: list
    lanes: int | None = None

    @property
    def version(self):
        if self.lanes is not None:
            return VERSION_LANES
        return VERSION_RUN_LENGTH if self.tables[0].run_max else VERSION_PLAIN

    def check(self):
        check_groups(self.tables, self.bounds, self.bounds[-1] if self.bounds else 0)
        if len({bool(t.run_max) for t in self.tables}) != 1:
            raise ValueError("Tables must be all plain or all run-length")
        if self.lanes is not None:
            check_lanes(self.lanes)
            if self.tables[0].run_max:
                raise ValueError("Lanes need plain tables; run-length tables code one stream "
                                 "per group (version 2)")


@dataclass
class Coded:
    """A parsed coded-array container."""

    tableset: TableSet
    shape: tuple
    dtype: str
    word_bits: int
    tiles: list  # (nbits, words): one tile in v1, one per group in v2, one per lane in v3

    def lanes_text(self):
        return f"{len(self.tiles)} lane{'s' if len(self.tiles) > 1 else ''}"


def _pack_groups(ts):
    out = b""
    for t, hi in zip(ts.tables, ts.bounds[1:]):
        body = t.serialize()
        out += _GROUP.pack(hi, int(t.signed), 0, 0, len(body)) + body
    return out


def _finish(body):
    return body + struct.pack("<I", zlib.crc32(body))


def pack_tables(ts):
    """Serialize a table set (the ``fit`` output file)."""
    ts.check()
    head = _HEAD.pack(MAGIC_TABLES, ts.version, 0, 0, 0, 0, ts.bounds[-1], len(ts.tables),
                      ts.lanes or 0)
    return _finish(head + _pack_groups(ts))


def _open(data, magic):
    data = bytes(data)
    if len(data) < _HEAD.size + 4:
        raise ContainerError(f"File is truncated: {len(data)} bytes")
    if data[:4] != magic:
        kind = "table set" if magic == MAGIC_TABLES else "coded stream"
        raise ContainerError(f"Not an actcomp {kind}: bad magic {data[:4]!r}")
    version = data[4]
    if version not in (VERSION_PLAIN, VERSION_RUN_LENGTH, VERSION_LANES):
        raise ContainerError(f"Unsupported version {version}; this reader knows 1, 2 and 3")
    (crc,) = struct.unpack("<I", data[-4:])
    if zlib.crc32(data[:-4]) != crc:
        raise ContainerError("CRC-32 mismatch: the file is corrupt")
    return data[:-4], _HEAD.unpack_from(data)


def _parse_groups(data, off, k, g, version):
    if g < 1 or g > max(k, 1):
        raise ContainerError(f"Group count {g} is invalid for {k} columns")
    tables, bounds = [], [0]
    for _ in range(g):
        if off + _GROUP.size > len(data):
            raise ContainerError("File is truncated in the group records")
        hi, signed, r1, r2, n = _GROUP.unpack_from(data, off)
        off += _GROUP.size
        if signed > 1 or r1 or r2:
            raise ContainerError("Group record has invalid flags")
        if hi <= bounds[-1] or hi > k:
            raise ContainerError(f"Group bounds must rise to {k}, got {hi} after {bounds[-1]}")
        if off + n > len(data):
            raise ContainerError("File is truncated in a table")
        t = parse_table(data[off:off + n], signed=bool(signed))
        off += n
        if bool(t.run_max) != (version == VERSION_RUN_LENGTH):
            raise ContainerError(f"Table mode does not match version {version}")
        tables.append(t)
        bounds.append(hi)
    if bounds[-1] != k:
        raise ContainerError(f"Groups cover {bounds[-1]} of {k} columns")
    return TableSet(tables, bounds), off


def _lanes(version, res):
    """The lane count of a version-3 header (byte 22; byte 23 reserved), None before."""
    if version != VERSION_LANES:
        if res:
            raise ContainerError("Header has reserved bits set")
        return None
    lanes, high = res & 0xFF, res >> 8
    if high:
        raise ContainerError("Header has reserved bits set")
    if lanes not in LANE_COUNTS:
        raise ContainerError(f"Lane count must be one of 1, 2, 4, 8, not {lanes}")
    return lanes


def unpack_tables(data):
    """Parse ``pack_tables`` output. Raises ``ContainerError``."""
    body, (_, version, w, flags, dt, n, k, g, res) = _open(data, MAGIC_TABLES)
    if w or flags or dt or n:
        raise ContainerError("Table-set header has nonzero reserved fields")
    lanes = _lanes(version, res)
    ts, off = _parse_groups(body, _HEAD.size, k, g, version)
    if off != len(body):
        raise ContainerError(f"Table set has {len(body) - off} trailing bytes")
    ts.lanes = lanes
    return ts


def pack_container(coded):
    """Serialize a ``Coded``."""
    ts = coded.tableset
    flags = 2 if len(coded.shape) == 2 else 0
    n = coded.shape[0]
    head = _HEAD.pack(MAGIC_STREAM, ts.version, coded.word_bits, flags,
                      DTYPES.index(coded.dtype), n, ts.bounds[-1], len(ts.tables),
                      ts.lanes or 0)
    out = [head, _pack_groups(ts)]
    if ts.lanes is not None:  # v3: every lane's bit count, then the lanes one after another
        if len(coded.tiles) != ts.lanes:
            raise ValueError(f"A {ts.lanes}-lane stream needs {ts.lanes} lanes, not "
                             f"{len(coded.tiles)}")
        out += [struct.pack("<Q", nbits) for nbits, _ in coded.tiles]
        out += [np.asarray(words, dtype=np.uint64).astype(f">u{coded.word_bits // 8}")
                .tobytes() for _, words in coded.tiles]
        return _finish(b"".join(out))
    for nbits, words in coded.tiles:
        out.append(struct.pack("<Q", nbits))
        out.append(np.asarray(words, dtype=np.uint64)
                   .astype(f">u{coded.word_bits // 8}").tobytes())
    return _finish(b"".join(out))


def unpack_container(data):
    """Parse a coded-array container (without decoding the payload)."""
    body, (_, version, w, flags, dt, n, k, g, res) = _open(data, MAGIC_STREAM)
    try:
        w = check_word_bits(w)
    except ValueError:
        raise ContainerError(f"Word width {w} is not one of 8, 16, 32, 64") from None
    if flags & ~2:
        raise ContainerError("Header has reserved bits set")
    lanes = _lanes(version, res)
    if dt >= len(DTYPES):
        raise ContainerError(f"Unknown element type code {dt}")
    if n > MAX_ROWS or k < 1:
        raise ContainerError(f"Invalid shape: {n} rows, {k} columns")
    if not flags & 2 and k != 1:
        raise ContainerError("A 1-D array must have one column")
    ts, off = _parse_groups(body, _HEAD.size, k, g, version)
    ts.lanes = lanes
    tiles = []
    if lanes is not None:
        if off + 8 * lanes > len(body):
            raise ContainerError(f"File is truncated in the bit counts of {lanes} lanes")
        sizes = struct.unpack_from(f"<{lanes}Q", body, off)
        off += 8 * lanes
        for lane, nbits in enumerate(sizes):
            nbytes = -(-nbits // w) * (w // 8)
            if off + nbytes > len(body):
                raise ContainerError(f"File is truncated in lane {lane} of {nbits} bits")
            words = np.frombuffer(body, dtype=f">u{w // 8}", count=nbytes // (w // 8),
                                  offset=off)
            tiles.append((nbits, words.astype(np.uint64)))
            off += nbytes
    for _ in range(0 if lanes is not None else 1 if version == VERSION_PLAIN else g):
        if off + 8 > len(body):
            raise ContainerError("File is truncated before a tile's bit count")
        (nbits,) = struct.unpack_from("<Q", body, off)
        off += 8
        nbytes = -(-nbits // w) * (w // 8)
        if off + nbytes > len(body):
            raise ContainerError(f"File is truncated in a tile of {nbits} bits")
        words = np.frombuffer(body, dtype=f">u{w // 8}", count=nbytes // (w // 8), offset=off)
        tiles.append((nbits, words.astype(np.uint64)))
        off += nbytes
    if off != len(body):
        raise ContainerError(f"File has {len(body) - off} trailing bytes")
    shape = (n, k) if flags & 2 else (n,)
    return Coded(ts, shape, DTYPES[dt], w, tiles)


def encode_array(array, tableset, word_bits=32, lanes=None):
    """Encode an (N,) or (N, K) integer array into container bytes.

    Version 1 (plain tables): one tile, row-major, column j coded with its group's table.
    Version 2 (run-length tables): one tile per group, holding that group's columns row-major.
    Version 3 (``lanes``, or a table set that has lanes): the version-1 tile split over
    1, 2, 4 or 8 lanes, symbol i in lane ``i mod lanes`` (``golden.codec.lanes``).
    """
    word_bits = check_word_bits(word_bits)
    if lanes is not None:
        tableset = TableSet(tableset.tables, tableset.bounds, check_lanes(lanes))
    a = np.asarray(array)
    if a.ndim not in (1, 2) or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"Array must be a 1-D or 2-D integer array, not {a.ndim}-D {a.dtype}")
    if a.dtype.name not in DTYPES:
        raise ValueError(f"Array element type {a.dtype} is not supported")
    tableset.check()
    a2 = a if a.ndim == 2 else a.reshape(-1, 1)
    if a2.shape[1] != tableset.bounds[-1]:
        raise ValueError(f"Array has {a2.shape[1]} columns, the tables cover "
                         f"{tableset.bounds[-1]}")
    if tableset.version == VERSION_LANES:
        tiles = [(nbits, words) for words, nbits in
                 encode_lanes(a2, tableset.tables, tableset.bounds, word_bits, tableset.lanes)]
    elif tableset.version == VERSION_PLAIN:
        words, nbits = encode_groups(a2, tableset.tables, tableset.bounds, word_bits)
        tiles = [(nbits, words)]
    else:
        tiles = []
        for t, lo, hi in zip(tableset.tables, tableset.bounds, tableset.bounds[1:]):
            words, nbits = encode_rl_tile(a2[:, lo:hi], t, word_bits)
            tiles.append((nbits, words))
    return pack_container(Coded(tableset, a.shape, a.dtype.name, word_bits, tiles))


def decode_coded(coded):
    """Decode a parsed container to its array."""
    ts, w = coded.tableset, coded.word_bits
    n, k = coded.shape[0], ts.bounds[-1]
    if ts.version == VERSION_LANES:
        # Every symbol takes at least one bit of its lane: check before allocating.
        total = sum(nbits for nbits, _ in coded.tiles)
        if n * k > total:
            raise CorruptStreamError(f"{coded.lanes_text()} of {total} bits cannot hold "
                                     f"{n * k} symbols")
        out = decode_lanes([(words, nbits) for nbits, words in coded.tiles], n, ts.tables,
                           ts.bounds, w)
    elif ts.version == VERSION_PLAIN:
        nbits, words = coded.tiles[0]
        out = decode_groups(words, nbits, n, ts.tables, ts.bounds, w)
    else:
        # Each code yields at most run_max values: check before allocating the output.
        for (nbits, _), t, lo, hi in zip(coded.tiles, ts.tables, ts.bounds, ts.bounds[1:]):
            if n * (hi - lo) > nbits * t.run_max:
                raise CorruptStreamError(f"A tile of {nbits} bits cannot hold "
                                         f"{n * (hi - lo)} values")
        out = np.empty((n, k), dtype=np.int64)
        for (nbits, words), t, lo, hi in zip(coded.tiles, ts.tables, ts.bounds, ts.bounds[1:]):
            out[:, lo:hi] = decode_rl_tile(words, nbits, n * (hi - lo), t, w).reshape(n, -1)
    info = np.iinfo(coded.dtype)
    if out.size and (out.min() < info.min or out.max() > info.max):
        raise ContainerError(f"Decoded values do not fit the stored type {coded.dtype}")
    return out.astype(coded.dtype).reshape(coded.shape)


def decode_array(data):
    """Decode container bytes to the array. Raises ``ContainerError``/``CorruptStreamError``."""
    return decode_coded(unpack_container(data))
