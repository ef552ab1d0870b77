"""The tops on the Amaranth simulator, against golden.

Run-length decompressor (``hdl.top.Decompressor`` with run-length tables): three groups, three
decoders, tiles sequenced by the top. A tile whose middle group is cut short aborts while the
other groups' decoders still hold values of it: the whole pixels the streams hold come out
exactly, then the others' values are drained and the next tile decodes. Run-time tables: a
byte for a group that does not exist is dropped and raises ``error`` (BAD_TABLE) until a byte
for an existing group arrives.

Schedules without a clean multiplier count (``hdl.mac_array.schedule``): C = 16, K = 5 with
16 multipliers (a digits layer's shape), words and reconstructions bit for bit, and the
cycles per pixel of both tops.

The same blocks run on Verilator and Icarus in ``tb/test_top.py``, ``tb/test_top_rl.py`` and
``tb/test_mac_array.py``."""

import numpy as np
import pytest

from golden.calibration.folding import calibrate_layer
from golden.codec.runlength import encode_rl_tile
from golden.datapath.pipeline import forward_int, inverse_int
from golden.projection.pca import pca_fit
from hdl.huffman_decoder import DecoderError
from hdl.top import Decompressor

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

C, K, M = 8, 6, 24
BOUNDS, BITS = [0, 2, 4, 6], [5, 4, 3]


@pytest.fixture(scope="module")
def layer():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3000, C)) * np.linspace(3, 0.2, C) + 1
    proj = pca_fit(x, K)
    sd = ((x - proj.mean) @ proj.forward.T).std(axis=0)
    art = calibrate_layer(proj, x, group_bits=tuple(BITS), group_bounds=BOUNDS,
                          steps=sd * np.r_[0.5, 0.5, 1.5, 1.5, 3.0, 3.0], run_length="on")
    assert all(t.run_max for t in art.tables.tables)
    from golden.datapath.pipeline import quantize_input
    return art, quantize_input(art, rng.normal(size=(200, C)) * np.linspace(3, 0.2, C) + 1)


def tile_data(art, x, w):
    y = forward_int(art, x)
    groups = [encode_rl_tile(y[:, lo:hi], t, w)
              for t, lo, hi in zip(art.tables.tables, BOUNDS, BOUNDS[1:])]
    return y, [([int(v) for v in words], int(nbits)) for words, nbits in groups]


def simulate(dut, streams, cycles, delay=None, sinks=("m_axis",)):
    """Drive ``streams`` ({port prefix: [beat dicts]}) concurrently, a stream starting after
    ``delay[prefix]`` cycles, every sink always ready, for ``cycles`` cycles. Returns
    ``{sink: [(cycle, tdata, tlast)]}`` (``tlast`` None where the sink has none), the input
    handshake cycles ``{prefix: [cycle]}`` and (error, error_code) after each cycle."""
    from amaranth.sim import Simulator

    got = {name: [] for name in sinks}
    taken = {name: [] for name in streams}
    status = []
    clock = [0]

    def driver(prefix, beats):
        async def proc(ctx):
            if delay and delay.get(prefix):
                await ctx.tick().repeat(delay[prefix])
            for beat in beats:
                for name, value in beat.items():
                    ctx.set(getattr(dut, f"{prefix}_{name}"), value)
                ctx.set(getattr(dut, f"{prefix}_tvalid"), 1)
                await ctx.tick().until(getattr(dut, f"{prefix}_tready"))
                taken[prefix].append(clock[0])
                ctx.set(getattr(dut, f"{prefix}_tvalid"), 0)
        return proc

    ports = []
    for name in sinks:
        last = getattr(dut, f"{name}_tlast", None)
        ports += [getattr(dut, f"{name}_tvalid"), getattr(dut, f"{name}_tdata"),
                  last if last is not None else getattr(dut, f"{name}_tvalid")]

    async def sink(ctx):
        for name in sinks:
            ctx.set(getattr(dut, f"{name}_tready"), 1)
        async for values in ctx.tick().sample(*ports, dut.error, *(
                [dut.error_code] if hasattr(dut, "error_code") else [])):
            clock[0] += 1
            vals = values[2:]
            for i, name in enumerate(sinks):
                v, d, last = vals[3 * i:3 * i + 3]
                if v:
                    has_last = hasattr(dut, f"{name}_tlast")
                    got[name].append((clock[0], int(d), int(last) if has_last else None))
            rest = vals[3 * len(sinks):]
            status.append(tuple(int(x) for x in rest) + ((0,) if len(rest) == 1 else ()))
            if len(status) >= cycles:
                return

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for prefix, beats in streams.items():
        sim.add_testbench(driver(prefix, beats), background=True)
    sim.add_testbench(sink)
    sim.run()
    return got, taken, status


def beats_of(got):
    return [(d, last) for _, d, last in got]


def pixel_beats(art, rec, og, tile_end=True):
    mask = (1 << art.out_bits) - 1
    beats = []
    for p, px in enumerate(rec):
        for b in range(0, len(px), og):
            data = sum((int(v) & mask) << (art.out_bits * j) for j, v in enumerate(px[b:b + og]))
            beats.append((data, int(tile_end and p == len(rec) - 1 and b + og == len(px))))
    return beats


def header_and_words(tiles, cut=None):
    """The decompressor's input streams for ``tiles`` [(pixels, groups)]; ``cut`` = (tile,
    group, words kept)."""
    streams = {"s_axis_pixels": [{"tdata": n} for n, _ in tiles]}
    for g in range(len(BITS)):
        bits, words = [], []
        for i, (_, groups) in enumerate(tiles):
            w, nbits = groups[g]
            if cut is not None and cut[:2] == (i, g):
                w = w[:cut[2]]
            bits.append({"tdata": nbits})
            words += [{"tdata": v, "tlast": int(j == len(w) - 1)} for j, v in enumerate(w)]
        streams[f"s_axis_g{g}_bits"] = bits
        streams[f"s_axis_g{g}"] = words
    return streams


def test_middle_group_cut_aborts_the_tile_and_the_next_decodes(layer):
    art, x = layer
    w = 16
    dut = Decompressor(C, K, multipliers=M, word_width=w, group_bounds=BOUNDS,
                       group_bits=BITS, table=art.tables, out_width=art.out_bits,
                       relu=art.relu,
                       weights={k: getattr(art, f"inv_{k}") for k in
                                ("weight", "bias", "mult", "shift")})
    og = len(dut.m_axis_tdata) // art.out_bits
    sizes = (10, 30, 9)
    xs = np.split(x[:sum(sizes)], np.cumsum(sizes)[:-1])
    tiles, recs = [], []
    for xt in xs:
        y, groups = tile_data(art, xt, w)
        tiles.append((len(xt), groups))
        recs.append(inverse_int(art, y))
    # Tile 1's middle group keeps a third of its words: groups 0 and 2 are whole.
    kept = len(tiles[1][1][1][0]) // 3
    assert kept >= 1
    got, _, status = simulate(dut, header_and_words(tiles, cut=(1, 1, kept)), 3000)
    out = beats_of(got["m_axis"])

    # Whole pixels the cut group still holds (golden's codes inside the kept bits).
    from tb.test_top_rl import decodable_values
    y1 = forward_int(art, xs[1])
    whole = decodable_values(y1[:, 2:4], art.tables.tables[1], kept * w) // 2
    assert 0 < whole < sizes[1]
    want = (pixel_beats(art, recs[0], og) + pixel_beats(art, recs[1][:whole], og, False)
            + pixel_beats(art, recs[2], og))
    assert out == want
    codes = {c for e, c in status if e}
    assert codes == {DecoderError.ENDED_EARLY}
    assert status[-1] == (0, 0), "the next tile's headers clear the error"


def test_bad_table_group_is_an_error_until_a_good_load(layer):
    art, x = layer
    w = 32
    dut = Decompressor(C, K, multipliers=M, word_width=w, group_bounds=BOUNDS,
                       group_bits=BITS, out_width=art.out_bits, relu=art.relu,
                       weights={k: getattr(art, f"inv_{k}") for k in
                                ("weight", "bias", "mult", "shift")},
                       run_max=max(t.run_max for t in art.tables.tables))
    og = len(dut.m_axis_tdata) // art.out_bits
    table = []
    # A stray byte for group 3 (there are three groups), then the real loads.
    table.append({"tdata": 0xAB, "tlast": 1, "tuser": 3})
    for g, t in enumerate(art.tables.tables):
        raw = t.serialize()
        table += [{"tdata": b, "tlast": int(i == len(raw) - 1), "tuser": g}
                  for i, b in enumerate(raw)]
    y, groups = tile_data(art, x[:12], w)
    streams = {"s_axis_table": table}
    streams.update(header_and_words([(12, groups)]))
    # The tile after the loads (a decoder whose load has not begun would decode without a
    # table: NO_TABLE).
    got, _, status = simulate(dut, streams, 2500,
                              delay={p: 1200 for p in streams if p != "s_axis_table"})
    out = beats_of(got["m_axis"])
    assert out == pixel_beats(art, inverse_int(art, y), og)
    bad = [c for e, c in status if e]
    assert bad and set(bad) == {DecoderError.BAD_TABLE}
    assert status[-1] == (0, 0)


def test_tops_with_an_unclean_multiplier_count():
    """C = 16, K = 5, 16 multipliers: no count served both arrays cleanly, and the build fell
    back to one multiplier (80 cycles per pixel). Now the forward array does 16 lanes (5
    cycles) and the inverse one 2 rows of 5 (10 multipliers, 8 cycles); the tops match
    golden word for word and value for value at max(MAC cycles, K) cycles per pixel."""
    from golden.codec.plain import encode_groups
    from golden.datapath.pipeline import quantize_input
    from hdl.top import Compressor

    c, k = 16, 5
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4000, c)) * np.linspace(3, 0.2, c) + 1
    art = calibrate_layer(pca_fit(x, k), x, group_bits=(6,))
    xi = quantize_input(art, rng.normal(size=(60, c)) * np.linspace(3, 0.2, c) + 1)
    keys = ("weight", "bias", "mult", "shift")
    comp = Compressor(c, k, act_width=art.in_bits, multipliers=16, group_bits=[6],
                      table=art.tables, weights={n: getattr(art, f"fwd_{n}") for n in keys})
    dec = Decompressor(c, k, out_width=art.out_bits, relu=art.relu, multipliers=16,
                       group_bits=[6], table=art.tables,
                       weights={n: getattr(art, f"inv_{n}") for n in keys})
    assert (comp.mac.products, comp.cycles_per_pixel) == (16, 5)
    assert (dec.mac.products, dec.cycles_per_pixel) == (10, 8)
    sizes = (40, 20)
    tiles = np.split(xi[:sum(sizes)], np.cumsum(sizes)[:-1])
    aw = art.in_bits
    pixels = []
    words_want, bits_want = [], []
    for xt in tiles:
        beats = [{"tdata": sum((int(v) & ((1 << aw) - 1)) << (aw * j) for j, v in enumerate(px)),
                  "tlast": int(i == len(xt) - 1)} for i, px in enumerate(xt)]
        pixels += beats
        words, nbits = encode_groups(forward_int(art, xt), art.tables.tables, [0, k])
        words_want += [(int(w), int(i == len(words) - 1)) for i, w in enumerate(words)]
        bits_want.append((int(nbits), None))
    got, taken, status = simulate(comp, {"s_axis": pixels}, 800,
                                  sinks=("m_axis", "m_axis_bits"))
    assert beats_of(got["m_axis"]) == words_want
    assert beats_of(got["m_axis_bits"]) == bits_want
    gaps = set(np.diff(taken["s_axis"][5:sizes[0]]).tolist())
    assert gaps == {5}, gaps

    streams = {"s_axis_pixels": [{"tdata": len(xt)} for xt in tiles],
               "s_axis": [{"tdata": w, "tlast": last} for w, last in words_want]}
    got, _, status = simulate(dec, streams, 1200)
    og = len(dec.m_axis_tdata) // art.out_bits
    want = []
    for xt in tiles:
        want += pixel_beats(art, inverse_int(art, forward_int(art, xt)), og)
    assert beats_of(got["m_axis"]) == want
    ends = [cyc for cyc, _, _ in got["m_axis"]][c // og - 1::c // og]
    assert set(np.diff(ends[5:sizes[0]]).tolist()) == {8}
    assert all(e == 0 for e, _ in status)
