"""Run-length mode (bitstream version 2) of ``hdl.huffman_encoder``, in Amaranth's simulator.

Every tile is compared word for word, ``last`` flag and bit count with golden
``encode_rl_tile``, under random input gaps and output backpressure. Tables: golden
``build_rl_table`` on rounded-Laplacian data (zero-heavy, as deep-layer coefficients are),
tables whose short run codes are removed (so ``_greedy`` has to combine the remaining ones),
R = 1 and R = 256, groups (one group per tile, named on the tile's beats in
``i_stream.payload.group``, in any order; a group >= G sets ``error``), and escapes.
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from golden.codec.runlength import build_rl_table, encode_rl_tile
from golden.codec.tables import HuffmanTable
from hdl.huffman_encoder import HuffmanEncoder


def laplace(rng, n, scale, bits):
    lim = (1 << (bits - 1)) - 1
    return np.clip(np.rint(rng.laplace(0, scale, n)), -lim - 1, lim).astype(np.int64)


def sparse_runs(values, bits, max_len, run_max, keep, escape=True):
    """A run-length table on ``values`` where only RUN_k, k in ``keep``, get a code."""
    from golden.codec.lengths import lengths_from_histogram
    from golden.codec.runlength import rl_histogram
    hist = rl_histogram(values, bits, True, run_max)
    base = 1 << bits
    for k in range(1, run_max + 1):
        hist[base + k] = (hist[base + k] + 1) if k in keep else 0
    hist[base] = int(escape)
    lengths = lengths_from_histogram(hist, max_len)
    return HuffmanTable(bits, max_len, lengths, escape=escape, signed=True, run_max=run_max)


def run_tiles(dut, tiles, groups, W, rng, stall=0.3, backpressure=0.3, loads=(),
              tile_groups=None):
    """Load ``loads`` ((group, table bytes) through ``cfg``) then drive ``tiles`` (lists of
    patterns), tile i with ``group`` = ``tile_groups[i]`` on all its beats (required exactly
    when the block has the field: R > 0 and G > 1); collect the words per tile, the bit
    counts and the error flag."""
    out = {"words": [], "counts": [], "stall": 0, "cycles": 0, "error": 0}
    done = {"in": False}
    has_group = "group" in dut.i_stream.payload.shape().members
    assert has_group == (tile_groups is not None), (has_group, tile_groups)
    if has_group:
        assert len(tile_groups) == len(tiles)

    async def source(ctx):
        for g, raw in loads:
            for i, byte in enumerate(raw):
                while stall and rng.random() < stall:
                    ctx.set(dut.cfg.valid, 0)
                    await ctx.tick()
                payload = {"data": byte, "last": int(i == len(raw) - 1)}
                if groups > 1:
                    payload["group"] = g
                ctx.set(dut.cfg.valid, 1)
                ctx.set(dut.cfg.payload, payload)
                await ctx.tick().until(dut.cfg.ready)
            ctx.set(dut.cfg.valid, 0)
        for n, t in enumerate(tiles):
            beats = [(int(v), 0, 0) for v in t] or [(0, 0, 1)]
            beats[-1] = (beats[-1][0], 1, beats[-1][2])
            for sym, last, empty in beats:
                while stall and rng.random() < stall:
                    ctx.set(dut.i_stream.valid, 0)
                    await ctx.tick()
                payload = {"symbol": sym, "last": last, "empty": empty}
                if has_group:
                    payload["group"] = tile_groups[n]
                ctx.set(dut.i_stream.valid, 1)
                ctx.set(dut.i_stream.payload, payload)
                await ctx.tick().until(dut.i_stream.ready)
            ctx.set(dut.i_stream.valid, 0)
        done["in"] = True

    async def sink(ctx):
        words = []
        while len(out["counts"]) < len(tiles) or not done["in"]:
            ready = not (backpressure and rng.random() < backpressure)
            ctx.set(dut.o_stream.ready, ready)
            ctx.set(dut.o_count.ready, 1)
            _, _, ov, od, ol, cv, cn, err = await ctx.tick().sample(
                dut.o_stream.valid, dut.o_stream.payload.data, dut.o_stream.payload.last,
                dut.o_count.valid, dut.o_count.payload.nbits, dut.error)
            out["error"] |= err
            out["cycles"] += 1
            if ov and ready:
                words.append(od)
                if ol:
                    out["words"].append(words)
                    words = []
            if cv:
                out["counts"].append(cn)
                if cn == 0:
                    out["words"].append(words)
                    words = []
            assert out["cycles"] < 200 * (sum(len(t) for t in tiles) + 10), "hang"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run()
    return out


def check(tables, tiles_values, W, seed, b=None, L=None, run_max=None, stall=0.3,
          backpressure=0.3, baked=True, order=None):
    """Encode ``tiles_values``, tile i with group ``order[i]`` (default: i mod G), and
    compare with golden."""
    G = len(tables)
    order = [i % G for i in range(len(tiles_values))] if order is None else list(order)
    b = b or max(t.bits for t in tables)
    L = L or max(t.max_len for t in tables)
    rng = np.random.default_rng(seed)
    bounds = list(range(G + 1)) if G > 1 else None
    loads = ()
    if baked:
        dut = HuffmanEncoder(b, L, W, G, group_bounds=bounds, table=tables, run_max=run_max)
    else:
        dut = HuffmanEncoder(b, L, W, G, group_bounds=bounds,
                             group_bits=[t.bits for t in tables], run_max=run_max)
        loads = [(g, t.serialize()) for g, t in enumerate(tables)]
    tiles = [np.asarray(v) & ((1 << tables[g].bits) - 1) for g, v in zip(order, tiles_values)]
    out = run_tiles(dut, tiles, G, W, rng, stall, backpressure, loads,
                    order if G > 1 else None)
    assert not out["error"]
    assert len(out["counts"]) == len(tiles_values)
    for i, v in enumerate(tiles_values):
        words, nbits = encode_rl_tile(np.asarray(v), tables[order[i]], W)
        assert out["counts"][i] == nbits, (i, out["counts"][i], nbits)
        assert out["words"][i] == [int(x) for x in words], i
    return out


@pytest.mark.parametrize("baked", [True, False])
@pytest.mark.parametrize("run_max", [1, 8, 256])
def test_laplace(run_max, baked):
    rng = np.random.default_rng(run_max)
    cal = laplace(rng, 4000, 0.4, 6)
    t = build_rl_table(cal, 6, 12, run_max=run_max)
    tiles = [laplace(rng, n, 0.4, 6) for n in (1, 7, 300, 0, 64, 1000)]
    tiles.append(np.zeros(700, dtype=np.int64))      # longer than R: RUN_R repeated
    tiles.append(np.r_[np.zeros(run_max - 1, np.int64), 3])
    check([t], tiles, 32, run_max, run_max=256 if not baked else None, baked=baked)


@pytest.mark.parametrize("keep", [(2, 3), (3, 5, 16), (1, 4), (1, 2, 7), (7,)])
def test_sparse_run_codes(keep):
    """Only some run lengths coded: the greedy decomposition takes several codes per run
    (the runs golden ``_greedy`` can write; the others are the error test's)."""
    rng = np.random.default_rng(sum(keep))
    cal = laplace(rng, 3000, 0.3, 4)
    t = sparse_runs(cal, 4, 10, 16, keep)
    cands = [laplace(rng, n, 0.3, 4) for n in (50, 400, 1)]
    for n in range(1, 60):
        cands.append(np.r_[2, np.zeros(n, np.int64), 1, np.zeros(n, np.int64)])
    tiles = [v for v in cands if _encodable(v, t)]
    assert len(tiles) >= 8
    check([t], tiles, 16, 7 + sum(keep))
    check([t], tiles, 16, 8 + sum(keep), baked=False, run_max=16)


def test_unwritable_run_flags_error():
    """A run that the coded run lengths cannot write sets the error flag, and the encoder
    still ends the tile (no hang)."""
    rng = np.random.default_rng(3)
    t = sparse_runs(laplace(rng, 3000, 0.3, 4), 4, 10, 16, (2, 3))
    v = np.r_[1, np.zeros(4, np.int64), 1]   # 4 = 3 + 1: greedy cannot finish
    assert not _encodable(v, t)
    dut = HuffmanEncoder(4, 10, 16, table=t)
    out = run_tiles(dut, [v & 15, np.array([1, 0, 0, 1]) & 15], 1, 16, rng)
    assert out["error"]
    assert len(out["counts"]) == 2


def _encodable(v, t):
    from golden.codec.errors import AlphabetError
    try:
        encode_rl_tile(v, t, 32)
    except AlphabetError:
        return False
    return True


def test_groups_and_words():
    """Three groups of different widths, tile i named with group i mod 3; 8- and 64-bit
    words."""
    rng = np.random.default_rng(5)
    specs = [(4, 4), (6, 64), (3, 1)]
    tables = [build_rl_table(laplace(rng, 2000, 0.5, b), b, 9, run_max=r) for b, r in specs]
    tiles = []
    for i in range(9):
        b = specs[i % 3][0]
        tiles.append(laplace(rng, int(rng.integers(0, 200)), 0.5, b))
    for W in (8, 64):
        check(tables, tiles, W, W, b=6, L=12, run_max=64)
    check(tables, tiles, 32, 3, b=6, L=12, run_max=64, baked=False)


def three_groups(rng):
    specs = [(4, 4), (6, 64), (3, 1)]
    return [build_rl_table(laplace(rng, 2000, 0.5, b), b, 9, run_max=r) for b, r in specs]


@pytest.mark.parametrize("baked", [True, False])
def test_group_order_from_payload(baked):
    """The group comes from each tile's ``group``, not from the tile's position: a
    non-cyclic order (2, 0, 0, 1, ...), repeats, and empty tiles (one ``empty`` + ``last``
    beat carrying the group) between them."""
    rng = np.random.default_rng(29)
    tables = three_groups(rng)
    order = [2, 0, 0, 1, 1, 2, 0, 2, 2, 1]
    tiles = [laplace(rng, int(rng.integers(1, 150)), 0.5, tables[g].bits) for g in order]
    tiles[4] = np.zeros(0, np.int64)
    tiles[7] = np.zeros(0, np.int64)
    tiles[8] = np.zeros(3 * tables[2].run_max + 2, np.int64)   # group 2: R' = 1
    assert any(g != i % 3 for i, g in enumerate(order))
    check(tables, tiles, 16, 31, b=6, L=12, run_max=64, baked=baked, order=order)


@pytest.mark.parametrize("baked", [True, False])
def test_group_out_of_range_sets_error(baked):
    """G = 3 (a 2-bit ``group``): a tile naming group 3 sets ``error`` and is coded with
    group 0's table; the tiles around it are coded with their own groups as usual."""
    rng = np.random.default_rng(37)
    tables = three_groups(rng)
    order = [1, 3, 2, 0]
    tiles = [laplace(rng, 120, 0.5, tables[g if g < 3 else 0].bits) for g in order]
    kw = {"table": tables} if baked else {"group_bits": [t.bits for t in tables]}
    dut = HuffmanEncoder(6, 12, 32, 3, group_bounds=[0, 1, 2, 3], run_max=64, **kw)
    loads = [] if baked else [(g, t.serialize()) for g, t in enumerate(tables)]
    pats = [v & ((1 << tables[g if g < 3 else 0].bits) - 1) for g, v in zip(order, tiles)]
    out = run_tiles(dut, pats, 3, 32, rng, loads=loads, tile_groups=order)
    assert out["error"]
    assert len(out["counts"]) == len(tiles)
    for i, (g, v) in enumerate(zip(order, tiles)):
        words, nbits = encode_rl_tile(v, tables[g if g < 3 else 0], 32)
        assert out["counts"][i] == nbits, i
        assert out["words"][i] == [int(x) for x in words], i
    # The same tiles with group 0 in place of 3: no error (the flag came from the group).
    out = run_tiles(HuffmanEncoder(6, 12, 32, 3, group_bounds=[0, 1, 2, 3], run_max=64, **kw),
                    pats, 3, 32, rng, loads=loads, tile_groups=[1, 0, 2, 0])
    assert not out["error"] and len(out["counts"]) == len(tiles)


def test_no_stall_throughput():
    """No gaps, no backpressure: a full table set keeps one coefficient per cycle."""
    rng = np.random.default_rng(11)
    t = build_rl_table(laplace(rng, 4000, 0.4, 8), 8, 12, run_max=16)
    tiles = [laplace(rng, 5000, 0.4, 8)]
    out = check([t], tiles, 32, 1, stall=0, backpressure=0)
    assert out["cycles"] <= 5000 + 20, out["cycles"]


def every_length_rl(bits, max_len, run_max, rng):
    """A run-length table whose coded entries (values, ESC, runs) use every length 1..L,
    with values drawn so that every entry occurs."""
    from golden.codec.lengths import lengths_from_histogram
    n = (1 << bits) + 1 + run_max
    order = [e for e in rng.permutation(n) if e != 0]   # pattern 0 is never coded
    hist = np.zeros(n, dtype=np.int64)
    for i, e in enumerate(order[:max_len]):
        hist[e] = 1 << (max_len - i)
    hist[1 << bits] = max(hist[1 << bits], 1)          # ESC
    hist[(1 << bits) + 1] = max(hist[(1 << bits) + 1], 1)  # RUN_1: every run writable
    lengths = lengths_from_histogram(hist, max_len)
    t = HuffmanTable(bits, max_len, lengths, escape=True, signed=True, run_max=run_max)
    coded = [e for e in range(n) if t.lengths[e]]
    values = []
    for e in rng.choice(coded, 600):
        if e < 1 << bits:
            values.append(e - (1 << bits) if e >= 1 << (bits - 1) else e)
        elif e == 1 << bits:
            values.append(int(rng.integers(1, 1 << (bits - 1))))   # maybe escaped
        else:
            values += [0] * int(e - (1 << bits))
    return t, np.array(values, dtype=np.int64)


@pytest.mark.parametrize("bits, max_len, run_max, W", [(4, 12, 16, 8), (6, 18, 4, 32),
                                                       (8, 24, 128, 16)])
def test_every_code_length(bits, max_len, run_max, W):
    """Codes of every length 1..L (at least L - 1 of them: ESC and RUN_1 are forced in),
    ESC + raw bits up to L + b = 32, straddling word ends."""
    rng = np.random.default_rng(bits * max_len)
    t, values = every_length_rl(bits, max_len, run_max, rng)
    used = set(int(x) for x in t.lengths[t.lengths > 0])
    assert used <= set(range(1, max_len + 1)) and len(used) >= max_len - 1, used
    tiles = [values[:300], values[300:], values[:1], np.zeros(3 * run_max + 1, np.int64)]
    check([t], tiles, W, bits, baked=True)
    check([t], tiles, W, bits + 1, baked=False, run_max=run_max)


def test_loaded_table_run_max_checks():
    """A loaded run-length table with R' above the block's R, or any run-length table in an
    R = 0 block, is a table-load error; a good load afterwards clears it and codes."""
    rng = np.random.default_rng(17)
    cal = laplace(rng, 2000, 0.4, 4)
    big = build_rl_table(cal, 4, 10, run_max=32)
    good = build_rl_table(cal, 4, 10, run_max=16)
    for R, bad in ((16, big), (0, good)):
        dut = HuffmanEncoder(4, 10, 32, run_max=R)
        out = run_tiles(dut, [], 1, 32, rng, loads=[(0, bad.serialize())])
        assert out["error"], R
    dut = HuffmanEncoder(4, 10, 32, run_max=16)
    v = laplace(rng, 200, 0.4, 4)
    out = run_tiles(dut, [v & 15], 1, 32, rng,
                    loads=[(0, big.serialize()), (0, good.serialize())])
    words, nbits = encode_rl_tile(v, good, 32)
    assert out["counts"] == [nbits] and out["words"] == [[int(x) for x in words]]


@pytest.mark.parametrize("baked", [True, False])
def test_plain_tables_in_run_length_block(baked):
    """Plain tables in an R > 0 block: version 1 exactly (zeros coded, groups by column)."""
    from golden.codec.plain import encode_groups
    from golden.codec.tables import build_table
    rng = np.random.default_rng(23)
    bounds, bits = [0, 3, 8], [4, 6]
    data = [laplace(rng, (40, 8), 0.8, 6)[:, bounds[g]:bounds[g + 1]] for g in range(2)]
    tables = [build_table(laplace(rng, 3000, 0.8, b), b, 12, histogram=False) for b in bits]
    kw = {"table": tables} if baked else {"group_bits": bits}
    dut = HuffmanEncoder(6, 12, 32, 2, group_bounds=bounds, run_max=64, **kw)
    rows = np.concatenate([np.clip(d, -(1 << (b - 1)), (1 << (b - 1)) - 1)
                           for d, b in zip(data, bits)], axis=1)
    pats = np.concatenate([rows[:, bounds[g]:bounds[g + 1]] & ((1 << bits[g]) - 1)
                           for g in range(2)], axis=1).ravel()
    loads = [] if baked else [(g, t.serialize()) for g, t in enumerate(tables)]
    # ``group`` is ignored in version 1: group 1 on every beat, the columns still decide.
    out = run_tiles(dut, [pats], 2, 32, rng, loads=loads, tile_groups=[1])
    words, nbits = encode_groups(rows, tables, bounds, 32)
    assert not out["error"]
    assert out["counts"] == [nbits] and out["words"] == [[int(x) for x in words]]


def test_plain_tables_ignore_group_out_of_range():
    """Version 1 in an R > 0 block of G = 3: a ``group`` of 3 on every beat is ignored (no
    error), the columns pick the tables as ``encode_groups`` does."""
    from golden.codec.plain import encode_groups
    from golden.codec.tables import build_table
    rng = np.random.default_rng(41)
    bounds, bits = [0, 2, 5, 6], [4, 6, 3]
    tables = [build_table(laplace(rng, 3000, 0.8, b), b, 12, histogram=False) for b in bits]
    rows = np.concatenate([laplace(rng, (30, bounds[g + 1] - bounds[g]), 0.8, bits[g])
                           for g in range(3)], axis=1)
    pats = np.concatenate([rows[:, bounds[g]:bounds[g + 1]] & ((1 << bits[g]) - 1)
                           for g in range(3)], axis=1).ravel()
    dut = HuffmanEncoder(6, 12, 32, 3, group_bounds=bounds, group_bits=bits, run_max=16)
    out = run_tiles(dut, [pats], 3, 32, rng, loads=[(g, t.serialize())
                                                   for g, t in enumerate(tables)],
                    tile_groups=[3])
    words, nbits = encode_groups(rows, tables, bounds, 32)
    assert not out["error"]
    assert out["counts"] == [nbits] and out["words"] == [[int(x) for x in words]]


def test_tile_end_latency():
    """The first two rows of docs/huffman_encoder.md's run-length timing table (b = 6, L = 12,
    W = 32, R = 16, no stalls): one value takes 14 cycles to its bit count, 5,000 Laplacian
    coefficients 5,014 (the tile end's latency after one per cycle)."""
    rng = np.random.default_rng(11)
    t = build_rl_table(laplace(rng, 4000, 0.4, 6), 6, 12, run_max=16)
    assert check([t], [np.array([3])], 32, 1, stall=0, backpressure=0)["cycles"] == 14
    out = check([t], [laplace(rng, 5000, 0.4, 6)], 32, 1, stall=0, backpressure=0)
    assert out["cycles"] == 5014
