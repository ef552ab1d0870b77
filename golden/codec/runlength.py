"""Run-length mode (bitstream version 2): zero runs as their own canonical Huffman symbols.

Plain Huffman spends at least one bit per symbol; deep-layer coefficients are mostly zero and
have entropies far below that. Run-length mode keeps the canonical framework of
``golden.codec.tables`` and only widens the code alphabet, as JPEG's run/value symbols do but
without pairing a run with the next value (so the decoder still emits one code per cycle and
no (run, value) product alphabet is needed):

* index ``0 .. 2**b - 1``: a nonzero value (its b-bit pattern; pattern 0 is never coded);
* index ``2**b``: ESC, followed by b raw bits (a nonzero value without a code of its own);
* index ``2**b + r``, ``r = 1 .. R``: a run of ``r`` zero values, ``R = run_max`` a power of two.

A maximal run of ``n`` zeros inside a tile is written greedily: the longest coded run length
``r <= n`` again and again until ``n`` is used up. With escape on (default), ``RUN_1`` always
gets a code (its count is raised to at least 1), so every run is encodable. Runs never cross a
tile boundary. ``docs/bitstream.md`` (version 2) is the normative text.
"""

from __future__ import annotations

import numpy as np

from golden.codec.bitio import check_payload, decode_runs, pack_codes
from golden.codec.errors import (
    AlphabetError,
    CorruptStreamError,
    HuffmanError,
    check_int,
    check_word_bits,
)
from golden.codec.lengths import lengths_from_histogram
from golden.codec.tables import HuffmanTable, build_table, symbol_indices

__all__ = ["RUN_LENGTH_MODES", "build_rl_table", "decode_rl_tile", "encode_rl_tile",
           "fit_tables", "rl_histogram", "rl_indices", "tile_bits"]

RUN_MAX_CHOICES = tuple(1 << k for k in range(9))
RUN_LENGTH_MODES = ("off", "on", "auto")


def _runs(idx):
    """Events of a pattern sequence: (is_run, literal pattern or run length) in order."""
    nz = idx != 0
    n = idx.size
    if n == 0:
        return np.zeros(0, dtype=bool), np.zeros(0, dtype=np.int64)
    # Event starts: every nonzero position, and every zero that follows a nonzero or starts.
    prev_nz = np.r_[True, nz[:-1]]
    start = nz | prev_nz
    starts = np.flatnonzero(start)
    lengths = np.diff(np.r_[starts, n])
    is_run = ~nz[starts]
    val = np.where(is_run, lengths, idx[starts])
    return is_run, val


def _greedy(run_lengths, coded, run_max):
    """Per run length n (array), the greedy run entries: returns (entries per run, flat list).

    ``coded[r]`` tells whether RUN_r has a code, r = 1 .. run_max.
    """
    avail = [r for r in range(1, run_max + 1) if coded[r]]
    if not avail:
        if run_lengths.size:
            raise AlphabetError("A run of zeros has no code and the table has no escape")
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    top = avail[-1]
    # Greedy decomposition of every remainder 0 .. top - 1, built once per table.
    plans = []
    for rem in range(top):
        plan = []
        for r in reversed(avail):
            while rem >= r:
                plan.append(r)
                rem -= r
        plans.append(plan if rem == 0 else None)
    q, rem = np.divmod(run_lengths, top)
    plan_len = np.array([len(p) if p is not None else -1 for p in plans], dtype=np.int64)
    if run_lengths.size and np.any(plan_len[rem] < 0):
        bad = int(run_lengths[np.flatnonzero(plan_len[rem] < 0)[0]])
        raise AlphabetError(f"A run of {bad} zeros cannot be written with the coded run "
                            f"lengths {avail} and the table has no escape")
    counts = q + plan_len[rem]
    width = max(1, int(plan_len.max()))
    grid = np.zeros((top, width), dtype=np.int64)
    for i, p in enumerate(plans):
        if p:
            grid[i, :len(p)] = p
    # Entries of run e: q_e copies of `top`, then the plan of its remainder.
    total = int(counts.sum())
    owner = np.repeat(np.arange(run_lengths.size), counts)
    first = np.cumsum(counts) - counts
    k = np.arange(total) - first[owner]
    flat = np.where(k < q[owner], top, grid[rem[owner], np.maximum(k - q[owner], 0)
                                           .clip(max=width - 1)])
    return counts, flat


def rl_indices(values, bits, signed, coded, run_max):
    """Code-alphabet indices of a tile in run-length mode (coded: per index has-a-code)."""
    idx = symbol_indices(np.asarray(values).ravel(), bits, signed)
    is_run, val = _runs(idx)
    run_counts, run_flat = _greedy(val[is_run], coded[(1 << bits):], run_max)
    per_event = np.ones(val.size, dtype=np.int64)
    per_event[is_run] = run_counts
    out = np.empty(int(per_event.sum()), dtype=np.int64)
    first = np.cumsum(per_event) - per_event
    out[first[~is_run]] = val[~is_run]
    run_pos = np.repeat(first[is_run], run_counts)
    if run_pos.size:
        within = np.arange(run_pos.size) - np.repeat(np.cumsum(run_counts) - run_counts,
                                                     run_counts)
        out[run_pos + within] = (1 << bits) + run_flat
    return out


def rl_histogram(values, bits, signed, run_max, *, events=None):
    """Histogram over the run-length code alphabet when every run length has a code: a run
    of n zeros is n // R copies of RUN_R and one RUN_(n mod R) when that is not 0.
    ``events``: the ``_runs`` of the values' indices, when the caller already has them."""
    size = (1 << bits) + 1 + run_max
    if events is None:
        events = _runs(symbol_indices(np.asarray(values).ravel(), bits, signed))
    is_run, val = events
    hist = np.zeros(size, dtype=np.int64)
    hist[:1 << bits] = np.bincount(val[~is_run], minlength=1 << bits)
    runs = val[is_run]
    hist[(1 << bits) + run_max] += int((runs // run_max).sum())
    rem = runs % run_max
    hist[(1 << bits):(1 << bits) + run_max] += np.bincount(rem, minlength=run_max)[:run_max]
    hist[1 << bits] = 0  # remainder 0 is no symbol; ESC is counted by the caller
    return hist


def build_rl_table(values, bits, max_len, signed=True, escape=True, run_max=None):
    """Build a run-length-mode table from the values of a tile (in coding order).

    Parameters
    ----------
    values : array_like of int
        Calibration values, in the order they will be coded (runs are counted in this order).
    run_max : int or None
        Longest run symbol R, a power of two 1..256. None (default) tries every R and keeps the
        one whose code is shortest on ``values``.

    Raises
    ------
    HuffmanError
        When ``max_len`` cannot code the needed entries.
    """
    bits = check_int("Symbol width", bits, 1, 8)
    max_len = check_int("Maximum code length", max_len, 1, 24)
    values = np.asarray(values).ravel()
    if values.size and not np.issubdtype(values.dtype, np.integer):
        raise TypeError(f"Symbols must be integers, not {values.dtype}")
    if run_max is None:
        choices = RUN_MAX_CHOICES
    else:
        if run_max not in RUN_MAX_CHOICES:
            raise ValueError(f"Longest run must be a power of two 1..256, not {run_max}")
        choices = (run_max,)
    best = None
    last_error = None
    events = _runs(symbol_indices(values, bits, signed))
    for r in choices:
        hist = rl_histogram(values, bits, signed, r, events=events)
        if escape:
            hist[1 << bits] = 1
            hist[(1 << bits) + 1] = max(hist[(1 << bits) + 1], 1)
        if not hist.any():
            raise HuffmanError("No symbols to code: no values and escape disabled")
        try:
            lengths = lengths_from_histogram(hist, max_len)
        except HuffmanError as e:
            last_error = e
            continue
        cost = int((hist * lengths).sum())
        if best is None or cost < best[0]:
            best = (cost, r, lengths)
    if best is None:
        raise last_error
    return HuffmanTable(bits, max_len, best[2], escape=escape, signed=signed, run_max=best[1])


def encode_rl_tile(values, table, word_bits=32):
    """Encode one tile in run-length mode; returns ``(words, nbits)`` like ``encode_tile``."""
    word_bits = check_word_bits(word_bits)
    if not table.run_max:
        raise ValueError("Table is not a run-length table; use encode_tile")
    entries = rl_indices(values, table.bits, table.signed, table.lengths > 0, table.run_max)
    lens = table.enc_len[entries]
    if np.any(lens == 0):
        i = int(np.flatnonzero(lens == 0)[0])
        bad = int(entries[i]) if entries[i] < (1 << table.bits) else 0
        if table.signed and bad >= 1 << (table.bits - 1):
            bad -= 1 << table.bits
        raise AlphabetError(f"Value {bad} has no code and the table has no escape")
    return pack_codes(table.enc_code[entries], lens, word_bits)


def decode_rl_tile(words, nbits, count, table, word_bits=32):
    """Decode a run-length tile of ``count`` values; ``nbits`` is required (codes end there).

    Raises
    ------
    CorruptStreamError
        An invalid code, a stream that does not end exactly at ``nbits``, or codes that expand
        to a number of values other than ``count``.
    """
    word_bits = check_word_bits(word_bits)
    if not table.run_max:
        raise ValueError("Table is not a run-length table; use decode_tile")
    if nbits is None:
        raise ValueError("Run-length tiles need their payload bit count")
    count = check_int("Symbol count", count, 0, 1 << 40)
    big, n_pos, _ = check_payload(words, nbits, word_bits)
    if count > n_pos * table.run_max:
        raise CorruptStreamError(f"{n_pos} bits cannot hold {count} values")
    if n_pos == 0:
        if count:
            raise CorruptStreamError(f"Empty stream cannot hold {count} values")
        return np.zeros(0, dtype=np.int64)
    return decode_runs(big, n_pos, count, table)


def tile_bits(values, table) -> int:
    """Payload bits of one tile of ``values`` (in coding order) with ``table``, in either mode:
    the ``nbits`` that ``encode_rl_tile`` or ``encode_tile`` would return."""
    values = np.asarray(values).ravel()
    if table.run_max:
        idx = rl_indices(values, table.bits, table.signed, table.lengths > 0, table.run_max)
    else:
        idx = symbol_indices(values, table.bits, table.signed)
    lens = table.enc_len[idx]
    if np.any(lens == 0):
        raise AlphabetError("A value has no code and the table has no escape")
    return int(lens.sum())


def fit_tables(groups, bits, max_len, mode="off", signed=True):
    """The tables of one layer's groups, fitted to calibration values, in one coding mode.

    ``groups``: per group its values in coding order; ``bits``: per group its width. ``mode``
    "off": plain tables (bitstream version 1); "on": run-length tables (version 2); "auto":
    whichever mode codes all the groups together in fewer bits (plain on a tie). One mode per
    layer: a table set (and a container) is all plain or all run-length. Every table has an
    escape code."""
    if mode not in RUN_LENGTH_MODES:
        raise ValueError(f"Run-length mode must be one of {', '.join(RUN_LENGTH_MODES)}, "
                         f"not {mode!r}")
    groups = [np.asarray(v).ravel() for v in groups]
    plain = rl = None
    if mode != "on":
        plain = [build_table(v, int(b), max_len, signed=signed, histogram=False)
                 for v, b in zip(groups, bits)]
        if mode == "off":
            return plain
    rl = [build_rl_table(v, int(b), max_len, signed=signed) for v, b in zip(groups, bits)]
    if plain is None:
        return rl
    cost = [sum(tile_bits(v, t) for v, t in zip(groups, ts)) for ts in (plain, rl)]
    return rl if cost[1] < cost[0] else plain
