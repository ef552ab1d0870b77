"""One compressor and one decompressor for three real MobileNetV2 layers, on both simulators.

The tops are generated once for maxima (``runtime_shape=True``: C <= 64, K <= 16, at most 3
table groups, M = 16) and reconfigured between layers by their layer descriptors, weights and
tables. The layers are three block outputs of MobileNetV2 with different shapes and group
layouts: ``features.3`` (C = 24, K = 6, groups of 5 and 3 bits), ``features.6`` (C = 32,
K = 10, 6/4/3 bits) and ``features.10`` (C = 64, K = 16, 6/4 bits), each the PCA of two photo
crops folded by ``golden.calibration.folding.calibrate_layer``, with the pixels of two other
crops. The three artifacts are packed into one network program (``golden.program``), and
the tops are configured from it, layer after layer. Per layer, bit for bit against golden:
the compressor's words and tile bit counts (``forward_int`` + ``encode_groups``) and the
decompressor's output from golden's words (``inverse_int``), under the stall diagonal on
every AXI port. With no stalls the run checks
each layer's cycles per pixel (``layer_cycles``) and logs the cycles each layer switch costs.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

try:
    import cocotb
except ImportError:  # the pytest side does not need cocotb imported
    cocotb = None

from golden.program import layer_streams, pack_program, unpack_program
from tb.common import BUILD_ROOT, DIAGONAL, load_config, run_cocotb, side_by_side
from tb.real_data import fit_and_held, save_atomic

C_MAX, K_MAX, G_MAX, M, W = 64, 16, 3, 16, 32
# (point, K, group bounds, group widths)
LAYERS = [("features.3", 6, [0, 2, 6], [5, 3]),
          ("features.6", 10, [0, 3, 6, 10], [6, 4, 3]),
          ("features.10", 16, [0, 8, 16], [6, 4])]
TILES = (1, 9, 6)
TIMEOUT_NS = 50_000_000
DATA = ("c_s_axis", "d_s_axis", "d_s_axis_pixels")
CONFIG = ("c_s_axis_weights", "d_s_axis_weights", "c_s_axis_table", "d_s_axis_table")


def real_layer(point, k, bounds, bits):
    """``(artifact path, x_int path)`` of one layer, cached under build/sim."""
    tag = f"rt_{point}_k{k}_" + "-".join(map(str, bits))
    art_path, x_path = BUILD_ROOT / f"{tag}.npz", BUILD_ROOT / f"{tag}_x.npy"
    if art_path.exists() and x_path.exists():
        return art_path, x_path
    from golden.calibration.folding import calibrate_layer
    from golden.datapath.artifacts import save_artifact
    from golden.datapath.pipeline import quantize_input
    from golden.projection.pca import pca_fit

    fit, held = fit_and_held(point)
    art = calibrate_layer(pca_fit(fit, k=k), fit, name=point, group_bits=tuple(bits),
                          group_bounds=bounds)
    save_atomic(x_path, lambda tmp: np.save(tmp, quantize_input(art, held).astype(np.int64)))
    save_atomic(art_path, lambda tmp: save_artifact(art, tmp))
    return art_path, x_path


def weight_beats(layer, forward, width):
    """A layer's ``s_axis_weights`` load from the program: descriptor, then the MAC array's
    values."""
    values = layer_streams(layer, "forward" if forward else "inverse", G_MAX)["weights"]
    return [{"tdata": v & ((1 << width) - 1), "tlast": int(i == len(values) - 1)}
            for i, v in enumerate(values)]


def table_beats(layer):
    return [{"tdata": b, "tuser": g, "tlast": last}
            for b, g, last in layer_streams(layer, "forward", G_MAX)["tables"]]


class Layer:
    """Golden tiles of one layer: pixels, words, bit counts, reconstruction beats."""

    def __init__(self, art_path, x_path, sizes):
        from golden.codec.plain import encode_groups
        from golden.datapath.artifacts import load_artifact
        from golden.datapath.pipeline import forward_int, inverse_int

        self.art = art = load_artifact(art_path)
        x = np.load(x_path)[:sum(sizes)]
        self.tiles, start = [], 0
        for size in sizes:
            xt = x[start:start + size]
            y = forward_int(art, xt, reference=True)
            words, nbits = encode_groups(y, art.tables.tables, art.group_bounds.tolist(), W)
            self.tiles.append({"x": xt, "words": [int(w) for w in words],
                               "nbits": int(nbits), "rec": inverse_int(art, y, reference=True)})
            start += size

    def pixel_beats(self, t):
        aw = self.art.in_bits
        beats = [{"tdata": sum((int(v) & ((1 << aw) - 1)) << (aw * j)
                               for j, v in enumerate(px))} for px in t["x"]]
        beats[-1]["tlast"] = 1
        return beats

    def out_beats(self, t):
        ow = self.art.out_bits
        return [{"tdata": int(v) & ((1 << ow) - 1),
                 "tlast": int(p == len(t["rec"]) - 1 and j == len(px) - 1)}
                for p, px in enumerate(t["rec"]) for j, v in enumerate(px)]


async def run_layers(dut, idle, backpressure):
    """Every layer in turn: its four loads, then its tiles, then every output checked.
    Returns per layer the cycle the loads were queued, the first and last pixel handshake
    cycles, and the cycles between pixels in the longest tile."""
    from cocotb.triggers import ClockCycles

    from tb.streams import StreamSink, StreamSource, start_clock_and_reset

    cfg = load_config()
    seed = zlib.crc32(f"{cfg['name']}-{idle}-{backpressure}".encode())
    for name in DATA + CONFIG:
        getattr(dut, f"{name}_tvalid").value = 0
    # Every source and sink starts on the same clock edge, so their cycle counts compare.
    src = {name: StreamSource(dut, name, dut.clk, None, idle, seed + i, axi=True)
           for i, name in enumerate(DATA + CONFIG)}
    watch = {"c": (dut.c_s_axis_tvalid, dut.c_s_axis_tready),
             "d": (dut.d_s_axis_tvalid, dut.d_s_axis_tready)}
    sink = {name: StreamSink(dut, name, dut.clk, None, backpressure, seed + 10 + i,
                             watch[name[0]], axi=True)
            for i, name in enumerate(("c_m_axis", "c_m_axis_bits", "d_m_axis"))}
    await start_clock_and_reset(dut)
    program = unpack_program(cfg["program"])
    report = []
    for n, (art_path, x_path) in enumerate(cfg["layers"]):
        layer = Layer(art_path, x_path, TILES)
        art, step = layer.art, program.layers[n]
        assert step.name == art.name
        queued = src["c_s_axis"].cycle
        for name, beats in (("c_s_axis_weights", weight_beats(step, True, cfg["c_width"])),
                            ("d_s_axis_weights", weight_beats(step, False, cfg["d_width"])),
                            ("c_s_axis_table", table_beats(step)),
                            ("d_s_axis_table", table_beats(step))):
            src[name].send(beats)
        for name in CONFIG:
            await src[name].wait_sent(TIMEOUT_NS)
        marks = {name: len(s.received) for name, s in sink.items()}
        c_mark = len(src["c_s_axis"].handshakes)
        for t in layer.tiles:
            src["c_s_axis"].send(layer.pixel_beats(t))
            src["d_s_axis_pixels"].send([{"tdata": len(t["x"])}])
            src["d_s_axis"].send([{"tdata": w, "tlast": int(i == len(t["words"]) - 1)}
                                  for i, w in enumerate(t["words"])])
        want = {"c_m_axis": [{"tdata": w, "tlast": int(i == len(t["words"]) - 1)}
                             for t in layer.tiles for i, w in enumerate(t["words"])],
                "c_m_axis_bits": [{"tdata": t["nbits"]} for t in layer.tiles],
                "d_m_axis": [b for t in layer.tiles for b in layer.out_beats(t)]}
        for name, beats in want.items():
            got = await sink[name].wait_for(marks[name] + len(beats), TIMEOUT_NS)
            for i, (g, w) in enumerate(zip(got[marks[name]:], beats)):
                assert g == w, f"layer {n} ({art.name}) {name} beat {i}: {g} != golden {w}"
        await ClockCycles(dut.clk, 30)
        for name, beats in want.items():
            assert len(sink[name].received) == marks[name] + len(beats), f"extra {name} beats"
        for top in ("c", "d"):
            assert int(getattr(dut, f"{top}_layer_error").value) == 0
            assert int(getattr(dut, f"{top}_error").value) == 0
        hs = src["c_s_axis"].handshakes[c_mark:]
        long_tile = hs[TILES[0]:TILES[0] + TILES[1]]
        d_ends = sink["d_m_axis"].beat_cycles[marks["d_m_axis"]:]
        report.append({"name": art.name, "C": art.channels, "K": art.k, "queued": queued,
                       "first_pixel": hs[0], "gaps": sorted(set(np.diff(long_tile).tolist())),
                       "d_first_out": d_ends[0], "d_last_out": d_ends[-1],
                       "c_last_word": sink["c_m_axis"].beat_cycles[-1],
                       "beats": len(weight_beats(step, True, cfg["c_width"])),
                       "table_bytes": len(table_beats(step))})
    return report


if cocotb is not None:
    _CFG = load_config()

    @cocotb.test()
    @cocotb.parametrize((("idle", "backpressure"), list(DIAGONAL[1:])))
    async def layers_match_golden(dut, idle, backpressure):
        await run_layers(dut, idle, backpressure)

    @cocotb.test()
    async def layers_rate_and_switch(dut):
        """No stalls: each layer's compressor takes one pixel per ``layer_cycles`` in its
        long tile; the cycles from queueing a layer's four loads (side by side, once the
        previous layer's outputs are all out) to its first pixel are logged."""
        cfg = load_config()
        report = await run_layers(dut, "none", "none")
        for r in report:
            want = cfg["layer_cycles"][r["name"]]
            dut._log.info(f"layer {r['name']} C={r['C']} K={r['K']}: compressor cycles per "
                          f"pixel {r['gaps']}, expected {want}; switch: "
                          f"{r['first_pixel'] - r['queued']} cycles from its loads being "
                          f"queued (the previous layer done) to its first pixel "
                          f"({r['beats']} weight beats, {r['table_bytes']} table bytes)")
            assert r["gaps"] == [want], f"{r['name']}: cycles per pixel {r['gaps']} != {want}"


# ----------------------------------------------------------------------------- pytest

@pytest.mark.parametrize("name", ["c64k16g3m16"])
def test_top_runtime(name):
    from amaranth.back import verilog

    from golden.datapath.artifacts import load_artifact
    from hdl.top import Compressor, Decompressor

    layers = [real_layer(*spec) for spec in LAYERS]
    c = Compressor(C_MAX, K_MAX, multipliers=M, word_width=W, runtime_shape=True,
                   max_groups=G_MAX)
    d = Decompressor(C_MAX, K_MAX, multipliers=M, word_width=W, runtime_shape=True,
                     max_groups=G_MAX)
    arts = [load_artifact(a) for a, _ in layers]
    program = BUILD_ROOT / f"top_runtime-{name}.achp"
    save_atomic(program, lambda tmp: tmp.write_bytes(pack_program(arts)))
    cfg = {"name": name, "layers": [[str(a), str(x)] for a, x in layers],
           "program": str(program),
           "c_width": c.mac.cfg_data_width, "d_width": d.mac.cfg_data_width,
           "layer_cycles": {a.name: c.layer_cycles(a.channels, a.k) for a in arts}}
    text = verilog.convert(side_by_side(c, d), name="top_pair", emit_src=False)
    run_cocotb(f"top_runtime-{name}", {"top_pair.v": text}, "top_pair", "tb.test_top_runtime",
               cfg, tests=len(DIAGONAL) - 1 + 1)


def test_layers_differ():
    """The three layers really differ in C, K and groups, and their data is not trivial."""
    from golden.datapath.artifacts import load_artifact

    arts = [load_artifact(real_layer(*spec)[0]) for spec in LAYERS]
    assert len({(a.channels, a.k, len(a.group_bits)) for a in arts}) == 3
    assert [a.channels for a in arts] == [24, 32, 64]
    for a, (_, x) in zip(arts, [real_layer(*spec) for spec in LAYERS]):
        assert len(np.unique(np.load(x))) > 20
