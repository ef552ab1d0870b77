"""Formal proofs of ``hdl.mac_array.MacArray``, the inverse (C from K) and forward (K from C)
projections (``docs/verification.md``).

- Stream rules on ``o_stream`` (k-induction), ``i_stream`` and ``cfg`` assumed to follow them,
  reset free; run-time weights (the ``cfg`` port present).
- Token contract (baked weights): the beats of an arbitrary input pixel are the output beats
  after the earlier pixels' (counted by ``last``), each equal to a naive model of
  ``golden.datapath.mac.matvec``, ``last`` on the pixel's final beat only.
- Latency: with input valid and output ready held (no load), a pixel's first beat is out
  within ``LATENCY`` (the manifest's latency) cycles and the input waits at most
  ``CYCLES_PER_PIXEL`` cycles.
- Loads: any ``cfg`` sequence (``last`` early, on time or never) ends where
  ``docs/mac_array.md`` says (at ``last`` or the ``cfg_beats``-th beat); a load under way
  never stalls ``cfg``; a waiting load starts once the pixels in flight are out; pixels
  resume the cycle after a load.

Latencies and bounds come from the block's own attributes, so the proofs follow changes of
its pipeline.
"""

import numpy as np
import pytest
from amaranth.hdl import Assert, Cover, Elaboratable, Module, Mux, Signal
from sby_harness import check
from stream_props import Token, reset_free, reset_once, sink, source

from hdl.mac_array import MacArray, schedule

WIDTHS = dict(in_width=2, weight_width=2, bias_width=2, mult_width=2, out_width=2)
# (channels_out, channels_in, multipliers): the inverse projection's shape (more outputs,
# one multiplier, 6 cycles per pixel, 1 channel per beat), the forward one's (fewer
# outputs, a whole pixel per cycle, an adder tree, 2 channels per beat) and a count without
# a clean schedule (2 lanes over 3 inputs: the second chunk has one zero-padded lane).
PARAMS = {"inv-c3k2m1": (3, 2, 1), "fwd-k2c4m8": (2, 4, 8), "pad-c2k3m2": (2, 3, 2)}


def make(name, baked=False):
    co, ci, mults = PARAMS[name]
    rows = schedule(co, ci, mults)["rows"]
    weights = None
    if baked:
        rng = np.random.default_rng(sum(PARAMS[name]))
        weights = {"weight": rng.integers(-2, 2, (co, ci)), "bias": rng.integers(-2, 2, co),
                   "mult": rng.integers(1, 4, co), "shift": rng.integers(0, 3, co)}
    return MacArray(co, ci, multipliers=mults, out_group=rows, weights=weights, **WIDTHS)


def reference(dut, x):
    """Output channel values of pixel ``x`` (a view of signed elements): the datapath rule
    written out plainly with the baked constants."""
    c = dut._consts
    lo = 0 if dut._relu else -(1 << (dut._o_w - 1))
    hi = (1 << (dut._o_w - 1)) - 1
    out = []
    for o in range(len(c["bias"])):
        acc = int(c["bias"][o]) + sum(int(c["weight"][o][j]) * x[j] for j in range(len(x)))
        shift = int(c["shift"][o])
        rounded = (acc * int(c["mult"][o]) + ((1 << shift) >> 1)) >> shift
        out.append(Mux(rounded < lo, lo, Mux(rounded > hi, hi, rounded)))
    return out


class StreamSpec(Elaboratable):
    def __init__(self, dut):
        self.dut = dut

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        after_rst = reset_free(m)
        source(m, dut.i_stream, after_rst, "i")
        source(m, dut.cfg, after_rst, "cfg")
        sink(m, dut.o_stream, after_rst, "o")
        return m


class TokenSpec(Elaboratable):
    """Contract under arbitrary stalls (baked weights), or with ``held`` the latency bound."""

    def __init__(self, dut, held=False):
        self.dut, self.held = dut, held

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        after_rst = reset_once(m)
        i, o = dut.i_stream, dut.o_stream
        n = dut.LATENCY
        flow = dict(valid=1) if self.held else {}
        source(m, i, after_rst, "i", **flow)
        sink(m, o, after_rst, "o", **(dict(ready=1) if self.held else {}))
        if "cfg" in dut.signature.members:
            m.d.comb += dut.cfg.valid.eq(0)
        o_x = o.valid & o.ready
        tok = Token(m, i.payload.as_value(), i.valid & i.ready, o_x, o_x & o.payload.last,
                    capacity=n + 2, age_limit=n)
        if self.held:
            first_out = Signal()
            with m.If(tok.ours):
                m.d.sync += first_out.eq(1)
            m.d.comb += Assert(~tok.pending | first_out | (tok.age <= n))
            wait = Signal(range(dut.CYCLES_PER_PIXEL + 2))
            with m.If(i.valid & ~i.ready):
                m.d.sync += wait.eq(wait + 1)
            with m.Else():
                m.d.sync += wait.eq(0)
            m.d.comb += Assert(wait <= dut.CYCLES_PER_PIXEL)
            m.d.comb += Cover(tok.done)
            return m
        group = len(o.payload.data)
        beats = dut._co // group
        want = reference(dut, i.payload.shape()(tok.value))
        beat = Signal(range(beats + 1))
        with m.If(tok.ours):
            m.d.sync += beat.eq(beat + 1)
            m.d.comb += Assert(beat < beats)
            m.d.comb += Assert(o.payload.last == (beat == beats - 1))
            for k in range(beats):
                with m.If(beat == k):
                    for j in range(group):
                        m.d.comb += Assert(o.payload.data[j] == want[k * group + j])
        stalled = Signal()
        with m.If(tok.pending & o.valid & ~o.ready):
            m.d.sync += stalled.eq(1)
        m.d.comb += Cover(tok.done & stalled)
        return m


class LoadSpec(Elaboratable):
    """Arbitrary pixels and ``cfg`` beats (rules only), output ready held."""

    def __init__(self, dut):
        self.dut = dut

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        after_rst = reset_once(m)
        i, cfg = dut.i_stream, dut.cfg
        source(m, i, after_rst, "i")
        source(m, cfg, after_rst, "cfg")
        sink(m, dut.o_stream, after_rst, "o", ready=1)
        total = dut.cfg_beats
        # The protocol of docs/mac_array.md: a load ends at ``last`` or its final beat.
        beats = Signal(range(total + 1))
        ends = Signal(range(4))
        early = Signal()
        full = Signal()
        cfg_x = cfg.valid & cfg.ready
        end = cfg_x & (cfg.payload.last | (beats == total - 1))
        with m.If(end):
            m.d.sync += [beats.eq(0), ends.eq(Mux(ends == 3, 3, ends + 1))]
            with m.If(beats != total - 1):
                m.d.sync += early.eq(1)
            with m.Else():
                m.d.sync += full.eq(1)
        with m.Elif(cfg_x):
            m.d.sync += beats.eq(beats + 1)
        # A load under way takes every beat offered.
        with m.If((beats != 0) & cfg.valid):
            m.d.comb += Assert(cfg.ready)
        # A waiting load starts once the pixels in flight are out.
        limit = dut.LATENCY + dut.CYCLES_PER_PIXEL + 1
        wait = Signal(range(limit + 2))
        with m.If(cfg.valid & ~cfg.ready):
            m.d.sync += wait.eq(wait + 1)
        with m.Else():
            m.d.sync += wait.eq(0)
        m.d.comb += Assert(wait <= limit)
        # The cycle after a load's end, a pixel is taken unless the next load is offered.
        ended = Signal()
        m.d.sync += ended.eq(end)
        with m.If(ended & ~cfg.valid):
            m.d.comb += Assert(i.ready)
        # No pixel enters during a load.
        with m.If(beats != 0):
            m.d.comb += Assert(~i.ready)
        pixels = Signal()
        with m.If(i.valid & i.ready & (ends != 0)):
            m.d.sync += pixels.eq(1)
        m.d.comb += Cover((ends >= 2) & early & full & pixels)
        m.d.comb += Cover(wait > 1)
        return m


def bmc_depth(dut):
    """Two whole pixels through the array with nothing stalled."""
    return 2 * dut.CYCLES_PER_PIXEL + dut.LATENCY + 2


@pytest.mark.parametrize("name", PARAMS)
def test_stream_rules(name):
    dut = make(name)
    # The cover needs a pixel through the whole pipeline (after a load), then a stalled
    # cycle and a transfer: the array's own latency plus the margin it needed at LATENCY 9.
    check(StreamSpec(dut), f"mac-stream-{name}", "prove", 3,
          cover_depth=dut.LATENCY + dut.CYCLES_PER_PIXEL + 7)


@pytest.mark.parametrize("name", PARAMS)
def test_token_contract(name):
    dut = make(name, baked=True)
    check(TokenSpec(dut), f"mac-token-{name}", "bmc", bmc_depth(dut))


@pytest.mark.parametrize("name", PARAMS)
def test_latency(name):
    dut = make(name)
    check(TokenSpec(dut, held=True), f"mac-latency-{name}", "bmc", bmc_depth(dut))


@pytest.mark.parametrize("name", PARAMS)
def test_loads(name):
    dut = make(name)
    # Two whole loads from reset.
    check(LoadSpec(dut), f"mac-loads-{name}", "bmc", 2 * dut.cfg_beats + 3)
