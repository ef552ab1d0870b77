"""End to end in run-length mode (bitstream version 2): a real MobileNetV2 feature map through
the RTL compressor and decompressor built with run-length tables.

The artifact is golden's: PCA of ``features.10`` on photo crops, folded by
``golden.calibration.folding.calibrate_layer`` with ``run_length="on"``; the activations are
other crops' pixels. A run-length build has one coder per table group, and group g of a tile
is a tile of its own (its columns of every pixel, row-major), so each group has its own word
stream and bit count. One Verilog toplevel holds both tops (``c_*`` and ``d_*`` ports):

* compressor: the pixels in tiles -> for every group, its words and bit count equal
  ``golden.codec.runlength.encode_rl_tile`` of the group's columns of ``forward_int``;
* decompressor: the pixel count, each group's bit count and words -> ``inverse_int`` of the
  tile's coefficients bit for bit, ``tlast`` on each tile's final beat; a tile whose first
  group is cut in half raises ENDED_EARLY, yields exactly the whole pixels the cut words hold
  and no ``tlast``, and the next tile decodes;

under the idle/backpressure diagonal on every AXI port, with the shared ``StreamRule``
monitor on every output. With no stalls: the steady-state cycles per pixel of both tops and
the cycles per tile of back-to-back one-pixel tiles (asserted exactly as measured).
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

try:
    import cocotb
except ImportError:  # the pytest side does not need cocotb imported
    cocotb = None

from tb.common import DIAGONAL, load_config, run_cocotb

REAL_POINT = "features.10"

CONFIGS = [
    # Two groups (6 and 4 bits), baked constants and tables, 16 cycles per pixel, 16-bit
    # words: the decoders must keep up with the MAC array's 4 values per cycle... per group.
    {"name": "c64k16m64-rl-baked-g6g4", "m": 64, "w": 16, "group_bits": [6, 4],
     "baked": True, "tile_cycles": {"c": [16, 16], "d": [26, 26]}},
    # One 4-bit group, run-time weights and run-length tables, 64 cycles per pixel.
    {"name": "c64k16m16-rl-runtime-g4", "m": 16, "w": 32, "group_bits": [4],
     "baked": False, "tile_cycles": {"c": [64, 64], "d": [64, 64]}},
]
TILES = (1, 40, 23)
TIMEOUT_NS = 20_000_000


# ----------------------------------------------------------------------------- golden data

def real_layer(group_bits):
    """``(artifact path, x_int path)``: ``REAL_POINT`` with run-length tables and coarse
    steps (``tb.test_top.real_layer``), cached."""
    from tb.test_top import real_layer as layer
    return layer(group_bits, run_length=True)


@pytest.mark.parametrize("cfg", CONFIGS, ids=[c["name"] for c in CONFIGS])
def test_top_rl(cfg):
    from amaranth.back import verilog

    from tb.test_top import build

    art_path, x_path = real_layer(cfg["group_bits"])
    pair, info = build(cfg, art_path)
    text = verilog.convert(pair, name="top_rl_pair", emit_src=False)
    run_cocotb(f"top-{cfg['name']}", {"top_rl_pair.v": text}, "top_rl_pair", "tb.test_top_rl",
               {**cfg, **info, "art": str(art_path), "x": str(x_path)}, tests=len(DIAGONAL))


def test_real_layers_have_runs():
    """The data exercises run-length mode: every group's tiles hold zero runs of several
    values, some group's runs are longer than its longest run symbol (several run codes in a
    row), and the sparsest group costs less than one bit per value."""
    from golden.codec.runlength import tile_bits
    from golden.datapath.artifacts import load_artifact
    from golden.datapath.pipeline import forward_int

    longer = 0
    for cfg in CONFIGS:
        art_path, x_path = real_layer(cfg["group_bits"])
        art, x = load_artifact(art_path), np.load(x_path)
        y = forward_int(art, x[:sum(TILES)])
        bounds = art.group_bounds.tolist()
        for t, lo, hi in zip(art.tables.tables, bounds, bounds[1:]):
            flat = y[:, lo:hi].ravel()
            runs = np.diff(np.flatnonzero(np.r_[1, flat != 0, 1])) - 1
            assert t.run_max >= 2 and runs.max() >= 2
            longer += int((runs > t.run_max).sum())
        # The last group's values cost less than the one bit each plain Huffman spends.
        lo = bounds[-2]
        assert tile_bits(y[:, lo:], art.tables.tables[-1]) < y[:, lo:].size
    assert longer > 0


# ----------------------------------------------------------------------------- cocotb side

def suffix(cfg, g):
    return "" if cfg["groups"] == 1 else f"_g{g}"


class Golden:
    """Per-tile golden group words and bit counts, and reconstructions."""

    def __init__(self, cfg, sizes=TILES, offset=0):
        from golden.codec.runlength import encode_rl_tile
        from golden.datapath.artifacts import load_artifact
        from golden.datapath.pipeline import forward_int, inverse_int

        self.art = art = load_artifact(cfg["art"])
        self.bounds = art.group_bounds.tolist()
        x = np.load(cfg["x"])
        assert offset + sum(sizes) <= x.shape[0]
        self.x = x[offset:offset + sum(sizes)]
        self.tiles = []
        start = 0
        for size in sizes:
            xt = self.x[start:start + size]
            y = forward_int(art, xt, reference=True)
            groups = []
            for t, lo, hi in zip(art.tables.tables, self.bounds, self.bounds[1:]):
                words, nbits = encode_rl_tile(y[:, lo:hi], t, cfg["w"])
                groups.append({"words": [int(w) for w in words], "nbits": int(nbits)})
            rec = inverse_int(art, y, reference=True)
            self.tiles.append({"x": xt, "y": y, "groups": groups, "rec": rec})
            start += size
        self.aw, self.ow = art.in_bits, art.out_bits

    def pixel_beats(self, x):
        mask = (1 << self.aw) - 1
        beats = [{"tdata": sum((int(v) & mask) << (self.aw * j) for j, v in enumerate(px))}
                 for px in x]
        beats[-1]["tlast"] = 1
        return beats

    def out_beats(self, rec, og, tile_end=True):
        from tb.test_top import Golden as PlainGolden
        return PlainGolden.out_beats(self, rec, og, tile_end)


def word_beats(words):
    return [{"tdata": w, "tlast": int(i == len(words) - 1)} for i, w in enumerate(words)]


def decodable_values(values, table, bits):
    """How many of ``values`` (one group's tile) the codes wholly inside the first ``bits``
    bits of its run-length stream stand for: what a decoder can emit from a cut stream."""
    from golden.codec.runlength import rl_indices

    idx = rl_indices(np.asarray(values).ravel(), table.bits, table.signed,
                     table.lengths > 0, table.run_max)
    ends = np.cumsum(table.enc_len[idx])
    n_codes = int(np.searchsorted(ends, bits, side="right"))
    runs = idx[:n_codes] > (1 << table.bits)          # RUN_k sits at 2^b + k
    return int(np.where(runs, idx[:n_codes] - (1 << table.bits), 1).sum())


async def run_top(dut, idle, backpressure, measure):
    from cocotb.triggers import ClockCycles, RisingEdge, with_timeout

    from tb.streams import StreamSink, StreamSource, start_clock_and_reset
    from tb.test_top import cfg_beats, check_pixel_rate, table_beats

    cfg = load_config()
    g = Golden(cfg)
    art, G, og = g.art, cfg["groups"], cfg["og"]
    seed = zlib.crc32(f"{cfg['name']}-{idle}-{backpressure}".encode())
    clk = dut.clk
    inputs = ["c_s_axis", "d_s_axis_pixels"]
    for j in range(G):
        inputs += [f"d_s_axis{suffix(cfg, j)}", f"d_s_axis{suffix(cfg, j)}_bits"]
    loads = [] if cfg["baked"] else ["c_s_axis_weights", "d_s_axis_weights",
                                     "c_s_axis_table", "d_s_axis_table"]
    for name in inputs + loads:
        getattr(dut, f"{name}_tvalid").value = 0
    await start_clock_and_reset(dut)
    src = {name: StreamSource(dut, name, clk, None, idle, seed + i, axi=True)
           for i, name in enumerate(inputs)}
    outputs = ["d_m_axis"]
    for j in range(G):
        outputs += [f"c_m_axis{suffix(cfg, j)}", f"c_m_axis{suffix(cfg, j)}_bits"]
    sink = {name: StreamSink(dut, name, clk, None, backpressure, seed + 10 + i, axi=True)
            for i, name in enumerate(outputs)}

    if not cfg["baked"]:
        beats = {"c_s_axis_weights": cfg_beats(art.fwd_weight, art.fwd_bias, art.fwd_mult,
                                               art.fwd_shift, cfg["c_cfg_width"]),
                 "d_s_axis_weights": cfg_beats(art.inv_weight, art.inv_bias, art.inv_mult,
                                               art.inv_shift, cfg["d_cfg_width"]),
                 "c_s_axis_table": table_beats(art.tables.tables),
                 "d_s_axis_table": table_beats(art.tables.tables)}
        if G == 1:
            beats = {k: [{n: v for n, v in b.items() if n != "tuser"} for b in bs]
                     for k, bs in beats.items()}
        for i, name in enumerate(loads):
            src[name] = StreamSource(dut, name, clk, None, idle, seed + 20 + i, axi=True)
            src[name].send(beats[name])
        for name in loads:
            await src[name].wait_sent(TIMEOUT_NS)

    def send_tile(t, cut=None):
        src["d_s_axis_pixels"].send([{"tdata": len(t["x"])}])
        for j, grp in enumerate(t["groups"]):
            words = grp["words"] if cut is None or j != 0 else grp["words"][:cut]
            src[f"d_s_axis{suffix(cfg, j)}_bits"].send([{"tdata": grp["nbits"]}])
            src[f"d_s_axis{suffix(cfg, j)}"].send(word_beats(words))

    for t in g.tiles:
        src["c_s_axis"].send(g.pixel_beats(t["x"]))
        send_tile(t)

    want_out = [b for t in g.tiles for b in g.out_beats(t["rec"], og)]
    for j in range(G):
        want_words = [b for t in g.tiles for b in word_beats(t["groups"][j]["words"])]
        want_bits = [{"tdata": t["groups"][j]["nbits"]} for t in g.tiles]
        name = f"c_m_axis{suffix(cfg, j)}"
        got_bits = await sink[f"{name}_bits"].wait_for(len(want_bits), TIMEOUT_NS)
        assert got_bits == want_bits, f"group {j}: tile bit counts {got_bits} != {want_bits}"
        got = await sink[name].wait_for(len(want_words), TIMEOUT_NS)
        for i, (a, b) in enumerate(zip(got, want_words)):
            assert a == b, f"group {j}: compressor word {i}: {a} != golden {b}"
    got_out = await sink["d_m_axis"].wait_for(len(want_out), TIMEOUT_NS)
    for i, (a, b) in enumerate(zip(got_out, want_out)):
        assert a == b, f"decompressor beat {i} (pixel {i * og // 64}): {a} != {b}"
    await ClockCycles(clk, 50)
    for j in range(G):
        name = f"c_m_axis{suffix(cfg, j)}"
        assert len(sink[name].received) == sum(len(t["groups"][j]["words"]) for t in g.tiles)
    assert len(sink["d_m_axis"].received) == len(want_out), "extra decompressor beats"
    assert int(dut.c_error.value) == 0 and int(dut.d_error.value) == 0

    if measure:
        check_pixel_rate(dut, cfg, src, sink, TILES)

    # Group 0 of a tile cut in half: ENDED_EARLY, the whole pixels its words hold, no tlast.
    t = g.tiles[1]
    before = len(sink["d_m_axis"].received)
    g0 = t["groups"][0]
    cut = len(g0["words"]) // 2
    send_tile(t, cut=cut)
    await src["d_s_axis"if G == 1 else "d_s_axis_g0"].wait_sent(TIMEOUT_NS)

    async def flagged():
        while not int(dut.d_error.value):
            await RisingEdge(clk)
    await with_timeout(flagged(), TIMEOUT_NS, "ns")
    assert int(dut.d_error_code.value) == 2, "a cut tile must report ENDED_EARLY"
    lo, hi = g.bounds[0], g.bounds[1]
    whole = decodable_values(t["y"][:, lo:hi], art.tables.tables[0], cut * cfg["w"]) // (hi - lo)
    assert 0 < whole < len(t["x"])
    want = g.out_beats(t["rec"][:whole], og, tile_end=False)
    for _ in range(100):        # up to 10000 cycles for the expected beats (stalls), then 800
        if len(sink["d_m_axis"].received) - before >= len(want):
            break
        await ClockCycles(clk, 100)
    await ClockCycles(clk, 800)
    partial = sink["d_m_axis"].received[before:]
    assert partial == want, (
        f"{len(partial)} beats after a cut tile, its words hold {whole} whole pixels")
    t = g.tiles[2]
    mark = len(sink["d_m_axis"].received)
    send_tile(t)
    want = g.out_beats(t["rec"], og)
    got = await sink["d_m_axis"].wait_for(mark + len(want), TIMEOUT_NS)
    assert got[mark:] == want, "the tile after a corrupt one must decode exactly"
    assert int(dut.d_error.value) == 0, "the next tile clears the error flag"
    if measure:
        await measure_tiles(dut, cfg, src, sink, send_tile)


async def measure_tiles(dut, cfg, src, sink, send_tile):
    """Back-to-back one-pixel tiles, no stalls: cycles from one tile to the next in steady
    state (compressor: first-pixel handshakes; decompressor: final output beats), equal to
    ``cfg["tile_cycles"]`` as measured; every output checked against golden."""
    from cocotb.triggers import ClockCycles

    og, G = cfg["og"], cfg["groups"]
    count = 12
    g = Golden(cfg, [1] * count, offset=sum(TILES))
    c_mark = len(src["c_s_axis"].handshakes)
    o_mark = len(sink["d_m_axis"].received)
    w_marks = [len(sink[f"c_m_axis{suffix(cfg, j)}"].received) for j in range(G)]
    for t in g.tiles:
        src["c_s_axis"].send(g.pixel_beats(t["x"]))
        send_tile(t)
    want_out = [b for t in g.tiles for b in g.out_beats(t["rec"], og)]
    got = await sink["d_m_axis"].wait_for(o_mark + len(want_out), TIMEOUT_NS)
    assert got[o_mark:] == want_out, "one-pixel tiles: decompressor output differs"
    for j in range(G):
        name = f"c_m_axis{suffix(cfg, j)}"
        want = [b for t in g.tiles for b in word_beats(t["groups"][j]["words"])]
        got = await sink[name].wait_for(w_marks[j] + len(want), TIMEOUT_NS)
        assert got[w_marks[j]:] == want, f"one-pixel tiles: group {j} words differ"
    await ClockCycles(dut.clk, 20)
    starts = src["c_s_axis"].handshakes[c_mark:c_mark + count]
    ends = [c for c, b in zip(sink["d_m_axis"].beat_cycles[o_mark:],
                              sink["d_m_axis"].received[o_mark:]) if b["tlast"]]
    c_gaps = sorted(set(np.diff(starts)[2:].tolist()))
    d_gaps = sorted(set(np.diff(ends)[2:].tolist()))
    dut._log.info(f"one-pixel tiles: compressor {c_gaps} cycles per tile, decompressor "
                  f"{d_gaps} (max(C*K/M, K) = {cfg['c_cycles']})")
    got = {"c": [c_gaps[0], c_gaps[-1]], "d": [d_gaps[0], d_gaps[-1]]}
    assert got == cfg["tile_cycles"], f"cycles per tile {got}, measured before {cfg['tile_cycles']}"


if cocotb is not None:
    @cocotb.test()
    @cocotb.parametrize((("idle", "backpressure"), DIAGONAL))
    async def top_rl_matches_golden(dut, idle, backpressure):
        await run_top(dut, idle, backpressure, measure=(idle, backpressure) == ("none", "none"))
