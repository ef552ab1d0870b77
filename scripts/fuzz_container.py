"""Mutation fuzz of coded-array containers and table sets.

    python -m scripts.fuzz_container [--cases 200000] [--seed 0]

Each case mutates a valid file (bit flips anywhere or aimed at the payload, byte overwrites,
truncation, extension, insertion, deletion, chunk duplication), then parses and decodes it
twice: as mutated, where the CRC-32 must catch every change (a ``ContainerError``), and with the
CRC recomputed, where the parser and decoder must either raise ``HuffmanError`` or return an
array of the stored shape and type.
Whenever the header and tables parse, a slow bit-at-a-time reference decoder written here
(Python integers and a dictionary of codes, nothing shared with the compiled decoder) decodes
the payload too: both must reject it, or both return the same array. Any other exception, a
mutated file accepted as is, or a disagreement is a failure. ``tests/test_container.py`` runs a
few thousand cases in CI through the same functions.
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
import zlib

import numpy as np

from golden.codec.container import (
    DTYPES,
    TableSet,
    decode_coded,
    encode_array,
    pack_tables,
    unpack_container,
    unpack_tables,
)
from golden.codec.errors import HuffmanError
from golden.codec.runlength import build_rl_table
from golden.codec.tables import build_table


def seed_files():
    """A handful of small valid files covering the three versions, groups, word widths, lanes
    (with lanes left empty), 1-D."""
    rng = np.random.default_rng(1234)
    files = []
    a = np.clip(np.round(rng.laplace(0, 2, (40, 6))), -8, 7).astype(np.int8)
    a[:, 3:][rng.random((40, 3)) < 0.8] = 0
    plain = TableSet([build_table(a[:, :3], 4, 6, histogram=False),
                      build_table(a[:, 3:], 4, 9, histogram=False)], [0, 3, 6])
    rl = TableSet([build_rl_table(a[:, :3], 4, 8), build_rl_table(a[:, 3:], 4, 8)], [0, 3, 6])
    for w in (8, 32):
        files.append(encode_array(a, plain, w))
        files.append(encode_array(a, rl, w))
    u = rng.integers(0, 4, 50).astype(np.uint16)
    files.append(encode_array(u, TableSet([build_table(u, 2, 3, signed=False,
                                                       histogram=False)], [0, 1]), 16))
    files.append(encode_array(np.zeros((0, 6), np.int8), plain, 64))
    files.append(encode_array(a, plain, 16, lanes=4))
    files.append(encode_array(a[:1, :5], TableSet(plain.tables[:1], [0, 5]), 8, lanes=8))
    files.append(encode_array(u, TableSet([build_table(u, 2, 3, signed=False,
                                                       histogram=False)], [0, 1]), 32, lanes=2))
    files.append(pack_tables(TableSet(plain.tables, plain.bounds, 2)))
    files.append(pack_tables(plain))
    files.append(pack_tables(rl))
    return files


def mutate(data, rng):
    data = bytearray(data)
    kind = int(rng.integers(0, 8))
    n = len(data)
    if kind in (0, 7):  # flip 1-3 bits anywhere, or in the payload's last 24 bytes
        lo = 0 if kind == 0 else max(0, n - 28)
        for _ in range(int(rng.integers(1, 4))):
            i = int(rng.integers(lo, n))
            data[i] ^= 1 << int(rng.integers(0, 8))
    elif kind == 1:  # overwrite bytes with random or extreme values
        for _ in range(int(rng.integers(1, 4))):
            data[int(rng.integers(0, n))] = int(rng.choice([0, 1, 0x7F, 0x80, 0xFF,
                                                           int(rng.integers(0, 256))]))
    elif kind == 2:  # truncate
        del data[int(rng.integers(0, n)):]
    elif kind == 3:  # extend
        data += bytes(rng.integers(0, 256, int(rng.integers(1, 16)), dtype=np.uint8))
    elif kind == 4:  # insert
        i = int(rng.integers(0, n + 1))
        data[i:i] = bytes(rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8))
    elif kind == 5:  # delete a span
        i = int(rng.integers(0, n))
        del data[i:i + int(rng.integers(1, 9))]
    else:  # duplicate a chunk
        i = int(rng.integers(0, n))
        j = min(n, i + int(rng.integers(1, 32)))
        data[j:j] = data[i:j]
    return bytes(data)


def fix_crc(data):
    if len(data) < 4:
        return data
    return data[:-4] + struct.pack("<I", zlib.crc32(data[:-4]))


class Corrupt(Exception):
    """The reference decoder found the payload invalid."""


def _reference_codes(table):
    return {(int(n), int(c)): e for e, (n, c) in enumerate(zip(table.lengths, table.codes))
            if n}


def _reference_tile(bits, count_codes, tables_of, stop_at_end):
    """Decode codes from a '0'/'1' string: the i-th code with ``tables_of(i)``; ``count_codes``
    codes, or (``stop_at_end``) codes until the string ends. Returns the code-alphabet entries
    (escaped literals resolved)."""
    out, pos, i = [], 0, 0
    while (pos < len(bits)) if stop_at_end else (i < count_codes):
        t, codes = tables_of(i)
        acc, n = 0, 0
        while (n, acc) not in codes:
            if n == t.max_len or pos + n >= len(bits):
                raise Corrupt
            acc, n = 2 * acc + int(bits[pos + n]), n + 1
        e = codes[(n, acc)]
        pos += n
        if e == 1 << t.bits:
            if pos + t.bits > len(bits):
                raise Corrupt
            e = int(bits[pos:pos + t.bits], 2)
            pos += t.bits
        out.append(e)
        i += 1
    if pos != len(bits):
        raise Corrupt
    return out


def _signed(e, t):
    return e - (1 << t.bits) if t.signed and e >= 1 << (t.bits - 1) else e


def reference_decode(coded):
    """The array a parsed container holds, or ``Corrupt``: one bit at a time, per the bitstream
    text (docs/bitstream.md)."""
    ts, w = coded.tableset, coded.word_bits
    n, k = coded.shape[0], ts.bounds[-1]
    codes = [_reference_codes(t) for t in ts.tables]
    tiles = []
    for nbits, words in coded.tiles:
        bits = "".join(format(int(x), f"0{w}b") for x in words)
        if bits[nbits:].strip("0"):
            raise Corrupt
        tiles.append(bits[:nbits])
    if ts.version == 3:  # lane l holds symbols l, l + N, .. (row-major), each its column's table
        lanes, total = len(tiles), n * k
        if total > sum(len(t) for t in tiles):  # every code takes a bit
            raise Corrupt
        cols = [g for g, (lo, hi) in enumerate(zip(ts.bounds, ts.bounds[1:]))
                for _ in range(lo, hi)] if total else []
        flat = [0] * total
        for lane, bits in enumerate(tiles):
            count = len(range(lane, total, lanes))

            def col(j, lane=lane):
                return cols[(lane + j * lanes) % k]
            entries = _reference_tile(bits, count,
                                      lambda j, col=col: (ts.tables[col(j)], codes[col(j)]),
                                      False)
            for j, e in enumerate(entries):
                flat[lane + j * lanes] = _signed(e, ts.tables[col(j)])
        a = np.array(flat, dtype=object).reshape(n, k)
    elif ts.version == 1:
        if n * k > len(tiles[0]):  # every code takes a bit
            raise Corrupt
        cols = [g for g, (lo, hi) in enumerate(zip(ts.bounds, ts.bounds[1:]))
                for _ in range(lo, hi)] if n else []
        entries = _reference_tile(tiles[0], n * k,
                                  lambda i: (ts.tables[cols[i % k]], codes[cols[i % k]]), False)
        values = [_signed(e, ts.tables[cols[i % k]]) for i, e in enumerate(entries)]
        a = np.array(values, dtype=object).reshape(n, k)
    else:
        parts = []
        for g, (t, lo, hi) in enumerate(zip(ts.tables, ts.bounds, ts.bounds[1:])):
            values = []
            for e in _reference_tile(tiles[g], 0, lambda i, g=g: (ts.tables[g], codes[g]), True):
                values += [0] * (e - (1 << t.bits)) if e > 1 << t.bits else [_signed(e, t)]
            if len(values) != n * (hi - lo):
                raise Corrupt
            parts.append(np.array(values, dtype=object).reshape(n, hi - lo))
        a = np.concatenate(parts, axis=1)
    info = np.iinfo(coded.dtype)
    if a.size and (a.min() < info.min or a.max() > info.max):
        raise Corrupt
    return a.astype(coded.dtype).reshape(coded.shape)


def _read(data, tally):
    """A table set, or the decoded array checked against the reference decoder."""
    if data[:4] == b"ACHT":
        return unpack_tables(data)
    coded = unpack_container(data)
    tally["payloads cross-checked"] += 1
    try:
        want = reference_decode(coded)
    except Corrupt:
        want = None
    try:
        got = decode_coded(coded)
    except HuffmanError:
        if want is not None:
            raise AssertionError("the decoder rejected a payload the reference decodes"
                                 ) from None
        raise
    if want is None:
        raise AssertionError(f"the decoder returned {got!r} for a corrupt payload")
    if got.dtype != want.dtype or not np.array_equal(got, want):
        raise AssertionError(f"decoded {got!r}, the reference {want!r}")
    return got


def check_one(original, mutated, tally):
    """Raise AssertionError if the codec misbehaves on ``mutated``; count the outcome."""
    if mutated != original:
        try:
            _read(mutated, tally)
        except HuffmanError:
            pass
        else:
            raise AssertionError("a mutated file passed the CRC check")
    fixed = fix_crc(mutated)
    try:
        out = _read(fixed, tally)
    except HuffmanError:
        tally["rejected"] += 1
        return
    if isinstance(out, np.ndarray):
        assert out.ndim in (1, 2) and out.dtype.name in DTYPES, (out.shape, out.dtype)
    else:
        assert isinstance(out, TableSet)
    tally["accepted"] += 1


def run(cases, seed, report_every=0):
    rng = np.random.default_rng(seed)
    files = seed_files()
    tally = {"rejected": 0, "accepted": 0, "payloads cross-checked": 0}
    slowest = 0.0
    for i in range(cases):
        original = files[i % len(files)]
        mutated = mutate(original, rng)
        t0 = time.perf_counter()
        try:
            check_one(original, mutated, tally)
        except Exception as e:  # noqa: BLE001 - a failure report names the case
            raise AssertionError(f"case {i} (seed {seed}): {type(e).__name__}: {e}; "
                                 f"file {mutated.hex()}") from e
        slowest = max(slowest, time.perf_counter() - t0)
        if report_every and (i + 1) % report_every == 0:
            print(f"{i + 1} cases: {tally}, slowest case {slowest * 1e3:.1f} ms", flush=True)
    return tally


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m scripts.fuzz_container")
    p.add_argument("--cases", type=int, default=200000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    try:
        tally = run(args.cases, args.seed, report_every=max(1, args.cases // 10))
    except AssertionError as e:
        print(f"FAIL {e}", file=sys.stderr)
        return 1
    print(f"{args.cases} cases in {time.perf_counter() - t0:.1f} s: {tally}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
