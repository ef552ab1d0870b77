"""Lanes (bitstream version 3): one tile split over N independent plain-mode substreams.

Symbol ``i`` of a tile (row-major over the (N, K) array, as in version 1) goes to lane
``i mod N`` and keeps its column's table (column ``i mod K``). Each lane is coded exactly as a
version-1 tile (``golden.codec.plain``): codes back to back, MSB first, W-bit words, the last
word zero-padded, an empty lane is zero words. A decoder with N single-symbol decoders, one per
lane, therefore produces N symbols per cycle; the tile header carries every lane's payload bit
count so the lanes can be located (the container stores the lanes one after another) and
checked. ``docs/bitstream.md`` (version 3) is the contract.
"""

from __future__ import annotations

import math

import numpy as np

from golden.codec.bitio import check_payload, decode_codes, pack_codes
from golden.codec.errors import CorruptStreamError, check_int, check_word_bits
from golden.codec.plain import _codes_for, check_groups

__all__ = ["LANE_COUNTS", "check_lanes", "decode_lanes", "encode_lanes", "lane_columns",
           "lane_counts"]

LANE_COUNTS = (1, 2, 4, 8)


def check_lanes(lanes):
    """Return ``lanes`` as an int; ``TypeError`` / ``ValueError`` unless it is 1, 2, 4 or 8."""
    if isinstance(lanes, bool) or not isinstance(lanes, (int, np.integer)):
        raise TypeError(f"Lane count must be an integer, not {lanes!r}")
    if lanes not in LANE_COUNTS:
        raise ValueError(f"Lane count must be one of 1, 2, 4, 8, not {lanes}")
    return int(lanes)


def lane_counts(count, lanes):
    """Symbols per lane for a tile of ``count`` symbols: lane l holds ``ceil((count - l) / N)``
    (0 when ``count <= l``)."""
    lanes = check_lanes(lanes)
    count = check_int("Symbol count", count, 0, 1 << 40)
    return [max(0, (count - lane + lanes - 1) // lanes) for lane in range(lanes)]


def lane_columns(k, lanes, lane):
    """The columns lane ``lane`` visits, one period: symbol j of the lane is column
    ``(lane + j N) mod K``, a sequence of period ``K / gcd(K, N)``."""
    period = k // math.gcd(k, lanes)
    return [(lane + j * lanes) % k for j in range(period)]


def encode_lanes(array, tables, bounds, word_bits=32, lanes=4):
    """Encode an (N, K) array as ``lanes`` substreams (version 3).

    Parameters
    ----------
    array : array_like of int, shape (rows, K)
        The tile, coded row-major; column j uses the table of the group holding j
        (``bounds`` as in ``golden.codec.plain.encode_groups``).
    lanes : int
        1, 2, 4 or 8. Symbol i (row-major index) goes to lane ``i mod lanes``.

    Returns
    -------
    list of (words, nbits)
        Per lane, its W-bit words (uint64, the last one zero-padded) and its payload bits.
        Each lane is ``pack_codes`` of that lane's codes, i.e. a version-1 tile.

    Raises
    ------
    AlphabetError
        A value outside its group's range, or without a code in a table without escape.
    """
    word_bits = check_word_bits(word_bits)
    lanes = check_lanes(lanes)
    a = np.asarray(array)
    if a.ndim != 2:
        raise ValueError(f"Array must be 2-D (N, K), not {a.ndim}-D")
    check_groups(tables, bounds, a.shape[1])
    codes = np.empty(a.shape, dtype=np.uint64)
    lens = np.empty(a.shape, dtype=np.int64)
    for t, lo, hi in zip(tables, bounds, bounds[1:]):
        codes[:, lo:hi], lens[:, lo:hi] = _codes_for(a[:, lo:hi], t)
    codes, lens = codes.ravel(), lens.ravel()
    return [pack_codes(codes[lane::lanes], lens[lane::lanes], word_bits)
            for lane in range(lanes)]


def decode_lanes(lane_tiles, rows, tables, bounds, word_bits=32):
    """Inverse of ``encode_lanes``: ``lane_tiles`` is one ``(words, nbits)`` per lane (the lane
    count is its length); returns the (rows, K) array.

    ``nbits`` may be None for a lane (decode its symbols from the start of its words and ignore
    what follows, as ``decode_tile`` does); otherwise the lane must be exactly
    ``ceil(nbits / W)`` words, zero-padded, and its last symbol must end at ``nbits``.

    Raises
    ------
    CorruptStreamError
        Naming the lane: an invalid code, a lane that ends early, bits left over, nonzero
        padding, or a lane too short to hold its symbols.
    """
    word_bits = check_word_bits(word_bits)
    lane_tiles = list(lane_tiles)
    lanes = check_lanes(len(lane_tiles))
    rows = check_int("Row count", rows, 0, 1 << 40)
    k = int(bounds[-1]) if len(bounds) else 0
    check_groups(tables, bounds, k)
    if any(t.run_max for t in tables):
        raise ValueError("Run-length tables decode with golden.codec.runlength, not lanes")
    counts = lane_counts(rows * k, lanes)
    payloads = []
    for lane, ((words, nbits), count) in enumerate(zip(lane_tiles, counts)):
        try:
            big, n_pos, exact = check_payload(words, nbits, word_bits)
        except CorruptStreamError as e:
            raise CorruptStreamError(f"Lane {lane}: {e}") from None
        if count > n_pos:
            raise CorruptStreamError(f"Lane {lane}: {n_pos} bits cannot hold {count} symbols")
        if count == 0 and exact and n_pos:
            raise CorruptStreamError(f"Lane {lane}: Stream has {n_pos} bits after symbol 0")
        payloads.append((big, n_pos, exact))
    if rows * k == 0:  # nothing sized by k is built (a file may claim any k)
        return np.zeros((rows, k), dtype=np.int64)
    out = np.zeros(rows * k, dtype=np.int64)
    # Here every symbol has at least one payload bit, so k <= total bits: a column list of
    # period K / gcd(K, N) costs no more than the payload.
    col_tables = [t for t, lo, hi in zip(tables, bounds, bounds[1:])
                  for _ in range(int(hi) - int(lo))]
    for lane, ((big, n_pos, exact), count) in enumerate(zip(payloads, counts)):
        if count == 0:
            continue
        cols = [col_tables[c] for c in lane_columns(k, lanes, lane)]
        try:
            out[lane::lanes] = decode_codes(big, n_pos, cols, None, exact, total=count)
        except CorruptStreamError as e:
            raise CorruptStreamError(f"Lane {lane}: {e}") from None
    return out.reshape(rows, k)
