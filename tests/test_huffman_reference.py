"""Cross-check of the vectorized codec against a slow, obviously correct bit-level reference.

The reference follows docs/bitstream.md line by line with ``bitstring``: RFC 1951's canonical
assignment loop, one code appended per symbol, zero padding to the word, and a decoder that
reads one bit at a time until the accumulated bits are a code.
"""

import numpy as np
import pytest
from bitstring import BitArray, Bits

from golden.codec.errors import CorruptStreamError
from golden.codec.plain import decode_groups, decode_tile, encode_groups, encode_tile
from golden.codec.runlength import build_rl_table, decode_rl_tile, encode_rl_tile
from golden.codec.tables import build_table


def ref_codes(lengths):
    """RFC 1951 section 3.2.2, verbatim."""
    max_bits = max(lengths)
    bl_count = [0] * (max_bits + 1)
    for x in lengths:
        if x:
            bl_count[x] += 1
    code, next_code = 0, [0] * (max_bits + 2)
    for bits in range(1, max_bits + 1):
        code = (code + bl_count[bits - 1]) << 1 if bits > 1 else 0
        next_code[bits] = code
    codes = {}
    for n, x in enumerate(lengths):
        if x:
            codes[n] = Bits(uint=next_code[x], length=x)
            next_code[x] += 1
    return codes


def ref_entries(values, table):
    """Code-alphabet entries of a tile: patterns (plain), or literals and greedy runs (RL)."""
    b = table.bits
    pats = [int(v) & ((1 << b) - 1) for v in values]
    if not table.run_max:
        return pats
    coded_runs = [r for r in range(1, table.run_max + 1) if table.lengths[(1 << b) + r]]
    out, i = [], 0
    while i < len(pats):
        if pats[i]:
            out.append(pats[i])
            i += 1
            continue
        n = 0
        while i < len(pats) and pats[i] == 0:
            n, i = n + 1, i + 1
        while n:
            r = max(x for x in coded_runs if x <= n)
            out.append((1 << b) + r)
            n -= r
    return out


def ref_encode(entries_per_symbol, tables, word_bits):
    """entries_per_symbol: list of (entry, table)."""
    s = BitArray()
    for e, t in entries_per_symbol:
        codes = ref_codes(t.lengths.tolist())
        if e in codes:
            s.append(codes[e])
        else:
            s.append(codes[1 << t.bits])
            s.append(Bits(uint=e, length=t.bits))
    nbits = len(s)
    if -nbits % word_bits:
        s.append(Bits(uint=0, length=-nbits % word_bits))
    return [s[i:i + word_bits].uint for i in range(0, len(s), word_bits)], nbits


def ref_decode_one(s, pos, t):
    codes = {(len(c), c.uint): e for e, c in ref_codes(t.lengths.tolist()).items()}
    acc = 0
    for n in range(1, t.max_len + 1):
        if pos + n > len(s):
            raise CorruptStreamError("ends")
        acc = (acc << 1) | s[pos + n - 1]
        if (n, acc) in codes:
            e = codes[(n, acc)]
            pos += n
            if e == 1 << t.bits:
                if pos + t.bits > len(s):
                    raise CorruptStreamError("ends")
                e = s[pos:pos + t.bits].uint
                pos += t.bits
            return e, pos
    raise CorruptStreamError("invalid")


def to_value(p, t):
    return p - (1 << t.bits) if t.signed and p >= 1 << (t.bits - 1) else p


def random_case(rng, run_length=False):
    b = int(rng.integers(1, 9))
    signed = bool(rng.integers(0, 2))
    lo, hi = (-(1 << (b - 1)), (1 << (b - 1)) - 1) if signed else (0, (1 << b) - 1)
    n = int(rng.integers(0, 120))
    x = np.clip(np.round(rng.laplace(0, rng.uniform(0.2, 2 ** b), n)), lo, hi).astype(np.int64)
    if run_length:
        x[rng.random(n) < rng.uniform(0, 0.95)] = 0
    escape = bool(rng.integers(0, 4))  # mostly on
    return b, signed, lo, hi, x, escape


@pytest.mark.parametrize("seed", range(60))
def test_plain_tiles_match_reference(seed):
    rng = np.random.default_rng(seed)
    b, signed, lo, hi, x, escape = random_case(rng)
    n_used = len(set((x & ((1 << b) - 1)).tolist())) + escape
    if n_used == 0:
        escape, n_used = True, 1
    max_len = int(rng.integers(max(1, (n_used - 1).bit_length()), 25))
    t = build_table(x, b, max_len, signed=signed, escape=escape, histogram=False)
    extra = rng.integers(lo, hi + 1, 40) if escape else rng.choice(x, 40) if x.size else []
    values = np.r_[x, extra].astype(np.int64)
    w = int(rng.choice([8, 16, 32, 64]))
    words, nbits = encode_tile(values, t, w)
    ref_words, ref_nbits = ref_encode([(e, t) for e in ref_entries(values, t)], [t], w)
    assert nbits == ref_nbits
    assert words.tolist() == ref_words, "encoder differs from the bit-level reference"
    s = Bits().join(Bits(uint=int(v), length=w) for v in words) if len(words) else Bits()
    pos, out = 0, []
    for _ in range(values.size):
        e, pos = ref_decode_one(s, pos, t)
        out.append(to_value(e, t))
    assert pos == nbits
    np.testing.assert_array_equal(decode_tile(words, nbits, values.size, t, w), out)


@pytest.mark.parametrize("seed", range(20))
def test_group_streams_match_reference(seed):
    rng = np.random.default_rng(100 + seed)
    k = int(rng.integers(1, 7))
    cuts = sorted(set(rng.integers(1, k, int(rng.integers(0, k))).tolist())) if k > 1 else []
    bounds = [0, *cuts, k]
    n = int(rng.integers(0, 30))
    tables, cols = [], []
    a = np.zeros((n, k), dtype=np.int64)
    for lo, hi in zip(bounds, bounds[1:]):
        b = int(rng.integers(1, 9))
        a[:, lo:hi] = rng.integers(-(1 << (b - 1)), 1 << (b - 1), (n, hi - lo))
        t = build_table(a[:, lo:hi], b, 24, histogram=False)
        tables.append(t)
        cols += [t] * (hi - lo)
    w = int(rng.choice([8, 16, 32, 64]))
    words, nbits = encode_groups(a, tables, bounds, w)
    seq = [(int(v) & ((1 << cols[j].bits) - 1), cols[j]) for row in a for j, v in enumerate(row)]
    assert (words.tolist(), nbits) == ref_encode(seq, tables, w)
    np.testing.assert_array_equal(decode_groups(words, nbits, n, tables, bounds, w), a)


@pytest.mark.parametrize("seed", range(40))
def test_run_length_tiles_match_reference(seed):
    rng = np.random.default_rng(200 + seed)
    b, signed, lo, hi, x, escape = random_case(rng, run_length=True)
    run_max = [None, 1, 2, 8, 256][seed % 5]
    try:
        t = build_rl_table(x, b, 24, signed=signed, escape=escape, run_max=run_max)
    except Exception:
        t = build_rl_table(x, b, 24, signed=signed, escape=True, run_max=run_max)
    values = x
    if t.escape:
        extra = rng.integers(lo, hi + 1, 30)
        extra[rng.random(30) < 0.5] = 0
        values = np.r_[x, extra, np.zeros(int(rng.integers(0, 600)), dtype=np.int64)]
    w = int(rng.choice([8, 16, 32, 64]))
    words, nbits = encode_rl_tile(values, t, w)
    ref_words, ref_nbits = ref_encode([(e, t) for e in ref_entries(values, t)], [t], w)
    assert (words.tolist(), nbits) == (ref_words, ref_nbits)
    np.testing.assert_array_equal(decode_rl_tile(words, nbits, values.size, t, w), values)
