"""hdl.requantizer's round-and-saturate stage, exhaustively over small widths (Amaranth sim).

The cocotb testbench (tb/test_requantizer.py) checks the whole block against golden on random
and corner inputs; this checks the bit tests that replace the saturation compares for every
value of ``t``, including widths where ``t`` is narrower than the output range.
"""

import numpy as np
import pytest
from amaranth import Module, Signal, signed
from amaranth.sim import Simulator

from golden.datapath.quant import requantize
from hdl.requantizer import requant_round_saturate


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
