"""Formal proofs of ``hdl.huffman_decoder.HuffmanDecoder`` (``docs/verification.md``).

- Stream rules on ``o_stream`` (k-induction), inputs assumed to follow them, reset free.
- Liveness on arbitrary bits (baked tables): with words offered back to back (``AnySeq``
  data and ``last``) and ``o_stream.ready`` held, inside a tile the decoder emits a symbol or
  raises its error at least every ``L + W`` cycles, and it never refuses a word for more than
  ``LATENCY`` cycles without emitting.
- Loads: any ``cfg`` byte sequence ends loaded or in error within ``coders.load_bound``.
The token contract is the encoder -> decoder round trip (``test_huffman_roundtrip_formal.py``).
"""

import pytest
from amaranth.hdl import Assert, Cover, Elaboratable, Module, Signal
from coders import BAKED, RUNTIME, LoadSpec, baked, load_bound
from sby_harness import check
from stream_props import reset_free, reset_once, sink, source

from hdl.huffman_decoder import HuffmanDecoder

COUNT_WIDTH = 4


def runtime(name):
    return HuffmanDecoder(**RUNTIME[name], count_width=COUNT_WIDTH)


def baked_decoder(name):
    return baked(HuffmanDecoder, name, count_width=COUNT_WIDTH)


class StreamSpec(Elaboratable):
    def __init__(self, dut):
        self.dut = dut

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        after_rst = reset_free(m)
        source(m, dut.i_count, after_rst, "count")
        source(m, dut.i_stream, after_rst, "i")
        if "cfg" in dut.signature.members:
            source(m, dut.cfg, after_rst, "cfg")
        sink(m, dut.o_stream, after_rst, "o")
        return m


class LivenessSpec(Elaboratable):
    def __init__(self, dut):
        self.dut = dut

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        after_rst = reset_once(m)
        cnt, i, o = dut.i_count, dut.i_stream, dut.o_stream
        source(m, cnt, after_rst, "count")
        source(m, i, after_rst, "i", valid=1)
        sink(m, o, after_rst, "o", ready=1)
        L, W = dut._L, dut._W
        o_x = o.valid & o.ready
        # Inside a tile: from a header with a non-zero count to its final symbol or an error.
        in_tile = Signal()
        last_in = Signal()          # the tile's word flagged last was taken
        with m.If(cnt.valid & cnt.ready):
            m.d.sync += [in_tile.eq(cnt.payload.count != 0), last_in.eq(0)]
        with m.Elif(o_x & o.payload.last):
            m.d.sync += in_tile.eq(0)
        with m.If(i.valid & i.ready & i.payload.last):
            m.d.sync += last_in.eq(1)
        live = in_tile & ~dut.error
        quiet = Signal(range(L + W + 2))
        with m.If(live & ~o_x & (quiet <= L + W)):
            m.d.sync += quiet.eq(quiet + 1)
        with m.Elif(~live | o_x):
            m.d.sync += quiet.eq(0)
        m.d.comb += Assert(quiet <= L + W)
        refused = Signal(range(dut.LATENCY + 2))
        with m.If(live & ~last_in & ~i.ready & ~o_x & (refused <= dut.LATENCY)):
            m.d.sync += refused.eq(refused + 1)
        with m.Elif(~(live & ~last_in & ~i.ready)):
            m.d.sync += refused.eq(0)
        with m.If(o_x):
            m.d.sync += refused.eq(0)
        m.d.comb += Assert(refused <= dut.LATENCY)
        tiles = Signal(range(3))
        with m.If(o_x & o.payload.last & (tiles != 2)):
            m.d.sync += tiles.eq(tiles + 1)
        m.d.comb += [Cover(tiles == 2), Cover(dut.error & (tiles != 0)),
                     Cover(refused != 0)]
        return m


STREAM = {"b2L3W8": lambda: runtime("b2L3W8"), "b3L5-full": lambda: baked_decoder("b3L5-full")}


@pytest.mark.parametrize("name", STREAM)
def test_stream_rules(name):
    dut = STREAM[name]()
    cover = 12 + (load_bound(dut, clear=False) if "cfg" in dut.signature.members else 0)
    check(StreamSpec(dut), f"dec-stream-{name}", "prove", 3, cover_depth=cover)


@pytest.mark.parametrize("name", BAKED)
def test_liveness(name):
    dut = baked_decoder(name)
    # Two tiles of up to L + W quiet cycles per symbol, a header and a tail each.
    check(LivenessSpec(dut), f"dec-live-{name}", "bmc", 2 * (dut._L + dut._W) + 6)


@pytest.mark.parametrize("name", RUNTIME)
def test_loads(name):
    dut = runtime(name)
    check(LoadSpec(dut, ["i_count", "i_stream"], ["o_stream"], clear=False),
          f"dec-loads-{name}", "bmc", 2 * load_bound(dut, clear=False) + 2)
