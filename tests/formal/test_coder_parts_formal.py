"""Formal proofs of ``hdl.coder_parts.SkidBuffer`` (``docs/verification.md``).

- Stream rules on ``o_stream`` (k-induction), ``i_stream`` assumed to follow them, reset free.
- Token contract: an arbitrary input beat comes out unchanged as the beat at the same position
  (no loss, duplication or reordering), at most two beats inside, under arbitrary stalls.
- Registered ready: ``i_stream.ready`` is a function of the state alone (two copies of the
  buffer in the same state, with different ``o_stream.ready`` and ``i_stream.valid``, agree).
- Throughput: with ``o_stream.ready`` held, ``i_stream.ready`` never falls.
"""

import pytest
from amaranth.hdl import Assert, Cover, Elaboratable, Module, Signal
from sby_harness import check
from stream_props import Token, any_seq, reset_free, reset_once, sink, source

from hdl.coder_parts import SkidBuffer

WIDTHS = [1, 3]


class StreamSpec(Elaboratable):
    def __init__(self, dut):
        self.dut = dut

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        after_rst = reset_free(m)
        source(m, dut.i_stream, after_rst, "i")
        sink(m, dut.o_stream, after_rst, "o")
        return m


class TokenSpec(Elaboratable):
    def __init__(self, dut, held=False):
        self.dut, self.held = dut, held

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        after_rst = reset_once(m)
        i, o = dut.i_stream, dut.o_stream
        if self.held:
            source(m, i, after_rst, "i")
            sink(m, o, after_rst, "o", ready=1)
            with m.If(~after_rst):
                m.d.comb += Assert(i.ready)
        else:
            source(m, i, after_rst, "i")
            sink(m, o, after_rst, "o")
        tok = Token(m, i.payload, i.valid & i.ready, o.valid & o.ready, o.valid & o.ready,
                    capacity=2, age_limit=8)
        with m.If(tok.ours):
            m.d.comb += Assert(o.payload == tok.value)
        stalled = Signal()
        with m.If(tok.pending & o.valid & ~o.ready):
            m.d.sync += stalled.eq(1)
        m.d.comb += Cover(tok.done & (stalled | self.held))
        return m


class ReadySpec(Elaboratable):
    """Two buffers, equal state by assumption at the start (same reset), driven with the same
    input beats but independent ``o_stream.ready`` / ``i_stream.valid`` in the cycle compared:
    ``i_stream.ready`` and ``o_stream.valid`` / ``payload`` agree in every cycle where the
    states agree."""

    def __init__(self, width):
        self.width = width

    def elaborate(self, platform):
        m = Module()
        m.submodules.a = a = SkidBuffer(self.width)
        m.submodules.b = b = SkidBuffer(self.width)
        after_rst = reset_once(m)
        source(m, a.i_stream, after_rst, "ia")
        sink(m, a.o_stream, after_rst, "oa")
        # b follows a's beats and stalls, except in the cycle examined, where its valid and
        # ready are free: its outputs in that cycle must still equal a's.
        free = any_seq(m, 1, "free")
        m.d.comb += [
            b.i_stream.payload.eq(a.i_stream.payload),
            b.i_stream.valid.eq(a.i_stream.valid),
            b.o_stream.ready.eq(a.o_stream.ready),
        ]
        with m.If(free):
            m.d.comb += [b.i_stream.valid.eq(any_seq(m, 1, "vb")),
                         b.o_stream.ready.eq(any_seq(m, 1, "rb"))]
        diverged = Signal()
        with m.If(free):
            m.d.sync += diverged.eq(1)
        with m.If(~diverged):
            m.d.comb += [Assert(a.i_stream.ready == b.i_stream.ready),
                         Assert(a.o_stream.valid == b.o_stream.valid),
                         Assert(a.o_stream.payload == b.o_stream.payload)]
        m.d.comb += Cover(free & ~a.i_stream.ready)
        return m


@pytest.mark.parametrize("width", WIDTHS)
def test_skid_stream_rules(width):
    check(StreamSpec(SkidBuffer(width)), f"skid-stream-w{width}", "prove", 3, cover_depth=6)


@pytest.mark.parametrize("width", WIDTHS)
def test_skid_token_contract(width):
    check(TokenSpec(SkidBuffer(width)), f"skid-token-w{width}", "bmc", 12)


def test_skid_full_rate():
    check(TokenSpec(SkidBuffer(2), held=True), "skid-rate", "bmc", 10)


def test_skid_ready_registered():
    check(ReadySpec(2), "skid-ready", "bmc", 8)
