"""The decode-loop probe (``scripts/probe_decode_loop.py``): its three loops, simulated with
Amaranth on a coded tile, give every code's window and total length in order, equal to the
lengths ``golden`` coded; the look-ahead loops lose one cycle per escape and none otherwise.
Their FPGA figures (docs/fpga.md) are only worth comparing if the loops decode."""

import sys
from pathlib import Path

import numpy as np
import pytest
from amaranth.sim import Simulator

from golden.codec.plain import encode_tile
from golden.codec.tables import build_table, symbol_indices
from hdl.coder_parts import canonical_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from probe_decode_loop import DecodeLoop  # noqa: E402

L, B, W = 12, 8, 32


@pytest.fixture(scope="module")
def tile():
    rng = np.random.default_rng(7)
    table = build_table(np.round(rng.laplace(0, 5, 20000)).clip(-128, 127).astype(int), B, L)
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
    out = []

    async def bench(ctx):
        ctx.set(dut.limits, sum(v << (i * (L + 1)) for i, v in enumerate(lim)))
        ctx.set(dut.esc, 1)
        ctx.set(dut.esc_lo, code << (L - n))
        ctx.set(dut.esc_hi, (code + 1) << (L - n))
        ctx.set(dut.esc_total, n + B)
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
    _, _, lens = tile
    codes, cycles = reference
    assert [t for _, t in codes] == lens
    assert cycles <= len(lens) + 3     # one code per cycle after the first words


@pytest.mark.parametrize("onehot", [False, True], ids=["binary", "onehot"])
def test_lookahead_matches(tile, reference, onehot):
    table, words, lens = tile
    codes, cycles = _decode(DecodeLoop(True, onehot=onehot), table, words, len(lens))
    escapes = sum(1 for t in lens if t == int(table.lengths[table.esc_index]) + B)
    assert escapes > 0
    assert codes == reference[0]
    assert cycles <= len(lens) + escapes + 4
