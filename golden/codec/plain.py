"""Plain mode (bitstream version 1): tiles and column groups.

``encode_tile`` / ``decode_tile`` code one tile: symbols packed MSB first into W-bit words, the
last word zero-padded. ``encode_groups`` / ``decode_groups`` code an (N, K) array with one table
per group of columns, interleaved in row-major order. This is the golden twin of the RTL coders
(``hdl/huffman_encoder.py``, ``hdl/huffman_decoder.py``); ``docs/bitstream.md`` is the
contract.
"""

from __future__ import annotations

import numpy as np

from golden.codec.bitio import check_payload, decode_codes, pack_codes
from golden.codec.errors import AlphabetError, CorruptStreamError, check_int, check_word_bits
from golden.codec.tables import symbol_indices

__all__ = ["check_groups", "decode_groups", "decode_tile", "encode_groups", "encode_tile"]


def _codes_for(values, table):
    if table.run_max:
        raise ValueError("Run-length tables code with golden.codec.runlength, not encode_tile")
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
    word_bits = check_word_bits(word_bits)
    codes, lens = _codes_for(np.asarray(values).ravel(), table)
    return pack_codes(codes, lens, word_bits)


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
    word_bits = check_word_bits(word_bits)
    if table.run_max:
        raise ValueError("Run-length tables decode with golden.codec.runlength, not decode_tile")
    count = check_int("Symbol count", count, 0, 1 << 40)
    big, n_pos, exact = check_payload(words, nbits, word_bits)
    if count > n_pos:
        raise CorruptStreamError(f"{n_pos} bits cannot hold {count} symbols")
    return decode_codes(big, n_pos, [table], count, exact)


def check_groups(tables, bounds, k):
    """Raise ``ValueError`` unless ``bounds`` rise from 0 to ``k`` with one group per table."""
    tables = list(tables)
    bounds = [int(x) for x in bounds]
    if len(bounds) != len(tables) + 1 or bounds[0] != 0 or bounds[-1] != k or any(
            a >= b for a, b in zip(bounds, bounds[1:])):
        raise ValueError(f"Group bounds must rise from 0 to {k} with one group per table, "
                         f"not {bounds}")


def encode_groups(array, tables, bounds, word_bits=32):
    """Encode an (N, K) array, column j with the table of the group holding j, row-major.

    ``bounds`` are the group edges ``[0, b1, ..., K]``; group g is columns
    ``bounds[g] .. bounds[g + 1] - 1`` and uses ``tables[g]``. Returns ``(words, nbits)``.
    """
    word_bits = check_word_bits(word_bits)
    a = np.asarray(array)
    if a.ndim != 2:
        raise ValueError(f"Array must be 2-D (N, K), not {a.ndim}-D")
    check_groups(tables, bounds, a.shape[1])
    codes = np.empty(a.shape, dtype=np.uint64)
    lens = np.empty(a.shape, dtype=np.int64)
    for t, lo, hi in zip(tables, bounds, bounds[1:]):
        codes[:, lo:hi], lens[:, lo:hi] = _codes_for(a[:, lo:hi], t)
    return pack_codes(codes.ravel(), lens.ravel(), word_bits)


def decode_groups(words, nbits, rows, tables, bounds, word_bits=32):
    """Inverse of ``encode_groups``: returns the (rows, K) array of values."""
    word_bits = check_word_bits(word_bits)
    rows = check_int("Row count", rows, 0, 1 << 40)
    k = int(bounds[-1]) if len(bounds) else 0
    check_groups(tables, bounds, k)
    if any(t.run_max for t in tables):
        raise ValueError("Run-length tables decode with golden.codec.runlength, not decode_groups")
    big, n_pos, exact = check_payload(words, nbits, word_bits)
    if rows * k > n_pos:
        raise CorruptStreamError(f"{n_pos} bits cannot hold {rows * k} symbols")
    if rows * k == 0:  # no symbol: nothing sized by k is built (a file may claim any k)
        if exact and n_pos:
            raise CorruptStreamError(f"Stream has {n_pos} bits after symbol 0")
        return np.zeros((rows, k), dtype=np.int64)
    # Here k <= n_pos: one table per column costs no more than the payload.
    cols = [t for t, a, b in zip(tables, bounds, bounds[1:]) for _ in range(int(b) - int(a))]
    return decode_codes(big, n_pos, cols, rows, exact).reshape(rows, k)

