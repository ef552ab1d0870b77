"""Small Huffman configurations and the table-load property shared by the coder proofs."""

from __future__ import annotations

from amaranth.hdl import Assert, Cover, Elaboratable, Module, Signal
from stream_props import past, reset_once, sink, source

from golden.codec.tables import HuffmanTable

# b = 2, L = 3 with escape, incomplete (Kraft 7/8): symbols 2 and 3 go as ESC + raw bits,
# and the unassigned code 111 is an invalid code for the decoder.
T_ESC = HuffmanTable(2, 3, [1, 2, 0, 0, 3], escape=True)
# b = 3, L = 5, complete, no escape: every code has a symbol, every length 2..5 is used.
T_FULL = HuffmanTable(3, 5, [2, 2, 3, 3, 3, 4, 5, 5, 0], escape=False)
BAKED = {"b2L3-esc": T_ESC, "b3L5-full": T_FULL}

# Run-time tables: one group, and two groups (columns 0 and 1 of K = 2) of 2 and 1 bits.
RUNTIME = {
    "b2L3W8": dict(symbol_width=2, max_len=3, word_width=8),
    "b2L2W8-g2": dict(symbol_width=2, max_len=2, word_width=8, groups=2, group_bounds=[0, 1, 2],
                      group_bits=[2, 1]),
}


def baked(cls, name, **kw):
    t = BAKED[name]
    return cls(t.bits, t.max_len, 8, table=t, **kw)


def load_bound(dut, clear: bool) -> int:
    """Cycles a table load may take with its bytes offered back to back: the longest table
    (``4 + 2 L + 2 (2**b + 1)`` bytes), two cycles per code length (a step to it, and one
    more to leave it where it has codes), and for the encoder one per entry cleared and one
    for its last write (the code memory's writes are registered, ``hdl.block_ram``)."""
    b, L = dut._b, dut._L
    n = (1 << b) + 1
    return 4 + 2 * L + 2 * n + 2 * L + ((1 << b) + 1 if clear else 0) + 1


def encoder_invariants(m, enc) -> None:
    """Assert what holds in every reachable state of a ``HuffmanEncoder`` and k-induction
    cannot see from arbitrary register values: the flag registered with stage 2's code length
    agrees with ``len2 <= L + b`` (true at reset, kept by every load of the stage). Proved
    along with the property it helps."""
    m.d.comb += Assert(enc._len_ok2 == (enc._len2 <= enc._code_width()))


class LoadSpec(Elaboratable):
    """``cfg`` bytes offered back to back, arbitrary (data, group, ``last`` anywhere or
    nowhere); the block's other inputs arbitrary, its outputs always taken.

    Asserted: a load (``dut.loading``) lasts at most ``load_bound`` cycles. Covered: a good
    load (error low when it ends and a cycle later), a failed one (the error flag raised when
    it ends or a cycle later: the decoder registers a failure before raising it), two loads
    in a row.
    """

    def __init__(self, dut, sources, sinks, clear):
        self.dut, self.sources, self.sinks, self.clear = dut, sources, sinks, clear

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        after_rst = reset_once(m)
        source(m, dut.cfg, after_rst, "cfg", valid=1)
        for name in self.sources:
            source(m, getattr(dut, name), after_rst, name)
        for name in self.sinks:
            sink(m, getattr(dut, name), after_rst, name, ready=1)
        bound = load_bound(dut, self.clear)
        length = Signal(range(bound + 2))
        with m.If(dut.loading):
            with m.If(length <= bound):
                m.d.sync += length.eq(length + 1)
        with m.Else():
            m.d.sync += length.eq(0)
        m.d.comb += Assert(length <= bound)
        ended = past(m, dut.loading) & ~dut.loading
        ended_before = past(m, ended)
        good = Signal()
        bad = Signal()
        loads = Signal(range(3))
        with m.If(ended):
            m.d.sync += loads.eq(loads + (loads != 2))
        with m.If((ended | ended_before) & dut.error):
            m.d.sync += bad.eq(1)
        with m.If(ended_before & ~dut.error & ~past(m, dut.error)):
            m.d.sync += good.eq(1)
        m.d.comb += [Cover(good), Cover(bad), Cover(loads == 2)]
        return m
