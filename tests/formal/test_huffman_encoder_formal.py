"""Formal proofs of ``hdl.huffman_encoder.HuffmanEncoder`` (``docs/verification.md``).

- Stream rules on ``o_stream`` and ``o_count`` (k-induction), inputs assumed to follow them,
  reset free; run-time tables.
- Token contract (baked tables): the bits of an arbitrary symbol are its code at its bit
  offset in its tile's words, MSB first; the tile's final word is flagged ``last`` and
  zero-padded, and ``o_count`` gives the tile's bits (a naive model of
  ``golden.huffman.encode_tile``).
- Latency: with input valid and output ready held, a symbol's bits leave within
  ``LATENCY + buffer_bits // W + 1 + W`` cycles (the flush of the tile before, then enough
  codes after it to fill a word), and the input waits at most ``buffer_bits // W + 2`` cycles.
- Loads: any ``cfg`` byte sequence ends loaded or in error within ``coders.load_bound``.
"""

import pytest
from amaranth.asserts import AnySeq
from amaranth.hdl import Assert, Assume, Cover, Elaboratable, Module, Mux, Signal
from coders import BAKED, RUNTIME, LoadSpec, baked, load_bound
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
        return m


def _lookup(m, values, index, width, name):
    sig = Signal(width, name=name)
    with m.Switch(index):
        for k, v in enumerate(values):
            with m.Case(k):
                m.d.comb += sig.eq(int(v))
    return sig


class TokenSpec(Elaboratable):
    """Contract under arbitrary stalls, or with ``held`` the latency bound (baked table)."""

    def __init__(self, dut, table, held=False):
        self.dut, self.table, self.held = dut, table, held

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        after_rst = reset_once(m)
        i, o, cnt = dut.i_stream, dut.o_stream, dut.o_count
        W = len(o.payload.data)
        t = self.table
        flow = dict(ready=1) if self.held else {}
        source(m, i, after_rst, "i", **(dict(valid=1) if self.held else {}))
        sink(m, o, after_rst, "o", **flow)
        sink(m, cnt, after_rst, "count", **flow)
        # Empty beats only close tiles (an empty beat without last does nothing).
        m.d.comb += Assume(~i.payload.empty | i.payload.last)
        m.d.comb += Assert(~dut.error)

        n = 1 << t.bits
        code = _lookup(m, t.enc_code[:n], i.payload.symbol, 32, "code")
        bits = _lookup(m, t.enc_len[:n], i.payload.symbol, 6, "bits")
        i_x = i.valid & i.ready
        o_x = o.valid & o.ready
        c_x = cnt.valid & cnt.ready
        # Bits so far in the input tile; tiles in, tiles with words out, count beats out.
        pos = Signal(COUNT_WIDTH)
        end = Signal(COUNT_WIDTH)
        m.d.comb += end.eq(pos + Mux(i.payload.empty, 0, bits))
        tiles_in = Signal(3)      # tiles with at least one bit
        counts_in = Signal(3)     # every tile (one count beat each)
        tiles_out = Signal(3)
        counts_out = Signal(3)
        words = Signal(COUNT_WIDTH)
        with m.If(i_x):
            m.d.sync += pos.eq(Mux(i.payload.last, 0, end))
            with m.If(i.payload.last):
                m.d.sync += [counts_in.eq(counts_in + 1), tiles_in.eq(tiles_in + (end != 0))]
        with m.If(o_x):
            m.d.sync += words.eq(Mux(o.payload.last, 0, words + 1))
            with m.If(o.payload.last):
                m.d.sync += tiles_out.eq(tiles_out + 1)
        with m.If(c_x):
            m.d.sync += counts_out.eq(counts_out + 1)

        # The tracked symbol: its tile, bit offset, code and length; its tile's total bits.
        pick = Signal()
        m.d.comb += pick.eq(AnySeq(1))
        taken, done, closed = Signal(), Signal(), Signal()
        t_tile, t_count = Signal(3), Signal(3)
        t_pos, t_total = Signal(COUNT_WIDTH), Signal(COUNT_WIDTH)
        t_code, t_bits = Signal(32), Signal(6)
        start = i_x & pick & ~taken & ~i.payload.empty
        with m.If(start):
            m.d.sync += [taken.eq(1), t_tile.eq(tiles_in), t_count.eq(counts_in),
                         t_pos.eq(pos), t_code.eq(code), t_bits.eq(bits)]
        with m.If(i_x & i.payload.last & (start | (taken & ~closed))):
            m.d.sync += [closed.eq(1), t_total.eq(end)]

        first = words * W
        ours = taken & (tiles_out == t_tile)
        with m.If(o_x & ours):
            with m.If(first + W >= t_pos + t_bits):
                m.d.sync += done.eq(1)
        with m.If(o_x & ours & (not self.held)):
            for j in range(W):
                g = Signal(COUNT_WIDTH, name=f"g{j}")    # bit j of the word, MSB first
                k = Signal(COUNT_WIDTH, name=f"k{j}")    # its place in the tracked code
                sh = Signal(6, name=f"sh{j}")
                m.d.comb += [g.eq(first + j), k.eq(g - t_pos), sh.eq(t_bits - 1 - k)]
                with m.If((g >= t_pos) & (k < t_bits)):
                    want = (t_code >> sh)[0]
                    m.d.comb += Assert(o.payload.data[W - 1 - j] == want)
                with m.If(closed & (g >= t_total)):
                    m.d.comb += Assert(~o.payload.data[W - 1 - j])
            m.d.comb += Assert(o.payload.last == (closed & (first + W >= t_total)))
        with m.If(c_x & taken & (counts_out == t_count)):
            m.d.comb += Assert(closed & (cnt.payload.nbits == t_total))

        pending = taken & ~done
        if self.held:
            # The pipeline, the flush of the tile before (a full buffer), then W one-bit codes
            # after it until a word is full.
            limit = dut.LATENCY + dut.buffer_bits // W + 1 + W
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
            m.d.comb += Cover(done)
        else:
            stalled = Signal()
            with m.If(pending & o.valid & ~o.ready):
                m.d.sync += stalled.eq(1)
            m.d.comb += Cover(done & stalled & (t_pos >= W))
        return m


def depth(table, W=8):
    """Two whole tiles of two longest codes each, with their flushes."""
    longest = int(table.enc_len.max())
    return 2 * (2 + (2 * longest + W - 1) // W + HuffmanEncoder.LATENCY + 3)


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
    check(TokenSpec(baked(HuffmanEncoder, name, count_width=COUNT_WIDTH), t, held=True),
          f"enc-latency-{name}", "bmc", depth(t))


@pytest.mark.parametrize("name", RUNTIME)
def test_loads(name):
    dut = runtime(name)
    check(LoadSpec(dut, ["i_stream"], ["o_stream", "o_count"], clear=True),
          f"enc-loads-{name}", "bmc", 2 * load_bound(dut, clear=True) + 2)
