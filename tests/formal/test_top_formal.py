"""Formal proofs of ``hdl.top.Compressor`` and ``hdl.top.Decompressor`` (``docs/verification.md``).

- Stream rules on every AXI4-Stream output (k-induction), every input (pixels, words, counts,
  weights, tables) assumed to follow them, reset free; run-time constants.
- Progress (baked constants): with every input offered back to back (arbitrary data and
  ``tlast``) and every output ready, the compressor takes a pixel at least every
  ``cycles_per_pixel`` plus one flush cycles and emits a word at least every ``progress``
  cycles once it has taken a pixel; inside a tile without error, the decompressor emits a
  beat at least every ``K (L + W) + 3 + LATENCY`` cycles (the decoder's bound per symbol,
  then the MAC array's latency from the manifest).
"""

import re

import numpy as np
import pytest
from amaranth.hdl import Assert, Cat, Cover, Elaboratable, Module, Mux, Signal
from coders import T_ESC, encoder_invariants, load_bound
from sby_harness import check
from stream_props import Axi, Token, reset_free, reset_once, sink, source
from test_mac_array_formal import reference

from hdl.huffman_decoder import HuffmanDecoder
from hdl.huffman_encoder import HuffmanEncoder
from hdl.top import Compressor, Decompressor

WIDTHS = dict(weight_width=2, bias_width=2, mult_width=2, max_len=3, word_width=8)
# (C, K, M, group bounds, group bits): one group, a pixel per cycle; two groups, one
# multiplier (C * K cycles per pixel).
PARAMS = {"c2k2m2": (2, 2, 2, None, [2]), "c3k2m1-g2": (3, 2, 1, [0, 1, 2], [2, 2])}


def consts(co, ci, seed):
    rng = np.random.default_rng(seed)
    return {"weight": rng.integers(-2, 2, (co, ci)), "bias": rng.integers(-2, 2, co),
            "mult": rng.integers(1, 4, co), "shift": rng.integers(0, 3, co)}


def rl_table():
    """A 2-bit run-length table with L = 3 (runs of 1 and 2 zeros, values, escape)."""
    from golden.codec.runlength import build_rl_table
    return build_rl_table(np.array([0, 0, 0, 1, -1, 0, 0, 0, 0, 1, 0, 0, -2, 0, 0, 0] * 4),
                          2, 3, run_max=2)


def make(cls, name, baked=False, table=False, run_length=False):
    """The top at point ``name``: constants loaded at run time, or ``baked`` (weights and
    tables), or only the ``table`` baked; ``run_length``: run-length tables (a coder per
    group)."""
    c, k, mults, bounds, bits = PARAMS[name]
    kw = dict(multipliers=mults, group_bounds=bounds, group_bits=bits, **WIDTHS)
    if baked or table:
        kw["table"] = [rl_table() if run_length else T_ESC] * len(bits)
    if cls is Compressor:
        if baked:
            kw["weights"] = consts(k, c, c + k)
        return Compressor(c, k, act_width=2, count_width=8, **kw)
    if baked:
        kw["weights"] = consts(c, k, c * k)
    return Decompressor(c, k, out_width=2, pixels_width=2, **kw)


# The AXI4-Stream ports a top may have: pixels, words, counts, weights, tables, and in a
# run-length build one word and one bit-count stream per group.
STREAM_PORT = re.compile(r"^(s_axis(_pixels|_weights|_table)?|m_axis)(_g\d+)?(_bits)?$")


def axi_ports(m, dut, after_rst, *, held=False):
    """Every AXI input of the top (that it has) driven under the stream rules, every output
    checked against them; ``held``: input valid and output ready held high. A run-length
    top's per-group streams (``s_axis_g<g>``, ``s_axis_g<g>_bits``, ``m_axis_g<g>``, ..)
    are found from its signature."""
    from amaranth.lib import wiring
    members = dut.signature.members
    ins = [n.removesuffix("_tvalid") for n, mm in members.items()
           if n.endswith("_tvalid") and mm.flow == wiring.In]
    outs = [n.removesuffix("_tvalid") for n, mm in members.items()
            if n.endswith("_tvalid") and mm.flow == wiring.Out]
    assert ins and outs and all(STREAM_PORT.match(p) for p in ins + outs), (ins, outs)
    for prefix in ins:
        source(m, Axi(dut, prefix), after_rst, prefix, valid=1 if held else None)
    for prefix in outs:
        sink(m, Axi(dut, prefix), after_rst, prefix, ready=1 if held else None)


class StreamSpec(Elaboratable):
    def __init__(self, dut):
        self.dut = dut

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        after_rst = reset_free(m)
        axi_ports(m, dut, after_rst)
        for enc in getattr(dut, "encs", []):
            encoder_invariants(m, enc)
        return m


class ProgressSpec(Elaboratable):
    def __init__(self, dut):
        self.dut = dut

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        after_rst = reset_once(m)
        axi_ports(m, dut, after_rst, held=True)
        out = Axi(dut, "m_axis")
        o_x = out.valid & out.ready
        if isinstance(dut, Compressor):
            started = Signal()
            with m.If(dut.s_axis_tvalid & dut.s_axis_tready):
                m.d.sync += started.eq(1)
            live = started
            limit = compressor_progress(dut)
            wait = Signal(range(dut.cycles_per_pixel + flush(dut) + 2))
            with m.If(~dut.s_axis_tready):
                m.d.sync += wait.eq(wait + 1)
            with m.Else():
                m.d.sync += wait.eq(0)
            m.d.comb += Assert(wait <= dut.cycles_per_pixel + flush(dut))
        else:
            in_tile = Signal()
            with m.If(dut.s_axis_pixels_tvalid & dut.s_axis_pixels_tready):
                m.d.sync += in_tile.eq(dut.s_axis_pixels_tdata != 0)
            with m.Elif(o_x & dut.m_axis_tlast):
                m.d.sync += in_tile.eq(0)
            live = in_tile & ~dut.error
            limit = decompressor_progress(dut)
        quiet = Signal(range(limit + 2))
        with m.If(live & ~o_x & (quiet <= limit)):
            m.d.sync += quiet.eq(quiet + 1)
        with m.Elif(~live | o_x):
            m.d.sync += quiet.eq(0)
        m.d.comb += Assert(quiet <= limit)
        m.d.comb += Cover(o_x & dut.m_axis_tlast)
        return m


class TokenSpec(Elaboratable):
    """Token contract of a top's path through its MAC array, under arbitrary stalls (baked
    constants).

    Compressor: an arbitrary pixel taken on ``s_axis`` comes out as the next K coefficients
    into the encoder (after the earlier pixels'), each the MAC reference of that pixel.
    Decompressor: the K symbols the decoder emits for an arbitrary pixel (counted from each
    tile's ``first``), sign-extended per group, come out as that pixel's ``m_axis`` beats,
    each the MAC reference. The coding itself is the round trip's proof.
    """

    def __init__(self, dut):
        self.dut = dut

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        after_rst = reset_once(m)
        axi_ports(m, dut, after_rst)
        K, cw, mac = dut._k, dut._cw, dut.mac
        if isinstance(dut, Compressor):
            i_x = dut.s_axis_tvalid & dut.s_axis_tready
            pixel = dut.s_axis_tdata
            sym = dut.enc.i_stream
            out_x = sym.valid & sym.ready
            col = Signal(range(K))
            with m.If(out_x):
                m.d.sync += col.eq(Mux(col == K - 1, 0, col + 1))
            out_end = out_x & (col == K - 1)
        else:
            s = dut.dec.o_stream
            s_x = s.valid & s.ready
            col = Signal(range(K))
            c = Mux(s.payload.first, 0, col)
            ext = Signal(cw)
            for g, bits in enumerate(dut.group_bits):
                with m.If((c >= dut.group_bounds[g]) & (c < dut.group_bounds[g + 1])):
                    m.d.comb += ext.eq(s.payload.symbol[:bits].as_signed())
            vec = Signal(K * cw)
            pixel = Cat(vec[cw:], ext) if K > 1 else ext
            with m.If(s_x):
                m.d.sync += [vec.eq(pixel), col.eq(Mux(c == K - 1, 0, c + 1))]
            i_x = s_x & (c == K - 1)
            out_x = dut.m_axis_tvalid & dut.m_axis_tready
            out_end = out_x & mac.o_stream.payload.last
        tok = Token(m, pixel, i_x, out_x, out_end, capacity=mac.LATENCY + 4,
                    age_limit=mac.LATENCY)
        width = len(pixel) // mac._ci
        want = reference(mac, [tok.value.word_select(j, width).as_signed()
                               for j in range(mac._ci)])
        group = len(mac.o_stream.payload.data)
        beats = mac._co // group
        beat = Signal(range(beats + 1))
        with m.If(tok.ours):
            m.d.sync += beat.eq(beat + 1)
            for k in range(beats):
                with m.If(beat == k):
                    for j in range(group):
                        got = (sym.payload.symbol if isinstance(dut, Compressor) else
                               dut.m_axis_tdata.word_select(j, mac._o_w))
                        m.d.comb += Assert(got == want[k * group + j][:len(got)])
        stalled = Signal()
        with m.If(tok.pending & ~out_x):
            m.d.sync += stalled.eq(1)
        m.d.comb += Cover(tok.done & stalled & (tok.ahead_at_start != 0))
        return m


def flush(top):
    """Cycles the encoder holds its input while it flushes a full buffer at a tile's end."""
    return top.enc.buffer_bits // top._W + 2


def compressor_progress(top):
    """A word needs W + 1 bits: at most W + 1 coefficients of one bit, K per pixel."""
    pixels = -(-(top._W + 1) // top._k)
    return top.mac.LATENCY + 3 + pixels * top.cycles_per_pixel + flush(top)


def decompressor_progress(top):
    return top._k * (top._L + top._W) + HuffmanDecoder.LATENCY + top.mac.LATENCY


# Run-time constants on the first point, baked ones on the second.
STREAM = {"c2k2m2": False, "c3k2m1-g2-baked": True}


@pytest.mark.parametrize("name", STREAM)
def test_stream_rules_compressor(name):
    baked = STREAM[name]
    dut = make(Compressor, name.removesuffix("-baked"), baked=baked)
    # Words only come once a table is loaded.
    cover = 16 + dut.mac.LATENCY + (0 if baked else load_bound(dut.enc, clear=True))
    check(StreamSpec(dut), f"top-stream-comp-{name}", "prove", 3, cover_depth=cover)


@pytest.mark.parametrize("name", ["c2k2m2-table", "c3k2m1-g2-baked"])
def test_stream_rules_decompressor(name):
    # The output's tlast is ANDed with a FIFO's read data, which is stable only while the
    # FIFO holds the pixel: an invariant k-induction does not find by itself. bmc over two
    # tiles instead, with the table baked (a load first would double the depth) and the
    # weights loaded at run time on the first point.
    point = name.removesuffix("-table").removesuffix("-baked")
    dut = make(Decompressor, point, baked=name.endswith("-baked"), table=True)
    depth = 16 + dut.mac.LATENCY
    check(StreamSpec(dut), f"top-stream-decomp-{name}", "bmc", depth)


@pytest.mark.parametrize("cls", [Compressor, Decompressor], ids=["comp", "decomp"])
def test_stream_rules_run_length(cls):
    """Run-length tops (two groups, a decoder or encoder per group, baked tables and
    weights): every output, the per-group word and bit-count streams included, keeps the
    stream rules over two tiles' worth of cycles, whatever the inputs do."""
    dut = make(cls, "c3k2m1-g2", baked=True, run_length=True)
    assert dut.mode == "run-length" and len(dut.encs if cls is Compressor else dut.decs) == 2
    # The compressor's covers (a word out after a stall) wait for the encoder's latency.
    depth = 16 + dut.mac.LATENCY + (HuffmanEncoder.LATENCY - 4 if cls is Compressor else 0)
    check(StreamSpec(dut), f"top-stream-rl-{cls.__name__}", "bmc", depth)


@pytest.mark.parametrize("cls", [Compressor, Decompressor], ids=["comp", "decomp"])
@pytest.mark.parametrize("name", PARAMS)
def test_token_contract(cls, name):
    dut = make(cls, name, baked=True)
    if cls is Compressor:
        # Two whole pixels through the MAC array and the serializer (K cycles each), then
        # the encoder's latency to the covers' words.
        depth = (2 * dut.cycles_per_pixel + dut.mac.LATENCY + 2 * dut._k
                 + HuffmanEncoder.LATENCY - 1)
    else:
        # A tile's header and first word, the decoder's latency, two pixels of K symbols,
        # the MAC array's latency; the cover (the second pixel out after a stall) is first
        # reached in the last step.
        depth = (dut.cycles_per_pixel + dut.mac.LATENCY + 2 * dut._k + 6
                 + HuffmanDecoder.LATENCY)
    check(TokenSpec(dut), f"top-token-{cls.__name__}-{name}", "bmc", depth)


@pytest.mark.parametrize("cls", [Compressor, Decompressor], ids=["comp", "decomp"])
@pytest.mark.parametrize("name", PARAMS)
def test_progress(cls, name):
    dut = make(cls, name, baked=True)
    limit = (compressor_progress if cls is Compressor else decompressor_progress)(dut)
    check(ProgressSpec(dut), f"top-progress-{cls.__name__}-{name}", "bmc", limit + 8)
