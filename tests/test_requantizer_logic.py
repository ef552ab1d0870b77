"""hdl.requantizer's round-and-saturate stage, exhaustively over small widths (Amaranth sim).

The cocotb testbench (tb/test_requantizer.py) checks the whole block against golden on random
and corner inputs; this checks the bit tests that replace the saturation compares for every
value of ``t``, including widths where ``t`` is narrower than the output range.
"""

import pytest
from amaranth import Module, Signal, signed
from amaranth.sim import Simulator

from hdl.requantizer import requant_round_saturate


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("w, n", [(w, n) for w in (3, 4, 5, 6, 9) for n in (2, 3, 4, 5, 8)])
def test_round_saturate_every_value(w, n, relu):
    m = Module()
    t = Signal(signed(w))
    result = requant_round_saturate(m, t, n, relu)
    lo, hi = (0 if relu else -(1 << (n - 1))), (1 << (n - 1)) - 1
    wrong = []

    async def bench(ctx):
        for v in range(-(1 << (w - 1)), 1 << (w - 1)):
            ctx.set(t, v)
            want = min(max((v + 1) >> 1, lo), hi)
            if ctx.get(result) != want:
                wrong.append((v, ctx.get(result), want))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert not wrong, f"(t, got, want): {wrong[:5]}"
