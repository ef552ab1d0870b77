"""Bit-level stream I/O of the golden codec: codes packed MSB first into W-bit words, and the
stream walked one or two codes per table lookup (plain: a fixed count of codes, one table per
column; run-length: codes up to the payload's last bit).

The bit-serial loops run compiled (``golden.codec.kernels``, numba: the ``golden`` extra);
this module turns their status into ``CorruptStreamError`` messages. Without numba, packing
and walking raise ``ModuleNotFoundError`` naming the extra to install; tables and containers
need no numba.
"""

from __future__ import annotations

import numpy as np

from golden.codec.errors import CorruptStreamError
from golden.codec.lengths import MAX_LEN_LIMIT
from golden.codec.tables import LUT_BITS

__all__ = ["check_payload", "decode_codes", "decode_runs", "pack_codes"]


def _kernels():
    try:
        from golden.codec import kernels
    except ModuleNotFoundError as e:
        if e.name != "numba":
            raise
        raise ModuleNotFoundError("Golden Huffman encode and decode need numba: "
                                  "pip install 'actcomp[golden]'") from None
    return kernels


def pack_codes(codes, lens, word_bits):
    """Pack codes (MSB first) back to back; return (W-bit words as uint64, payload bits)."""
    codes = np.ascontiguousarray(codes, dtype=np.uint64).ravel()
    lens = np.ascontiguousarray(lens, dtype=np.int64).ravel()
    nbits = int(lens.sum())
    if nbits == 0:
        return np.zeros(0, dtype=np.uint64), 0
    n64 = -(-nbits // 64)
    big = np.zeros(n64, dtype=np.uint64)
    _kernels().pack(codes, lens, big)
    if word_bits == 64:
        return big, nbits
    words = big.astype(">u8").view(f">u{word_bits // 8}").astype(np.uint64)
    return words[:-(-nbits // word_bits)], nbits


def _unpack(words, word_bits):
    """W-bit words -> 64-bit big words of the same bit sequence, plus a zero guard word."""
    words = np.asarray(words)
    if words.ndim != 1:
        raise ValueError("Words must be a 1-D array")
    if words.size and not np.issubdtype(words.dtype, np.integer):
        raise TypeError(f"Words must be integers, not {words.dtype}")
    w = words.astype(np.uint64)
    if word_bits < 64 and words.size and int(w.max()) >> word_bits:
        raise CorruptStreamError(f"A word does not fit in {word_bits} bits")
    raw = w.astype(f">u{word_bits // 8}").view(np.uint8)
    pad = (-raw.size) % 8
    raw = np.concatenate([raw, np.zeros(pad + 8, dtype=np.uint8)])
    return raw.view(">u8").astype(np.uint64)


def _decoder_arrays(tables):
    """The lookup arrays of ``tables`` stacked for the compiled decoder, table i in row i."""
    n = len(tables)
    lut = np.zeros((n, 1 << LUT_BITS), dtype=np.int32)
    pair = np.zeros((n, 1 << LUT_BITS), dtype=np.int64)
    lim = np.zeros((n, MAX_LEN_LIMIT), dtype=np.uint64)
    first = np.zeros((n, MAX_LEN_LIMIT + 2), dtype=np.int64)
    base = np.zeros((n, MAX_LEN_LIMIT + 2), dtype=np.int64)
    symbols = np.zeros((n, (1 << 8) + 1 + 256), dtype=np.int64)
    per = np.zeros((5, n), dtype=np.int64)  # shift, max_len, esc, bits, half
    for i, t in enumerate(tables):
        lut[i, :t.lut.size] = t.lut
        pair[i, :t.pair.size] = t.pair
        lim[i, :t.max_len] = t.limits
        first[i, :t.first.size] = t.first
        base[i, :t.base.size] = t.base
        symbols[i, :t.symbols.size] = t.symbols
        per[:, i] = (64 - t.lut_bits, t.max_len, t.esc_index if t.escape else -1, t.bits,
                     1 << (t.bits - 1) if t.signed else 0)
    shift, max_len, esc, bits, half = per
    return lut, pair, (shift, lim, first, base, symbols, max_len, esc, bits, half)


def decode_codes(big, n_pos, tables, rows, end_exact, *, total=None):
    """Decode ``rows`` rows of interleaved columns, ``tables[j]`` coding column j; returns the
    values (signed where the table is). ``total`` (instead of ``rows``): decode that many
    symbols, the tables used cyclically (a lane of version 3 may end inside a period)."""
    distinct = list({id(t): t for t in tables}.values())
    row_of = {id(t): i for i, t in enumerate(distinct)}
    col_table = np.array([row_of[id(t)] for t in tables], dtype=np.int64)
    lut, pair, arrays = _decoder_arrays(distinct)
    same_next = col_table == np.roll(col_table, -1)
    if total is None:
        total = rows * len(tables)
    out = np.empty(total, dtype=np.int64)
    kern = _kernels()
    status, i, p, _ = kern.walk(big, n_pos, total, False, col_table, same_next, lut, pair,
                                *arrays, out)
    if status == kern.ENDS:
        if i == 0:
            raise CorruptStreamError(f"Stream of {n_pos} bits ends before symbol 0 of {total}")
        raise CorruptStreamError(f"Stream of {n_pos} bits ends inside or after symbol {i - 1}"
                                 f" of {total}")
    if status == kern.INVALID:
        raise CorruptStreamError(f"Invalid code at bit {p} (symbol {i})")
    if status == kern.OVERRUN:
        if i < total - 1:
            raise CorruptStreamError(f"Stream of {n_pos} bits ends inside or after symbol {i}"
                                     f" of {total}")
        raise CorruptStreamError(f"Stream of {n_pos} bits ends inside symbol {total - 1}")
    if end_exact and p != n_pos:
        raise CorruptStreamError(f"Stream has {n_pos - p} bits after symbol {total}")
    return out


def decode_runs(big, n_pos, count, table):
    """Decode a run-length tile of ``count`` values that ends exactly at bit ``n_pos``."""
    lut, pair, arrays = _decoder_arrays([table])
    out = np.zeros(count, dtype=np.int64)
    kern = _kernels()
    one = np.zeros(1, dtype=np.int64)
    status, codes, p, total = kern.walk(big, n_pos, -1, True, one, one == 0, lut, pair,
                                       *arrays, out)
    if status == kern.INVALID:
        raise CorruptStreamError(f"Invalid code at bit {p} (code {codes})")
    if status == kern.OVERRUN:
        raise CorruptStreamError(f"Stream of {n_pos} bits ends inside code {codes}")
    if total != count:
        raise CorruptStreamError(f"Stream codes {total} values, not {count}")
    return out


def check_payload(words, nbits, word_bits):
    big = _unpack(words, word_bits)
    n_words = np.asarray(words).size
    if nbits is None:
        return big, n_words * word_bits, False
    if isinstance(nbits, bool) or not isinstance(nbits, (int, np.integer)) or nbits < 0:
        raise ValueError(f"Bit count must be a non-negative integer or None, not {nbits!r}")
    nbits = int(nbits)
    if n_words != -(-nbits // word_bits):
        raise CorruptStreamError(f"{nbits} payload bits need {-(-nbits // word_bits)} words of "
                                 f"{word_bits} bits, not {n_words}")
    pad = n_words * word_bits - nbits
    if pad and int(np.asarray(words)[-1]) & ((1 << pad) - 1):
        raise CorruptStreamError("Padding bits after the payload are not zero")
    return big, nbits, True
