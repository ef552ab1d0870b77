"""Canonical Huffman tables: the code alphabet, canonical codes, the serialized layout the
hardware loads, the encoder's code/length lookup and the decoder's one-step lookup.

``build_table`` turns a histogram (or the symbol values) into optimal code lengths under a
maximum length ``L`` (``golden.codec.lengths``) and assigns canonical codes by DEFLATE's
convention (``docs/bitstream.md``).
"""

from __future__ import annotations

import struct

import numpy as np

from golden.codec.errors import AlphabetError, HuffmanError, check_int
from golden.codec.lengths import MAX_LEN_LIMIT, lengths_from_histogram

__all__ = ["HuffmanTable", "LUT_BITS", "build_table", "symbol_indices"]

LUT_BITS = 12  # the decoder looks up codes of up to this many bits in one step


def symbol_indices(values, bits, signed=True):
    """Map values to their b-bit symbol index (two's-complement pattern or unsigned value).

    Raises
    ------
    AlphabetError
        If a value does not fit the b-bit signed or unsigned range.
    """
    v = np.asarray(values)
    if v.size and not np.issubdtype(v.dtype, np.integer):
        raise TypeError(f"Symbols must be integers, not {v.dtype}")
    v = v.astype(np.int64)
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if v.size:
        vmin, vmax = int(v.min()), int(v.max())
        if vmin < lo or vmax > hi:
            bad = vmin if vmin < lo else vmax
            kind = "signed" if signed else "unsigned"
            raise AlphabetError(f"Value {bad} is outside the {bits}-bit {kind} range "
                                f"{lo}..{hi}")
    return v & ((1 << bits) - 1)


class HuffmanTable:
    """A canonical Huffman code over the code alphabet of b-bit symbols.

    Code-alphabet indices: ``0 .. 2**b - 1`` are the symbol patterns, ``2**b`` is ESC, and in
    run-length mode ``2**b + r`` codes a run of ``r`` zeros, ``r = 1 .. run_max``.

    Attributes
    ----------
    bits, max_len, escape, signed : int, int, bool, bool
    run_max : int
        0 in plain mode; in run-length mode the longest run symbol, a power of two.
    lengths : ndarray
        Code length per code-alphabet index, 0 = no code.
    codes : ndarray
        Canonical code per index (valid where ``lengths > 0``).
    counts : ndarray
        Number of codes of each length 1..L (``counts[l - 1]``).
    symbols : ndarray
        Code-alphabet indices in canonical order (by length, then index).
    """

    def __init__(self, bits, max_len, lengths, escape=True, signed=True, run_max=0):
        self.bits = check_int("Symbol width", bits, 1, 8)
        self.max_len = check_int("Maximum code length", max_len, 1, MAX_LEN_LIMIT)
        self.escape = bool(escape)
        self.signed = bool(signed)
        self.run_max = int(run_max)
        if self.run_max and (self.run_max & (self.run_max - 1) or self.run_max > 256):
            raise ValueError(f"Longest run must be a power of two up to 256, not {run_max}")
        size = self.alphabet_size
        lengths = np.asarray(lengths, dtype=np.int64)
        if lengths.shape != (size,):
            raise ValueError(f"Lengths must have {size} entries, not {lengths.shape}")
        if np.any(lengths < 0) or np.any(lengths > self.max_len):
            raise ValueError(f"Code lengths must be between 0 and {self.max_len}")
        if self.escape != bool(lengths[self.esc_index]):
            raise ValueError("ESC must have a code exactly when escape is enabled")
        coded = np.flatnonzero(lengths)
        if coded.size == 0:
            raise ValueError("A table must code at least one entry")
        kraft = sum(1 << (self.max_len - int(x)) for x in lengths[coded])
        if kraft > (1 << self.max_len):
            raise ValueError("Code lengths violate the Kraft inequality")
        if coded.size == 1 and lengths[coded[0]] != 1:
            raise ValueError("A table with one coded entry must give it length 1")
        self.lengths = lengths
        self.counts = np.bincount(lengths[coded], minlength=self.max_len + 1)[1:]
        self.symbols = coded[np.lexsort((coded, lengths[coded]))]
        # DEFLATE canonical assignment.
        self.first = np.zeros(self.max_len + 2, dtype=np.int64)  # first code per length
        self.base = np.zeros(self.max_len + 2, dtype=np.int64)   # position in self.symbols
        code = 0
        pos = 0
        for length in range(1, self.max_len + 1):
            self.first[length] = code
            self.base[length] = pos
            code = (code + int(self.counts[length - 1])) << 1
            pos += int(self.counts[length - 1])
        self.codes = np.zeros(size, dtype=np.int64)
        for length in range(1, self.max_len + 1):
            idx = self.symbols[self.base[length]:self.base[length] + self.counts[length - 1]]
            self.codes[idx] = self.first[length] + np.arange(idx.size)
        self._build_lookups()

    # Code-alphabet layout
    @property
    def esc_index(self):
        return 1 << self.bits

    @property
    def alphabet_size(self):
        return (1 << self.bits) + 1 + self.run_max

    def _build_lookups(self):
        b = self.bits
        n_lit = 1 << b
        # Encoder: code and length per code-alphabet index, escapes folded into literals.
        enc_code = self.codes.astype(np.uint64).copy()
        enc_len = self.lengths.copy()
        if self.escape:
            missing = np.flatnonzero(self.lengths[:n_lit] == 0)
            esc_code, esc_len = int(self.codes[n_lit]), int(self.lengths[n_lit])
            enc_code[missing] = (np.uint64(esc_code) << np.uint64(b)) | missing.astype(np.uint64)
            enc_len[missing] = esc_len + b
        self.enc_code, self.enc_len = enc_code, enc_len
        # Decoder: left-justified limits, canonical per-length first codes and bases.
        L = self.max_len
        ls = np.arange(1, L + 1)
        self.limits = ((self.first[1:L + 1] + self.counts) << (L - ls)).astype(np.uint64)
        # One-step lookup over the first T bits: (length << 16 | index) of a code of at most T
        # bits that starts there, 0 where the code is longer or invalid.
        T = self.lut_bits = min(L, LUT_BITS)
        v = np.arange(1 << T, dtype=np.uint64) << np.uint64(L - T)
        ln = np.searchsorted(self.limits, v, side="right") + 1
        short = ln <= T
        ln = np.where(short, ln, 1)
        pos = self.base[ln] + (v >> (L - ln).astype(np.uint64)).astype(np.int64) - self.first[ln]
        idx = self.symbols[np.minimum(pos, self.symbols.size - 1)]
        self.lut = np.where(short, (ln << 16) | idx, 0).astype(np.int32)
        # Two codes in one step: a short code that is no escape, then another in the bits left.
        n1 = np.where(short, ln, 0)
        usable = short & ~((idx == self.esc_index) & self.escape)
        rest = (np.arange(1 << T) << n1) & ((1 << T) - 1)
        e2 = self.lut[rest].astype(np.int64)
        n2, v2 = e2 >> 16, e2 & 0xFFFF
        both = usable & (n2 > 0) & (n2 <= T - n1) & ~((v2 == self.esc_index) & self.escape)
        self.pair = np.where(both, n1 | (n2 << 8) | (idx.astype(np.int64) << 16) | (v2 << 32),
                             0).astype(np.int64)

    def __eq__(self, other):
        return (isinstance(other, HuffmanTable) and self.serialize() == other.serialize()
                and self.signed == other.signed)

    def __repr__(self):
        mode = f", run_max={self.run_max}" if self.run_max else ""
        return (f"HuffmanTable(bits={self.bits}, max_len={self.max_len}, "
                f"escape={self.escape}, signed={self.signed}{mode}, coded={self.symbols.size})")

    def average_length(self, hist):
        """Average code length in bits over a histogram of code-alphabet indices."""
        hist = np.asarray(hist, dtype=np.float64)
        total = hist.sum()
        return float((hist * self.enc_len[:hist.size]).sum() / total) if total else 0.0

    # Serialization, docs/bitstream.md "Serialized table"
    def serialize(self):
        """Bytes the hardware loads: header, counts per length, indices in canonical order."""
        flags = (1 if self.escape else 0) | (2 if self.run_max else 0)
        run_log = self.run_max.bit_length() - 1 if self.run_max else 0
        head = struct.pack("<BBBB", self.bits, self.max_len, flags, run_log)
        return (head + self.counts.astype("<u2").tobytes()
                + self.symbols.astype("<u2").tobytes())


def _histogram(hist_or_symbols, bits, signed):
    h = np.asarray(hist_or_symbols)
    if h.size and not np.issubdtype(h.dtype, np.integer):
        raise TypeError(f"Histogram or symbols must be integers, not {h.dtype}")
    return np.bincount(symbol_indices(h.ravel(), bits, signed), minlength=1 << bits)


def build_table(hist_or_symbols, bits, max_len, signed=True, escape=True, *, histogram=None):
    """Build an optimal length-limited canonical Huffman table.

    Parameters
    ----------
    hist_or_symbols : array_like of int
        Either a histogram of length ``2**bits`` indexed by symbol pattern (when ``histogram``
        is True, or when it is None and the argument is 1-D of that length with non-negative
        entries... see below), or the symbol values themselves.
    bits : int
        Symbol width b, 1..8.
    max_len : int
        Maximum code length L, 1..24.
    signed : bool
        Values are two's complement (default) or unsigned.
    escape : bool
        Default True: ESC gets a count of 1 before lengths are computed, so every value of the
        alphabet is encodable (as ESC + b raw bits when it has no code of its own). False: only
        symbols seen in the histogram are encodable; the caller guarantees the alphabet.
    histogram : bool or None, keyword-only
        None (default) guesses: a 1-D argument of exactly ``2**bits`` entries is a histogram.
        Pass True or False to say which it is.

    Raises
    ------
    HuffmanError
        "Maximum code length 3 cannot code 17 symbols" when L is too small, or no symbol to code.
    AlphabetError
        Symbol values outside the b-bit range.
    """
    bits = check_int("Symbol width", bits, 1, 8)
    max_len = check_int("Maximum code length", max_len, 1, MAX_LEN_LIMIT)
    arr = np.asarray(hist_or_symbols)
    if histogram is None:
        histogram = arr.ndim == 1 and arr.size == (1 << bits)
    if histogram:
        if arr.shape != (1 << bits,):
            raise ValueError(f"Histogram must have {1 << bits} entries, not {arr.shape}")
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"Histogram must hold integers, not {arr.dtype}")
        if np.any(arr < 0):
            raise ValueError("Histogram counts must not be negative")
        hist = arr.astype(np.int64)
    else:
        hist = _histogram(arr, bits, signed)
    weights = np.concatenate([hist, [1 if escape else 0]])
    if not np.any(weights):
        raise HuffmanError("No symbols to code: empty histogram and escape disabled")
    lengths = lengths_from_histogram(weights, max_len)
    return HuffmanTable(bits, max_len, lengths, escape=escape, signed=signed)
