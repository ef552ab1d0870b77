"""hdl.requantizer's rule, exhaustively over small widths (Amaranth sim).

The cocotb testbench (tb/test_requantizer.py) checks the whole block against golden on random
and corner inputs; this checks the bit tests that replace the saturation compares for every
value of ``t``, including widths where ``t`` is narrower than the output range, and the
pipelined rule (``requant_pipeline``: product slices or LUT partial products, the split barrel
shift, registered flags) for every accumulator, multiplier and shift value.
"""

import numpy as np
import pytest
from amaranth import Module, Signal, signed
from amaranth.sim import Simulator

from golden.datapath.quant import requantize
from hdl.requantizer import (
    REQUANT_SHIFT_STAGE,
    REQUANT_STAGES,
    requant_pipeline,
    requant_round_saturate,
    shift_width,
)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("w, n", [(w, n) for w in (3, 4, 5, 6, 9) for n in (2, 3, 4, 5, 8)])
def test_round_saturate_every_value(w, n, relu):
    m = Module()
    t = Signal(signed(w))
    result = requant_round_saturate(m, t, n, relu)
    values = np.arange(-(1 << (w - 1)), 1 << (w - 1))
    # t is (prod << 1) >> shift; golden's rule at shift 1 is exactly (t + 1) >> 1, clipped.
    wants = requantize(values, 1, 1, out_bits=n, relu=relu)
    wrong = []

    async def bench(ctx):
        for v, want in zip(values.tolist(), wants.tolist()):
            ctx.set(t, v)
            if ctx.get(result) != want:
                wrong.append((v, ctx.get(result), want))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert not wrong, f"(t, got, want): {wrong[:5]}"


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("requant_mult, chunk", [("dsp", 17), ("dsp", 2), ("dsp", 3),
                                                 ("lut", 17)])
@pytest.mark.parametrize("acc_w, mult_w, n", [(5, 3, 3), (6, 5, 2)])
def test_pipeline_every_input(acc_w, mult_w, n, requant_mult, chunk, relu):
    """The pipelined rule (product slices or LUT partial products, split barrel shift,
    registered flags) against golden for every accumulator, multiplier and shift value."""
    m = Module()
    sh_w = shift_width(acc_w, mult_w)
    acc, mult, shift = Signal(signed(acc_w)), Signal(mult_w), Signal(sh_w)
    result = requant_pipeline(m, acc, mult, shift, [1] * REQUANT_STAGES, out_width=n,
                              relu=relu, requant_mult=requant_mult, chunk=chunk)
    grid = np.array(np.meshgrid(np.arange(-(1 << (acc_w - 1)), 1 << (acc_w - 1)),
                                np.arange(1 << mult_w), np.arange(1 << sh_w),
                                indexing="ij")).reshape(3, -1)
    wants = requantize(grid[0], grid[1], grid[2], out_bits=n, relu=relu).tolist()
    beats = grid.T.tolist()
    got = []

    async def bench(ctx):
        # acc and mult enter the first stage, the shift a later one: it is fed that much later.
        d = REQUANT_SHIFT_STAGE
        for i in range(len(beats) + REQUANT_STAGES):
            if i < len(beats):
                ctx.set(acc, beats[i][0])
                ctx.set(mult, beats[i][1])
            if d <= i < len(beats) + d:
                ctx.set(shift, beats[i - d][2])
            if i >= REQUANT_STAGES:
                got.append(ctx.get(result))
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    wrong = [(b, g, w) for b, g, w in zip(beats, got, wants) if g != w]
    assert len(got) == len(wants)
    assert not wrong, f"((acc, mult, shift), got, want): {wrong[:5]}"
