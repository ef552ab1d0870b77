"""Golden canonical Huffman codec: code construction, tables, fast tile encode and decode.

This module is the bit-exact reference for the Huffman encoder and decoder RTL. The bit-level
contract is ``docs/bitstream.md`` (version 1 for plain mode); every function here follows it.

* ``build_table`` turns a histogram (or the symbol values) into optimal code lengths under a
  maximum length ``L`` (package-merge) and assigns canonical codes by DEFLATE's convention.
* ``encode_tile`` / ``decode_tile`` code one tile: symbols packed MSB first into W-bit words,
  the last word zero-padded. ``encode_groups`` / ``decode_groups`` code an (N, K) array with
  one table per group of columns, interleaved in row-major order.
* Both directions run their bit-serial loops compiled (numba, ``golden.huffman_jit``): encoding
  gathers codes and lengths per symbol with numpy and packs them into 64-bit words; decoding
  walks the stream one code at a time through a lookup table over the next 12 bits, with a
  canonical search for longer codes.

The run-length mode (version 2) lives in ``golden.huffman_rl``, the container file format in
``golden.huffman_container``, the command line in ``golden.huffman_cli``
(``python -m golden.huffman``).
"""

from __future__ import annotations

import struct

import numpy as np

__all__ = [
    "AlphabetError",
    "ContainerError",
    "CorruptStreamError",
    "HuffmanError",
    "HuffmanTable",
    "MAX_LEN_LIMIT",
    "WORD_BITS",
    "build_table",
    "decode_groups",
    "decode_tile",
    "encode_groups",
    "encode_tile",
    "lengths_from_histogram",
    "symbol_indices",
]

MAX_LEN_LIMIT = 24
LUT_BITS = 12  # the decoder looks up codes of up to this many bits in one step
WORD_BITS = (8, 16, 32, 64)


class HuffmanError(ValueError):
    """Base class of every error the Huffman codec raises on bad data or parameters."""


class CorruptStreamError(HuffmanError):
    """A bitstream holds an invalid code, ends early, or has bits past its end."""


class AlphabetError(HuffmanError):
    """A value lies outside the table's alphabet, or has no code and the table has no escape."""


class ContainerError(HuffmanError):
    """A container or serialized table is corrupt, truncated or of an unknown version."""


# ---------------------------------------------------------------------------------------------
# Argument checks


def _check_int(name, value, lo, hi):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}, not {value}")
    return int(value)


def _check_word_bits(word_bits):
    if isinstance(word_bits, bool) or not isinstance(word_bits, (int, np.integer)):
        raise TypeError(f"Word width must be an integer, not {word_bits!r}")
    if word_bits not in WORD_BITS:
        raise ValueError(f"Word width must be one of 8, 16, 32, 64, not {word_bits}")
    return int(word_bits)


# ---------------------------------------------------------------------------------------------
# Code lengths


def lengths_from_histogram(weights, max_len):
    """Optimal code lengths under a maximum length (package-merge).

    Parameters
    ----------
    weights : array_like of int
        Non-negative counts; entries with a zero count get length 0 (no code).
    max_len : int
        Maximum code length L, 1..24.

    Returns
    -------
    numpy.ndarray of int64
        Code length per entry. The average length ``sum(w * len) / sum(w)`` is the minimum over
        all prefix codes whose lengths do not exceed ``max_len``. A single coded entry gets
        length 1.

    Raises
    ------
    HuffmanError
        If ``2**max_len`` is smaller than the number of entries with a nonzero count.
    """
    max_len = _check_int("Maximum code length", max_len, 1, MAX_LEN_LIMIT)
    w = np.asarray(weights)
    if w.ndim != 1 or (w.size and not np.issubdtype(w.dtype, np.integer)):
        raise TypeError("Weights must be a 1-D array of integers")
    w = w.astype(np.int64)
    if np.any(w < 0):
        raise ValueError("Weights must not be negative")
    lengths = np.zeros(w.size, dtype=np.int64)
    used = np.flatnonzero(w)
    n = used.size
    if n == 0:
        return lengths
    if n > (1 << max_len):
        raise HuffmanError(f"Maximum code length {max_len} cannot code {n} symbols")
    if n == 1:
        lengths[used] = 1
        return lengths
    # Leaves in ascending weight, ties by descending index, so the result is deterministic and
    # ESC (the highest index, count 1) is among the longest codes of its weight.
    order = used[np.lexsort((-used, w[used]))]
    leaf_w = w[order]
    # Package-merge (Larmore and Hirschberg): level L holds the leaves; each shallower level
    # merges the leaves with the pairwise packages of the level below. Only whether each merged
    # item is a leaf is kept; the leaves among the first m items are the m' lightest leaves.
    levels = []  # per level, boolean "is leaf" of the merged list, deepest first
    prev = leaf_w
    levels.append(np.ones(n, dtype=bool))
    for _ in range(max_len - 1):
        packages = prev[0:(prev.size // 2) * 2:2] + prev[1:(prev.size // 2) * 2:2]
        items = np.concatenate([leaf_w, packages])
        is_leaf = np.concatenate([np.ones(n, dtype=bool), np.zeros(packages.size, dtype=bool)])
        # Stable sort puts a leaf before a package of equal weight.
        sel = np.argsort(items, kind="stable")
        prev = items[sel]
        levels.append(is_leaf[sel])
    # Take the 2n - 2 lightest items at the shallowest level, then follow packages down.
    take = 2 * n - 2
    depth = np.zeros(n, dtype=np.int64)
    for is_leaf in reversed(levels):
        head = is_leaf[:take]
        n_leaves = int(head.sum())
        depth[:n_leaves] += 1
        take = 2 * (take - n_leaves)
    lengths[order] = depth
    return lengths


# ---------------------------------------------------------------------------------------------
# Tables


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
        self.bits = _check_int("Symbol width", bits, 1, 8)
        self.max_len = _check_int("Maximum code length", max_len, 1, MAX_LEN_LIMIT)
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

    @classmethod
    def deserialize(cls, data, signed=True):
        """Parse ``serialize()`` output; the whole of ``data`` must be one table.

        Raises
        ------
        ContainerError
            On a truncated or inconsistent table.
        """
        table, used = cls._parse(data, signed)
        if used != len(data):
            raise ContainerError(f"Table has {len(data) - used} trailing bytes")
        return table

    @classmethod
    def _parse(cls, data, signed=True):
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
            return cls(bits, L, lengths, escape=bool(flags & 1), signed=signed,
                       run_max=run_max), end + 2 * n
        except ValueError as e:
            raise ContainerError(f"Invalid table: {e}") from None


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
    bits = _check_int("Symbol width", bits, 1, 8)
    max_len = _check_int("Maximum code length", max_len, 1, MAX_LEN_LIMIT)
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


# ---------------------------------------------------------------------------------------------
# Bit packing and stream walking (the loops run compiled, in golden.huffman_jit)


def _jit():
    try:
        from golden import huffman_jit
    except ModuleNotFoundError as e:
        if e.name != "numba":
            raise
        raise ModuleNotFoundError("Golden Huffman encode and decode need numba: "
                                  "pip install 'actcomp[golden]'") from None
    return huffman_jit


def _pack(codes, lens, word_bits):
    """Pack codes (MSB first) back to back; return (W-bit words as uint64, payload bits)."""
    codes = np.ascontiguousarray(codes, dtype=np.uint64).ravel()
    lens = np.ascontiguousarray(lens, dtype=np.int64).ravel()
    nbits = int(lens.sum())
    if nbits == 0:
        return np.zeros(0, dtype=np.uint64), 0
    n64 = -(-nbits // 64)
    big = np.zeros(n64, dtype=np.uint64)
    _jit().pack(codes, lens, big)
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
    lim = np.zeros((n, MAX_LEN_LIMIT), dtype=np.uint64)
    first = np.zeros((n, MAX_LEN_LIMIT + 2), dtype=np.int64)
    base = np.zeros((n, MAX_LEN_LIMIT + 2), dtype=np.int64)
    symbols = np.zeros((n, (1 << 8) + 1 + 256), dtype=np.int64)
    per = np.zeros((5, n), dtype=np.int64)  # shift, max_len, esc, bits, half
    for i, t in enumerate(tables):
        lut[i, :t.lut.size] = t.lut
        lim[i, :t.max_len] = t.limits
        first[i, :t.first.size] = t.first
        base[i, :t.base.size] = t.base
        symbols[i, :t.symbols.size] = t.symbols
        per[:, i] = (64 - t.lut_bits, t.max_len, t.esc_index if t.escape else -1, t.bits,
                     1 << (t.bits - 1) if t.signed else 0)
    shift, max_len, esc, bits, half = per
    return (lut, shift, lim, first, base, symbols, max_len, esc, bits), half


def _decode_columns(big, n_pos, tables, rows, end_exact):
    """Decode ``rows`` rows of interleaved columns, ``tables[j]`` coding column j; returns the
    values (signed where the table is)."""
    distinct = list({id(t): t for t in tables}.values())
    row_of = {id(t): i for i, t in enumerate(distinct)}
    col_table = np.array([row_of[id(t)] for t in tables], dtype=np.int64)
    arrays, half = _decoder_arrays(distinct)
    total = rows * len(tables)
    out = np.empty(total, dtype=np.int64)
    jit = _jit()
    status, i, p, _ = jit.walk(big, n_pos, total, False, col_table, *arrays, half, out)
    if status == jit.ENDS:
        if i == 0:
            raise CorruptStreamError(f"Stream of {n_pos} bits ends before symbol 0 of {total}")
        raise CorruptStreamError(f"Stream of {n_pos} bits ends inside or after symbol {i - 1}"
                                 f" of {total}")
    if status == jit.INVALID:
        raise CorruptStreamError(f"Invalid code at bit {p} (symbol {i})")
    if status == jit.OVERRUN:
        if i < total - 1:
            raise CorruptStreamError(f"Stream of {n_pos} bits ends inside or after symbol {i}"
                                     f" of {total}")
        raise CorruptStreamError(f"Stream of {n_pos} bits ends inside symbol {total - 1}")
    if end_exact and p != n_pos:
        raise CorruptStreamError(f"Stream has {n_pos - p} bits after symbol {total}")
    return out


def _decode_runs(big, n_pos, count, table):
    """Decode a run-length tile of ``count`` values that ends exactly at bit ``n_pos``."""
    arrays, half = _decoder_arrays([table])
    out = np.zeros(count, dtype=np.int64)
    jit = _jit()
    status, codes, p, total = jit.walk(big, n_pos, -1, True, np.zeros(1, dtype=np.int64),
                                       *arrays, half, out)
    if status == jit.INVALID:
        raise CorruptStreamError(f"Invalid code at bit {p} (code {codes})")
    if status == jit.OVERRUN:
        raise CorruptStreamError(f"Stream of {n_pos} bits ends inside code {codes}")
    if total != count:
        raise CorruptStreamError(f"Stream codes {total} values, not {count}")
    return out


def _check_payload(words, nbits, word_bits):
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


def _to_values(idx, table):
    if table.signed:
        half = 1 << (table.bits - 1)
        return np.where(idx >= half, idx - (1 << table.bits), idx)
    return idx


# ---------------------------------------------------------------------------------------------
# Tiles and groups (plain mode, bitstream version 1)


def _codes_for(values, table):
    if table.run_max:
        raise ValueError("Run-length tables code with golden.huffman_rl, not encode_tile")
    idx = symbol_indices(values, table.bits, table.signed)
    lens = table.enc_len[idx]
    if np.any(lens == 0):
        bad = np.asarray(values).ravel()[np.flatnonzero(lens.ravel() == 0)[0]]
        raise AlphabetError(f"Value {bad} has no code and the table has no escape")
    return table.enc_code[idx], lens


def encode_tile(values, table, word_bits=32):
    """Encode one tile of values.

    Returns
    -------
    words : ndarray of uint64
        ``ceil(nbits / word_bits)`` words, MSB first, the last one zero-padded.
    nbits : int
        Payload bits before padding.

    Raises
    ------
    AlphabetError
        A value outside the b-bit range, or without a code in a table without escape.
    """
    word_bits = _check_word_bits(word_bits)
    codes, lens = _codes_for(np.asarray(values).ravel(), table)
    return _pack(codes, lens, word_bits)


def decode_tile(words, nbits, count, table, word_bits=32):
    """Decode ``count`` values from one tile.

    Parameters
    ----------
    words : array_like of int
        The tile's W-bit words.
    nbits : int or None
        Payload bits. When given, the words must be exactly ``ceil(nbits / W)``, the padding
        zero, and the symbols must end exactly at ``nbits``. None: decode ``count`` symbols from
        the start of ``words`` and ignore what follows.
    count : int
        Number of symbols in the tile.

    Raises
    ------
    CorruptStreamError
        An invalid code, a stream that ends before ``count`` symbols, or bits left over.
    """
    word_bits = _check_word_bits(word_bits)
    if table.run_max:
        raise ValueError("Run-length tables decode with golden.huffman_rl, not decode_tile")
    count = _check_int("Symbol count", count, 0, 1 << 40)
    big, n_pos, exact = _check_payload(words, nbits, word_bits)
    if count > n_pos:
        raise CorruptStreamError(f"{n_pos} bits cannot hold {count} symbols")
    return _decode_columns(big, n_pos, [table], count, exact)


def _check_groups(tables, bounds, k):
    tables = list(tables)
    bounds = [int(x) for x in bounds]
    if len(bounds) != len(tables) + 1 or bounds[0] != 0 or bounds[-1] != k or any(
            a >= b for a, b in zip(bounds, bounds[1:])):
        raise ValueError(f"Group bounds must rise from 0 to {k} with one group per table, "
                         f"not {bounds}")
    cols = []
    for t, a, b in zip(tables, bounds, bounds[1:]):
        cols += [t] * (b - a)
    return cols


def encode_groups(array, tables, bounds, word_bits=32):
    """Encode an (N, K) array, column j with the table of the group holding j, row-major.

    ``bounds`` are the group edges ``[0, b1, ..., K]``; group g is columns
    ``bounds[g] .. bounds[g + 1] - 1`` and uses ``tables[g]``. Returns ``(words, nbits)``.
    """
    word_bits = _check_word_bits(word_bits)
    a = np.asarray(array)
    if a.ndim != 2:
        raise ValueError(f"Array must be 2-D (N, K), not {a.ndim}-D")
    cols = _check_groups(tables, bounds, a.shape[1])
    codes = np.empty(a.shape, dtype=np.uint64)
    lens = np.empty(a.shape, dtype=np.int64)
    for t, lo, hi in zip(tables, bounds, bounds[1:]):
        codes[:, lo:hi], lens[:, lo:hi] = _codes_for(a[:, lo:hi], t)
    del cols
    return _pack(codes.ravel(), lens.ravel(), word_bits)


def decode_groups(words, nbits, rows, tables, bounds, word_bits=32):
    """Inverse of ``encode_groups``: returns the (rows, K) array of values."""
    word_bits = _check_word_bits(word_bits)
    rows = _check_int("Row count", rows, 0, 1 << 40)
    k = int(bounds[-1]) if len(bounds) else 0
    cols = _check_groups(tables, bounds, k)
    if any(t.run_max for t in tables):
        raise ValueError("Run-length tables decode with golden.huffman_rl, not decode_groups")
    big, n_pos, exact = _check_payload(words, nbits, word_bits)
    if rows * k > n_pos:
        raise CorruptStreamError(f"{n_pos} bits cannot hold {rows * k} symbols")
    return _decode_columns(big, n_pos, cols, rows, exact).reshape(rows, k)


if __name__ == "__main__":
    from golden.huffman_cli import main

    raise SystemExit(main())
