"""End to end: a real MobileNetV2 feature map through the RTL compressor and decompressor.

The artifact is golden's: PCA of ``features.10`` (a 64-channel block output) on two photo
crops, folded by ``golden.calibration.folding.calibrate_layer``; the activations are other crops'
pixels,
quantized by ``quantize_input``. One Verilog toplevel holds both tops side by side (``c_*`` and
``d_*`` ports) so one build serves both checks:

* compressor: the pixels in tiles -> its words and tile bit counts equal
  ``forward_int`` + ``encode_groups`` of each tile, word for word;
* decompressor: golden's words of each tile -> its output equals ``inverse_int`` of the tile's
  coefficients bit for bit, ``tlast`` on each tile's final beat; a truncated tile raises
  ENDED_EARLY, yields exactly golden's whole pixels and no ``tlast``, and the next tile
  decodes;

under idle/backpressure patterns on every AXI port (the diagonal; on the main point also the
stress pairs of ``tb.common.flow_pairs``), the shared ``StreamRule`` monitor on every output,
with run-time loaded and baked constants, and the decompressor also with the map decode loop
(``decoder_loop="map"``, and with ``decoder_map_bits=8``). With no stalls: the steady-state cycles per pixel
checked against ``max(C*K/M, K)``, and the cycles per tile of back-to-back 1- and 4-pixel
tiles against the measured ``tile_cycles``. The main point also checks loads without
``tlast`` (``run_cfg_framing``).
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

try:
    import cocotb
except ImportError:  # the pytest side does not need cocotb imported
    cocotb = None

from tb.common import BUILD_ROOT, DIAGONAL, STRESS, load_config, run_cocotb, side_by_side
from tb.real_data import fit_and_held, save_atomic

REAL_POINT = "features.10"

CONFIGS = [
    # Main point: run-time weights and tables, one 8-bit group, 64 cycles per pixel; the
    # stress flows and the cfg framing test.
    {"name": "c64k16m16-runtime", "m": 16, "w": 32, "group_bits": [8], "baked": False,
     "main": True, "tile_cycles": {"1": {"c": [64, 64], "d": [64, 64]},
                                   "4": {"c": [256, 256], "d": [256, 256]}}},
    # Baked constants, mixed precision (6-bit and 4-bit groups), 16 cycles per pixel, 4
    # channels per output beat, 16-bit words.
    {"name": "c64k16m64-baked-g6g4", "m": 64, "w": 16, "group_bits": [6, 4], "baked": True,
     "tile_cycles": {"1": {"c": [16, 16], "d": [20, 20]},
                     "4": {"c": [64, 64], "d": [68, 68]}}},
    # The main point with the map decode loop in the decompressor.
    {"name": "c64k16m16-runtime-map", "m": 16, "w": 32, "group_bits": [8], "baked": False,
     "decoder_loop": "map", "tile_cycles": {"1": {"c": [64, 64], "d": [64, 64]},
                                            "4": {"c": [256, 256], "d": [256, 256]}}},
    # ... and with its map stage decoding 8 positions a cycle (``decoder_map_bits``).
    {"name": "c64k16m16-runtime-map8", "m": 16, "w": 32, "group_bits": [8], "baked": False,
     "decoder_loop": "map", "decoder_map_bits": 8,
     "tile_cycles": {"1": {"c": [64, 64], "d": [64, 64]},
                     "4": {"c": [256, 256], "d": [256, 256]}}},
]
TILES = (1, 40, 23)          # pixels per tile (a one-pixel tile, a long one, another)
TIMEOUT_NS = 20_000_000


# ----------------------------------------------------------------------------- golden data

def real_layer(group_bits, run_length=False):
    """``(artifact path, x_int path)`` for ``REAL_POINT``, cached under build/sim.

    ``run_length``: run-length tables and coarse steps, as a low-rate allocation sets them:
    most coefficients of the last group round to zero (4 standard deviations per step), the
    others keep detail (half a standard deviation)."""
    tag = ("rl_" if run_length else "") + "-".join(str(b) for b in group_bits)
    art_path = BUILD_ROOT / f"top_mobilenet_v2_g{tag}.npz"
    x_path = BUILD_ROOT / f"top_mobilenet_v2_g{tag}_x.npy"
    if art_path.exists() and x_path.exists():
        return art_path, x_path
    from golden.calibration.folding import calibrate_layer
    from golden.datapath.artifacts import save_artifact
    from golden.datapath.pipeline import quantize_input
    from golden.projection.pca import pca_fit

    fit, held = fit_and_held(REAL_POINT)
    proj = pca_fit(fit, k=16)
    kwargs = {}
    if run_length:
        sd = ((fit.reshape(-1, fit.shape[-1]) - proj.mean) @ proj.forward.T).std(axis=0)
        last = 16 // len(group_bits)
        kwargs = {"steps": sd * np.r_[np.full(16 - last, 0.5), np.full(last, 4.0)],
                  "run_length": "on"}
    art = calibrate_layer(proj, fit, name=REAL_POINT, group_bits=tuple(group_bits), **kwargs)
    # The activations first: the artifact's presence means both are complete.
    save_atomic(x_path, lambda tmp: np.save(tmp, quantize_input(art, held).astype(np.int64)))
    save_atomic(art_path, lambda tmp: save_artifact(art, tmp))
    return art_path, x_path


def build(cfg, art_path):
    """The pair wrapper: a Compressor and a Decompressor side by side, in the artifact's
    coding mode (run-length tables: a coder per group, also for run-time tables)."""
    from golden.datapath.artifacts import load_artifact
    from hdl.top import Compressor, Decompressor

    art = load_artifact(art_path)
    run_max = max(t.run_max for t in art.tables.tables)
    keys = ("weight", "bias", "mult", "shift")
    common = dict(multipliers=cfg["m"], word_width=cfg["w"], max_len=12, run_max=run_max,
                  group_bounds=art.group_bounds.tolist(), group_bits=art.group_bits.tolist())
    if cfg["baked"]:
        c = Compressor(64, 16, act_width=art.in_bits, table=art.tables,
                       weights={k: getattr(art, f"fwd_{k}") for k in keys}, **common)
        d = Decompressor(64, 16, out_width=art.out_bits, relu=art.relu, table=art.tables,
                         weights={k: getattr(art, f"inv_{k}") for k in keys}, **common)
    else:
        c = Compressor(64, 16, act_width=art.in_bits, **common)
        d = Decompressor(64, 16, out_width=art.out_bits, relu=art.relu,
                         decoder_loop=cfg.get("decoder_loop", "shift"),
                         decoder_map_bits=cfg.get("decoder_map_bits"), **common)

    info = {"c_cycles": c.cycles_per_pixel, "d_cycles": d.cycles_per_pixel,
            "og": len(d.mac.o_stream.payload.data), "c_cfg_width": c.mac.cfg_data_width,
            "d_cfg_width": d.mac.cfg_data_width, "run_max": run_max,
            "groups": len(art.group_bits)}
    return side_by_side(c, d), info


@pytest.mark.parametrize("cfg", CONFIGS, ids=[c["name"] for c in CONFIGS])
def test_top(cfg):
    from amaranth.back import verilog

    art_path, x_path = real_layer(cfg["group_bits"])
    pair, info = build(cfg, art_path)
    text = verilog.convert(pair, name="top_pair", emit_src=False)
    run_cocotb(f"top-{cfg['name']}", {"top_pair.v": text}, "top_pair", "tb.test_top",
               {**cfg, **info, "art": str(art_path), "x": str(x_path)},
               tests=len(top_flows(cfg)) + bool(cfg.get("main")))


def top_flows(cfg):
    """(idle, backpressure) pairs: the diagonal, and the stress pairs on the main point."""
    return DIAGONAL + STRESS if cfg.get("main") else list(DIAGONAL)


def test_real_layer_is_not_trivial():
    """The data the end-to-end test uses exercises the datapath: varied coefficients and a
    reconstruction that tracks the input."""
    from golden.datapath.artifacts import load_artifact
    from golden.datapath.pipeline import forward_int, inverse_int

    art_path, x_path = real_layer([6, 4])
    art, x = load_artifact(art_path), np.load(x_path)
    y = forward_int(art, x)
    assert len(np.unique(y[:, 0])) > 20 and art.group_bits.tolist() == [6, 4]
    assert y[:, 8:].min() >= -8 and y[:, 8:].max() <= 7
    rec = inverse_int(art, y)
    assert np.corrcoef(rec.ravel(), x.ravel())[0, 1] > 0.5   # 16 of 64 components, 6 + 4 bits


# ----------------------------------------------------------------------------- cocotb side

class Golden:
    """Per-tile golden words, bit counts and reconstructions for the configured layer."""

    def __init__(self, cfg, sizes=TILES, offset=0):
        from golden.codec.plain import encode_groups
        from golden.datapath.artifacts import load_artifact
        from golden.datapath.pipeline import forward_int, inverse_int

        self.art = art = load_artifact(cfg["art"])
        x = np.load(cfg["x"])
        n = sum(sizes)
        assert offset + n <= x.shape[0]
        self.x = x[offset:offset + n]
        self.tiles = []
        start = 0
        for size in sizes:
            xt = self.x[start:start + size]
            y = forward_int(art, xt, reference=True)
            words, nbits = encode_groups(y, art.tables.tables, art.group_bounds.tolist(),
                                         word_bits=cfg["w"])
            rec = inverse_int(art, y, reference=True)
            self.tiles.append({"x": xt, "words": [int(w) for w in words], "nbits": int(nbits),
                               "rec": rec})
            start += size
        self.aw, self.ow = art.in_bits, art.out_bits

    def pixel_beats(self, x):
        mask = (1 << self.aw) - 1
        return [{"tdata": sum((int(v) & mask) << (self.aw * j) for j, v in enumerate(px))}
                for px in x]

    def out_beats(self, rec, og, tile_end=True):
        mask = (1 << self.ow) - 1
        beats = []
        for p, px in enumerate(rec):
            for b in range(0, len(px), og):
                data = sum((int(v) & mask) << (self.ow * j) for j, v in enumerate(px[b:b + og]))
                end = tile_end and p == len(rec) - 1 and b + og == len(px)
                beats.append({"tdata": data, "tlast": int(end)})
        return beats


def cfg_beats(weight, bias, mult, shift, width):
    mask = (1 << width) - 1
    values = np.concatenate([weight.ravel(), bias, mult, shift])
    return [{"tdata": int(v) & mask, "tlast": int(i == len(values) - 1)}
            for i, v in enumerate(values)]


def table_beats(tables):
    beats = []
    for g, t in enumerate(tables):
        raw = t.serialize()
        beats += [{"tdata": b, "tlast": int(i == len(raw) - 1), "tuser": g}
                  for i, b in enumerate(raw)]
    return beats


def whole_rows(words, art, word_bits, rows):
    """How many whole pixels (rows of K) golden decodes from ``words`` before an error."""
    from golden.codec.errors import CorruptStreamError
    from golden.codec.plain import decode_groups

    words = np.asarray(words, dtype=np.uint64)
    for r in range(1, rows + 1):
        try:
            decode_groups(words, None, r, art.tables.tables, art.group_bounds.tolist(),
                          word_bits)
        except CorruptStreamError:
            return r - 1
    return rows


def make_sinks(dut, cfg, backpressure, seed):
    """The three output sinks (each checks the stream rule); ``fill`` backpressure watches
    the input that feeds each top (pixels for the compressor, words for the decompressor)."""
    from tb.streams import StreamSink

    watch = {"c": (dut.c_s_axis_tvalid, dut.c_s_axis_tready),
             "d": (dut.d_s_axis_tvalid, dut.d_s_axis_tready)}
    return {name: StreamSink(dut, name, dut.clk, None, backpressure, seed + 10 + i,
                             watch[name[0]], threshold=2 * cfg[f"{name[0]}_cycles"] + 16,
                             axi=True)
            for i, name in enumerate(("c_m_axis", "c_m_axis_bits", "d_m_axis"))}


async def load_constants(dut, cfg, art, idle, seed, weights_last=True):
    """Run-time weights and tables into both tops (``weights_last=False``: the weight loads
    carry no ``tlast``; they end by their length)."""
    from tb.streams import StreamSource

    loads = [("c_s_axis_weights", cfg_beats(art.fwd_weight, art.fwd_bias, art.fwd_mult,
                                            art.fwd_shift, cfg["c_cfg_width"])),
             ("d_s_axis_weights", cfg_beats(art.inv_weight, art.inv_bias, art.inv_mult,
                                            art.inv_shift, cfg["d_cfg_width"])),
             ("c_s_axis_table", table_beats(art.tables.tables)),
             ("d_s_axis_table", table_beats(art.tables.tables))]
    srcs = {}
    for i, (name, beats) in enumerate(loads):
        if not weights_last and name.endswith("weights"):
            beats = [{"tdata": b["tdata"]} for b in beats]
        s = StreamSource(dut, name, dut.clk, None, idle, seed + 20 + i, axi=True)
        s.send(beats)
        srcs[name] = s
    for name, _ in loads:
        await srcs[name].wait_sent(TIMEOUT_NS)
    return srcs


# The AXI4-Stream inputs of the pair; a manager holds TVALID low during reset (AXI4-Stream
# rule). The sources are made after reset, so the test drives the valids low before it:
# Icarus otherwise starts them at X, and an X latched into a loader's state register on the
# first edge after reset stays X (Verilator's two-state inputs start at 0).
DATA_STREAMS = ("c_s_axis", "d_s_axis", "d_s_axis_pixels")
CONFIG_STREAMS = ("c_s_axis_weights", "d_s_axis_weights", "c_s_axis_table", "d_s_axis_table")


def valids_low(dut, baked: bool) -> None:
    """Hold every input stream's TVALID low (baked builds have no configuration streams)."""
    for name in DATA_STREAMS + (() if baked else CONFIG_STREAMS):
        getattr(dut, f"{name}_tvalid").value = 0


async def run_top(dut, idle, backpressure, measure):
    from cocotb.triggers import ClockCycles, RisingEdge, with_timeout

    from tb.streams import StreamSource, start_clock_and_reset

    cfg = load_config()
    g = Golden(cfg)
    art = g.art
    seed = zlib.crc32(f"{cfg['name']}-{idle}-{backpressure}".encode())
    clk = dut.clk
    valids_low(dut, cfg["baked"])
    await start_clock_and_reset(dut)
    src = {name: StreamSource(dut, name, clk, None, idle, seed + i, axi=True)
           for i, name in enumerate(("c_s_axis", "d_s_axis", "d_s_axis_pixels"))}
    sink = make_sinks(dut, cfg, backpressure, seed)

    if not cfg["baked"]:
        src.update(await load_constants(dut, cfg, art, idle, seed))

    # Compressor: every tile's pixels, tlast on the tile's final pixel.
    for t in g.tiles:
        beats = g.pixel_beats(t["x"])
        beats[-1]["tlast"] = 1
        src["c_s_axis"].send(beats)
    # Decompressor: header then words per tile.
    for t in g.tiles:
        src["d_s_axis_pixels"].send([{"tdata": len(t["x"])}])
        src["d_s_axis"].send([{"tdata": w, "tlast": int(i == len(t["words"]) - 1)}
                              for i, w in enumerate(t["words"])])

    want_words = [{"tdata": w, "tlast": int(i == len(t["words"]) - 1)}
                  for t in g.tiles for i, w in enumerate(t["words"])]
    want_bits = [{"tdata": t["nbits"]} for t in g.tiles]
    og = cfg["og"]
    want_out = [b for t in g.tiles for b in g.out_beats(t["rec"], og)]
    got_words = await sink["c_m_axis"].wait_for(len(want_words), TIMEOUT_NS)
    got_bits = await sink["c_m_axis_bits"].wait_for(len(want_bits), TIMEOUT_NS)
    got_out = await sink["d_m_axis"].wait_for(len(want_out), TIMEOUT_NS)
    assert got_bits == want_bits, f"tile bit counts {got_bits} != golden {want_bits}"
    for i, (got, want) in enumerate(zip(got_words, want_words)):
        assert got == want, f"compressor word {i}: {got} != golden {want}"
    for i, (got, want) in enumerate(zip(got_out, want_out)):
        assert got == want, f"decompressor beat {i} (pixel {i * og // 64}): {got} != {want}"
    await ClockCycles(clk, 50)
    assert len(sink["c_m_axis"].received) == len(want_words), "extra compressor words"
    assert len(sink["d_m_axis"].received) == len(want_out), "extra decompressor beats"
    assert int(dut.c_error.value) == 0 and int(dut.d_error.value) == 0

    if measure:
        check_pixel_rate(dut, cfg, src, sink)

    # A truncated tile: ENDED_EARLY, only correct whole pixels, no tlast; then a good tile.
    t = g.tiles[1]
    before = len(sink["d_m_axis"].received)
    src["d_s_axis_pixels"].send([{"tdata": len(t["x"])}])
    cut = t["words"][:len(t["words"]) // 2]
    src["d_s_axis"].send([{"tdata": w, "tlast": int(i == len(cut) - 1)}
                          for i, w in enumerate(cut)])
    await src["d_s_axis"].wait_sent(TIMEOUT_NS)

    async def flagged():
        while not int(dut.d_error.value):
            await RisingEdge(clk)
    await with_timeout(flagged(), TIMEOUT_NS, "ns")
    assert int(dut.d_error_code.value) == 2, "truncated tile must report ENDED_EARLY"
    # The whole pixels golden decodes from the cut words, exactly, and nothing after them.
    whole = whole_rows(cut, art, cfg["w"], len(t["x"]))
    assert 0 < whole < len(t["x"])
    await sink["d_m_axis"].wait_for(before + whole * 64 // og, TIMEOUT_NS)
    await ClockCycles(clk, 800)
    partial = sink["d_m_axis"].received[before:]
    assert partial == g.out_beats(t["rec"][:whole], og, tile_end=False), (
        f"{len(partial)} beats after a truncated tile, golden decodes {whole} whole pixels")
    t = g.tiles[2]
    mark = len(sink["d_m_axis"].received)
    src["d_s_axis_pixels"].send([{"tdata": len(t["x"])}])
    src["d_s_axis"].send([{"tdata": w, "tlast": int(i == len(t["words"]) - 1)}
                          for i, w in enumerate(t["words"])])
    want = g.out_beats(t["rec"], og)
    got = await sink["d_m_axis"].wait_for(mark + len(want), TIMEOUT_NS)
    assert got[mark:] == want, "the tile after a corrupt one must decode exactly"
    assert int(dut.d_error.value) == 0, "the next header clears the error flag"
    if backpressure == "fill":
        for name in ("c_m_axis", "d_m_axis"):
            assert sink[name].pattern.fills > 0, f"backpressure never filled {name}"
        for name in ("c_m_axis", "d_m_axis"):
            assert sink[name].rule.stalls > 0, f"{name} was never stalled"
    if measure:
        await measure_tiles(dut, cfg, src, sink)


def check_pixel_rate(dut, cfg, src, sink, tiles=TILES):
    """Steady state inside the long tile (the second of ``tiles``): one pixel per
    max(C*K/M, K) cycles exactly, pixels into the compressor and out of the decompressor."""
    first, og = tiles[0], cfg["og"]
    acc = src["c_s_axis"].handshakes[first + 4:first + tiles[1]]
    gaps = set(np.diff(acc).tolist())
    dut._log.info(f"compressor: cycles between pixels {sorted(gaps)}, "
                  f"expected {cfg['c_cycles']}")
    assert gaps == {cfg["c_cycles"]}
    beats = 64 // og
    ends = sink["d_m_axis"].beat_cycles[beats - 1::beats][first + 4:first + tiles[1]]
    gaps = set(np.diff(ends).tolist())
    dut._log.info(f"decompressor: cycles between pixels {sorted(gaps)}, "
                  f"expected {cfg['d_cycles']}")
    assert gaps == {cfg["d_cycles"]}


async def measure_tiles(dut, cfg, src, sink):
    """Back-to-back tiles of 1 and of 4 pixels, no stalls: the cycles per tile.

    Compressor: cycles between the first-pixel handshakes of consecutive tiles; decompressor:
    cycles between the final output beats of consecutive tiles, in steady state (after two
    tiles). The smallest and largest must be ``cfg["tile_cycles"]``, measured on this data
    (``n * max(C*K/M, K)`` plus the per-tile overhead, docs/top.md); the outputs are golden's.
    """
    from cocotb.triggers import ClockCycles

    og = cfg["og"]
    offset = sum(TILES)
    for size, count in ((1, 12), (4, 6)):
        g = Golden(cfg, [size] * count, offset)
        offset += size * count
        c_mark = len(src["c_s_axis"].handshakes)
        w_mark, o_mark = len(sink["c_m_axis"].received), len(sink["d_m_axis"].received)
        for t in g.tiles:
            beats = g.pixel_beats(t["x"])
            beats[-1]["tlast"] = 1
            src["c_s_axis"].send(beats)
            src["d_s_axis_pixels"].send([{"tdata": size}])
            src["d_s_axis"].send([{"tdata": w, "tlast": int(i == len(t["words"]) - 1)}
                                  for i, w in enumerate(t["words"])])
        want_words = [{"tdata": w, "tlast": int(i == len(t["words"]) - 1)}
                      for t in g.tiles for i, w in enumerate(t["words"])]
        want_out = [b for t in g.tiles for b in g.out_beats(t["rec"], og)]
        got = await sink["c_m_axis"].wait_for(w_mark + len(want_words), TIMEOUT_NS)
        assert got[w_mark:] == want_words, f"{size}-pixel tiles: compressor words differ"
        got = await sink["d_m_axis"].wait_for(o_mark + len(want_out), TIMEOUT_NS)
        assert got[o_mark:] == want_out, f"{size}-pixel tiles: decompressor output differs"
        await ClockCycles(dut.clk, 20)
        starts = src["c_s_axis"].handshakes[c_mark::size]
        ends = [c for c, b in zip(sink["d_m_axis"].beat_cycles[o_mark:],
                                  sink["d_m_axis"].received[o_mark:]) if b["tlast"]]
        # Steady state: after the first two tiles.
        c_gaps = sorted(set(np.diff(starts[:count])[2:].tolist()))
        d_gaps = sorted(set(np.diff(ends)[2:].tolist()))
        dut._log.info(f"{size}-pixel tiles: compressor {c_gaps} cycles per tile, "
                      f"decompressor {d_gaps} (max(C*K/M, K) = {cfg['c_cycles']}); "
                      f"c {np.diff(starts[:count]).tolist()} d {np.diff(ends).tolist()} "
                      f"words {[len(t['words']) for t in g.tiles]} "
                      f"bits {[t['nbits'] for t in g.tiles]}")
        for k, gaps in (("c", c_gaps), ("d", d_gaps)):
            want = cfg["tile_cycles"][str(size)][k]
            assert [gaps[0], gaps[-1]] == want, (
                f"{'compressor' if k == 'c' else 'decompressor'}: {gaps} cycles per "
                f"{size}-pixel tile, measured before: {want[0]} to {want[1]}")


async def run_cfg_framing(dut):
    """Loads without ``tlast`` never hang the tops (docs/top.md).

    Weight loads without ``tlast`` end by their length, and both tops then match golden;
    tables without ``tlast`` end at their final byte with an error: the compressor keeps
    coding (the table is complete) with ``error`` set, the decompressor reports BAD_TABLE,
    takes the next tile's count and words (NO_TABLE, no output) and decodes again after a
    good load.
    """
    from cocotb.triggers import ClockCycles, RisingEdge, with_timeout

    from tb.streams import StreamSource, start_clock_and_reset

    cfg = load_config()
    g = Golden(cfg, (5, 7, 6, 4))
    art, og = g.art, cfg["og"]
    seed = 99
    clk = dut.clk
    valids_low(dut, cfg["baked"])
    await start_clock_and_reset(dut)
    src = {name: StreamSource(dut, name, clk, None, "none", seed + i, axi=True)
           for i, name in enumerate(("c_s_axis", "d_s_axis", "d_s_axis_pixels"))}
    sink = make_sinks(dut, cfg, "none", seed)
    src.update(await load_constants(dut, cfg, art, "none", seed, weights_last=False))

    async def tile(t, decodes=True):
        beats = g.pixel_beats(t["x"])
        beats[-1]["tlast"] = 1
        marks = {name: len(s.received) for name, s in sink.items()}
        src["c_s_axis"].send(beats)
        src["d_s_axis_pixels"].send([{"tdata": len(t["x"])}])
        src["d_s_axis"].send([{"tdata": w, "tlast": int(i == len(t["words"]) - 1)}
                              for i, w in enumerate(t["words"])])
        want = [{"tdata": w, "tlast": int(i == len(t["words"]) - 1)}
                for i, w in enumerate(t["words"])]
        got = await sink["c_m_axis"].wait_for(marks["c_m_axis"] + len(want), TIMEOUT_NS)
        assert got[marks["c_m_axis"]:] == want, "compressor words differ from golden"
        await src["d_s_axis"].wait_sent(TIMEOUT_NS)
        if decodes:
            want = g.out_beats(t["rec"], og)
            got = await sink["d_m_axis"].wait_for(marks["d_m_axis"] + len(want), TIMEOUT_NS)
            assert got[marks["d_m_axis"]:] == want, "decompressor output differs from golden"
        await ClockCycles(clk, 100)
        if not decodes:
            assert len(sink["d_m_axis"].received) == marks["d_m_axis"], "output without table"

    async def tables(last):
        beats = table_beats(art.tables.tables)
        if not last:
            beats = [{**b, "tlast": 0} for b in beats]
        for name in ("c_s_axis_table", "d_s_axis_table"):
            src[name].send(beats)
        for name in ("c_s_axis_table", "d_s_axis_table"):
            await src[name].wait_sent(TIMEOUT_NS)
        await ClockCycles(clk, 10)

    await tile(g.tiles[0])
    assert int(dut.c_error.value) == 0 and int(dut.d_error.value) == 0
    await tables(last=False)
    assert int(dut.c_error.value) == 1, "compressor: a table without tlast sets error"
    assert int(dut.d_error.value) == 1 and int(dut.d_error_code.value) == 5, "BAD_TABLE"
    await tile(g.tiles[1], decodes=False)
    assert int(dut.d_error_code.value) == 6, "decompressor: NO_TABLE after a bad table"

    async def cleared():
        while int(dut.c_error.value) or int(dut.d_error.value):
            await RisingEdge(clk)
    await tables(last=True)
    await with_timeout(cleared(), 10_000, "ns")
    await tile(g.tiles[2])
    assert int(dut.c_error.value) == 0 and int(dut.d_error.value) == 0
    # Weights again without tlast, then a tile: still golden's.
    await load_constants(dut, cfg, art, "none", seed + 5, weights_last=False)
    await tile(g.tiles[3])


if cocotb is not None:
    # The tests a configuration runs are generated from it: nothing returns early.
    _CFG = load_config()

    @cocotb.test()
    @cocotb.parametrize((("idle", "backpressure"), top_flows(_CFG)))
    async def top_matches_golden(dut, idle, backpressure):
        await run_top(dut, idle, backpressure, measure=(idle, backpressure) == ("none", "none"))

    if _CFG.get("main"):
        @cocotb.test()
        async def top_cfg_framing(dut):
            await run_cfg_framing(dut)
