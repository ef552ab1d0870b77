"""Formal proofs of ``hdl.huffman_encoder.HuffmanEncoder`` (``docs/verification.md``).

- Stream rules on ``o_stream`` and ``o_count`` (k-induction), inputs assumed to follow them,
  reset free; run-time tables.
- Latency: with input valid and output ready held, a symbol's bits leave within
  ``latency_bound`` cycles (the pipeline, then enough codes after it to fill a word and
  release it), and the input waits at most ``buffer_bits // W + 2`` cycles.
- Loads: any ``cfg`` byte sequence ends loaded or in error within ``coders.load_bound``.
The token contract is the encoder -> decoder round trip (``test_huffman_roundtrip_formal.py``).
"""

import pytest
from amaranth.asserts import AnySeq
from amaranth.hdl import Assert, Assume, Cover, Elaboratable, Module, Mux, Signal
from coders import BAKED, RUNTIME, LoadSpec, baked, encoder_invariants, load_bound
from sby_harness import check
from stream_props import reset_free, reset_once, sink, source

from hdl.huffman_encoder import HuffmanEncoder

COUNT_WIDTH = 8


def runtime(name):
    return HuffmanEncoder(**RUNTIME[name], count_width=COUNT_WIDTH)


class StreamSpec(Elaboratable):
    def __init__(self, dut):
        self.dut = dut

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        after_rst = reset_free(m)
        source(m, dut.i_stream, after_rst, "i")
        if "cfg" in dut.signature.members:
            source(m, dut.cfg, after_rst, "cfg")
        sink(m, dut.o_stream, after_rst, "o")
        sink(m, dut.o_count, after_rst, "count")
        encoder_invariants(m, dut)
        return m


def _lookup(m, values, index, width, name):
    sig = Signal(width, name=name)
    with m.Switch(index):
        for k, v in enumerate(values):
            with m.Case(k):
                m.d.comb += sig.eq(int(v))
    return sig


def latency_bound(dut):
    """Cycles from a symbol's handshake to the word holding its last bit, output always ready:
    the pipeline to a word (``LATENCY``); then up to W one-bit codes after the symbol, W - 1
    to fill its word and one more to release a word that ends exactly at a code's end (the
    packer holds it until it knows whether the tile goes on); and one more cycle, the tile
    end's second step of a ``last`` beat met on the way. One lower fails (step 19, b2L3-esc)."""
    return dut.LATENCY + dut._W + 1


class LatencySpec(Elaboratable):
    """Input valid and outputs ready held (baked table): an arbitrary symbol's last bit leaves
    within ``latency_bound`` cycles, and the input is never refused for long."""

    def __init__(self, dut, table):
        self.dut, self.table = dut, table

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        after_rst = reset_once(m)
        i, o = dut.i_stream, dut.o_stream
        W = len(o.payload.data)
        source(m, i, after_rst, "i", valid=1)
        sink(m, o, after_rst, "o", ready=1)
        sink(m, dut.o_count, after_rst, "count", ready=1)
        # Empty beats only close tiles (an empty beat without last does nothing).
        m.d.comb += Assume(~i.payload.empty | i.payload.last)
        m.d.comb += Assert(~dut.error)

        bits = _lookup(m, self.table.enc_len[:1 << self.table.bits], i.payload.symbol, 6,
                       "bits")
        i_x = i.valid & i.ready
        o_x = o.valid & o.ready
        # Bits so far in the input tile; tiles with at least one bit in, tiles out; words out
        # in the current output tile.
        pos = Signal(COUNT_WIDTH)
        end = Signal(COUNT_WIDTH)
        m.d.comb += end.eq(pos + Mux(i.payload.empty, 0, bits))
        tiles_in = Signal(3)
        tiles_out = Signal(3)
        words = Signal(COUNT_WIDTH)
        with m.If(i_x):
            m.d.sync += pos.eq(Mux(i.payload.last, 0, end))
            with m.If(i.payload.last):
                m.d.sync += tiles_in.eq(tiles_in + (end != 0))
        with m.If(o_x):
            m.d.sync += words.eq(Mux(o.payload.last, 0, words + 1))
            with m.If(o.payload.last):
                m.d.sync += tiles_out.eq(tiles_out + 1)

        # The tracked symbol: its tile and the end of its code in the tile's bits; done once
        # the word holding that end has gone out.
        taken, done = Signal(), Signal()
        t_tile = Signal(3)
        t_end = Signal(COUNT_WIDTH)
        start = i_x & AnySeq(1) & ~taken & ~i.payload.empty
        with m.If(start):
            m.d.sync += [taken.eq(1), t_tile.eq(tiles_in), t_end.eq(end)]
        with m.If(o_x & taken & (tiles_out == t_tile) & (words * W + W >= t_end)):
            m.d.sync += done.eq(1)

        pending = taken & ~done
        limit = latency_bound(dut)
        age = Signal(range(limit + 2))
        with m.If(start):
            m.d.sync += age.eq(1)
        with m.Elif(pending & (age <= limit)):
            m.d.sync += age.eq(age + 1)
        m.d.comb += Assert(~pending | (age <= limit))
        wait_limit = dut.buffer_bits // W + 2
        wait = Signal(range(wait_limit + 2))
        with m.If(i.valid & ~i.ready & (wait <= wait_limit)):
            m.d.sync += wait.eq(wait + 1)
        with m.Elif(~(i.valid & ~i.ready)):
            m.d.sync += wait.eq(0)
        m.d.comb += Assert(wait <= wait_limit)
        m.d.comb += Cover(done & (age > W))     # held up by a flush and a word to fill
        return m


# Run-time tables (the cover needs a table loaded first) and a baked one.
STREAM = {"b2L3W8": lambda: runtime("b2L3W8"),
          "b3L5-full": lambda: baked(HuffmanEncoder, "b3L5-full", count_width=COUNT_WIDTH)}


@pytest.mark.parametrize("name", STREAM)
def test_stream_rules(name):
    dut = STREAM[name]()
    cover = 12 + (load_bound(dut, clear=True) if "cfg" in dut.signature.members else 0)
    check(StreamSpec(dut), f"enc-stream-{name}", "prove", 3, cover_depth=cover)


@pytest.mark.parametrize("name", BAKED)
def test_latency(name):
    t = BAKED[name]
    dut = baked(HuffmanEncoder, name, count_width=COUNT_WIDTH)
    # The bound can only be exceeded from step latency_bound + 2 on (the first pick is in
    # step 1): 4 steps more. A bound one lower fails in step 19 (b2L3-esc); each step past
    # 20 costs several times the one before.
    check(LatencySpec(dut, t), f"enc-latency-{name}", "bmc", latency_bound(dut) + 4)


@pytest.mark.parametrize("name", RUNTIME)
def test_loads(name):
    dut = runtime(name)
    check(LoadSpec(dut, ["i_stream"], ["o_stream", "o_count"], clear=True),
          f"enc-loads-{name}", "bmc", 2 * load_bound(dut, clear=True) + 2)
