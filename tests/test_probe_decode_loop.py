"""The decode-loop probe (``scripts/probe_decode_loop.py``): its loops, simulated with Amaranth
on a coded tile, give every code's window and total length in order, equal to the lengths
``golden`` coded; the look-ahead loops lose one cycle per escape, the short-table loop one
per code longer than its table, the length-map loop one per long code into a new word, and
none otherwise. Their FPGA figures (docs/fpga.md) are only worth comparing if the loops
decode."""

import sys
from pathlib import Path

import numpy as np
import pytest
from amaranth.sim import Simulator

from golden.codec.plain import encode_tile
from golden.codec.tables import HuffmanTable, build_table, symbol_indices
from hdl.coder_parts import canonical_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from probe_decode_loop import (  # noqa: E402
    SHORT,
    DecodeLoop,
    InterleavedLoop,
    MapLoop,
    PairMapLoop,
    ShortTableLoop,
    short_entries,
)

L, B, W = 12, 8, 32


def _short_esc_table():
    """Values 0, 1 and -1 coded in 1, 3 and 3 bits, ESC in 2: every other value escapes
    with a code short enough for the short-code table."""
    lengths = np.zeros((1 << B) + 1, dtype=int)
    lengths[[0, 1, (1 << B) - 1, 1 << B]] = [1, 3, 3, 2]
    return HuffmanTable(B, L, lengths, escape=True)


@pytest.fixture(scope="module", params=["fitted", "short-esc"])
def tile(request):
    rng = np.random.default_rng(7)
    if request.param == "fitted":
        table = build_table(np.round(rng.laplace(0, 5, 20000)).clip(-128, 127).astype(int),
                            B, L)
    else:
        table = _short_esc_table()
    values = np.round(rng.laplace(0, 8, 500)).clip(-128, 127).astype(int)
    words, _ = encode_tile(values, table, W)
    idx = symbol_indices(values, B, table.signed)
    n = int(table.lengths[table.esc_index])
    lens = [int(x) or n + B for x in table.enc_len[idx]]
    return table, [int(w) for w in words], lens


def _decode(dut, table, words, count):
    first, base, lim = canonical_limits(table.counts, L)
    n = int(table.lengths[table.esc_index])
    code = int(table.codes[table.esc_index])
    esc_lo, esc_hi = code << (L - n), (code + 1) << (L - n)
    out = []

    async def bench(ctx):
        ctx.set(dut.limits, sum(v << (i * (L + 1)) for i, v in enumerate(lim)))
        ctx.set(dut.esc, 1)
        ctx.set(dut.esc_lo, esc_lo)
        ctx.set(dut.esc_hi, esc_hi)
        ctx.set(dut.esc_total, n + B)
        if isinstance(dut, ShortTableLoop):
            ctx.set(dut.t_en, 1)
            for addr, entry in enumerate(short_entries(lim, esc_lo, esc_hi)):
                ctx.set(dut.t_addr, addr)
                ctx.set(dut.t_data, entry)
                await ctx.tick()
            ctx.set(dut.t_en, 0)
        ctx.set(dut.room, 1)
        ctx.set(dut.i_valid, 1)
        i = cycles = 0
        while len(out) < count and cycles < 4 * count:
            ctx.set(dut.i_word, words[i] if i < len(words) else 0)
            taken = ctx.get(dut.i_ready)
            await ctx.tick()
            i += taken
            cycles += 1
            if ctx.get(dut.o_valid):
                out.append((ctx.get(dut.o_window), ctx.get(dut.o_total)))
        out.append(cycles)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return out[:-1], out[-1]


@pytest.fixture(scope="module")
def reference(tile):
    table, words, lens = tile
    return _decode(DecodeLoop(False), table, words, len(lens))


def test_loop_now_decodes(tile, reference):
    _, words, lens = tile
    codes, cycles = reference
    assert [t for _, t in codes] == lens
    # Each window's first `total` bits, in order, are golden's bitstream.
    stream = "".join(format(w, f"0{W}b") for w in words)
    cw = L + B
    decoded = "".join(format(win >> (cw - t), f"0{t}b") for win, t in codes)
    assert decoded == stream[:len(decoded)] and len(decoded) == sum(lens)
    assert cycles <= len(lens) + 3     # one code per cycle after the first words


@pytest.mark.parametrize("onehot", [False, True], ids=["binary", "onehot"])
def test_lookahead_matches(tile, reference, onehot):
    table, words, lens = tile
    codes, cycles = _decode(DecodeLoop(True, onehot=onehot), table, words, len(lens))
    escapes = sum(1 for t in lens if t == int(table.lengths[table.esc_index]) + B)
    assert escapes > 0
    assert codes == reference[0]
    assert cycles <= len(lens) + escapes + 4


def test_short_table_matches(tile, reference):
    table, words, lens = tile
    codes, cycles = _decode(ShortTableLoop(), table, words, len(lens))
    # Codes resolved in a second cycle: longer than the table, ESC included when its code is.
    n = int(table.lengths[table.esc_index])
    slow = sum(1 for t in lens if t > SHORT and (t != n + B or n > SHORT))
    assert any(t > SHORT for t in lens)
    assert codes == reference[0]
    assert cycles <= len(lens) + slow + 3


def _assert_same_codes(codes, reference, lens):
    """The codes' own bits and totals equal the reference loop's, in order (past its code a
    window's bits are undefined: a slot may already hold a later word)."""
    cw = L + B

    def code_bits(pairs):
        return [(win >> (cw - t), t) for win, t in pairs]

    assert len(codes) == len(lens)
    assert code_bits(codes) == code_bits(reference[0])


def test_map_loop_matches(tile, reference):
    """The length-map loop: the same codes, one per cycle after a few cycles of fill, but a
    wait of one cycle after a code that ends in the next word within the last L + b bits
    of that word (the word after it is not in yet). Only each window's code bits count
    (past the code, a slot may already hold a later word)."""
    table, words, lens = tile
    codes, cycles = _decode(MapLoop(), table, words, len(lens))
    _assert_same_codes(codes, reference, lens)
    cw = L + B
    ends = np.cumsum(lens)
    waits = sum(1 for e, t in zip(ends, lens)
                if (e - t) // W != e // W and e % W >= W - cw)
    assert cycles <= len(lens) + waits + 6


def test_pair_loop_matches(tile, reference):
    """The two-codes-a-turn loop: the same codes in order, and one per cycle once its map
    stages are full (15 cycles): a turn (two cycles, two codes) would wait for a word (it
    needs three in) only if the codes took more bits than the map stages bring, one word
    every two cycles; these tiles' codes average 6 and 9 bits."""
    table, words, lens = tile
    codes, cycles = _decode(PairMapLoop(), table, words, len(lens))
    _assert_same_codes(codes, reference, lens)
    print(f"pair loop: {len(lens)} codes, {sum(lens)} bits, {cycles} cycles")
    assert cycles <= len(lens) + 16


@pytest.mark.parametrize("slow", [2, 3, 4])
def test_interleaved_lanes(tile, reference, slow):
    """Each lane gets the tile (its words at its own port, lane 1 starting later): every
    lane's codes equal the reference, and the loop gives one code per cycle in total."""
    table, words, lens = tile
    first, base, lim = canonical_limits(table.counts, L)
    n = int(table.lengths[table.esc_index])
    code = int(table.codes[table.esc_index])
    dut = InterleavedLoop(slow)
    got = {lane: [] for lane in range(slow)}
    cycles = []

    async def bench(ctx):
        ctx.set(dut.limits, sum(v << (i * (L + 1)) for i, v in enumerate(lim)))
        ctx.set(dut.esc, 1)
        ctx.set(dut.esc_lo, code << (L - n))
        ctx.set(dut.esc_hi, (code + 1) << (L - n))
        ctx.set(dut.esc_total, n + B)
        ctx.set(dut.room, 1)
        pos = [0] * slow
        t = 0
        while min(len(v) for v in got.values()) < len(lens) and t < 4 * slow * len(lens):
            for lane in range(slow):
                start = 7 if lane == 1 else 0
                ctx.set(getattr(dut, f"i_valid{lane}"), int(t >= start))
                w = words[pos[lane]] if pos[lane] < len(words) else 0
                ctx.set(getattr(dut, f"i_word{lane}"), w)
            taken = [ctx.get(getattr(dut, f"i_ready{lane}")) for lane in range(slow)]
            await ctx.tick()
            t += 1
            for lane in range(slow):
                pos[lane] += taken[lane]
            if ctx.get(dut.o_valid):
                got[ctx.get(dut.o_lane)].append((ctx.get(dut.o_window), ctx.get(dut.o_total)))
        cycles.append(t)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    for lane in range(slow):
        assert got[lane][:len(lens)] == reference[0]
    assert cycles[0] <= slow * len(lens) + 4 * slow + 8
