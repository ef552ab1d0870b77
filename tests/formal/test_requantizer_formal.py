"""Formal proofs of ``hdl.requantizer.Requantizer`` (``docs/verification.md``).

- Stream rules on ``o_stream`` (k-induction) with ``i_stream`` assumed to follow them and the
  reset free.
- Token contract: an arbitrary input beat comes out as the beat at the same position, equal
  to a naive model of the rule in ``docs/datapath.md`` (no loss, duplication, reordering).
- Latency: with input valid and output ready held, every beat is out within the block's
  ``LATENCY`` (the manifest's latency) cycles.
"""

import pytest
from amaranth.hdl import Assert, Cover, Elaboratable, Module, Mux, Signal, signed
from sby_harness import check
from stream_props import Token, reset_free, reset_once, sink, source

from hdl.requantizer import Requantizer

PARAMS = {
    "a6m3o3": dict(acc_width=6, mult_width=3, out_width=3),
    "a5m2o2-relu": dict(acc_width=5, mult_width=2, out_width=2, relu=True),
}


def reference(payload, out_width, relu):
    """``clip((acc * mult + 2**shift / 2) >> shift, lo, hi)`` written out plainly."""
    prod = payload.acc * payload.mult
    rounded = (prod + ((1 << payload.shift) >> 1)) >> payload.shift
    lo = 0 if relu else -(1 << (out_width - 1))
    hi = (1 << (out_width - 1)) - 1
    return Mux(rounded < lo, lo, Mux(rounded > hi, hi, rounded))


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
    """Contract (arbitrary stalls) or, with ``held``, the latency bound."""

    def __init__(self, dut, params, held=False):
        self.dut, self.params, self.held = dut, params, held

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        after_rst = reset_once(m)
        i, o = dut.i_stream, dut.o_stream
        n = dut.LATENCY
        if self.held:
            source(m, i, after_rst, "i", valid=1)
            sink(m, o, after_rst, "o", ready=1)
        else:
            source(m, i, after_rst, "i")
            sink(m, o, after_rst, "o")
        tok = Token(m, i.payload.as_value(), i.valid & i.ready, o.valid & o.ready,
                    o.valid & o.ready, capacity=n + 1, age_limit=n)
        if self.held:
            m.d.comb += Assert(~tok.pending | (tok.age <= n))
            m.d.comb += Cover(tok.done)
        else:
            width = self.params["out_width"]
            want = Signal(signed(width))
            m.d.comb += want.eq(reference(i.payload.shape()(tok.value), width,
                                          self.params.get("relu", False)))
            with m.If(tok.ours):
                m.d.comb += [Assert(o.payload.data == want),
                             Assert(o.payload.last == i.payload.shape()(tok.value).last)]
            stalled = Signal()
            with m.If(tok.pending & o.valid & ~o.ready):
                m.d.sync += stalled.eq(1)
            m.d.comb += Cover(tok.done & stalled)
        return m


@pytest.mark.parametrize("name", PARAMS)
def test_stream_rules(name):
    # The cover needs a beat through the whole pipeline, then a stalled cycle and a transfer.
    check(StreamSpec(Requantizer(**PARAMS[name])), f"requantizer-stream-{name}",
          "prove", 3, cover_depth=Requantizer.LATENCY + 3)


@pytest.mark.parametrize("name", PARAMS)
def test_token_contract(name):
    lat = Requantizer.LATENCY
    check(TokenSpec(Requantizer(**PARAMS[name]), PARAMS[name]),
          f"requantizer-token-{name}", "bmc", 2 * lat + 3)


@pytest.mark.parametrize("name", PARAMS)
def test_latency(name):
    lat = Requantizer.LATENCY
    check(TokenSpec(Requantizer(**PARAMS[name]), PARAMS[name], held=True),
          f"requantizer-latency-{name}", "bmc", 2 * lat + 3)
