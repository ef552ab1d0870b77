"""Huffman stimulus for the encoder, decoder and round-trip testbenches, with golden results.

Tables (``every_length_table``: every code length 1..L; ``random_table``; ``incomplete_table``:
a code space with unassigned codes; ``baked_tables`` for generated-in tables), values drawn
from a table (``values_from``, with a fraction of escapes), real quantized MobileNetV2 PCA
coefficients (``real_coefficients``), and ``Plan``: a script of table loads and tiles that
records each tile's golden words (``golden.codec.plain``) and the decoder's golden outcome
(``golden_outcome``), for both directions. ``corner_plan`` holds the named corner cases,
``real_tiles`` the real-data tiles and ``corrupt_tiles`` the corrupt ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from golden.codec.errors import CorruptStreamError
from golden.codec.plain import decode_groups, decode_tile, encode_groups, encode_tile
from golden.codec.tables import HuffmanTable, build_table, symbol_indices
from tb.common import BUILD_ROOT
from tb.real_data import fit_and_held, save_atomic


def config_name(c):
    g = f"-g{len(c['bounds']) - 1}" if c["bounds"] else ""
    loop = f"-{c['loop']}" if c.get("loop", "shift") != "shift" else ""
    loop += f"{c['map_bits']}" if c.get("map_bits") else ""
    family = f"-{c['family']}" if c.get("family", "generic") != "generic" else ""
    return f"b{c['b']}L{c['L']}W{c['W']}{g}{'-baked' if c['baked'] else ''}{loop}{family}"


def every_length_table(bits, max_len, rng, signed=True):
    """A table whose codes take every length 1..L (the longest being ESC's or a symbol's).

    Weights 2**(L-1), .., 2, 1 on L random patterns plus ESC (count 1) make the Huffman tree a
    comb of depth L when 2**b >= L; with fewer patterns every available length is used.
    """
    n = min(max_len, 1 << bits)
    pats = rng.choice(1 << bits, size=n, replace=False)
    hist = np.zeros(1 << bits, dtype=np.int64)
    hist[pats] = 2 ** np.arange(n, 0, -1, dtype=np.int64)
    table = build_table(hist, bits, max_len, signed=signed, histogram=True)
    if n == max_len:
        assert set(table.lengths[table.lengths > 0]) == set(range(1, max_len + 1))
    return table


def random_table(bits, max_len, rng, signed=True):
    """A random alphabet (a random subset of patterns, maybe all) with a skewed histogram."""
    size = 1 << bits
    n = int(rng.integers(1, size + 1))
    pats = rng.choice(size, size=n, replace=False)
    hist = np.zeros(size, dtype=np.int64)
    hist[pats] = np.maximum(1, (rng.pareto(1.2, n) * 50).astype(np.int64))
    return build_table(hist, bits, max_len, signed=signed, histogram=True)


def values_from(table, n, rng, escapes=0.05):
    """``n`` values drawn from the table's coded patterns, a fraction from anywhere (ESC)."""
    coded = np.flatnonzero(table.lengths[:1 << table.bits])
    weights = 2.0 ** -table.lengths[coded]
    pats = rng.choice(coded, size=n, p=weights / weights.sum())
    wild = rng.random(n) < escapes
    pats[wild] = rng.integers(0, 1 << table.bits, size=int(wild.sum()))
    return to_values(pats, table.bits, table.signed)


def to_values(pats, bits, signed):
    pats = np.asarray(pats, dtype=np.int64)
    if signed:
        return np.where(pats >= 1 << (bits - 1), pats - (1 << bits), pats)
    return pats


def incomplete_table(bits, max_len, rng, esc_last=True):
    """A table whose code space is not full (Kraft sum below 1): some codes are invalid.

    Lengths 1 .. n + 1 for n literals and ESC, leaving 2**-(n+1) of the code space unused.
    ``esc_last``: ESC has the longest code, so it is the last entry in canonical order and its
    code sits right below the unassigned ones; otherwise ESC has the shortest code.
    """
    size = 1 << bits
    n = min(size, max_len - 1, 4)
    assert n >= 1, "needs L >= 2"
    lengths = np.zeros(size + 1, dtype=np.int64)
    pats = rng.choice(size, size=n, replace=False)
    order = np.arange(1, n + 2)
    if not esc_last:
        order = np.roll(order, -1)
    lengths[pats] = order[:n]
    lengths[size] = order[n]
    table = HuffmanTable(bits, max_len, lengths)
    assert (int(np.argmax(table.lengths)) == size) == esc_last
    return table


def baked_tables(cfg):
    """The tables generated into a ``baked`` configuration (a fixed seed: the build and the
    plan see the same ones)."""
    rng = np.random.default_rng(1234)
    return [every_length_table(b, cfg["L"], rng) if i == 0 else random_table(b, cfg["L"], rng)
            for i, b in enumerate(cfg["bits"] or [cfg["b"]])]


def real_coefficients():
    """Quantized MobileNetV2 PCA coefficients (pixels, 16), cached under build/sim.

    The ReLU6 output of block 6's depthwise convolution (20 x 20 x 192 at 160 x 160) on four
    crops of the bundled photos; PCA on the first two crops, one max-abs 8-bit scale per
    component (``golden.datapath.quant.quantize``). Rows 0..799 come from crops 0-1, the rest
    from crops 2-3, so tables fitted on the first half code the second half out of sample.
    """
    path = BUILD_ROOT / "huffman_encoder_mobilenet_v2.npy"
    if path.exists():
        return np.load(path)
    from golden.datapath.quant import quantize
    from golden.projection.pca import pca_fit

    fit, held = fit_and_held("features.6.conv.1.2")
    proj = pca_fit(fit, k=16)
    y = proj.project(np.concatenate([fit, held]))
    scale = np.abs(y[:fit.shape[0]]).max(axis=0) / 127
    q = quantize(y, np.maximum(scale, 1e-12), 8).astype(np.int8)
    save_atomic(path, lambda tmp: np.save(tmp, q))
    return q


def golden_outcome(words, count, table, word_bits):
    """What the decoder must do with one single-group tile, from the golden decoder.

    Returns ``(patterns, error)``: the symbols ``decode_tile`` decodes before the first bad
    code (all ``count`` when none), and whether the tile is corrupt, i.e. no payload bit count
    makes ``decode_tile(words, nbits, count)`` accept it.
    """
    words = np.asarray(words, dtype=np.uint64)

    def decodes(c):
        try:
            return decode_tile(words, None, c, table, word_bits)
        except CorruptStreamError:
            return None

    lo, hi = 0, count        # decodes(lo) holds; find the largest c that decodes
    if decodes(count) is not None:
        lo = count
    while lo < hi - 1 and lo != count:
        mid = (lo + hi) // 2
        if decodes(mid) is not None:
            lo = mid
        else:
            hi = mid
    values = decodes(lo)
    pats = [int(p) for p in symbol_indices(values, table.bits, table.signed)] if lo else []
    if lo < count:
        return pats, True
    n = words.size
    candidates = [0] if n == 0 else range((n - 1) * word_bits + 1, n * word_bits + 1)
    for nbits in candidates:
        try:
            decode_tile(words, nbits, count, table, word_bits)
            return pats, False
        except CorruptStreamError:
            pass
    return pats, True


@dataclass
class Tile:
    """One tile of a plan: what the decoder gets and must put out; the encoder's in and out."""

    count: int                 # symbols in the tile (the decoder's i_count)
    words: list                # coded words
    pats: list                 # symbol patterns: the encoder's input, the decoder's output
    nbits: int | None = None   # payload bits of a good tile
    flush_beat: bool = False   # encoder input ends with an empty beat carrying ``last``
    error: bool = False        # the decoder must flag the tile as corrupt
    codes: set | None = None   # error codes it may report (None: any)


class Plan:
    """A host-side script of table loads and tiles, with the golden result of every tile in
    both directions: words for the encoder, symbols (and errors) for the decoder."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.W = cfg["W"]
        self.bounds = cfg["bounds"]
        self.groups = len(self.bounds) - 1 if self.bounds else 1
        self.bits = cfg["bits"] or [cfg["b"]] * self.groups
        self.steps = []        # ("load", [(group, bytes)]) or ("tile", Tile)
        self.tables = None

    def load(self, tables):
        self.tables = list(tables)
        self.steps.append(("load", [(g, t.serialize()) for g, t in enumerate(tables)]))

    def tile(self, values, flush_beat=False):
        """A good tile: values (n,) for one group, (N, K) for several; golden words, checked
        to decode back to ``values``."""
        values = np.asarray(values, dtype=np.int64)
        if self.groups == 1:
            words, nbits = encode_tile(values.ravel(), self.tables[0], self.W)
            back = decode_tile(words, nbits, values.size, self.tables[0], self.W)
            pats = symbol_indices(back, self.bits[0], self.tables[0].signed)
        else:
            words, nbits = encode_groups(values, self.tables, self.bounds, self.W)
            back = decode_groups(words, nbits, values.shape[0], self.tables, self.bounds,
                                 self.W)
            pats = np.empty(values.shape, dtype=np.int64)
            for t, lo, hi in zip(self.tables, self.bounds, self.bounds[1:]):
                pats[:, lo:hi] = symbol_indices(back[:, lo:hi], t.bits, t.signed)
        np.testing.assert_array_equal(back, values, err_msg="golden round trip")
        pats = [int(p) for p in np.asarray(pats).ravel()]
        words = [int(w) for w in words]
        self.steps.append(("tile", Tile(len(pats), words, pats, int(nbits), flush_beat)))
        return words, int(nbits)

    def raw_tile(self, words, count, codes=None):
        """Any word list (single group) for the decoder; its expected output comes from the
        golden decoder. Returns whether the tile is corrupt."""
        pats, error = golden_outcome(words, count, self.tables[0], self.W)
        assert count == 0 or len(words) > 0, "a tile with a count needs at least one word"
        if error:
            assert codes is None or codes, "an error case must allow some code"
        self.steps.append(("tile", Tile(count, [int(w) for w in words], pats, None, False,
                                        error, codes)))
        return error

    def rows(self, n, rng, escapes=0.05):
        """An (n, K) array of values drawn per group from its table."""
        cols = []
        for t, lo, hi in zip(self.tables, self.bounds, self.bounds[1:]):
            cols.append(values_from(t, n * (hi - lo), rng, escapes).reshape(n, hi - lo))
        return np.concatenate(cols, axis=1)

    @property
    def tiles(self):
        return [item for kind, item in self.steps if kind == "tile"]

    # The encoder's side
    @staticmethod
    def encoder_beats(tile):
        """The encoder's input beats of a good tile: one per symbol, ``last`` on the final
        one, or an ``empty`` beat carrying ``last`` (a flush-only end, or an empty tile)."""
        beats = [{"symbol": p, "last": 0, "empty": 0} for p in tile.pats]
        if beats and not tile.flush_beat:
            beats[-1]["last"] = 1
        else:
            beats.append({"symbol": 0, "last": 1, "empty": 1})
        return beats

    @property
    def words(self):
        """The encoder's expected output: (word, last) over all tiles."""
        return [(w, int(i == len(t.words) - 1)) for t in self.tiles
                for i, w in enumerate(t.words)]

    @property
    def counts(self):
        """The encoder's expected payload bits per tile."""
        return [t.nbits for t in self.tiles]

    # The decoder's side
    @staticmethod
    def decoder_output(tile):
        """The decoder's expected output for a tile: (symbol, last, first) per symbol it
        decodes; ``last`` on symbol ``count - 1`` (when all decode), ``first`` on the first."""
        return [(p, int(i == tile.count - 1), int(i == 0)) for i, p in enumerate(tile.pats)]

    @property
    def symbols(self):
        """The decoder's expected output over all tiles."""
        return [s for t in self.tiles for s in self.decoder_output(t)]

    @property
    def errors(self):
        """Per tile: whether the decoder must flag it, and the codes it may report."""
        return [(t.error, t.codes) for t in self.tiles]


def corner_plan(cfg, rng):
    """Named corner cases, random tables and tiles, reloads between tiles, real data."""
    plan = Plan(cfg)
    L = cfg["L"]
    if cfg["baked"]:
        tables = baked_tables(cfg)
    else:
        tables = [every_length_table(b, L, rng) for b in plan.bits]
    plan.load(tables)
    if plan.groups == 1:
        t = tables[0]
        b = t.bits
        longest = int(np.argmax(t.enc_len[:1 << b]))
        shortest = int(np.argmin(np.where(t.enc_len[:1 << b] > 0, t.enc_len[:1 << b], 99)))
        plan.tile(to_values([shortest], b, t.signed))                   # single symbol
        plan.tile([])                                                   # empty tile
        plan.tile(to_values([longest] * 40, b, t.signed))               # run, straddles
        plan.tile(to_values(rng.permutation(1 << b), b, t.signed))      # every code, escapes
        plan.tile(values_from(t, 400, rng), flush_beat=True)            # flush-only end
        exact = to_values([shortest] * (2 * plan.W), b, t.signed)       # 2 W bits exactly
        plan.tile(exact, flush_beat=True)                               # ends on a word edge
        plan.tile(exact)
        esc = np.flatnonzero(t.lengths[:1 << b] == 0)
        if esc.size:
            plan.tile(to_values(esc[:1], b, t.signed))                  # a lone escape
    else:
        plan.tile(np.zeros((0, plan.bounds[-1]), dtype=np.int64))      # empty tile
        plan.tile(plan.rows(1, rng))                                    # one row
        run = np.zeros((30, plan.bounds[-1]), dtype=np.int64)
        for t, lo, hi in zip(tables, plan.bounds, plan.bounds[1:]):
            run[:, lo:hi] = to_values([np.argmax(t.enc_len[:1 << t.bits])], t.bits, t.signed)
        plan.tile(run)                                                  # longest codes
        plan.tile(plan.rows(60, rng), flush_beat=True)
    for _ in range(2):
        if not cfg["baked"]:
            plan.load([random_table(b, L, rng) for b in plan.bits])     # reload between tiles
        for _ in range(2):
            if plan.groups == 1:
                plan.tile(values_from(plan.tables[0], int(rng.integers(0, 300)), rng))
            else:
                plan.tile(plan.rows(int(rng.integers(0, 40)), rng))
        plan.tile([] if plan.groups == 1 else np.zeros((0, plan.bounds[-1]), np.int64))
    if cfg.get("real_path"):
        real_tiles(plan, cfg, np.load(cfg["real_path"]), rng)
    return plan


def real_tiles(plan, cfg, q, rng):
    """Tables fitted on the first half of the pixels, tiles from the second half."""
    half = q.shape[0] // 2
    fit, use = q[:half], q[half:]
    rows = use[rng.choice(use.shape[0], size=min(150, use.shape[0]), replace=False)]
    if plan.groups == 1:
        plan.load([build_table(fit.ravel(), cfg["b"], cfg["L"], histogram=False)])
        plan.tile(rows.ravel())
        return
    tables, cols = [], []
    for b, lo, hi in zip(plan.bits, plan.bounds, plan.bounds[1:]):
        # Narrower groups keep the top bits of the value (a coarser step), as mixed precision.
        shift = 8 - b
        tables.append(build_table((fit[:, lo:hi] >> shift).ravel(), b, cfg["L"],
                                  histogram=False))
        cols.append(rows[:, lo:hi].astype(np.int64) >> shift)
    plan.load(tables)
    plan.tile(np.concatenate(cols, axis=1))


def corrupt_tiles(plan, cfg, rng):
    """Corrupt tiles, each followed by a good one (recovery), on a complete and an
    incomplete code."""
    W = plan.W
    b, L = cfg["b"], cfg["L"]
    mask = (1 << W) - 1
    for table in (every_length_table(b, L, rng), incomplete_table(b, L, rng),
                  incomplete_table(b, L, rng, esc_last=False)):
        plan.load([table])
        for case in ("flip", "flip", "drop", "truncate", "extra", "padding", "invalid"):
            values = values_from(table, int(rng.integers(20, 120)), rng)
            words, nbits = encode_tile(values, table, W)
            words = [int(w) for w in words]
            n = len(values)
            codes = None
            if case == "flip":
                bit = int(rng.integers(0, nbits))
                words[bit // W] ^= 1 << (W - 1 - bit % W)
            elif case == "drop" and len(words) > 2:
                del words[int(rng.integers(0, len(words) - 1))]
            elif case == "truncate":
                if len(words) < 2:
                    continue          # a tile with a count needs at least one word
                words = words[:-1]
                codes = {1, 2}
                with pytest.raises(CorruptStreamError):   # golden agrees: corrupt
                    decode_tile(np.array(words, np.uint64), nbits, n, table, W)
            elif case == "extra":
                words = words + [int(rng.integers(0, 1 << min(W, 62)))]
                codes = {3}
            elif case == "padding":
                if nbits % W == 0:
                    continue
                words[-1] |= 1
                codes = {4}
            elif case == "invalid":
                if table.limits[-1] >= (1 << L):
                    continue          # complete code: every bit pattern is some code
                # A tile that starts with the first unassigned code, all ones below it.
                words = [mask] * max(1, -(-L // W))
                codes = {1}
            plan.raw_tile(words, n, codes)
            plan.tile(values_from(table, int(rng.integers(1, 60)), rng))
    # A tile on an empty table slot is impossible with one group; a zero-count tile between.
    plan.tile([])
