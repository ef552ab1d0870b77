"""Mutation fuzz of coded-array containers and table sets.

    python -m scripts.fuzz_container [--cases 200000] [--seed 0]

Each case mutates a valid file (bit flips, byte overwrites, truncation, extension, insertion,
deletion, chunk duplication), then parses and decodes it twice: as mutated, where the CRC-32
must catch every change (a ``ContainerError``), and with the CRC recomputed, where the parser
and decoder must either raise ``HuffmanError`` or return an array of the stored shape and type.
Any other exception, or a mutated file accepted as is, is a failure. ``tests/test_container.py``
runs a few thousand cases in CI through the same functions.
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
import zlib

import numpy as np

from golden.huffman import HuffmanError, build_table
from golden.huffman_container import (
    DTYPES,
    TableSet,
    decode_array,
    encode_array,
    pack_tables,
    unpack_tables,
)
from golden.huffman_rl import build_rl_table


def seed_files():
    """A handful of small valid files covering both versions, groups, word widths, 1-D."""
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
    files.append(pack_tables(plain))
    files.append(pack_tables(rl))
    return files


def mutate(data, rng):
    data = bytearray(data)
    kind = int(rng.integers(0, 7))
    n = len(data)
    if kind == 0:  # flip 1-3 bits
        for _ in range(int(rng.integers(1, 4))):
            i = int(rng.integers(0, n))
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


def _read(data):
    if data[:4] == b"ACHT":
        return unpack_tables(data)
    return decode_array(data)


def check_one(original, mutated):
    """Raise AssertionError if the codec misbehaves on ``mutated``; return an outcome tag."""
    if mutated != original:
        try:
            _read(mutated)
        except HuffmanError:
            pass
        else:
            raise AssertionError("a mutated file passed the CRC check")
    fixed = fix_crc(mutated)
    try:
        out = _read(fixed)
    except HuffmanError:
        return "rejected"
    if isinstance(out, np.ndarray):
        assert out.ndim in (1, 2) and out.dtype.name in DTYPES, (out.shape, out.dtype)
    else:
        assert isinstance(out, TableSet)
    return "accepted"


def run(cases, seed, report_every=0):
    rng = np.random.default_rng(seed)
    files = seed_files()
    tally = {"rejected": 0, "accepted": 0}
    for i in range(cases):
        original = files[i % len(files)]
        mutated = mutate(original, rng)
        try:
            tally[check_one(original, mutated)] += 1
        except Exception as e:  # noqa: BLE001 - a failure report names the case
            raise AssertionError(f"case {i} (seed {seed}): {type(e).__name__}: {e}; "
                                 f"file {mutated.hex()}") from e
        if report_every and (i + 1) % report_every == 0:
            print(f"{i + 1} cases: {tally}", flush=True)
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
