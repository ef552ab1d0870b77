"""Token contract of the coders: ``HuffmanEncoder`` -> ``HuffmanDecoder`` round trip
(``docs/verification.md``).

Both blocks bake the same small table; the encoder's words go straight into the decoder,
tiles of ``SYMBOLS`` symbols (``last`` on every ``SYMBOLS``-th), the decoder's count header
always offered. An arbitrary symbol taken by the encoder (any position, any value, any
stalls on the encoder's input and the decoder's output) comes out of the decoder as the
symbol at the same position, with ``first``/``last`` at its place in the tile, and neither
block raises its error. So the encoder's bits decode to what went in: nothing lost,
duplicated or reordered.
"""

import pytest
from amaranth.hdl import Assert, Assume, Cat, Cover, Elaboratable, Module, Mux, Signal
from coders import BAKED, baked
from sby_harness import check
from stream_props import Token, reset_once, sink, source

from hdl.huffman_decoder import HuffmanDecoder
from hdl.huffman_encoder import HuffmanEncoder

SYMBOLS = 2


class RoundTripSpec(Elaboratable):
    def __init__(self, name):
        self.enc = baked(HuffmanEncoder, name, count_width=8)
        self.dec = baked(HuffmanDecoder, name, count_width=4)

    def elaborate(self, platform):
        m = Module()
        m.submodules.enc = enc = self.enc
        m.submodules.dec = dec = self.dec
        after_rst = reset_once(m)
        i, o = enc.i_stream, dec.o_stream
        source(m, i, after_rst, "i")
        col = Signal(range(SYMBOLS))
        i_x = i.valid & i.ready
        tile = Signal(2)
        with m.If(i_x):
            m.d.sync += col.eq(Mux(col == SYMBOLS - 1, 0, col + 1))
            with m.If(col == SYMBOLS - 1):
                m.d.sync += tile.eq(tile + (tile != 3))
        m.d.comb += Assume(~i.payload.empty & (i.payload.last == (col == SYMBOLS - 1)))
        w = dec.i_stream
        m.d.comb += [w.valid.eq(enc.o_stream.valid), enc.o_stream.ready.eq(w.ready),
                     w.payload.data.eq(enc.o_stream.payload.data),
                     w.payload.last.eq(enc.o_stream.payload.last),
                     enc.o_count.ready.eq(1),
                     dec.i_count.valid.eq(1), dec.i_count.payload.count.eq(SYMBOLS)]
        sink(m, o, after_rst, "o")
        m.d.comb += Assert(~enc.error & ~dec.error)
        capacity = enc.buffer_bits + dec.buffer_bits + 8
        o_x = o.valid & o.ready
        tok = Token(m, Cat(i.payload.symbol, col, tile), i_x, o_x, o_x, capacity=capacity,
                    age_limit=4 * capacity)
        b = len(i.payload.symbol)
        t_col = tok.value[b:b + len(col)]
        t_tile = tok.value[b + len(col):]
        with m.If(tok.ours):
            m.d.comb += [Assert(o.payload.symbol == tok.value[:b]),
                         Assert(o.payload.first == (t_col == 0)),
                         Assert(o.payload.last == (t_col == SYMBOLS - 1))]
        # The final symbol of the second tile.
        m.d.comb += Cover(tok.done & (t_col == SYMBOLS - 1) & (t_tile == 1))
        return m


@pytest.mark.parametrize("name", BAKED)
def test_round_trip(name):
    # Depth 16 at encoder and decoder latencies of 3: the cover (the second tile's final
    # symbol decoded) was first reached in step 15 (cover mode), so two whole tiles fit; each
    # cycle of coder latency beyond those 3 delays it by one step. Each further step costs
    # several times the one before (step 19 took a minute).
    depth = 16 + (HuffmanEncoder.LATENCY - 3) + (HuffmanDecoder.LATENCY - 3)
    check(RoundTripSpec(name), f"roundtrip-{name}", "bmc", depth)
